-- weft shared-data benchmarks: reading frozen tables and arrays from a worker, handing a
-- big array to a worker, freezing and thawing a big table, and an FFI loop over an
-- off-heap array against a plain Lua table.
--
--   LUA_CPATH="$PWD/target/lua/luajit/?.so;;" luajit bench/shared.lua [--quick] [--json]
--
-- LuaJIT first (the a:ptr() figures need its FFI); under lua5.4 the other rows run.
-- Every figure is a median of repetitions next to a same-run baseline; sanity checks
-- (sums, lengths) fail the run. See bench/README.md.

local weft = require "weft"
package.path = (arg and arg[0] and arg[0]:match("^(.*)/") or "bench") .. "/?.lua;" .. package.path
local B = require "harness"
B.start("bench/shared.lua")
local QUICK = B.QUICK
local now, check, progress, repeat_, section, row = B.now, B.check, B.progress, B.repeat_, B.section, B.row
local JIT = rawget(_G, "jit") ~= nil

local S = QUICK and { reps = 3, reads = 2e5, hand_n = 1e5, freeze_n = 1e5, sum_n = 1e6 }
  or { reps = 7, reads = 4e6, hand_n = 1e6, freeze_n = 1e6, sum_n = 1e8 }
for k, v in pairs(S) do
  if math.tointeger then S[k] = math.tointeger(v) end
end

progress("weft ", tostring(weft.version), ", ", JIT and jit.version or _VERSION,
  ", cpus ", tostring(weft.cpus()), QUICK and ", quick" or "", "; clock: ", B.CLOCK)

local pool = weft.pool { size = 1 }

-- 1. reading one element from a worker ---------------------------------------------------

-- Runs in the worker: times `reads` reads of each kind with the worker's own clock and
-- returns nanoseconds per read (loop included) and the sums, for the sanity check.
local function reads_in_worker(reads, plain_n, frozen, arr)
  local clock
  local okf, ffi = pcall(require, "ffi")
  if okf then
    pcall(ffi.cdef, "struct weft_bench_ts { long s; long ns; }; int clock_gettime(int, struct weft_bench_ts *);")
    local ts = ffi.new("struct weft_bench_ts")
    clock = function() ffi.C.clock_gettime(1, ts); return tonumber(ts.s) + tonumber(ts.ns) * 1e-9 end
  else
    clock = os.clock
  end
  local plain = {}
  for i = 1, plain_n do plain[i] = i end
  local n = plain_n
  local out, sums = {}, {}
  local function time(name, body)
    body(10 * n) -- warm up (and let the JIT compile the loop)
    local t0 = clock()
    sums[name] = body(reads)
    out[name] = (clock() - t0) / reads * 1e9
  end
  -- m reads as m / n sweeps over the n elements (m is a multiple of n)
  time("plain", function(m) local s = 0; for _ = 1, m / n do for i = 1, n do s = s + plain[i] end end; return s end)
  time("frozen", function(m) local s = 0; for _ = 1, m / n do for i = 1, n do s = s + frozen[i] end end; return s end)
  time("field", function(m) local s = 0; for _ = 1, m do s = s + frozen.weight end; return s end)
  time("array", function(m) local s = 0; for _ = 1, m / n do for i = 1, n do s = s + arr[i] end end; return s end)
  if okf then
    local p = arr:ptr()
    time("ptr", function(m) local s = 0; for _ = 1, m / n do for i = 0, n - 1 do s = s + p[i] end end; return s end)
  end
  return out, sums
end

do
  section("reads")
  local n = 1000
  local list = { weight = 0.5 }
  for i = 1, n do list[i] = i end
  local frozen = weft.freeze(list)
  local arr = weft.array("f64", n)
  for i = 1, n do arr[i] = i end
  local samples = {}
  for r = 1, S.reps do
    local ns, sums = pool:submit(reads_in_worker, S.reads, n, frozen, arr):join()
    check(sums.plain == sums.frozen and sums.frozen == sums.array, "frozen and array reads sum like the plain table")
    check(sums.field == 0.5 * S.reads, "field reads sum")
    if sums.ptr then check(sums.ptr == sums.plain, "ptr reads sum like the plain table") end
    for k, v in pairs(ns) do
      samples[k] = samples[k] or {}
      samples[k][r] = v
    end
  end
  local st = {}
  for k, xs in pairs(samples) do st[k] = B.stats(xs) end
  local loop = "baseline: the same loop over a plain Lua table in the worker"
  row("read_frozen_index", "read `t[i]` of a frozen table in a worker (ns/read, loop included)", "ns",
    st.frozen, st.plain, loop)
  row("read_frozen_field", "read `t.weight` of a frozen table in a worker", "ns", st.field, st.plain, loop)
  row("read_array_index", "read `a[i]` of an f64 array in a worker (bounds-checked metamethod)", "ns",
    st.array, st.plain, loop)
  if st.ptr then
    row("read_array_ptr", "read `p[i]` through `a:ptr()` in a worker (LuaJIT FFI)", "ns", st.ptr, st.plain, loop)
  end
end

-- 2. a big array to a worker, its sum back ---------------------------------------------------

local function sum_array(a)
  local s = 0
  local okf = pcall(require, "ffi")
  if okf then
    local p = a:ptr()
    for i = 0, #a - 1 do s = s + p[i] end
  else
    for i = 1, #a do s = s + a[i] end
  end
  return s
end
local function touch(a) return #a end

do
  section("hand over")
  local n = S.hand_n
  local big, small = weft.array("f64", n), weft.array("f64", 10)
  local p = JIT and big:ptr()
  for i = 1, n do if p then p[i - 1] = i else big[i] = i end end
  local want = n * (n + 1) / 2
  local total = repeat_(S.reps, function()
    local t0 = now()
    local s = pool:submit(sum_array, big):join()
    local dt = now() - t0
    check(s == want, "worker sum")
    return dt * 1e3
  end, 2)
  local local_sum = repeat_(S.reps, function()
    local t0 = now()
    check(sum_array(big) == want, "local sum")
    return (now() - t0) * 1e3
  end, 2)
  local hand = function(a) return repeat_(S.reps, function()
    local t0 = now()
    pool:submit(touch, a):join()
    return (now() - t0) * 1e3
  end, 3) end
  local big_hand, small_hand = hand(big), hand(small)
  row("array_to_worker_sum", string.format("%g-element f64 array to a warm worker, its sum back", n), "ms",
    total, local_sum, "baseline: the same sum in the caller (so the difference is the hand-over)")
  row("array_handover_big", string.format("hand-over only: `submit(f, a):join()` with a %g-element array", n),
    "ms", big_hand, small_hand, "baseline: the same with a 10-element array")
end

-- 3. freeze a big table, thaw it back -------------------------------------------------------

do
  section("freeze")
  local n = S.freeze_n
  local t = {}
  for i = 1, n do t[i] = i * 0.5 end
  local frozen
  local freeze = repeat_(S.reps, function()
    local t0 = now()
    frozen = weft.freeze(t)
    return (now() - t0) * 1e3
  end)
  check(#frozen == n and frozen[n] == n * 0.5, "frozen length and last element")
  local back
  local thaw = repeat_(S.reps, function()
    local t0 = now()
    back = frozen:totable()
    return (now() - t0) * 1e3
  end)
  check(#back == n and back[n] == n * 0.5, "thawed length and last element")
  local copy = repeat_(S.reps, function()
    local t0 = now()
    local c = {}
    for i = 1, n do c[i] = t[i] end
    return (now() - t0) * 1e3
  end)
  row("freeze_table", string.format("`weft.freeze` of a %g-number table", n), "ms", freeze, copy,
    "baseline: copying it in plain Lua")
  row("thaw_table", "`t:totable()` of it back", "ms", thaw, copy, "baseline: copying it in plain Lua")
end

-- 4. an FFI loop over an f32 array vs a plain Lua table -------------------------------------

if JIT then
  section("sum f32")
  local n = S.sum_n
  collectgarbage()
  local heap0, mem0 = collectgarbage("count"), weft.memory()
  local a = weft.array("f32", n)
  local p = a:ptr()
  for i = 0, n - 1 do p[i] = i % 1000 end
  local array_bytes = weft.memory() - mem0
  local heap_after_array = collectgarbage("count") - heap0
  local want = 0
  for i = 0, n - 1 do want = want + i % 1000 end
  local ptr_sum = repeat_(S.reps, function()
    local t0 = now()
    local s = 0
    for i = 0, n - 1 do s = s + p[i] end
    local dt = now() - t0
    check(s == want, "ptr sum")
    return dt * 1e3
  end)
  local t = {}
  for i = 1, n do t[i] = (i - 1) % 1000 end
  collectgarbage()
  local table_bytes = (collectgarbage("count") - heap0) * 1024
  local table_sum = repeat_(S.reps, function()
    local t0 = now()
    local s = 0
    for i = 1, n do s = s + t[i] end
    local dt = now() - t0
    check(s == want, "table sum")
    return dt * 1e3
  end)
  row("sum_f32_ptr", string.format("sum of %g f32 through `a:ptr()`", n), "ms", ptr_sum, table_sum,
    "baseline: the same sum over a plain Lua table")
  row("sum_f32_memory", "memory: the f32 array (weft.memory()) vs the table (collectgarbage)", "MB",
    B.stats { array_bytes / 1e6 }, B.stats { table_bytes / 1e6 },
    string.format("Lua heap grew %.0f KB while the array was filled", heap_after_array))
  t = nil
  a:free()
end

section(nil)
pool:close()
B.finish()
