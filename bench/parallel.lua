-- Parallel speedup of pure Lua on weft against what this machine gives two processes.
--
--   make module LUA=luajit
--   LUA_CPATH="$PWD/target/lua/luajit/?.so;;" luajit bench/parallel.lua [REPS] [N]
--
-- Per repetition, interleaved: the same CPU loop (N indices × 8 LCG steps) on 1 weft
-- worker vs split over 2 (pool:range), and in 1 plain `luajit` process vs 2 processes
-- running a half each. On a shared VM the cores' speed varies by tens of percent between
-- seconds, so the speedup weft reaches is only meaningful next to the speedup the
-- hardware itself gives at the same moment. Prints medians and the ratio of the two.
local weft = require "weft"
local ffi = require "ffi"
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } weft_bench_ts;
  int clock_gettime(int, weft_bench_ts *);
]]
local ts = ffi.new("weft_bench_ts")
local function now()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local REPS = tonumber(arg[1]) or 9
local N = tonumber(arg[2]) or 16e6

local function work(first, last)
  local x = 0
  for i = first, last do
    local v = i
    for _ = 1, 8 do v = (v * 1103515245 + 12345) % 2147483648 end
    x = (x + v) % 2147483648
  end
  return x
end

local script = os.tmpname()
do
  local f = assert(io.open(script, "w"))
  f:write(string.dump(function(n)
    local x = 0
    for i = 1, n do
      local v = i
      for _ = 1, 8 do v = (v * 1103515245 + 12345) % 2147483648 end
      x = (x + v) % 2147483648
    end
    return x
  end))
  f:close()
end
local lj = arg[-1] or "luajit"
local function processes(count, n)
  local cmd = {}
  for i = 1, count do cmd[i] = string.format("%s -e 'loadfile(%q)(%d)' &", lj, script, n) end
  local t0 = now()
  assert(os.execute(table.concat(cmd, " ") .. " wait"))
  return now() - t0
end

local pool = weft.pool { size = 2 }
local expect = work(1, N)
local parts = pool:range(2, work, { chunk = 1 }) -- load the function in both workers
assert(#parts == 2)

local function median(t)
  table.sort(t)
  local n = #t
  return n % 2 == 1 and t[(n + 1) / 2] or (t[n / 2] + t[n / 2 + 1]) / 2
end

local weft_ratios, proc_ratios, relative = {}, {}, {}
for r = 1, REPS do
  local t0 = now()
  local one = pool:range(N, work, { chunk = N })
  local w1 = now() - t0
  t0 = now()
  local two = pool:range(N, work, { chunk = N / 2 })
  local w2 = now() - t0
  -- The loop's sum is taken modulo 2^31, so the two halves add up modulo 2^31 too.
  assert(one[1] == expect and (two[1] + two[2]) % 2147483648 == expect, "weft computed a different result")
  local p1 = processes(1, N)
  local p2 = processes(2, N / 2)
  weft_ratios[r], proc_ratios[r] = w1 / w2, p1 / p2
  relative[r] = weft_ratios[r] / proc_ratios[r]
  io.stderr:write(string.format("rep %d: weft %.0f/%.0f ms = %.2fx   processes %.0f/%.0f ms = %.2fx\n",
    r, w1 * 1e3, w2 * 1e3, weft_ratios[r], p1 * 1e3, p2 * 1e3, proc_ratios[r]))
end
pool:close()
os.remove(script)
print(string.format("| 2 weft workers vs 1 (pool:range) | %.2fx median of %d |", median(weft_ratios), REPS))
print(string.format("| 2 luajit processes vs 1 (the machine, same moments) | %.2fx median of %d |", median(proc_ratios), REPS))
print(string.format("| weft's speedup / the machine's, per repetition | %.2f median of %d |", median(relative), REPS))
