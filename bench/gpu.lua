-- GPU timings for BENCHMARKS.md ("GPU"), run by bench/gpu.sh on a machine with a GPU:
--   weft run bench/gpu.lua EMB.npy JOB REPS      JOB: similarity | topk10
-- Prints one JSON line per run: the job, N, d, device, seconds (upload and read-back
-- included; the output stays in host memory, nothing is written to disk). The first run
-- also opens the device and compiles the shaders; it is reported as "cold".
local weft = require "weft"
local path, job, reps = arg[1], arg[2], tonumber(arg[3] or "5")
local e = weft.load_npy(path)
local n, d = e:shape()
local function run()
  if job == "similarity" then
    weft.similarity(e, { device = "gpu" })
  elseif job == "topk10" then
    weft.topk(e, 10, { device = "gpu" })
  else
    error("job must be similarity or topk10, got " .. tostring(job))
  end
end
for r = 0, reps do
  local t0 = weft.now()
  run()
  local s = weft.now() - t0
  print(string.format('{"job":"%s","n":%d,"d":%d,"device":"gpu","run":"%s","seconds":%.4f}',
    job, n, d, r == 0 and "cold" or "warm", s))
  io.stdout:flush()
end
