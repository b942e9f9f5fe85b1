-- Pattern 7: a LuaJIT FFI hot loop over a weft.array, next to the same loop through a[i]
-- and through a plain Lua table.
--
-- Problem: the innermost loop of a numeric program (a sum, a distance, a filter) runs
-- over millions of elements and should run at C speed without leaving Lua.
-- Under LuaJIT, a:ptr() is a typed cdata pointer (double * for f64, float * for f32, ...)
-- into the array's memory; the JIT compiles p[i] to a plain load.
--
-- What people usually get wrong:
--  * Off by one: the pointer is 0-based like C (p[0] is a[1], p[#a - 1] is a[#a]); the
--    Lua side a[i] is 1-based, bounds-checked. p[i] is not checked: stay inside 0..#a-1.
--  * Keeping only the pointer: ptr() does not keep the array alive. If the last
--    reference to the array goes, the GC may free the memory under the pointer (a
--    use-after-free). Keep the array in a local for as long as you use p.
--  * Passing the pointer to another thread: cdata cannot cross (weft refuses it). Pass
--    the array (it crosses by reference) and call a:ptr() in the worker, as below.
--  * Method calls in the hot loop (a:get(i)): each is a call through the Lua C API,
--    many times slower than a[i], which LuaJIT compiles through the FFI.
--  * Summing f32 data and expecting float32 results: p[i] reads a float into a Lua
--    double, so the sum is a double.
--
-- Run:  target/release/weft run examples/patterns/07_ffi_hot_loop.lua [N]  (default 2e7)
local weft = require "weft"
local ffi = require "ffi"

local N = math.floor(tonumber(arg and arg[1]) or 2e7)

ffi.cdef "typedef struct { long s, ns; } pat_timespec; int clock_gettime(int, pat_timespec *);"
local ts = ffi.new "pat_timespec"
local function now() ffi.C.clock_gettime(1, ts); return tonumber(ts.s) + tonumber(ts.ns) * 1e-9 end

local function best_of(reps, f) -- the fastest of reps runs: its result and seconds
  local best, result = math.huge, nil
  for _ = 1, reps do
    local t0 = now()
    result = f()
    best = math.min(best, now() - t0)
  end
  return result, best
end

local a = weft.array("f64", N)
local p = a:ptr() -- `a` stays referenced below, so p stays valid
for i = 0, N - 1 do p[i] = (i + 1) % 1000 end -- element i + 1 (1-based) holds (i + 1) % 1000
assert(p[0] == a[1] and p[N - 1] == a[N], "p is 0-based, a[i] 1-based")

local t = {}
for i = 1, N do t[i] = i % 1000 end

local rows = {}
local function report(name, sum, secs)
  rows[#rows + 1] = { name = name, sum = sum, secs = secs }
  print(string.format("  %-32s sum %.0f  %7.1f ms  %5.2f ns/element", name, sum, secs * 1e3, secs * 1e9 / N))
end

print(string.format("sum of %d f64 elements, best of 3:", N))
report("p[i] over a:ptr() (FFI)", best_of(3, function()
  local s = 0
  for i = 0, N - 1 do s = s + p[i] end
  return s
end))
report("a[i]", best_of(3, function()
  local s = 0
  for i = 1, N do s = s + a[i] end
  return s
end))
report("t[i], a plain Lua table", best_of(3, function()
  local s = 0
  for i = 1, N do s = s + t[i] end
  return s
end))
report("p[i] on " .. weft.cpus() .. " workers (pool:range)", best_of(3, function()
  local s = 0
  for _, part in ipairs(weft.range(N, function(first, last)
    local q, s = a:ptr(), 0 -- the array crossed by reference; the pointer is made here
    for i = first - 1, last - 1 do s = s + q[i] end
    return s
  end)) do s = s + part end
  return s
end))

local want = 0 -- closed form: each full block of 1000 sums to 499500
want = math.floor(N / 1000) * 499500 + (N % 1000) * (N % 1000 + 1) / 2
for _, r in ipairs(rows) do assert(r.sum == want, r.name .. " sums every element exactly") end
print(string.format("every sum equals %.0f; p[i] is %.1fx faster than a[i]", want, rows[2].secs / rows[1].secs))
print("ok")
