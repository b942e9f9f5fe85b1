-- For every fortune, find the most similar other fortune by word overlap (Jaccard), in
-- pure Lua, on all cores: the README's main job.
--
--   cargo run --release -- run examples/nearest_fortunes.lua [FILE] [WORKERS]
--
-- The work is O(n²) table lookups, the kind of CPU-bound Lua loop that one interpreter
-- runs on one core. weft.pool splits it by rows over workers that each own a Lua state;
-- the word sets travel to each worker as the function's upvalue (copied by value).
local weft = require "weft"

local path = arg[1] or "examples/data/fortunes.txt"
local workers = tonumber(arg[2]) or weft.cpus()

local function read_texts(file)
  local f = assert(io.open(file, "rb"))
  local all = f:read("*a")
  f:close()
  local texts = {}
  for text in all:gmatch("(.-)\n%%\n") do
    texts[#texts + 1] = text
  end
  return texts
end

local function word_sets(texts)
  local sets = {}
  for i, text in ipairs(texts) do
    local set, n = {}, 0
    for w in text:lower():gmatch("%a+") do
      if #w > 2 and not set[w] then
        set[w] = true
        n = n + 1
      end
    end
    sets[i] = { words = set, n = n }
  end
  return sets
end

local texts = read_texts(path)
local sets = word_sets(texts)
local n = #sets

-- Rows first..last: for each row, the best other row and its score.
local function best_matches(first, last)
  local out = {}
  for i = first, last do
    local a = sets[i]
    local best, best_score = 0, -1
    for j = 1, n do
      if j ~= i then
        local b = sets[j]
        local common = 0
        for w in pairs(a.words) do
          if b.words[w] then common = common + 1 end
        end
        local union = a.n + b.n - common
        local score = union > 0 and common / union or 0
        if score > best_score then best, best_score = j, score end
      end
    end
    out[#out + 1] = { i, best, best_score }
  end
  return out
end

local function run(pool)
  local chunks = pool:range(n, best_matches, { chunk = math.ceil(n / (pool:size() * 8)) })
  local rows = {}
  for _, chunk in ipairs(chunks) do
    for _, r in ipairs(chunk) do rows[r[1]] = r end
  end
  return rows
end

-- Wall-clock time: os.clock counts CPU time of the whole process, which is what we do
-- not want for a parallel run. LuaJIT's ffi reaches clock_gettime directly.
local now
do
  local ok, ffi = pcall(require, "ffi")
  if ok then
    ffi.cdef [[
      typedef struct { long tv_sec; long tv_nsec; } weft_example_timespec;
      int clock_gettime(int clock, weft_example_timespec *ts);
    ]]
    local ts = ffi.new("weft_example_timespec")
    now = function()
      ffi.C.clock_gettime(1, ts)
      return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
    end
  else
    now = os.time
  end
end

local function timed(size)
  local pool = weft.pool { size = size }
  local t0 = now()
  local rows = run(pool)
  local elapsed = now() - t0
  pool:close()
  return rows, elapsed
end

print(("%d texts, %d pairs"):format(n, n * (n - 1)))
local one, t1 = timed(1)
local all, tn = timed(workers)
for i = 1, n do
  assert(one[i][2] == all[i][2] and one[i][3] == all[i][3], "results differ at row " .. i)
end
print(("1 worker: %.2f s   %d workers: %.2f s   speedup %.2fx"):format(t1, workers, tn, t1 / tn))

table.sort(all, function(a, b)
  if a[3] ~= b[3] then return a[3] > b[3] end
  return a[1] < b[1]
end)
print("\nMost similar pairs (distinct texts):")
local shown = 0
for _, r in ipairs(all) do
  if r[3] < 1 and r[1] < r[2] then
    local first_line = function(i) return (texts[i]:match("^[^\n]*")):sub(1, 70) end
    print(("%.2f  #%d %s\n      #%d %s"):format(r[3], r[1], first_line(r[1]), r[2], first_line(r[2])))
    shown = shown + 1
    if shown == 5 then break end
  end
end
