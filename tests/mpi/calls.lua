-- tests/mpi/calls.lua: every weft.mpi call, with every kind of value, between real ranks.
--
--   mpirun -n P weft run tests/mpi/calls.lua P        (or luajit / lua5.4 with weft.so)
--
-- Each rank checks what it receives against what the sender must have sent (both sides
-- build the same values from the sender's rank), and prints "ok rank R of P" at the end;
-- tests/mpi/run.sh checks every rank printed it. Any failed check raises, which ends the
-- job (the other ranks are killed), so a failure is a non-zero exit, never a hang.
local weft = require "weft"
local mpi = weft.mpi

local rank, size = mpi.rank(), mpi.size()
local expected = tonumber(arg[1])
assert(size == expected, ("size() is %s, mpirun started %s"):format(size, tostring(expected)))
assert(rank >= 0 and rank < size and rank % 1 == 0, "rank() " .. rank)

local function fail(msg, level) error(("rank %d: %s"):format(rank, msg), (level or 1) + 1) end
local function check(cond, msg) if not cond then fail(msg, 2) end end

-- Structural equality of plain values and weft arrays (cycles followed once).
local function same(a, b, seen)
  seen = seen or {}
  if type(a) ~= type(b) then return false end
  if type(a) == "number" then return a == b or (a ~= a and b ~= b) end
  if type(a) == "userdata" then
    if a:dtype() ~= b:dtype() then return false end
    local r1, c1 = a:shape()
    local r2, c2 = b:shape()
    if r1 ~= r2 or c1 ~= c2 then return false end
    for i = 1, r1 do
      for j = 1, c1 or 1 do
        local x, y
        if c1 then x, y = a:get(i, j), b:get(i, j) else x, y = a[i], b[i] end
        if x ~= y then return false end
      end
    end
    return true
  end
  if type(a) ~= "table" then return a == b end
  if seen[a] then return seen[a] == b end
  seen[a] = b
  for k, v in pairs(a) do
    local w = b[k]
    if type(k) == "table" then return false end -- (no table keys in these values)
    if not same(v, w, seen) then return false end
  end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

local DTYPES = { "f32", "f64", "i32", "i64", "u8", "u16", "u32" }

-- An array of `dtype` whose elements depend on `seed`; 2-D when `cols`.
local function array(dtype, seed, rows, cols)
  local a = weft.array(dtype, rows, cols)
  for i = 1, rows do
    for j = 1, cols or 1 do
      local v = (seed * 7 + i * 3 + j) % 80 -- a u8 sum over 3 ranks stays below 256
      if dtype == "f32" or dtype == "f64" then v = v + 0.25 end
      if cols then a:set(i, j, v) else a:set(i, v) end
    end
  end
  return a
end

-- The values rank `r` sends, as a list (built the same way on every rank).
local function values_of(r)
  local shared = { "shared", r }
  local t = { 1, 2.5, "three", nested = { deeper = { deepest = { r, "x" } } },
              [true] = "yes", [1.5] = "float key", a = shared, b = shared }
  t.self = t
  local k = 10 + r
  local function add(x) return x + k end
  local function twice(x) return add(add(x)) end -- an upvalue that is a function
  local vals = {
    42 + r, -0.5, 2 ^ 53, 1 / 0, -1 / 0, 0 / 0,
    "", "short", string.rep("long\0string", 1000),
    true, false,
    t,
    twice,
    math, string.rep,
    { list = { 1, 2, 3 }, [10] = "sparse", f = add },
  }
  for _, d in ipairs(DTYPES) do
    vals[#vals + 1] = array(d, r, 5)
    vals[#vals + 1] = array(d, r, 4, 3)
  end
  vals[#vals + 1] = array("f32", r, 10):slice(3, 7) -- a view: only its rows travel
  return vals
end

-- Checks beyond structure: functions run, cycles and sharing are kept, modules resolve.
local function check_value(i, got, want, from)
  local what = ("value %d from rank %d"):format(i, from)
  if type(want) == "function" then
    check(type(got) == "function", what .. " is a " .. type(got))
    if want == string.rep then
      check(got == string.rep, what .. ": string.rep did not arrive by name")
    else
      check(got(1) == want(1), what .. ": the function returns " .. tostring(got(1)))
    end
  elseif want == math then
    check(got == math, what .. ": math did not arrive by name")
  elseif type(want) == "table" and want.self then
    check(got.self == got, what .. ": the cycle was not kept")
    check(got.a == got.b, what .. ": the shared sub-table became two")
    check(got.nested.deeper.deepest[2] == "x" and got[true] == "yes" and got[1.5] == "float key",
      what .. ": contents differ")
  elseif type(want) == "table" and want.f then
    check(got.f(1) == want.f(1) and got[10] == "sparse" and same(got.list, want.list),
      what .. ": contents differ")
  elseif type(want) == "userdata" then
    check(type(got) == "userdata" and same(got, want), what .. ": the array differs")
  else
    check(same(got, want), what .. (": got %s, want %s"):format(tostring(got), tostring(want)))
  end
end

-- 1. send / recv: rank 0 sends every value to each other rank, which echoes it back.
if rank == 0 then
  for r = 1, size - 1 do
    local vals = values_of(r)
    for i, v in ipairs(vals) do mpi.send(r, v, i) end
    mpi.send(r, nil, 0) -- nil is a value too
    for i, v in ipairs(vals) do
      local got, src, tag = mpi.recv(r, i)
      check(src == r and tag == i, ("echo %d: source %s tag %s"):format(i, src, tag))
      check_value(i, got, v, r)
    end
  end
else
  local want = values_of(rank)
  for i = 1, #want do
    local got, src, tag = mpi.recv(0)
    check(src == 0 and tag == i, ("recv %d: source %s tag %s"):format(i, src, tag))
    check_value(i, got, want[i], 0)
    mpi.send(0, got, i)
  end
  local got, src, tag = mpi.recv()
  check(got == nil and src == 0 and tag == 0, "the nil message: " .. tostring(got))
end

-- 2. tags pick messages: sent tag 2 then tag 1, received tag 1 first.
if size > 1 then
  if rank == 0 then
    mpi.send(1, "second", 2)
    mpi.send(1, "first", 1)
  elseif rank == 1 then
    local a, _, ta = mpi.recv(0, 1)
    local b, _, tb = mpi.recv(nil, 2)
    check(a == "first" and ta == 1 and b == "second" and tb == 2, "tags: " .. tostring(a) .. " " .. tostring(b))
  end
end
mpi.barrier()

-- 3. bcast from every root, of every kind of value.
for root = 0, size - 1 do
  local want = values_of(root)
  for i, v in ipairs(want) do
    local mine = nil
    if rank == root then mine = v end -- (`rank == root and v or nil` loses a false)
    local got = mpi.bcast(mine, root)
    check_value(i, got, v, root)
  end
end

-- 4. gather and allgather (rank r's value at index r + 1).
for root = 0, size - 1 do
  local got = mpi.gather({ rank = rank, sq = rank * rank, a = array("u16", rank, 3) }, root)
  if rank == root then
    check(#got == size, "gather: " .. #got .. " values")
    for r = 0, size - 1 do
      check(got[r + 1].rank == r and got[r + 1].sq == r * r and same(got[r + 1].a, array("u16", r, 3)),
        "gather: value of rank " .. r)
    end
  else
    check(got == nil, "gather: a non-root rank got " .. tostring(got))
  end
end
local all = mpi.allgather(function() return rank end)
check(#all == size, "allgather: " .. #all .. " values")
for r = 0, size - 1 do check(all[r + 1]() == r, "allgather: the function of rank " .. r) end
all = mpi.allgather(nil)
check(type(all) == "table" and next(all) == nil, "allgather of nils")

-- 5. reduce and allreduce of numbers and of arrays of every dtype, every op.
local function expect(op, values)
  local acc = values[1]
  for i = 2, #values do
    if op == "sum" then acc = acc + values[i]
    elseif op == "min" then acc = math.min(acc, values[i])
    else acc = math.max(acc, values[i]) end
  end
  return acc
end
for _, op in ipairs({ "sum", "min", "max" }) do
  local xs = {}
  for r = 0, size - 1 do xs[#xs + 1] = (r * 37) % 11 + 0.5 end
  local want = expect(op, xs)
  check(mpi.allreduce((rank * 37) % 11 + 0.5, op) == want, "allreduce " .. op)
  for root = 0, size - 1 do
    local got = mpi.reduce((rank * 37) % 11 + 0.5, op, root)
    check(got == (rank == root and want or nil), ("reduce %s to %d: %s"):format(op, root, tostring(got)))
  end
  for _, d in ipairs(DTYPES) do
    for _, cols in ipairs({ false, 3 }) do
      local mine = array(d, rank, 4, cols or nil)
      local got = mpi.allreduce(mine, op)
      local r1, c1 = got:shape()
      check(got:dtype() == d and r1 == 4 and c1 == (cols or nil), "allreduce shape " .. d)
      for i = 1, 4 do
        for j = 1, cols or 1 do
          local per = {}
          for r = 0, size - 1 do
            local a = array(d, r, 4, cols or nil)
            per[#per + 1] = cols and a:get(i, j) or a[i]
          end
          local g = cols and got:get(i, j) or got[i]
          check(g == expect(op, per), ("allreduce %s %s [%d,%d]: %s"):format(op, d, i, j, tostring(g)))
        end
      end
      local on_root = mpi.reduce(mine, op, size - 1)
      check((rank == size - 1) == (on_root ~= nil), "reduce of an array: result on the wrong rank")
      if on_root then check(same(on_root, got), "reduce and allreduce of " .. d .. " differ") end
    end
  end
end

-- 6. weft threads inside a rank call MPI concurrently: on rank 0 two threads send, each
-- with its own tag, to two threads of rank 1 that receive their own tag.
if size > 1 and rank <= 1 then
  local threads = {}
  for t = 1, 2 do
    threads[t] = weft.spawn(function(rank, t)
      local mpi = require("weft").mpi
      local sum = 0
      for i = 1, 50 do
        if rank == 0 then
          mpi.send(1, { t = t, i = i, data = weft.array("f64", 100) }, 100 + t)
        else
          local v, src, tag = mpi.recv(0, 100 + t)
          assert(src == 0 and tag == 100 + t and v.t == t and v.i == i and #v.data == 100,
            "thread " .. t .. " got the wrong message")
          sum = sum + v.i
        end
      end
      return sum
    end, rank, t)
  end
  for t = 1, 2 do
    local got = threads[t]:join()
    check(got == (rank == 1 and 1275 or 0), "thread " .. t .. ": " .. tostring(got))
  end
end
mpi.barrier()
print(("ok rank %d of %d"):format(rank, size))
