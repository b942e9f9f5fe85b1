-- Files weft writes from Lua never destroy what the caller did not ask to replace, and the
-- compute calls' messages say what is wrong (issue 13: files, threads, messages).
local describe, it, assert = describe, it, assert
local _ENV = _G

local weft = require "weft"
local H = require "helpers"

local function sh(cmd)
  local ok, how, code = os.execute(cmd)
  -- Lua 5.1 returns the status; 5.2+ (and LuaJIT with 5.2 compat) return true/nil.
  if type(ok) == "number" then return ok == 0 end
  return ok == true and (code == nil or code == 0)
end

local function bytes(p)
  local f = io.open(p, "rb")
  if not f then return nil end
  local b = f:read("*a")
  f:close()
  return b
end

-- A small set of rows with distinct directions.
local function emb(n, d, dtype)
  local a = weft.array(dtype or "f32", n, d)
  for i = 1, n do
    for j = 1, d do a:set(i, j, ((i * 7 + j * 13) % 11) - 5 + 0.25 * j) end
  end
  return a
end

local function tmpdir()
  local base = os.tmpname()
  os.remove(base)
  assert(sh("mkdir -p " .. H.quote(base)))
  return base
end

describe("a:save_npy", function()
  it("writes through a FIFO instead of replacing it", function()
    local dir = tmpdir()
    local a = emb(5, 3)
    local want = dir .. "/want.npy"
    a:save_npy(want)
    local fifo, out = dir .. "/fifo.npy", dir .. "/out.npy"
    assert.is_true(sh("mkfifo " .. H.quote(fifo)))
    -- A bounded reader in the background: it waits in open until save_npy opens the FIFO.
    assert.is_true(sh(string.format("timeout 60 cat %s > %s 2>/dev/null &", H.quote(fifo), H.quote(out))))
    a:save_npy(fifo)
    assert.is_true(sh("test -p " .. H.quote(fifo)), "the FIFO is still a FIFO")
    local expected, got = bytes(want), nil
    for _ = 1, 3000 do
      got = bytes(out)
      if got == expected then break end
      H.sleep(0.01)
    end
    assert.equal(expected, got)
    sh("rm -rf " .. H.quote(dir))
  end)

  it("follows a symlink to its target and keeps the link", function()
    local dir = tmpdir()
    local a = emb(4, 2)
    H.write(dir .. "/target.npy", "old")
    assert.is_true(sh(string.format("ln -s target.npy %s", H.quote(dir .. "/link.npy"))))
    a:save_npy(dir .. "/link.npy")
    assert.is_true(sh("test -L " .. H.quote(dir .. "/link.npy")), "still a link")
    assert.same(a:totable(), weft.load_npy(dir .. "/target.npy"):totable())
    sh("rm -rf " .. H.quote(dir))
  end)

  it("over the file it is mapped from: the file gets the new contents, the mapping keeps the old", function()
    local dir = tmpdir()
    local p = dir .. "/m.npy"
    emb(4, 2):save_npy(p)
    local m = weft.load_npy(p, { mmap = true })
    local before = m:totable()
    m:slice(1, 2):save_npy(p)
    assert.same(before, m:totable())
    local now = weft.load_npy(p)
    assert.equal(2, now:shape())
    sh("rm -rf " .. H.quote(dir))
  end)
end)

describe("weft.diversity_cache files", function()
  it("refuses to write the cache over the file the embeddings are mapped from", function()
    local dir = tmpdir()
    local p = dir .. "/emb.npy"
    emb(6, 3):save_npy(p)
    local before = bytes(p)
    local m = weft.load_npy(p, { mmap = true })
    for _, opts in ipairs({ {}, { force = true }, { resume = true } }) do
      assert.matches("weft.diversity_cache: .*emb.npy is the file the embeddings are mapped from",
        H.err(weft.diversity_cache, m, p, opts))
    end
    assert.equal(before, bytes(p))
    sh("rm -rf " .. H.quote(dir))
  end)

  it("refuses resume with force in the CLI's words", function()
    local path = H.tmpname(".cache")
    assert.equal("weft.diversity_cache: resume and force cannot be used together: resume continues an "
      .. "unfinished cache, force replaces it with a new one",
      H.err(weft.diversity_cache, emb(4, 2), path, { resume = true, force = true }):match("weft%.diversity_cache: .*"))
    assert.is_nil(bytes(path), "nothing was written")
  end)

  it("says the cache is complete when the progress function fails after the last ordering", function()
    local path = H.tmpname(".cache")
    local e = H.err(weft.diversity_cache, emb(1, 3), path, { progress = function() error("boom") end })
    assert.matches("the progress function failed after every ordering was saved %(the cache is complete: "
      .. "1 of 1 ordering%): .*boom", e)
    assert.is_nil(e:find("resume", 1, true))
    assert.is_nil(e:find("1 orderings", 1, true))
    assert.is_true(weft.open_cache(path):info().complete)
    local e2 = H.err(weft.diversity_cache, emb(12, 3), H.tmpname(".cache"), { progress = function() error("boom") end })
    assert.matches("the cache is complete: 12 of 12 orderings", e2)
    H.remove(path)
  end)

  it("names a damaged record by its 1-based start", function()
    local path = H.tmpname(".cache")
    local n = 10
    weft.diversity_cache(emb(n, 3), path)
    local f = assert(io.open(path, "r+b"))
    -- Record of start 4 (0-based 3), position 2: id 999.
    f:seek("set", 128 + 3 * n * 2 + 2 * 2)
    f:write(string.char(999 % 256, math.floor(999 / 256)))
    f:close()
    local cache = weft.open_cache(path)
    assert.matches("cache:get: .*the ordering from start 4 is damaged: position 2 holds id 999, out of range 0..10",
      H.err(cache.get, cache, 4))
    assert.equal(n, (cache:get(5):shape()))
    H.remove(path)
  end)
end)

describe("compute options and conversions", function()
  it("refuses more threads than the limit", function()
    local a = emb(8, 3)
    for _, t in ipairs({ 1025, 1e6 }) do
      assert.matches(string.format("threads = %d is more than the limit of 1024", t),
        H.err(weft.similarity, a, { threads = t }))
      assert.matches("is more than the limit of 1024", H.err(weft.topk, a, 2, { threads = t }))
    end
    assert.equal(8, (weft.similarity(a, { threads = 3 }):shape()))
  end)

  it("names an f64 value that overflows f32", function()
    local a = emb(3, 2, "f64")
    a:set(2, 1, 1e300)
    assert.matches("weft.similarity: embeddings row 2: value 1e300 overflows f32", H.err(weft.similarity, a))
    a:set(2, 1, -1e39)
    assert.matches("embeddings row 2: value %-1e39 overflows f32", H.err(weft.topk, a, 1))
  end)
end)
