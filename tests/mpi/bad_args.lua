-- tests/mpi/bad_args.lua: bad arguments to weft.mpi raise one clear line naming the
-- argument, on the rank that made the mistake and, for collectives, on every rank
-- (none is left waiting). Run by tests/mpi/run.sh with 2 and 3 ranks; prints "ok rank R".
local weft = require "weft"
local mpi = weft.mpi
local rank, size = mpi.rank(), mpi.size()

local function raises(pattern, f, ...)
  local ok, err = pcall(f, ...)
  if ok then error(("rank %d: no error, expected %q"):format(rank, pattern), 2) end
  if type(err) ~= "string" or not err:find(pattern, 1, true) then
    error(("rank %d: error %q, expected %q"):format(rank, tostring(err), pattern), 2)
  end
  if err:find("\n", 1, true) then error(("rank %d: not one line: %q"):format(rank, err), 2) end
  return err
end

local last = size - 1
local other = (rank + 1) % size

-- point to point: ranks, tags and values, checked before anything is sent
raises("weft.mpi.send: dest must be a rank from 0 to " .. last .. " (got " .. size .. "; ranks are 0-based)",
  mpi.send, size, 1)
raises("weft.mpi.send: dest must be a rank from 0 to " .. last .. " (got -1", mpi.send, -1, 1)
raises("weft.mpi.send: dest must be an integer (got 0.5)", mpi.send, 0.5, 1)
raises("weft.mpi.send: dest must be an integer (got string)", mpi.send, "1", 1)
raises("weft.mpi.send: dest " .. rank .. " is this rank; a rank cannot send to or from itself",
  mpi.send, rank, 1)
raises("weft.mpi.send: tag must be from 0 to 32767 (got -1)", mpi.send, other, 1, -1)
raises("weft.mpi.send: tag must be from 0 to 32767 (got 40000)", mpi.send, other, 1, 40000)
raises("weft.mpi.send: cannot send value 1 (a coroutine)", mpi.send, other, coroutine.create(print))
raises("weft.mpi.send: cannot send value 1 .ch (a coroutine)", mpi.send, other,
  { ch = coroutine.create(print) })
raises("weft.mpi.send: a weft channel cannot be sent to another process", mpi.send, other,
  { weft.channel() })
raises("weft.mpi.send: a weft counter cannot be sent to another process", mpi.send, other,
  weft.counter())
local raising = setmetatable({}, { __index = function() error("raised") end,
                                  __len = function() error("raised") end })
raises("weft.mpi.send: cannot send value 1 (a table with a metatable", mpi.send, other, raising)
raises("weft.mpi.send: dest must be an integer (got table)", mpi.send, raising, 1)
raises("weft.mpi.bcast: root must be an integer (got table)", mpi.bcast, 1, raising)
raises("weft.mpi.recv: source must be a rank from 0 to " .. last, mpi.recv, size)
raises("weft.mpi.recv: source " .. rank .. " is this rank", mpi.recv, rank)
raises("weft.mpi.recv: tag must be from 0 to 32767 (got -5)", mpi.recv, nil, -5)

-- collectives: arguments every rank gets wrong alike
raises("weft.mpi.bcast: root is missing", mpi.bcast, 1)
raises("weft.mpi.bcast: root must be a rank from 0 to " .. last .. " (got " .. size, mpi.bcast, 1, size)
raises("weft.mpi.gather: root must be an integer (got 0.5)", mpi.gather, 1, 0.5)
raises("weft.mpi.reduce: root is missing", mpi.reduce, 1, "sum")
raises("weft.mpi.allreduce: op must be \"sum\", \"min\" or \"max\" (got \"avg\")", mpi.allreduce, 1, "avg")
raises("weft.mpi.allreduce: op must be \"sum\", \"min\" or \"max\" (got nil)", mpi.allreduce, 1)
raises("weft.mpi.allreduce: x must be a number or a weft array (got table)", mpi.allreduce, { 1, 2 }, "sum")
raises("weft.mpi.reduce: x must be a number or a weft array (got string)", mpi.reduce, "1", "max", 0)
raises("weft.mpi.allreduce: x must be a number or a weft array (got table)", mpi.allreduce, raising, "min")
raises("weft.mpi.allreduce: op must be \"sum\", \"min\" or \"max\" (got table)", mpi.allreduce, 1, raising)

-- collectives where one rank's argument is bad: every rank raises, none waits
if rank == last then
  raises("weft.mpi.allreduce: x must be a number or a weft array (got table)", mpi.allreduce, {}, "sum")
else
  raises("weft.mpi.allreduce: rank " .. last .. "'s x is not a number or a weft array", mpi.allreduce, 1, "sum")
end
if rank == last then
  raises("weft.mpi.allreduce: op must be", mpi.allreduce, 1, "avg")
else
  raises("weft.mpi.allreduce: rank " .. last .. "'s op is not", mpi.allreduce, 1, "sum")
end
raises("weft.mpi.allreduce: ranks disagree on op", mpi.allreduce, 1, rank == 0 and "min" or "max")
local a = rank == 0 and weft.array("f32", 10) or weft.array("f32", 12)
raises("weft.mpi.allreduce: ranks disagree on x: rank " .. rank .. " has a f32 array of "
  .. (rank == 0 and 10 or 12) .. " elements, rank " .. (rank == 0 and 1 or 0), mpi.allreduce, a, "sum")
raises("weft.mpi.reduce: ranks disagree on x", mpi.reduce, rank == 0 and 1 or weft.array("f64", 1), "sum", 0)
raises("weft.mpi.allreduce: ranks disagree on x", mpi.allreduce,
  rank == 0 and weft.array("i32", 2, 3) or weft.array("i32", 3, 2), "max")
-- a value one rank cannot send: it says why, the receivers name that rank
local v = rank == last and coroutine.create(print) or rank
local err = raises("weft.mpi.allgather:", mpi.allgather, v)
if rank == last then
  assert(err:find("cannot send value 1 (a coroutine)", 1, true), err)
else
  assert(err:find("rank " .. last .. " could not send its value", 1, true), err)
end
if rank == 0 then
  raises("weft.mpi.gather: rank " .. last .. " could not send its value", mpi.gather, v, 0)
elseif rank == last then
  raises("weft.mpi.gather: cannot send value 1 (a coroutine)", mpi.gather, v, 0)
else
  assert(mpi.gather(v, 0) == nil)
end
if rank == 0 then
  raises("weft.mpi.bcast: cannot send value 1 (a coroutine)", mpi.bcast, coroutine.create(print), 0)
else
  raises("weft.mpi.bcast: rank 0 could not send its value", mpi.bcast, nil, 0)
end
-- after all that, the ranks still talk
assert(mpi.allreduce(1, "sum") == size)
mpi.barrier()
print(("ok rank %d of %d"):format(rank, size))
