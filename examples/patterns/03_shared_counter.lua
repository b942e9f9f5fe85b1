-- Pattern 3: a counter shared by many threads.
--
-- Problem: several threads count events into one total.
--
-- What people usually get wrong:
--  * A plain Lua table as the "shared" state (`local t = {n = 0}` captured by the worker
--    functions). Each weft thread gets a copy of its upvalues, so `t.n = t.n + 1` in a
--    worker changes that copy and the main thread's t.n stays 0. No error, no count.
--  * A locked shared table (effil.table, a Lanes linda, weft.table()) updated with
--    `s.n = s.n + 1`. Each operation takes the lock, but this line is two of them: a
--    read, then a write. Two threads read the same n, both write n + 1, and one
--    increment is lost. Locking each access does not make a read-modify-write atomic.
--  * The fixes: weft.counter() — an atomic integer, c:add(1) is one hardware operation
--    and returns the new value — or, for a key in a shared table, s:add("n", 1), which
--    reads and writes under a single lock. (Or count locally and add once at the end.)
--
-- Run:  target/release/weft run examples/patterns/03_shared_counter.lua [INCREMENTS]  (default 200000 per thread)
local weft = require "weft"

local PER_THREAD = math.floor(tonumber(arg and arg[1]) or 200000)
local THREADS = math.max(4, weft.cpus())

local plain = { n = 0 }            -- wrong: every thread gets its own copy
local c = weft.counter()           -- right: an atomic integer
local s = weft.table()             -- a locked shared table
s.racy, s.exact = 0, 0
local started = weft.counter()

local threads = {}
for i = 1, THREADS do
  threads[i] = weft.spawn(function()
    started:add(1) -- start together, so the racy updates overlap
    while started:get() < THREADS do weft.check() end
    for _ = 1, PER_THREAD do
      plain.n = plain.n + 1        -- a copy's field: invisible to everyone else
      s.racy = s.racy + 1          -- read, then write: two locked operations, not one
      s:add("exact", 1)            -- one atomic read-modify-write
      c:add(1)                     -- one atomic integer add
    end
    return plain.n
  end)
end
local each = {}
for i, th in ipairs(threads) do each[i] = th:join() end

local want = THREADS * PER_THREAD
print(string.format("%d threads x %d increments = %d", THREADS, PER_THREAD, want))
print(string.format("  plain table t.n = t.n + 1      main sees %d (each thread counted %d in its own copy)", plain.n, each[1]))
print(string.format("  weft.table  s.n = s.n + 1      %d: %d increments lost", s.racy, want - s.racy))
print(string.format("  weft.table  s:add(\"n\", 1)      %d", s.exact))
print(string.format("  weft.counter c:add(1)          %d", c:get()))

assert(plain.n == 0 and each[1] == PER_THREAD, "upvalues are copies")
assert(s.racy <= want, "a race can only lose updates")
assert(s.exact == want, "s:add is atomic")
assert(c:get() == want, "the counter is exact")
print("ok")
