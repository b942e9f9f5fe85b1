-- weft.mpi between two local ranks: the bandwidth of send/recv of a 10⁶-element f32
-- array, and the latency of a small table's round trip.
--
--   mpirun --allow-run-as-root -n 2 target/release/weft run bench/mpi.lua [--quick]
--   (weft built with --features mpi; or luajit with a weft.so built with mpi)
--
-- Ping-pong: rank 0 sends, rank 1 sends the value straight back; one-way time is half a
-- round trip. Each figure is the median of REPS runs, and the kinds alternate within each
-- run so that a burst of load from other tenants hits them alike. Baselines, in the same
-- runs: a Lua string of the same 4·10⁶ bytes (MPI moving bytes with nothing to decode
-- into), and a bare number's round trip. Every echo is checked (length, one element).
local weft = require "weft"
local mpi = weft.mpi
local rank, size = mpi.rank(), mpi.size()
assert(size == 2, "run with exactly 2 ranks (mpirun -n 2)")
local QUICK = arg[1] == "--quick"
local REPS = QUICK and 3 or 11
local N = 1e6
local BIG_ROUNDS = QUICK and 3 or 20
local SMALL_ROUNDS = QUICK and 200 or 2000

local arr = weft.array("f32", N)
for i = 1, N, 1000 do arr:set(i, i) end
local str = string.rep("x", 4 * N)
local small = { id = 7, name = "item", tags = { "a", "b" }, score = 0.5 }

-- One ping-pong of `value`, `rounds` times; seconds per one-way trip.
local function pingpong(value, rounds, check)
  mpi.barrier()
  local t0 = weft.now()
  for _ = 1, rounds do
    if rank == 0 then
      mpi.send(1, value)
      local back = mpi.recv(1)
      if check then check(back) end
    else
      mpi.send(0, (mpi.recv(0)))
    end
  end
  return (weft.now() - t0) / rounds / 2
end

local kinds = {
  { name = "f32 array, 1e6 elements", value = arr, rounds = BIG_ROUNDS, bytes = 4 * N,
    check = function(b) assert(#b == N and b[1001] == 1001) end },
  { name = "string, 4e6 bytes (baseline)", value = str, rounds = BIG_ROUNDS, bytes = 4 * N,
    check = function(b) assert(#b == 4 * N) end },
  { name = "small table", value = small, rounds = SMALL_ROUNDS,
    check = function(b) assert(b.tags[2] == "b") end },
  { name = "number (baseline)", value = 1.5, rounds = SMALL_ROUNDS,
    check = function(b) assert(b == 1.5) end },
}
-- What a receiver pays for the memory of a new 4 MB array alone (each page written once):
-- every received array is new memory, and on a VM the page faults cost more than the copy.
local function fresh_array()
  local t0 = weft.now()
  for _ = 1, BIG_ROUNDS do
    local a = weft.array("f32", N)
    for i = 1, N, 1024 do a:set(i, 1) end
    a:free()
  end
  mpi.barrier()
  return (weft.now() - t0) / BIG_ROUNDS
end
kinds[#kinds + 1] = { name = "new f32 array of 1e6, pages written (no MPI)", fresh = true, bytes = 4 * N }
local times = {}
for _, k in ipairs(kinds) do
  times[k.name] = {}
  if not k.fresh then pingpong(k.value, 2, k.check) end -- warm up
end
for _ = 1, REPS do
  for _, k in ipairs(kinds) do
    local t = times[k.name]
    t[#t + 1] = k.fresh and fresh_array() or pingpong(k.value, k.rounds, k.check)
  end
end

local function median(xs)
  local s = {}
  for i, x in ipairs(xs) do s[i] = x end
  table.sort(s)
  return s[math.ceil(#s / 2)], s[1], s[#s]
end

if rank == 0 then
  print(string.format("| weft.mpi, 2 local ranks (median of %d) | one way | min–max | |", REPS))
  print("| --- | --- | --- | --- |")
  for _, k in ipairs(kinds) do
    local m, lo, hi = median(times[k.name])
    if k.bytes then
      local gbs = k.bytes / m / 1e9
      print(string.format("| %s | %.3f ms | %.3f–%.3f ms | %.2f GB/s |", k.name, m * 1e3, lo * 1e3, hi * 1e3, gbs))
    else
      print(string.format("| %s round trip | %.1f µs | %.1f–%.1f µs | |", k.name, 2 * m * 1e6, 2 * lo * 1e6, 2 * hi * 1e6))
    end
  end
  local a = median(times[kinds[1].name])
  local s = median(times[kinds[2].name])
  local t = median(times[kinds[3].name])
  local n = median(times[kinds[4].name])
  print(string.format("array / string time: %.2f; small table / number time: %.2f", a / s, t / n))
end
mpi.barrier()
