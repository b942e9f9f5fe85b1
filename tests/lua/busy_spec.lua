-- Compute calls lease the arrays they read: a write through weft's API from another thread
-- while the call runs is refused with an error naming the call, and the call's result is
-- that of the unchanged array.
local describe, it, assert = describe, it, assert
local _ENV = _G

local weft = require "weft"
local H = require "helpers"

-- 40 distinct rows of 6 dimensions (exact small integers, no zero row).
local function embeddings()
  local a = weft.array("f32", 40, 6)
  for i = 1, 40 do
    for j = 1, 6 do a:set(i, j, ((i * 7 + j * 3) % 11) - 5 + (j == 1 and 0.5 or 0)) end
  end
  return a
end

-- Runs in a worker: every way weft's API writes an array, each under pcall; returns the
-- errors (nil where a write succeeded).
local function try_writes(a)
  local results = {}
  local ok, e = pcall(function() a:set(1, 1, 99) end)
  results.set = not ok and tostring(e) or nil
  local row = a[2]
  ok, e = pcall(function() row[1] = 99 end)
  results.index = not ok and tostring(e) or nil
  ok, e = pcall(function() return a:ptr() end)
  results.ptr = not ok and tostring(e) or nil
  return results
end

describe("arrays read by a compute call", function()
  it("refuse writes from another thread while weft.diversity_cache runs, and the result is right", function()
    local a = embeddings()
    local n = a:shape()
    local path = os.tmpname()
    os.remove(path)
    local seen
    local info = weft.diversity_cache(a, path, { threads = 1, progress = function(done)
      -- The call is running (its lease is held): a worker tries to write the embeddings.
      if not seen then seen = weft.spawn(try_writes, a):join(30) end
    end })
    assert.is_true(info.complete)
    assert.is_table(seen, "the progress function ran during the call")
    for _, what in ipairs({ "set", "index", "ptr" }) do
      assert.is_string(seen[what], what .. " was not refused")
      assert.matches("array is being read by weft.diversity_cache", seen[what])
    end
    -- Nothing was written, so the cache holds the orderings of the unchanged array.
    assert.equal(((1 * 7 + 1 * 3) % 11) - 5 + 0.5, a:get(1, 1))
    local cache = weft.open_cache(path)
    for _, start in ipairs({ 1, 2, 17, n }) do
      assert.same(weft.diversity(a, start):totable(), cache:get(start):totable())
    end
    os.remove(path)
    -- Once the call has returned, writes work again.
    local after = weft.spawn(try_writes, a):join(30)
    assert.is_nil(after.set); assert.is_nil(after.index); assert.is_nil(after.ptr)
    assert.equal(99, a:get(1, 1))
    assert.equal(99, a:get(2, 1))
  end)

  it("refuse writes from the calling thread too (a progress function writing the array)", function()
    local a = embeddings()
    local path = os.tmpname()
    os.remove(path)
    local other = embeddings()
    local err, other_err
    weft.diversity_cache(a, path, { progress = function()
      err = err or H.err(a.set, a, 3, 3, 1)
      -- An array the call does not read stays writable.
      other_err = other_err or H.err(other.set, other, 1, 1, 2) or false
    end })
    assert.matches("weft: array is being read by weft.diversity_cache", err)
    assert.is_false(other_err)
    assert.equal(2, other:get(1, 1))
    os.remove(path)
  end)
end)
