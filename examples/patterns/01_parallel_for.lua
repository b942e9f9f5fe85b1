-- Pattern 1: a parallel for — CPU-heavy pure-Lua work split over all cores.
--
-- Problem: one Lua interpreter runs on one core. Here the work is counting the primes
-- up to N by trial division (pure Lua, no C), split over every core with weft.range,
-- and timed against the same code on a pool of one worker, in the same run.
--
-- What people usually get wrong:
--  * One thread per item (effil.thread / lanes.gen per element): each costs a fresh Lua
--    state. Use weft.range / pool:range: warm workers, work handed out in chunks.
--  * Writing results into an outer table from the worker (`counts[i] = x`). Upvalues are
--    copied by value into each worker, so the writes land in a copy and are lost. Return
--    the result: range gives back each chunk's return value, in chunk order.
--  * Reading the main script's globals in a worker. Each worker owns its own Lua state;
--    pass data as upvalues (`local LIMIT = ...`) or arguments.
--  * Timing with os.clock(): it is the process's CPU time summed over all threads, so a
--    parallel run looks no faster. Time with a wall clock (clock_gettime below).
--  * A few equal chunks when the work is uneven (big numbers cost more to test here):
--    the worker with the last chunk finishes alone. Many smaller chunks balance it.
--
-- Run:  target/release/weft run examples/patterns/01_parallel_for.lua [N]   (default 3e6)
local weft = require "weft"

local N = math.floor(tonumber(arg and arg[1]) or 3e6)

local now = (function() -- wall-clock seconds (LuaJIT FFI; os.time elsewhere)
  local ok, ffi = pcall(require, "ffi")
  if not ok then return os.time end
  ffi.cdef "typedef struct { long s, ns; } pat_timespec; int clock_gettime(int, pat_timespec *);"
  local ts = ffi.new "pat_timespec"
  return function() ffi.C.clock_gettime(1, ts); return tonumber(ts.s) + tonumber(ts.ns) * 1e-9 end
end)()

-- the work of one chunk: how many primes in first..last (trial division, pure Lua)
local function count_primes(first, last)
  local count = 0
  for n = math.max(first, 2), last do
    local prime = n == 2 or n % 2 == 1
    local d = 3
    while prime and d * d <= n do
      if n % d == 0 then prime = false end
      d = d + 2
    end
    if prime then count = count + 1 end
  end
  return count
end

local function total(parts) local s = 0; for _, c in ipairs(parts) do s = s + c end; return s end

-- the reference, in this state: a sieve of Eratosthenes
local function sieve(n)
  local composite, count = {}, 0
  for i = 2, n do
    if not composite[i] then
      count = count + 1
      for j = i * i, n, i do composite[j] = true end
    end
  end
  return count
end
local want = sieve(N)

-- one worker
local one = weft.pool { size = 1 }
local t0 = now()
local got1 = total(one:range(N, count_primes, { chunk = 10000 }))
local t1 = now() - t0
one:close()

-- every core: weft.range runs on a default pool of weft.cpus() workers
t0 = now()
local parts = weft.range(N, count_primes, { chunk = 10000 })
local tn = now() - t0
local gotn = total(parts)

print(string.format("primes up to %d: %d (sieve: %d), %d chunks", N, gotn, want, #parts))
print(string.format("1 worker %.2f s, %d workers %.2f s: %.2fx speedup",
  t1, weft.cpus(), tn, t1 / tn))

assert(got1 == want, "one worker counts every prime")
assert(gotn == want, "all workers count every prime")
print("ok")
