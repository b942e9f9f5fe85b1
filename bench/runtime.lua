-- weft runtime benchmarks: threads, pools, channels, copying, parallel speedup, latency
-- under load (busy-loop processes this run starts and kills).
--
--   LUA_CPATH="$PWD/target/lua/luajit/?.so;;" luajit bench/runtime.lua [--quick] [--json]
--   LUA_CPATH="$PWD/target/lua/lua5.4/?.so;;" lua5.4 bench/runtime.lua [--quick]
--
-- Every figure is repeated; the table shows the median, min–max and the number of
-- repetitions, next to a same-run baseline measured in plain Lua (this machine is shared
-- and noisy: read the ratios, not the absolute numbers). Sanity checks (sums, counts,
-- order) fail the run with a non-zero exit. See bench/README.md.

local weft = require "weft"

-- bench/ holds the shared harness
package.path = (arg and arg[0] and arg[0]:match("^(.*)/") or "bench") .. "/?.lua;" .. package.path
local B = require "harness"
B.start("bench/runtime.lua")
local QUICK, WAIT_QUIET = B.QUICK, B.WAIT_QUIET
local now, CLOCK = B.now, B.CLOCK
local cpu_sample, others_share, wait_quiet = B.cpu_sample, B.others_share, B.wait_quiet
local check, progress, stats, repeat_ = B.check, B.progress, B.stats, B.repeat_
local fmt, sci, section, row = B.fmt, B.sci, B.section, B.row

-- sizes: full run vs smoke test
local S = QUICK and {
  reps = 3, spawn_loop = 50, submit_loop = 300, call_loop = 1e5,
  chan_n = 2e4, arr_n = 2e5, cpu_seconds = 0.08,
} or {
  reps = 7, spawn_loop = 200, submit_loop = 2000, call_loop = 1e6,
  chan_n = 1e5, arr_n = 1e6, cpu_seconds = 0.5,
}
for k, v in pairs(S) do -- integers on Lua 5.3+, so loops and labels stay integral
  if math.tointeger and v == math.floor(v) then S[k] = math.tointeger(v) end
end
local CHAN_REPS = QUICK and 3 or 5
local ARR_REPS = QUICK and 3 or 5
local CPU_REPS = QUICK and 3 or 7

-- the functions that cross threads ----------------------------------------------------

local function one() return 1 end

local function sum_array(t)
  local s = 0
  for i = 1, #t do s = s + t[i] end
  return s
end

--- Pure-Lua CPU work over first..last: eight minstd (Park–Miller) steps per index; the low
--- 16 bits of each index's result are summed, so every partial sum is an exact integer and
--- any chunking gives the same total.
local function cpu_work(first, last)
  local s = 0
  for i = first, last do
    local x = i
    for _ = 1, 8 do x = (x * 48271) % 2147483647 end
    s = s + x % 65536
  end
  return s
end

progress("weft ", tostring(weft.version), ", ", _VERSION, jit and (" / " .. jit.version) or "",
  ", cpus ", tostring(weft.cpus()), QUICK and ", quick" or "", "; clock: ", CLOCK)

-- a watchdog: a hang (a lost message, a deadlock) must fail the run, not stall it
local watchdog_done = weft.channel()
local watchdog = weft.spawn(function(done, limit)
  local _, why = done:pop(limit)
  if why == "timeout" then
    io.stderr:write(string.format("bench/runtime.lua: watchdog: no result after %d s; aborting\n", limit))
    os.exit(3)
  end
end, watchdog_done, (QUICK and 120 or 900) + 17 * WAIT_QUIET) -- 6 sections + CPU reps may each wait

-- 1. spawn + join -----------------------------------------------------------------------

local coroutine_st -- baseline shared by figures 1 and 2
do
  progress("1. spawn + join")
  section("spawn")
  local n = S.spawn_loop
  local st = repeat_(S.reps, function()
    local t0 = now()
    local bad = 0
    for _ = 1, n do
      if weft.spawn(one):join() ~= 1 then bad = bad + 1 end
    end
    local dt = now() - t0
    check(bad == 0, "spawn(one):join() ~= 1")
    return dt / n * 1e6
  end)
  local m = S.call_loop
  local co = repeat_(S.reps, function()
    local t0 = now()
    local s = 0
    for _ = 1, m do s = s + coroutine.wrap(one)() end
    local dt = now() - t0
    check(s == m, "coroutine baseline")
    return dt / m * 1e6
  end)
  coroutine_st = co
  local call = repeat_(S.reps, function()
    local f = one
    local t0 = now()
    local s = 0
    for _ = 1, m do s = s + f() end
    local dt = now() - t0
    check(s == m, "call baseline")
    return dt / m * 1e6
  end)
  row("spawn_join_us", "spawn + join of `function() return 1 end` (fresh thread), " .. n .. " per rep",
    "µs", st, co, "baseline: coroutine.wrap(fn)() in the main state")

  -- where a spawn's time goes (LuaJIT only: the probe reads the clock inside the thread,
  -- as its last act, so the figure is the return path alone)
  if jit and pcall(require, "ffi") then
    local function probe()
      local ffi = require "ffi"
      ffi.cdef "struct weft_probe_ts { long s; long ns; }; int clock_gettime(int, struct weft_probe_ts *);"
      local ts = ffi.new "struct weft_probe_ts"
      ffi.C.clock_gettime(1, ts)
      return tonumber(ts.s) + tonumber(ts.ns) * 1e-9
    end
    local m2 = math.max(20, math.floor(n / 4))
    local ok = true
    local back = repeat_(S.reps, function()
      local b = 0
      for _ = 1, m2 do
        local returning = weft.spawn(probe):join()
        local t1 = now()
        if not (returning and returning <= t1) then ok = false end
        b = b + (t1 - (returning or t1))
      end
      return b / m2 * 1e6
    end)
    check(ok, "spawn probe returned its timestamp")
    row("spawn_return_us", "  step: the thread's function returns → `join()` returns", "µs", back, nil,
      "result encode + wake-up + decode")
  end

  -- a worker's Lua state alone: make a 1-worker pool (Pool::new waits for its state), close it
  local made, closed = {}, {}
  for r = 1, S.reps do
    collectgarbage()
    local k = math.max(10, math.floor(n / 4))
    local a, b = 0, 0
    for _ = 1, k do
      local t0 = now()
      local p = weft.pool { size = 1 }
      local t1 = now()
      p:close()
      local t2 = now()
      a, b = a + (t1 - t0), b + (t2 - t1)
    end
    made[r], closed[r] = a / k * 1e6, b / k * 1e6
  end
  row("pool1_create_us", "  step: `weft.pool{size=1}` (thread start + new worker Lua state)", "µs", stats(made), nil, nil)
  row("pool1_close_us", "  step: `pool:close()` of it (state teardown + thread exit)", "µs", stats(closed), nil, nil)
  row("plain_call_us", "(baseline) plain Lua call of the same function", "µs", call, nil, nil)
end

-- 2. pool submit + join -------------------------------------------------------------------

section("pool submit")
for _, size in ipairs { 1, 2 } do
  progress("2. pool submit + join, ", size, " worker(s)")
  local pool = weft.pool { size = size }
  for _ = 1, 100 do pool:submit(one):join() end -- warm: states built, function loaded
  local n = S.submit_loop
  local st = repeat_(S.reps, function()
    local t0 = now()
    local bad = 0
    for _ = 1, n do
      if pool:submit(one):join() ~= 1 then bad = bad + 1 end
    end
    local dt = now() - t0
    check(bad == 0, "pool:submit(one):join() ~= 1")
    return dt / n * 1e6
  end)
  pool:close()
  row("pool" .. size .. "_submit_join_us",
    string.format("pool submit + join round trip, warm pool of %d worker%s, %d per rep", size,
      size > 1 and "s" or "", n), "µs", st, coroutine_st, "baseline: coroutine.wrap(fn)()")
end

-- 3./4. channel throughput --------------------------------------------------------------

do
  section("channels")
  local n = S.chan_n
  local producer_pool = weft.pool { size = 1 }
  producer_pool:submit(one):join()

  local produce_numbers, produce_tables = B.produce_numbers, B.produce_tables

  local function run(kind, capacity)
    local producer = kind == "numbers" and produce_numbers or produce_tables
    return repeat_(CHAN_REPS, function()
      local ch = capacity and weft.channel(capacity) or weft.channel()
      local t0 = now()
      local fut = producer_pool:submit(producer, ch, n)
      local ok = true
      if kind == "numbers" then
        local s = 0
        for i = 1, n do
          local v = ch:pop()
          if v ~= i then ok = false end
          s = s + v
        end
        ok = ok and s == n * (n + 1) / 2
      else
        for i = 1, n do
          local v = ch:pop()
          if v[1] ~= i or v[2] ~= "x" then ok = false end
        end
      end
      local dt = now() - t0
      local last, why = ch:pop()
      check(ok, "channel " .. kind .. ": values popped in order")
      check(last == nil and why == "closed", "channel " .. kind .. ": closed after n values")
      check(fut:join() == n, "channel producer count")
      return n / dt
    end)
  end

  --- A plain Lua table used as a FIFO queue in one thread: push all, pop all.
  local function baseline(kind)
    return repeat_(CHAN_REPS, function()
      local q, head, tail = {}, 1, 0
      local t0 = now()
      if kind == "numbers" then
        for i = 1, n do tail = tail + 1; q[tail] = i end
      else
        for i = 1, n do tail = tail + 1; q[tail] = { i, "x" } end
      end
      local ok = true
      for i = 1, n do
        local v = q[head]; q[head] = nil; head = head + 1
        if kind == "numbers" then
          if v ~= i then ok = false end
        elseif v[1] ~= i or v[2] ~= "x" then ok = false end
      end
      local dt = now() - t0
      check(ok and head == tail + 1, "plain-table queue baseline")
      return n / dt
    end)
  end

  for _, kind in ipairs { "numbers", "tables" } do
    local what = kind == "numbers" and "numbers" or '`{i, "x"}` tables'
    progress("3/4. channel ", kind)
    local base = baseline(kind)
    for _, cap in ipairs { false, 1024 } do
      local st = run(kind, cap or nil)
      row(string.format("channel_%s_%s_msgs_per_s", kind, cap and ("cap" .. cap) or "unbounded"),
        string.format("channel %s %s, producer thread → main, %s", sci(n), what,
          cap and ("capacity " .. cap) or "unbounded"),
        "msgs/s", st, base, "baseline: plain Lua table as a queue, one thread")
    end
    -- the two halves alone, in the main state: n pushes into an unbounded channel, then n pops
    local pushes, pops = {}, {}
    for r = 1, CHAN_REPS do
      collectgarbage()
      local ch = weft.channel()
      local t0 = now()
      if kind == "numbers" then
        for i = 1, n do ch:push(i) end
      else
        for i = 1, n do ch:push({ i, "x" }) end
      end
      local t1 = now()
      local ok = #ch == n
      for i = 1, n do
        local v = ch:pop()
        if kind == "numbers" then
          if v ~= i then ok = false end
        elseif v[1] ~= i then ok = false end
      end
      local t2 = now()
      check(ok, "single-thread channel push/pop " .. kind)
      pushes[r], pops[r] = (t1 - t0) / n * 1e9, (t2 - t1) / n * 1e9
    end
    row("chan_push_ns_" .. kind, "  step: one `ch:push` of a " .. (kind == "numbers" and "number" or "table") ..
      ", one thread, no consumer", "ns", stats(pushes), nil, nil)
    row("chan_pop_ns_" .. kind, "  step: one `ch:pop` of a " .. (kind == "numbers" and "number" or "table") ..
      ", one thread, queue pre-filled", "ns", stats(pops), nil, nil)
  end
  -- the floor of any channel method: a call that does nothing (`ch:len()`), and `#ch`
  do
    local ch = weft.channel()
    local m = S.chan_n
    local lens = repeat_(CHAN_REPS, function()
      local t0 = now()
      local z = 0
      for _ = 1, m do z = z + ch:len() end
      local dt = now() - t0
      check(z == 0, "ch:len()")
      return dt / m * 1e9
    end)
    local hashes = repeat_(CHAN_REPS, function()
      local t0 = now()
      local z = 0
      for _ = 1, m do z = z + #ch end
      local dt = now() - t0
      check(z == 0, "#ch")
      return dt / m * 1e9
    end)
    row("chan_len_call_ns", "  step: `ch:len()` (weft.lua wrapper + binding call, no work)", "ns", lens, nil, nil)
    row("chan_len_meta_ns", "  step: `#ch` (a plain mlua metamethod, no weft.lua wrapper)", "ns", hashes, nil, nil)
  end
  producer_pool:close()
end

-- 5. a big array to a worker and its sum back ---------------------------------------------

do
  local n = S.arr_n
  progress("5. ", sci(n), "-number array to a worker")
  section("array")
  local arr = {}
  for i = 1, n do arr[i] = i * 0.5 end
  local expect = 0.5 * n * (n + 1) / 2 -- exact: every partial sum is a multiple of 0.5 < 2^52

  local pool = weft.pool { size = 1 }
  pool:submit(one):join()
  -- spawn and pool runs interleaved, so drift on this shared machine hits both alike
  local by_spawn, by_pool = {}, {}
  for r = 0, ARR_REPS do -- r = 0: warm-up, not recorded
    collectgarbage()
    local t0 = now()
    local s1 = weft.spawn(sum_array, arr):join()
    local t1 = now()
    collectgarbage()
    local t2 = now()
    local s2 = pool:submit(sum_array, arr):join()
    local t3 = now()
    check(s1 == expect, "array sum via spawn")
    check(s2 == expect, "array sum via pool:submit")
    if r > 0 then by_spawn[r], by_pool[r] = (t1 - t0) * 1e3, (t3 - t2) * 1e3 end
  end
  pool:close()
  local spawn_st, pool_st = stats(by_spawn), stats(by_pool)

  -- the steps: encoding (push into a channel) and decoding (pop out of it), main state only
  local ch = weft.channel()
  local enc_st, dec_st
  do
    local enc, dec = {}, {}
    for r = 1, ARR_REPS do
      collectgarbage()
      local t0 = now()
      ch:push(arr)
      local t1 = now()
      local back = ch:pop()
      local t2 = now()
      check(#back == n and back[n] == arr[n] and back[1] == arr[1], "array round trip through a channel")
      enc[r], dec[r] = (t1 - t0) * 1e3, (t2 - t1) * 1e3
      back = nil
    end
    enc_st, dec_st = stats(enc), stats(dec)
  end

  -- baselines: deep copy in plain Lua, and the sum itself, both in the main state
  local copy_st = repeat_(ARR_REPS, function()
    local t0 = now()
    local c = {}
    for i = 1, #arr do c[i] = arr[i] end
    local dt = now() - t0
    check(#c == n, "copy baseline")
    return dt * 1e3
  end)
  local sum_st = repeat_(ARR_REPS, function()
    local t0 = now()
    local s = sum_array(arr)
    local dt = now() - t0
    check(s == expect, "sum baseline")
    return dt * 1e3
  end)
  local label = sci(n) .. "-number array"
  row("array_spawn_ms", label .. " to a fresh thread, sum back (`spawn(f, arr):join()`)", "ms",
    spawn_st, copy_st, "baseline: copying the table in plain Lua")
  row("array_pool_ms", label .. " to a warm pool worker, sum back (`submit(f, arr):join()`)", "ms",
    pool_st, copy_st, "baseline: copying the table in plain Lua")
  row("array_encode_ms", "  step: encode (`ch:push(arr)`, main state)", "ms", enc_st, nil, nil)
  row("array_decode_ms", "  step: decode (`ch:pop()`, main state)", "ms", dec_st, nil, nil)
  row("array_copy_lua_ms", "(baseline) copy the array in plain Lua", "ms", copy_st, nil, nil)
  row("array_sum_lua_ms", "(baseline) sum the array in the main state", "ms", sum_st, nil, nil)
  arr = nil
  collectgarbage()
end

-- 6. CPU loop: 2 threads vs 1 ---------------------------------------------------------------

do
  progress("6. CPU loop, 2 threads vs 1")
  section("cpu loop")
  -- calibrate N so the single-threaded work takes about S.cpu_seconds here
  local N = 1e5
  while true do
    local t0 = now()
    cpu_work(1, N)
    local dt = now() - t0
    if dt > math.min(0.15, S.cpu_seconds / 2) or N >= 1e9 then
      N = math.floor(N * S.cpu_seconds / dt / 1000 + 0.5) * 1000
      break
    end
    N = N * 4
  end
  N = N - N % 2
  local expect = cpu_work(1, N)

  local pool = weft.pool { size = 2, init = function(i) WEFT_BENCH_WORKER = i end }
  local seen = weft.channel()
  local function tagged(first, last)
    seen:push(WEFT_BENCH_WORKER)
    return cpu_work(first, last)
  end
  pool:range(2, tagged, { chunk = 1 }) -- warm both workers (loads the function in each)
  while #seen > 0 do seen:pop() end

  local t1s, t2s, ratios, mains = {}, {}, {}, {}
  local workers_used = {}
  local shares = {}
  for r = 1, CPU_REPS do
    collectgarbage()
    wait_quiet()
    local s0 = cpu_sample()
    -- one chunk: one worker
    local t0 = now()
    local one_chunk = pool:range(N, tagged, { chunk = N })
    local t1 = now() - t0
    check(#one_chunk == 1 and one_chunk[1] == expect, "CPU loop, 1 chunk: result equals the main state's")
    seen:pop()
    -- two chunks on two workers
    t0 = now()
    local two = pool:range(N, tagged, { chunk = N / 2 })
    local t2 = now() - t0
    check(#two == 2 and two[1] + two[2] == expect, "CPU loop, 2 chunks: sum equals the main state's")
    local a, b = seen:pop(), seen:pop()
    workers_used[r] = (a ~= b) and 2 or 1
    -- the same work inline, for reference
    t0 = now()
    check(cpu_work(1, N) == expect, "CPU loop in the main state")
    mains[r] = now() - t0
    t1s[r], t2s[r], ratios[r] = t1 * 1e3, t2 * 1e3, t1 / t2
    shares[r] = others_share(s0, cpu_sample())
  end
  pool:close()
  local distinct = 0
  for r = 1, CPU_REPS do if workers_used[r] == 2 then distinct = distinct + 1 end end
  check(distinct > 0, "the 2-chunk runs never used two different workers")
  local main_ms = {}
  for r = 1, CPU_REPS do main_ms[r] = mains[r] * 1e3 end
  local main_st = stats(main_ms)
  row("cpu_1thread_ms", string.format("CPU loop (%s indices × 8 LCG steps) on 1 worker", sci(N)),
    "ms", stats(t1s), main_st, "baseline: the same loop inline in the main state")
  row("cpu_2threads_ms", "  the same split in 2 chunks over a 2-worker pool (`pool:range`)", "ms",
    stats(t2s), nil, string.format("2 distinct workers in %d of %d reps", distinct, CPU_REPS))
  local share_txt = ""
  if shares[1] then
    local parts = {}
    for r = 1, CPU_REPS do parts[r] = shares[r] and string.format("%.0f%%", 100 * shares[r]) or "n/a" end
    share_txt = "; other processes used " .. table.concat(parts, ", ") .. " of the cores in each rep"
  end
  row("cpu_speedup", "CPU loop speedup, 2 threads vs 1 (per-rep ratio)", "×", stats(ratios), nil,
    "ideal 2.00×" .. share_txt)
  -- the same, keeping only repetitions during which other processes used < 5 % of the cores
  local clean = {}
  for r = 1, CPU_REPS do
    if shares[r] and shares[r] < 0.05 then clean[#clean + 1] = ratios[r] end
  end
  if #clean > 0 then
    row("cpu_speedup_quiet", "CPU loop speedup, quiet reps only (others < 5 % of the cores)", "×",
      stats(clean), nil, string.format("%d of %d reps were quiet", #clean, CPU_REPS))
  end
end

-- 7. latency with 0, 1 and 8 busy-loop processes on the cores (bench/busy_load.lua) -------

require("busy_load").run(B, QUICK)

section(nil)
watchdog_done:push(true)
watchdog:join()

B.finish()
