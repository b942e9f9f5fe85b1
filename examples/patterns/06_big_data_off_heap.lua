-- Pattern 6: gigabytes of numbers off the Lua heap, and what they cost the GC.
--
-- Problem: a program holds a lot of numeric data — embeddings, a matrix, a long time
-- series — and spends its time in the garbage collector, or runs out of heap. Here the
-- same kind of data (rows of 128 doubles) is held once in a weft.array (2 GB by default)
-- and once in Lua tables (a smaller amount), and the Lua heap size and the time of one
-- full GC cycle are measured with each alive.
--
-- What people usually get wrong:
--  * Big numeric data in Lua tables. Every full GC cycle walks every slot of every table
--    (its cost grows with the data, however static it is); a number costs 8 bytes in
--    LuaJIT's array part, 16 in Lua 5.4's, more in hash parts; non-GC64 LuaJIT builds
--    cap the whole heap at 2 GB (the "not enough memory" wall).
--  * malloc through the FFI by hand: no bounds checks, freed by hand, and the cdata
--    cannot be handed to another thread (weft refuses cdata). A weft.array is one small
--    userdata to the GC, its memory owned by Rust, freed when no thread holds it, shared
--    with workers by reference, typed (f32 halves it again) and savable as .npy.
--  * Copying the array back into a table to work on it (a:totable() of gigabytes): read
--    it in place — a[i], a:get(i, j), or a:ptr() under LuaJIT (pattern 7).
--
-- Run:  target/release/weft run examples/patterns/06_big_data_off_heap.lua [GB] [TABLE_GB]
--       (defaults: 2 GB in the array, min(GB, 0.5) GB of numbers in tables)
local weft = require "weft"

local GB = tonumber(arg and arg[1]) or 2
local TABLE_GB = tonumber(arg and arg[2]) or math.min(GB, 0.5)
local COLS = 128

local now = (function() -- wall-clock seconds (LuaJIT FFI; os.time elsewhere)
  local ok, ffi = pcall(require, "ffi")
  if not ok then return os.time end
  ffi.cdef "typedef struct { long s, ns; } pat_timespec; int clock_gettime(int, pat_timespec *);"
  local ts = ffi.new "pat_timespec"
  return function() ffi.C.clock_gettime(1, ts); return tonumber(ts.s) + tonumber(ts.ns) * 1e-9 end
end)()

local function full_gc() -- seconds of one full collection (best of 3)
  local best = math.huge
  for _ = 1, 3 do
    local t0 = now()
    collectgarbage()
    best = math.min(best, now() - t0)
  end
  return best
end

-- the value at row r, column c; small integers, so every sum below is exact
local function value(r, c) return (r * 7 + c) % 100 end
local function expected_sum(rows) -- value(r, .) repeats with r % 100: sum one period
  local s = 0
  for r = 1, math.min(rows, 100) do
    local row = 0
    for c = 1, COLS do row = row + value(r, c) end
    s = s + row * (math.floor((rows - r) / 100) + 1) -- rows r, r + 100, r + 200, ... <= rows
  end
  return s
end

collectgarbage()
local heap0 = collectgarbage("count") * 1024 -- bytes
local gc0 = full_gc()

-- 1. the array: GB of f64 off the heap, filled and summed by every core in place
local ROWS = math.floor(GB * 2 ^ 30 / 8 / COLS)
local t0 = now()
local a = weft.array("f64", ROWS, COLS)
local pool = weft.pool { size = weft.cpus() }
local partial = pool:range(ROWS, function(first, last)
  local p, s = a:ptr(), 0 -- a typed pointer; take it in the worker (cdata cannot cross)
  for r = first, last do
    local row = (r - 1) * COLS -- 0-based
    for c = 1, COLS do
      local v = value(r, c)
      p[row + c - 1] = v
      s = s + v
    end
  end
  return s
end, { chunk = 4096 })
pool:close()
local array_sum = 0
for _, s in ipairs(partial) do array_sum = array_sum + s end
local fill_s = now() - t0
local array_heap = collectgarbage("count") * 1024 - heap0
local array_gc = full_gc()
local held = weft.memory()
print(string.format("array: %d x %d f64 = %.2f GB held by weft, filled (first touch of fresh pages) and summed in %.2f s on %d workers",
  ROWS, COLS, held / 2 ^ 30, fill_s, weft.cpus()))
print(string.format("  with it alive: Lua heap +%.0f KB, a full GC cycle %.2f ms (%.2f ms with nothing alive)",
  array_heap / 1024, array_gc * 1e3, gc0 * 1e3))
assert(array_sum == expected_sum(ROWS), "the array holds every value")
assert(held >= ROWS * COLS * 8, "weft.memory() counts the array")
assert(array_heap < 2 ^ 20, "the array is not on the Lua heap")
a:free()
a = nil
collectgarbage()
assert(weft.memory() < 2 ^ 20, "freeing returns the memory")

-- 2. the same kind of data in Lua tables: a table of row tables
local TROWS = math.floor(TABLE_GB * 2 ^ 30 / 8 / COLS)
t0 = now()
local t = {}
for r = 1, TROWS do
  local row = {}
  for c = 1, COLS do row[c] = value(r, c) end
  t[r] = row
end
local table_sum = 0
for r = 1, TROWS do
  local row = t[r]
  for c = 1, COLS do table_sum = table_sum + row[c] end
end
local build_s = now() - t0
local table_heap = collectgarbage("count") * 1024 - heap0
local table_gc = full_gc()
local numbers = TROWS * COLS
print(string.format("tables: %d rows of %d numbers (%.2f GB of doubles), built and summed in %.2f s on 1 thread",
  TROWS, COLS, numbers * 8 / 2 ^ 30, build_s))
print(string.format("  with them alive: Lua heap +%.0f MB (%.1f bytes a number), a full GC cycle %.2f ms",
  table_heap / 2 ^ 20, table_heap / numbers, table_gc * 1e3))
print(string.format("a full GC cycle: %.2f ms with %.2f GB in the array, %.1f ms with %.2f GB in tables (%.0f ms a GB)",
  array_gc * 1e3, ROWS * COLS * 8 / 2 ^ 30, table_gc * 1e3, numbers * 8 / 2 ^ 30,
  (table_gc - gc0) * 1e3 / (numbers * 8 / 2 ^ 30)))
assert(table_sum == expected_sum(TROWS), "the tables hold every value")
assert(table_heap >= numbers * 8, "table numbers are on the Lua heap")
t = nil
collectgarbage()
print("ok")
