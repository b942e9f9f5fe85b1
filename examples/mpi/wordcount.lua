-- examples/mpi/wordcount.lua: word counts over the shipped texts, across ranks.
--
--   mpirun -n 3 target/release/weft run examples/mpi/wordcount.lua [TEXTS.jsonl] [TOP]
--
-- Every rank reads the corpus (examples/data/texts.jsonl by default: 2,000 fortunes) and
-- counts the words of its own share of the texts (rank r takes texts r+1, r+1+P, ...),
-- split over its threads with weft.map. The per-rank tables of counts are gathered on
-- rank 0 and merged; the totals are checked with allreduce. The output is the same for
-- any number of ranks: rank 0 prints the number of texts, words and distinct words, then
-- the TOP (default 15) most frequent words (ties in alphabetical order).
--
-- A word is a run of ASCII letters (and inner apostrophes), lower-cased.
local weft = require "weft"
local mpi = weft.mpi

local script_dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local path = arg[1] or (script_dir .. "/../data/texts.jsonl")
local top = tonumber(arg[2]) or 15
local rank, size = mpi.rank(), mpi.size()

local texts = weft.read_jsonl(path, { frozen = true })

-- This rank's share, in batches for its threads: each batch is a list of strings.
local batches, batch, share = {}, {}, 0
for i = rank + 1, #texts, size do
  share = share + 1
  batch[#batch + 1] = texts[i].text
  if #batch == 64 then batches[#batches + 1], batch = batch, {} end
end
if #batch > 0 then batches[#batches + 1] = batch end

local counted = weft.map(function(list)
  local counts, words = {}, 0
  for _, text in ipairs(list) do
    for word in text:lower():gmatch("%a[%a']*") do
      word = word:gsub("'+$", "")
      counts[word] = (counts[word] or 0) + 1
      words = words + 1
    end
  end
  return { counts = counts, words = words }
end, batches)

local mine, words = {}, 0
for _, c in ipairs(counted) do
  words = words + c.words
  for w, n in pairs(c.counts) do mine[w] = (mine[w] or 0) + n end
end

-- Gather every rank's table on rank 0; check the totals everywhere.
local all = mpi.gather(mine, 0)
local total_words = mpi.allreduce(words, "sum")
local total_texts = mpi.allreduce(share, "sum")

if rank == 0 then
  local merged, sum = {}, 0
  for _, counts in ipairs(all) do
    for w, n in pairs(counts) do merged[w] = (merged[w] or 0) + n; sum = sum + n end
  end
  assert(sum == total_words, "merged " .. sum .. " words, ranks counted " .. total_words)
  local list = {}
  for w, n in pairs(merged) do list[#list + 1] = { w = w, n = n } end
  table.sort(list, function(a, b) return a.n > b.n or (a.n == b.n and a.w < b.w) end)
  print(string.format("%d texts, %d words, %d distinct", total_texts, total_words, #list))
  for i = 1, math.min(top, #list) do
    print(string.format("%-12s %d", list[i].w, list[i].n))
  end
end
