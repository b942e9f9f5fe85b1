-- tests/mpi/crash.lua: one rank raises an error while the others wait for it in a receive
-- (mode "recv"), in a collective ("bcast"), or inside a weft thread that the main thread
-- joins ("thread"). The job must end, with the failing rank's message; tests/mpi/run.sh
-- runs this under a timeout, so a hang fails the test instead of blocking it.
local weft = require "weft"
local mpi = weft.mpi
local mode = arg[1] or "recv"
local rank, size = mpi.rank(), mpi.size()
mpi.barrier()
if rank == size - 1 then
  if mode == "thread" then
    weft.spawn(function() error("boom from a thread of the last rank") end):join()
  end
  error("boom on purpose on the last rank")
end
if mode == "bcast" then
  mpi.bcast(nil, size - 1)
else
  mpi.recv(size - 1)
end
print("rank " .. rank .. " was never released: this line must not print")
