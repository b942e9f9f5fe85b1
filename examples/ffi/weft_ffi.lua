-- weft_ffi: libweft (the C ABI of crates/weft-ffi) from LuaJIT's FFI, in the shape of the
-- wrapper weft's first users wrote for their GPU layer:
--
--   local W = require "weft_ffi"
--   W.init{threads = 4}                         -- options (all optional)
--   W.upload_embeddings(emb, n, d)              -- emb: float* cdata of n·d floats
--   W.compute_similarity_matrix(out)            -- out: float[n·n]
--   W.compute_diversity_sequence(start, out)    -- out: uint32_t[n]; start and ids 0-based
--   W.compute_all_orderings(path, {resume = true, progress = function(done, total) end})
--   W.open_cache(path):get(start, out)
--   W.shutdown()
--
-- Buffers are the caller's cdata (as in the C API); ids are 0-based. Every failure raises a
-- Lua error with libweft's one-line message. The declarations come from include/weft.h
-- itself (found next to this file's repository, or at $WEFT_HEADER); libweft.so from
-- $WEFT_LIB, target/release/, or the system's library path.
local ffi = require "ffi"

local M = {}

local here = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./")
local root = here .. "../../"

--- The part of a C header that ffi.cdef takes: ffi.cdef has no preprocessor, so every
--- line starting with '#' is dropped, and with it the C++-only lines between
--- `#ifdef __cplusplus` and its `#endif` (the `extern "C" {` wrapper). docs/ffi.md says why.
function M.cdef_text(header)
  local out, skipping = {}, false
  for line in (header .. "\n"):gmatch("(.-)\n") do
    if line:match("^%s*#") then
      if line:match("^%s*#%s*ifdef%s+__cplusplus") then
        skipping = true
      elseif skipping and line:match("^%s*#%s*endif") then
        skipping = false
      end
    elseif not skipping then
      out[#out + 1] = line
    end
  end
  return table.concat(out, "\n")
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local header_path = os.getenv("WEFT_HEADER") or (root .. "include/weft.h")
local header = read_file(header_path)
if not header then
  error("weft_ffi: cannot read the header " .. header_path .. " (set WEFT_HEADER)", 0)
end
ffi.cdef(M.cdef_text(header))

local function load_lib()
  local env = os.getenv("WEFT_LIB")
  if env then return ffi.load(env) end
  local built = root .. "target/release/libweft.so"
  local f = io.open(built, "rb")
  if f then
    f:close()
    return ffi.load(built)
  end
  return ffi.load("weft")
end

--- The raw library (every function of weft.h), for what the wrapper does not cover.
M.C = load_lib()
local C = M.C

--- Raises the last error when `rc` is not WEFT_OK.
local function check(rc)
  if rc ~= 0 then error(ffi.string(C.weft_last_error()), 3) end
end
M.check = check

local state = { opts = nil, ctx = nil, emb = nil, n = 0, d = 0 }

--- Sets the options: threads (default: every core), budget in bytes (default: half of RAM).
function M.init(opts)
  opts = opts or {}
  local o = C.weft_options_default()
  o.threads = opts.threads or 0
  o.budget = opts.budget or 0
  state.opts = o
  return ffi.string(C.weft_version())
end

--- Copies and normalises n×d embeddings (a float* cdata) into a weft context (S is
--- computed once when it fits the budget). The caller's buffer must stay alive while
--- compute_all_orderings may use it (the cache hashes the raw values).
function M.upload_embeddings(emb, n, d)
  if not state.opts then M.init() end
  local out = ffi.new("weft_context *[1]")
  check(C.weft_context_new(emb, n, d, state.opts, out))
  M.shutdown()
  state.ctx = ffi.gc(out[0], C.weft_context_free)
  state.emb, state.n, state.d = emb, n, d
end

local function ctx()
  if state.ctx == nil then
    error("weft_ffi: upload_embeddings first", 3)
  end
  return state.ctx
end

--- Writes the n×n similarity matrix into `out` (float[n·n]).
function M.compute_similarity_matrix(out)
  check(C.weft_context_similarity(ctx(), out, state.n * state.n))
  return out
end

--- Writes the diversity ordering from `start` (0-based) into `out` (uint32_t[n]).
--- `length` (optional) keeps only the first `length` ids.
function M.compute_diversity_sequence(start, out, length)
  local len = length or state.n
  local s = ffi.new("uint32_t[1]", start)
  check(C.weft_context_diversity(ctx(), s, 1, len, out, len))
  return out
end

--- The k nearest neighbours of every item into ids (uint32_t[n·k]) and scores (float[n·k],
--- or nil).
function M.compute_topk(k, ids, scores)
  check(C.weft_context_topk(ctx(), k, ids, scores, state.n * k))
  return ids, scores
end

--- Every diversity ordering of the uploaded embeddings into the cache file `path`.
--- opts: resume, force, threads, budget, progress = function(done, total) (return false
--- to stop after the batch in flight; a later call with resume = true continues).
--- Returns the cache state: {n, d, done, complete, id_width}, and false when stopped.
function M.compute_all_orderings(path, opts)
  opts = opts or {}
  ctx()
  local co = C.weft_cache_options_default()
  co.resume = opts.resume and 1 or 0
  co.force = opts.force and 1 or 0
  co.threads = opts.threads or state.opts.threads
  co.budget = opts.budget or state.opts.budget
  local token = ffi.gc(C.weft_cancel_new(), C.weft_cancel_free)
  co.cancel = token
  local cb, failure
  if opts.progress then
    -- A Lua error must not unwind through libweft: the callback catches it, cancels the
    -- run and it is raised once the call has returned.
    cb = ffi.cast("weft_progress_fn", function(done, total)
      local ok, more = pcall(opts.progress, tonumber(done), tonumber(total))
      if not ok then
        failure = more
        C.weft_cancel_set(token)
      elseif more == false then
        C.weft_cancel_set(token)
      end
    end)
    co.progress = cb
  end
  local info = ffi.new("weft_cache_state")
  local rc = C.weft_diversity_cache(state.emb, state.n, state.d, path, co, info)
  local message = rc ~= 0 and ffi.string(C.weft_last_error()) or nil
  if cb then cb:free() end
  if failure then error("weft_ffi: progress function failed: " .. tostring(failure), 2) end
  if rc ~= 0 and rc ~= C.WEFT_ERR_CANCELLED then error(message, 2) end
  return {
    n = tonumber(info.n), d = tonumber(info.d), done = tonumber(info.done),
    complete = info.complete == 1, id_width = tonumber(info.id_width),
  }, rc == 0
end

local Cache = {}
Cache.__index = Cache

--- Opens a cache file for reading: :info(), :get(start, out), :close().
function M.open_cache(path)
  local out = ffi.new("weft_cache *[1]")
  check(C.weft_cache_open(path, out))
  return setmetatable({ h = ffi.gc(out[0], C.weft_cache_close) }, Cache)
end

function Cache:info()
  local i = ffi.new("weft_cache_state")
  check(C.weft_cache_info(self.h, i))
  return { n = tonumber(i.n), d = tonumber(i.d), done = tonumber(i.done),
           complete = i.complete == 1, id_width = tonumber(i.id_width) }
end

--- The ordering from `start` (0-based) into `out` (uint32_t[n]; allocated when nil).
function Cache:get(start, out)
  local n = self:info().n
  out = out or ffi.new("uint32_t[?]", n)
  check(C.weft_cache_get(self.h, start, out, n))
  return out
end

function Cache:close()
  if self.h ~= nil then
    C.weft_cache_close(ffi.gc(self.h, nil))
    self.h = nil
  end
end

--- Releases the context (the library stays loaded).
function M.shutdown()
  if state.ctx ~= nil then C.weft_context_free(ffi.gc(state.ctx, nil)) end
  state.ctx, state.emb, state.n, state.d = nil, nil, 0, 0
end

return M
