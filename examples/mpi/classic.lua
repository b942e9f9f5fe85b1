-- examples/mpi/classic.lua: the course's classic, in Lua. Rank 0 cuts the work into
-- pieces and sends one to each other rank; they compute, rank 0 gathers the pieces'
-- results and every rank takes part in the reductions.
--
--   mpirun -n 4 target/release/weft run examples/mpi/classic.lua [N]
--
-- The work: π = ∫₀¹ 4/(1+x²) dx by the midpoint rule on N intervals (default 10⁷), plus a
-- histogram of where the integrand's values fall, as a weft array reduced element-wise.
-- Each piece travels as a table holding a function with an upvalue (the integrand and
-- its scale), so the workers run code rank 0 chose; each worker splits its piece over
-- its own threads with weft.range. With one rank (no mpirun), rank 0 does all the work.
--
-- Prints (rank 0): the pieces, π and its error, the histogram's total (= N), and each
-- largest count any one rank had in each bin (a reduction with "max").
local weft = require "weft"
local mpi = weft.mpi

local N = tonumber(arg and arg[1]) or 1e7
local rank, size = mpi.rank(), mpi.size()
local BINS = 8

-- The piece of rank r: intervals [first, last] of 1..N (contiguous, sizes differ by ≤ 1).
local function piece(r, parts)
  return math.floor(N * r / parts) + 1, math.floor(N * (r + 1) / parts)
end

-- Run one piece on this rank's threads: the integral's part and a histogram of f's
-- values (f is between 2 and 4 on [0, 1]) as an f64 array of BINS counts.
local function compute(job)
  local parts = weft.range(job.last - job.first + 1, function(lo, hi)
    local f, h, first = job.f, 1 / job.n, job.first
    local s, counts = 0, {}
    for b = 1, BINS do counts[b] = 0 end
    for i = first + lo - 1, first + hi - 1 do
      local y = f((i - 0.5) * h)
      s = s + y
      local b = math.min(BINS, math.floor((y - 2) / 2 * BINS) + 1)
      counts[b] = counts[b] + 1
    end
    return { s = s * h, counts = counts }
  end)
  local hist = weft.array("f64", BINS)
  local sum = 0
  for _, p in ipairs(parts) do
    sum = sum + p.s
    for b = 1, BINS do hist:set(b, hist[b] + p.counts[b]) end
  end
  return sum, hist
end

-- 1. scatter: rank 0 sends every other rank its piece (tag 1); it keeps piece 0.
local scale = 4
local job
if rank == 0 then
  for r = 1, size - 1 do
    local first, last = piece(r, size)
    mpi.send(r, { first = first, last = last, n = N,
                  f = function(x) return scale / (1 + x * x) end }, 1)
  end
  local first, last = piece(0, size)
  job = { first = first, last = last, n = N, f = function(x) return scale / (1 + x * x) end }
else
  local src, tag
  job, src, tag = mpi.recv(0, 1)
  assert(src == 0 and tag == 1)
end

-- 2. compute, on this rank's threads.
local t0 = weft.now()
local part, hist = compute(job)
local seconds = weft.now() - t0

-- 3. gather each piece's report on rank 0, reduce the numbers and the arrays.
local reports = mpi.gather({ rank = rank, first = job.first, last = job.last, part = part,
                             seconds = seconds }, 0)
local pi = mpi.reduce(part, "sum", 0)
local total_hist = mpi.allreduce(hist, "sum")        -- every rank gets the sum
local busiest = mpi.reduce(hist, "max", 0)           -- the largest count on any one rank, per bin

if rank == 0 then
  for _, r in ipairs(reports) do
    print(string.format("rank %d: intervals %d..%d  part %.12f  (%.3f s)",
      r.rank, r.first, r.last, r.part, r.seconds))
  end
  print(string.format("pi ~ %.12f  error %.2e  (%d intervals, %d ranks)",
    pi, math.abs(pi - math.pi), N, size))
  local counted, max = 0, {}
  for b = 1, BINS do
    counted = counted + total_hist[b]
    max[b] = string.format("%d", busiest[b])
  end
  print(string.format("histogram total %d  largest count on one rank, per bin: %s", counted, table.concat(max, " ")))
end
-- every rank checks what every rank holds
local counted = 0
for b = 1, #total_hist do counted = counted + total_hist[b] end
assert(counted == N, "histogram total " .. counted .. " ~= " .. N)
