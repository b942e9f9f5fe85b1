-- Pattern 4: writing many files in parallel with a bounded number of workers.
--
-- Problem: render and write a few hundred (or hundred thousand) files — pages, reports,
-- shards — using every core, and know afterwards exactly what was written, in input
-- order. pool:map hands the items to a fixed pool of workers and returns the results in
-- item order, whatever order the workers finished in.
--
-- What people usually get wrong:
--  * One thread per file. 10,000 files = 10,000 OS threads and Lua states: slow to
--    start, and the process runs out of threads, memory or file descriptors. A pool of
--    weft.cpus() workers (or a few more when the disk is the bottleneck) is enough.
--  * Opening the file in the main thread and passing the handle to a worker: a FILE* is
--    a userdata and cannot cross (weft refuses it, naming it). Send the *path*; the
--    worker opens, writes and closes the file itself.
--  * Collecting results in completion order (a results channel read as it comes) and
--    assuming it is input order. map returns results[i] for items[i].
--  * Forgetting f:close() in a worker: pool workers are long-lived states whose GC may
--    not run for a while, so unclosed handles leak descriptors and unflushed data.
--  * Writing in place: a reader (or a crash) can see half a file. Write a temporary file
--    and os.rename it into place: the rename is atomic.
--
-- Run:  target/release/weft run examples/patterns/04_parallel_files.lua [FILES]  (default 500)
local weft = require "weft"

local FILES = math.floor(tonumber(arg and arg[1]) or 500)
local WORKERS = weft.cpus()

-- a fresh temporary directory (os.tmpname creates a file: replace it by a directory)
local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir '" .. dir .. "'")
assert(os.rename(dir, dir), "cannot create the directory " .. dir)

-- the content of file i, computed from i alone, so the main thread can check it
local function content(i)
  local lines = {}
  for k = 1, 20 + i % 50 do lines[k] = string.format("file %d line %d: %d", i, k, (i * 7919 + k) % 10007) end
  return table.concat(lines, "\n") .. "\n"
end

local items = {}
for i = 1, FILES do items[i] = { i = i, path = string.format("%s/page-%05d.txt", dir, i) } end

-- init runs once in each worker: WORKER is a global of that worker's own Lua state
local pool = weft.pool { size = WORKERS, init = function(w) WORKER = w end }
local results = pool:map(function(item)
  local text = content(item.i)
  local tmp = item.path .. ".tmp"
  local f = assert(io.open(tmp, "wb"))
  assert(f:write(text))
  assert(f:close())
  assert(os.rename(tmp, item.path))
  return { path = item.path, bytes = #text, worker = WORKER }
end, items, { chunk = 16 })
pool:close()

-- verify: results in input order, every file complete, written by at most WORKERS workers
local problems, bytes, workers, n_workers = {}, 0, {}, 0
for i, r in ipairs(results) do
  local f = io.open(items[i].path, "rb")
  local text = f and f:read("*a")
  if f then f:close() end
  if r.path ~= items[i].path then
    problems[#problems + 1] = string.format("result %d is for %s, not %s", i, tostring(r.path), items[i].path)
  elseif text ~= content(i) or #text ~= r.bytes then
    problems[#problems + 1] = string.format("%s is missing or wrong", items[i].path)
  end
  bytes = bytes + r.bytes
  if not workers[r.worker] then workers[r.worker] = true; n_workers = n_workers + 1 end
end
print(string.format("%d files, %d bytes written into %s by %d workers (pool of %d)",
  #results, bytes, dir, n_workers, WORKERS))

-- clean up (before asserting, so a failure leaves nothing behind): files, then the directory
for _, item in ipairs(items) do os.remove(item.path); os.remove(item.path .. ".tmp") end
assert(os.remove(dir), "the directory is empty and removed")

for k = 1, math.min(#problems, 5) do print("  WRONG: " .. problems[k]) end
assert(#problems == 0, #problems .. " results out of order or files wrong")
assert(#results == FILES)
assert(n_workers <= WORKERS, "never more workers than the pool holds")
print("results in item order; every file complete; cleaned up")
print("ok")
