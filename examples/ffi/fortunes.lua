-- libweft from LuaJIT's FFI on the shipped fortunes (examples/data/emb.npy, 2000 × 384):
-- the similarity matrix, the nearest fortune, a diversity ordering, and every ordering into
-- a resumable cache (stopped part-way on purpose, then resumed) read back and checked.
--
--   cargo build --release -p weft-ffi && luajit examples/ffi/fortunes.lua [CACHE]
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = here .. "?.lua;" .. package.path
local ffi = require "ffi"
local W = require "weft_ffi"

-- A float32 C-order 2-D .npy file into a float[n·d] cdata.
local function load_npy(path)
  local f = assert(io.open(path, "rb"))
  local bytes = f:read("*a")
  f:close()
  assert(bytes:sub(1, 6) == "\147NUMPY", path .. ": not a .npy file")
  local major = bytes:byte(7)
  local hlen, start
  if major == 1 then
    hlen, start = bytes:byte(9) + 256 * bytes:byte(10), 11
  else
    hlen = bytes:byte(9) + 256 * bytes:byte(10) + 65536 * bytes:byte(11)
    start = 13
  end
  local dict = bytes:sub(start, start + hlen - 1)
  assert(dict:match("'descr':%s*'<f4'"), path .. ": expected float32 (<f4)")
  assert(dict:match("'fortran_order':%s*False"), path .. ": expected C order")
  local n, d = dict:match("'shape':%s*%((%d+),%s*(%d+)%)")
  n, d = tonumber(n), tonumber(d)
  local emb = ffi.new("float[?]", n * d)
  ffi.copy(emb, bytes:sub(start + hlen), n * d * 4)
  return emb, n, d
end

local function fortunes(path)
  local f = assert(io.open(path, "rb"))
  local all = f:read("*a")
  f:close()
  local t = {}
  for text in all:gmatch("(.-)\n%%\n") do t[#t + 1] = text end
  return t
end

local function first_line(s)
  return (s:match("^%s*([^\n]*)"):sub(1, 70))
end

local data = here .. "../data/"
local emb, n, d = load_npy(data .. "emb.npy")
local texts = fortunes(data .. "fortunes.txt")
print(("libweft %s: %d embeddings of %d"):format(W.init{}, n, d))

W.upload_embeddings(emb, n, d)
local S = ffi.new("float[?]", n * n)
W.compute_similarity_matrix(S)
-- the nearest other fortune to fortune 0, read off its row of S
local best, best_s = -1, -2
for j = 1, n - 1 do
  if S[j] > best_s then best, best_s = j, S[j] end
end
local ids, scores = ffi.new("uint32_t[?]", n), ffi.new("float[?]", n)
W.compute_topk(1, ids, scores)
assert(ids[0] == best and scores[0] == best_s, "top-1 of item 0 is the row maximum of S")
print(("nearest to 0: %d (%.3f)\n  %s\n  %s"):format(best, best_s,
  first_line(texts[1]), first_line(texts[best + 1])))

local seq = ffi.new("uint32_t[?]", n)
W.compute_diversity_sequence(0, seq)
print("the five most different fortunes, from 0:")
for t = 0, 4 do print(("  %4d  %s"):format(seq[t], first_line(texts[seq[t] + 1]))) end

-- every ordering into a cache: stopped after about a quarter, then resumed
local path = arg[1] or os.tmpname()
os.remove(path)
local state, finished = W.compute_all_orderings(path, {
  progress = function(done, total) return done < total / 4 end,
})
assert(not finished and state.done > 0 and state.done < n, "stopped part-way")
print(("stopped at %d of %d orderings; resuming"):format(state.done, n))
local last = 0
state = W.compute_all_orderings(path, {
  resume = true,
  progress = function(done, total)
    if done - last >= total / 4 or done == total then
      io.stderr:write(("  %d / %d\n"):format(done, total))
      last = done
    end
  end,
})
assert(state.complete and state.done == n, "complete after resuming")
local cache = W.open_cache(path)
local again = cache:get(0)
for t = 0, n - 1 do assert(again[t] == seq[t], "the cached ordering from 0 is the computed one") end
local info = cache:info()
print(("%s: %d of %d orderings, %d-byte ids"):format(path, info.done, info.n, info.id_width))
cache:close()
if not arg[1] then os.remove(path) end
W.shutdown()
print("ok")
