-- libweft from LuaJIT's FFI: include/weft.h through ffi.cdef, every declared function
-- present in the library, results against naive double-precision Lua, errors, and the
-- wrapper module of examples/ffi (crates/weft-ffi/tests/run.sh runs this with luajit).
local ffi = require "ffi"
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local root = here .. "../../../../"
package.path = root .. "examples/ffi/?.lua;" .. package.path

local checks = 0
local function check(cond, msg)
  checks = checks + 1
  if not cond then error("FAIL: " .. msg, 2) end
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end
local header = read(root .. "include/weft.h")

-- The header as shipped has preprocessor lines, which ffi.cdef cannot parse: that is why
-- the module strips them (docs/ffi.md). The first '#' line is a parse error, before any
-- declaration is made.
local ok, err = pcall(ffi.cdef, header)
check(not ok and tostring(err):match("unexpected"), "raw header is refused by ffi.cdef: " .. tostring(err))

local W = require "weft_ffi"
local C = W.C
-- every function the header declares resolves in libweft.so
local declared = 0
for name in W.cdef_text(header):gmatch("[%w_%*]+%s+%**(weft_[%w_]+)%(") do
  check(pcall(function() return C[name] end), "libweft exports " .. name)
  declared = declared + 1
end
check(declared >= 20, "found the declarations (" .. declared .. ")")
check(ffi.string(C.weft_version()):match("^%d+%.%d+%.%d+"), "version")

-- deterministic data
local n, d, k = 60, 8, 4
local seed = 7
local function rnd()
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed / 2147483648 * 2 - 1
end
local emb = ffi.new("float[?]", n * d)
for i = 0, n * d - 1 do emb[i] = rnd() end
-- normalised as weft does: the norm in double, each value rounded to float
local u = ffi.new("float[?]", n * d)
for i = 0, n - 1 do
  local s = 0
  for q = 0, d - 1 do s = s + emb[i * d + q] ^ 2 end
  local norm = math.sqrt(s)
  for q = 0, d - 1 do u[i * d + q] = emb[i * d + q] / norm end
end

local S = ffi.new("float[?]", n * n)
check(C.weft_similarity(emb, n, d, nil, S, n * n) == 0, "similarity")
check(ffi.string(C.weft_last_error()) == "", "no error after success")
for i = 0, n - 1 do
  for j = 0, n - 1 do
    local ref = 0
    for q = 0, d - 1 do ref = ref + u[i * d + q] * u[j * d + q] end
    check(math.abs(ref - S[i * n + j]) < 1e-5, ("S[%d,%d] within 1e-5"):format(i, j))
  end
end

local ids, scores = ffi.new("uint32_t[?]", n * k), ffi.new("float[?]", n * k)
local opts = C.weft_options_default()
opts.threads = 2
check(C.weft_topk(emb, n, d, k, opts, ids, scores, n * k) == 0, "topk")
for i = 0, n - 1 do
  local used = { [i] = true }
  for j = 0, k - 1 do
    local best
    for c = 0, n - 1 do
      if not used[c] and (not best or S[i * n + c] > S[i * n + best]) then best = c end
    end
    used[best] = true
    check(ids[i * k + j] == best and scores[i * k + j] == S[i * n + best],
      ("topk row %d #%d: %d, naive %d"):format(i, j, tonumber(ids[i * k + j]), best))
  end
end

-- the diversity ordering by its definition, O(N²·d) in double
local function naive(start)
  local c, taken, seq, pick = {}, {}, {}, start
  for q = 0, d - 1 do c[q] = 0 end
  for t = 0, n - 1 do
    seq[t], taken[pick] = pick, true
    for q = 0, d - 1 do c[q] = c[q] + u[pick * d + q] end
    local best, best_s = nil, math.huge
    for j = 0, n - 1 do
      if not taken[j] then
        local s = 0
        for q = 0, d - 1 do s = s + c[q] * u[j * d + q] end
        if s < best_s then best, best_s = j, s end
      end
    end
    pick = best
  end
  return seq
end
local starts = ffi.new("uint32_t[2]", 5, 59)
local seqs = ffi.new("uint32_t[?]", 2 * n)
check(C.weft_diversity(emb, n, d, starts, 2, 0, nil, seqs, 2 * n) == 0, "diversity")
for r = 0, 1 do
  local ref = naive(starts[r])
  for t = 0, n - 1 do
    check(seqs[r * n + t] == ref[t], ("ordering from %d, position %d"):format(starts[r], t))
  end
end

-- errors: codes and messages
check(C.weft_similarity(nil, n, d, nil, S, n * n) == C.WEFT_ERR_NULL, "NULL emb")
check(ffi.string(C.weft_last_error()) == "weft_similarity: emb is NULL", ffi.string(C.weft_last_error()))
check(C.weft_topk(emb, n, d, k, nil, ids, nil, n * k - 1) == C.WEFT_ERR_BUFFER, "small ids")
check(ffi.string(C.weft_last_error()):match("ids holds 239 elements, n×k top%-k needs 240"),
  ffi.string(C.weft_last_error()))
local bad = ffi.new("float[?]", n * d)
ffi.copy(bad, emb, n * d * 4)
bad[3 * d + 1] = 1 / 0
check(C.weft_topk(bad, n, d, k, nil, ids, nil, n * k) == C.WEFT_ERR_INPUT, "Inf row")
check(ffi.string(C.weft_last_error()) == "weft_topk: embeddings: row 3 contains Inf",
  ffi.string(C.weft_last_error()))

-- the wrapper: the same answers, errors raised with libweft's message
W.init{ threads = 2 }
W.upload_embeddings(emb, n, d)
local S2 = ffi.new("float[?]", n * n)
W.compute_similarity_matrix(S2)
for i = 0, n * n - 1 do check(S2[i] == S[i], "wrapper similarity") end
local seq = ffi.new("uint32_t[?]", n)
W.compute_diversity_sequence(59, seq)
for t = 0, n - 1 do check(seq[t] == seqs[n + t], "wrapper ordering from 59") end
local e1 = select(2, pcall(W.compute_diversity_sequence, n, seq))
check(tostring(e1):match("weft_context_diversity: diversity: start 60 is out of range 0..60"), tostring(e1))

local path = os.tmpname()
os.remove(path)
local calls = 0
local st, finished = W.compute_all_orderings(path, {
  progress = function(done, total) calls = calls + 1; return false end,
})
check(not finished and st.done == 32 and calls == 1, "stopped after one batch: " .. st.done)
local e2 = select(2, pcall(W.compute_all_orderings, path, {
  resume = true, progress = function() error("boom") end,
}))
check(tostring(e2):match("progress function failed: .*boom"), tostring(e2))
check(W.open_cache(path):info().done == n, "the batch the failing callback reported stays committed")
local e3 = select(2, pcall(W.compute_all_orderings, path, {}))
check(tostring(e3):match("is a finished cache; refusing to overwrite it"), tostring(e3))
st, finished = W.compute_all_orderings(path, { force = true })
check(finished and st.complete and st.done == n, "forced rebuild")
local cache = W.open_cache(path)
local got = cache:get(5)
for t = 0, n - 1 do check(got[t] == seqs[t], "cached ordering from 5") end
local e4 = select(2, pcall(cache.get, cache, n))
check(tostring(e4):match("weft_cache_get: diversity: start 60 is out of range 0..60"), tostring(e4))
cache:close()
os.remove(path)
W.shutdown()
local e5 = select(2, pcall(W.compute_similarity_matrix, S2))
check(tostring(e5):match("upload_embeddings first"), tostring(e5))
print(("ffi_test.lua: %d checks passed"):format(checks))
