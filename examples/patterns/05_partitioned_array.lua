-- Pattern 5: batch processing — one big weft.array, partitioned over workers that each
-- write their own disjoint part, with no locks and no copies.
--
-- Problem: fill or transform millions of numbers on every core and end up with one
-- result array. The array lives off the Lua heap and crosses to the workers by
-- reference, so every worker writes straight into the same memory.
--
-- What people usually get wrong:
--  * A Lua table as the output, captured by the workers: each worker writes into its own
--    copy (upvalues are copied by value) and the main thread's table stays empty.
--  * Each worker returning its part as a table, concatenated in the main thread: every
--    number is copied twice and ends up on the GC heap (16 bytes each).
--  * A lock around every write (effil/Lanes habit). Writes to disjoint elements need
--    none: weft's element reads and writes are atomic per element, and parts that do
--    not overlap cannot race. The hard part is making sure they do not overlap:
--  * Off-by-one partitions. pool:range hands out inclusive [first, last] ranges that tile
--    1..n exactly; a:slice(r0, r1) is inclusive too and its rows are renumbered from 1.
--    The `hits` array below counts the writes to each element: every one must be 1.
--
-- Run:  target/release/weft run examples/patterns/05_partitioned_array.lua [N]  (default 1e7)
local weft = require "weft"

local N = math.floor(tonumber(arg and arg[1]) or 1e7)
local pool = weft.pool { size = weft.cpus() }

-- 1. a 1-D array filled by pool:range: each chunk writes a[first..last] and returns its sum
local a = weft.array("f64", N)
local hits = weft.array("u8", N)
local sums = pool:range(N, function(first, last)
  local s = 0
  for i = first, last do
    local v = (i % 1000) * 0.5   -- the "work": anything computed from i
    a[i] = v
    hits[i] = hits[i] + 1        -- disjoint parts: no other worker touches element i
    s = s + v
  end
  return s
end)
local total = 0
for _, s in ipairs(sums) do total = total + s end

local want = 0
for i = 1, N do
  local v = (i % 1000) * 0.5
  if a[i] ~= v or hits[i] ~= 1 then error("element " .. i .. " is wrong or not written exactly once") end
  want = want + v
end
assert(total == want, "the chunk sums add up")
print(string.format("1-D f64[%d]: %d chunks over %d workers, every element written once, sum %.1f",
  N, #sums, weft.cpus(), total))

-- 2. a 2-D array split by hand into one row block per worker with a:slice (a view, no copy)
local COLS = 64
local ROWS = math.max(weft.cpus(), math.floor(N / COLS / 4))
local m = weft.array("u32", ROWS, COLS)
local per = math.ceil(ROWS / weft.cpus())
local futures = {}
for r0 = 1, ROWS, per do
  local r1 = math.min(r0 + per - 1, ROWS)
  futures[#futures + 1] = pool:submit(function(block, row0)
    local rows = block:shape()          -- block's rows are 1..rows, i.e. m's row0..row0+rows-1
    for r = 1, rows do
      for c = 1, COLS do block:set(r, c, (row0 + r - 1) * COLS + c) end
    end
    return rows
  end, m:slice(r0, r1), r0)
end
local rows_done = 0
for _, f in ipairs(futures) do rows_done = rows_done + f:join() end
pool:close()

for r = 1, ROWS do
  for c = 1, COLS do
    if m:get(r, c) ~= r * COLS + c then error("m[" .. r .. "][" .. c .. "] is wrong") end
  end
end
assert(rows_done == ROWS, "the blocks cover every row once")
print(string.format("2-D u32[%d x %d]: %d row blocks of up to %d rows, every element checked",
  ROWS, COLS, #futures, per))
print("ok")
