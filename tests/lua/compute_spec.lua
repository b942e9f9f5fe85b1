-- The compute engine from Lua: exact against a float64 reference written here in Lua.
local describe, it, assert, pending = describe, it, assert, pending
local _ENV = _G

local weft = require "weft"
local H = require "helpers"

-- An embeddings set whose arithmetic is exact: entries 0 and ±0.5 (four nonzeros make a
-- unit row), duplicate rows and an antipodal pair that makes the centroid zero.
local function exact_set()
  local rows = {
    { 0.5, 0.5, 0.5, 0.5, 0, 0, 0, 0 },
    { 0.5, 0.5, 0.5, -0.5, 0, 0, 0, 0 },
    { 0, 0, 0, 0, 0.5, 0.5, 0.5, 0.5 },
    { -0.5, -0.5, -0.5, -0.5, 0, 0, 0, 0 }, -- antipodal to row 1
    { 0.5, 0, 0.5, 0, 0.5, 0, 0.5, 0 },
    { 0.5, 0, 0.5, 0, 0.5, 0, 0.5, 0 },     -- duplicate of row 5
    { 0, 0.5, 0, 0.5, 0, 0.5, 0, 0.5 },
    { 0.5, -0.5, 0, 0, 0.5, -0.5, 0, 0 },
    { 0, 0, 0.5, 0.5, -0.5, -0.5, 0, 0 },
    { 0.5, 0.5, 0, 0, 0, 0, 0.5, 0.5 },
    { 0, 0.5, 0.5, 0, 0, 0.5, 0.5, 0 },
    { 0.5, 0.5, 0.5, 0.5, 0, 0, 0, 0 },     -- duplicate of row 1
  }
  local a = weft.array("f32", #rows, 8)
  for i, r in ipairs(rows) do
    for j, v in ipairs(r) do a:set(i, j, v) end
  end
  return a, rows
end

-- A bigger exact set: every choice of 4 of 8 dimensions, signs alternating with the
-- choice number (70 distinct unit rows, several antipodal pairs), plus duplicates.
local function exact_set_70()
  local a = weft.array("f32", 74, 8)
  local i = 0
  for m = 0, 255 do
    local bits, c = {}, 0
    for j = 1, 8 do
      bits[j] = math.floor(m / 2 ^ (j - 1)) % 2
      c = c + bits[j]
    end
    if c == 4 then
      i = i + 1
      local sign = (i % 3 == 0) and -0.5 or 0.5
      for j = 1, 8 do a:set(i, j, bits[j] * sign * ((j % 2 == 0 and i % 2 == 0) and -1 or 1)) end
    end
  end
  for k = 1, 4 do -- duplicates of rows 1..4
    for j = 1, 8 do a:set(70 + k, j, a:get(k, j)) end
  end
  return a
end

-- float64 reference ---------------------------------------------------------------------

local function normalised_rows(a)
  local n, d = a:shape()
  local rows = {}
  for i = 1, n do
    local r, s = {}, 0
    for j = 1, d do r[j] = a:get(i, j); s = s + r[j] * r[j] end
    s = math.sqrt(s)
    for j = 1, d do r[j] = r[j] / s end
    rows[i] = r
  end
  return rows
end

local function dot(x, y)
  local s = 0
  for j = 1, #x do s = s + x[j] * y[j] end
  return s
end

local function ref_topk(rows, q, k)
  local cand = {}
  for j = 1, #rows do
    if j ~= q then cand[#cand + 1] = { j, dot(rows[q], rows[j]) } end
  end
  table.sort(cand, function(x, y)
    if x[2] ~= y[2] then return x[2] > y[2] end
    return x[1] < y[1]
  end)
  local ids, scores = {}, {}
  for i = 1, k do ids[i], scores[i] = cand[i][1], cand[i][2] end
  return ids, scores
end

-- Replays an ordering in float64: returns the worst excess of a pick's mean similarity to
-- the chosen set over the true minimum (0 when every pick is the exact minimiser).
local function replay(rows, seq)
  local n = #rows
  local sums, chosen = {}, { [seq[1]] = true }
  for j = 1, n do sums[j] = dot(rows[seq[1]], rows[j]) end
  local worst, mismatches = 0, 0
  for t = 2, n do
    local best, best_j = math.huge, nil
    for j = 1, n do
      if not chosen[j] and sums[j] < best then best, best_j = sums[j], j end
    end
    local pick = seq[t]
    if chosen[pick] then return math.huge, n end
    worst = math.max(worst, (sums[pick] - best) / (t - 1))
    if pick ~= best_j then mismatches = mismatches + 1 end
    chosen[pick] = true
    for j = 1, n do sums[j] = sums[j] + dot(rows[pick], rows[j]) end
  end
  return worst, mismatches
end

describe("weft.similarity, topk and diversity on exact data", function()
  local a = exact_set()
  local rows = normalised_rows(a)
  local n = #rows

  it("similarity equals the float64 matrix exactly", function()
    local s = weft.similarity(a)
    local r, c = s:shape()
    assert.equal(n, r); assert.equal(n, c)
    for i = 1, n do
      for j = 1, n do assert.equal(dot(rows[i], rows[j]), s:get(i, j)) end
    end
  end)

  it("top-k lists equal the reference, ties to the lowest id, 1-based", function()
    for _, k in ipairs({ 1, 3, n - 1 }) do
      local ids, scores = weft.topk(a, k, { threads = 2 })
      local r, c = ids:shape()
      assert.equal(n, r); assert.equal(k, c)
      assert.equal("u32", ids:dtype()); assert.equal("f32", scores:dtype())
      for q = 1, n do
        local want_ids, want_scores = ref_topk(rows, q, k)
        for i = 1, k do
          assert.equal(want_ids[i], ids:get(q, i))
          assert.equal(want_scores[i], scores:get(q, i))
        end
      end
    end
  end)

  it("every ordering equals the float64 ordering", function()
    local s = weft.similarity(a)
    for start = 1, n do
      local seq = weft.diversity(a, start)
      assert.equal(n, #seq)
      assert.equal(start, seq[1])
      local list = seq:totable()
      local worst, mismatches = replay(rows, list)
      assert.equal(0, mismatches, "start " .. start)
      assert.equal(0, worst)
      assert.same(list, weft.diversity(a, start, { similarity = s }):totable())
      assert.same(list, weft.diversity(a, start, { budget = 64, threads = 1 }):totable(),
        "computing S on the fly (a 64-byte budget) gives the same ordering")
    end
  end)

  it("gives prefixes and several orderings at once", function()
    local full = {}
    for start = 1, n do full[start] = weft.diversity(a, start):totable() end
    local three = weft.diversity(a, { 1, 5, 12 }, { length = 4 })
    local r, c = three:shape()
    assert.equal(3, r); assert.equal(4, c)
    for row, start in ipairs({ 1, 5, 12 }) do
      for t = 1, 4 do assert.equal(full[start][t], three:get(row, t)) end
    end
    local prefix = weft.diversity(a, 7, { length = 5 })
    assert.equal(5, #prefix)
    for t = 1, 5 do assert.equal(full[7][t], prefix[t]) end
    local all = weft.diversity(a, { 2, 3 })
    assert.equal(n, select(2, all:shape()))
    assert.same(full[3], all[2]:totable())
    assert.equal(n, #weft.diversity(a, 1, { length = 10 * n }), "length is capped at N")
    assert.matches("starts%[2%] 0 is out of range", H.err(weft.diversity, a, { 1, 0 }))
    assert.matches("length must be a positive integer", H.err(weft.diversity, a, 1, { length = 0 }))
  end)

  it("works on arrays handed to a worker, and on f64 embeddings", function()
    local ids = weft.spawn(function(emb) return (weft.topk(emb, 2)) end, a):join(30)
    local direct = weft.topk(a, 2)
    assert.same(direct:totable(), ids:totable())
    local d = weft.array("f64", n, 8)
    for i = 1, n do for j = 1, 8 do d:set(i, j, a:get(i, j)) end end
    assert.same(direct:totable(), (weft.topk(d, 2)):totable())
  end)
end)

describe("the compute engine on real embeddings", function()
  -- the shipped 2,000-row subset (examples/data), so a fresh clone runs this
  local path = "examples/data/emb.npy"

  it("top-10 of sample items and a 300-item ordering match a float64 replay", function()
    local emb = weft.load_npy(path, { mmap = true })
    local n = emb:shape()
    local ids, scores = weft.topk(emb, 10)
    local rows = normalised_rows(emb)
    local swaps = 0
    for _, q in ipairs({ 1, 2, 777, 1500, n }) do
      local want_ids, want_scores = ref_topk(rows, q, 10)
      for i = 1, 10 do
        if want_ids[i] ~= ids:get(q, i) then
          swaps = swaps + 1
          -- allowed only between neighbours whose float64 scores differ by < 1e-6
          local other = want_ids[i + 1] == ids:get(q, i) and want_scores[i + 1] or want_scores[i - 1]
          assert.is_true(math.abs(want_scores[i] - other) < 1e-6)
        end
        assert.is_true(math.abs(scores:get(q, i) - want_scores[i]) < 1e-6)
      end
    end
    assert.is_true(swaps <= 2)
    local sub = emb:slice(1, 300)
    local sub_rows = normalised_rows(sub)
    for _, start in ipairs({ 1, 150 }) do
      local worst = replay(sub_rows, weft.diversity(sub, start):totable())
      assert.is_true(worst <= 1e-7, "worst excess " .. worst)
    end
  end)
end)

describe("weft.diversity_cache and weft.open_cache", function()
  local a = exact_set()
  local n = a:shape()

  it("writes every ordering, reads them back, and reports progress", function()
    local path = os.tmpname()
    os.remove(path)
    local calls, last = 0, nil
    local info = weft.diversity_cache(a, path, { progress = function(done, total)
      calls = calls + 1
      last = { done, total }
    end })
    assert.equal(n, info.n); assert.equal(n, info.done)
    assert.is_true(info.complete)
    assert.equal(2, info.id_width)
    assert.equal(64, #info.hash)
    assert.is_true(calls >= 1)
    assert.same({ n, n }, last)
    local cache = weft.open_cache(path)
    for start = 1, n do
      assert.same(weft.diversity(a, start):totable(), cache:get(start):totable())
    end
    assert.same(info, cache:info())
    -- a finished cache is never silently overwritten; resume is a no-op; force replaces
    assert.matches("is a finished cache; refusing to overwrite it", H.err(weft.diversity_cache, a, path))
    assert.is_true(weft.diversity_cache(a, path, { resume = true }).complete)
    assert.is_true(weft.diversity_cache(a, path, { force = true }).complete)
    -- other embeddings are refused
    local b = exact_set()
    b:set(3, 1, 0.25)
    assert.matches("other embeddings", H.err(weft.diversity_cache, b, path, { resume = true }))
    assert.matches("start 13 is out of range 1..12", H.err(cache.get, cache, 13))
    assert.matches("stays in the thread that made it", H.err(weft.spawn, function() end, cache))
    os.remove(path)
  end)

  it("keeps committed work when the progress function fails, and resumes to the same bytes", function()
    local big = exact_set_70()
    local rows = normalised_rows(big)
    local path, whole = os.tmpname(), os.tmpname()
    os.remove(path); os.remove(whole)
    assert.matches("the progress function failed %(32 of 74 orderings saved; resume to continue%): .*stop here",
      H.err(weft.diversity_cache, big, path, { progress = function() error("stop here") end }))
    local partial = weft.open_cache(path):info()
    assert.is_false(partial.complete)
    assert.equal(32, partial.done)
    local info = weft.diversity_cache(big, path, { resume = true, threads = 1 })
    assert.is_true(info.complete)
    weft.diversity_cache(big, whole)
    local function bytes(p) local f = io.open(p, "rb"); local b = f:read("*a"); f:close(); return b end
    assert.equal(bytes(whole), bytes(path), "resumed file is byte-identical to an uninterrupted one")
    local cache = weft.open_cache(path)
    for _, start in ipairs({ 1, 33, 74 }) do
      local worst, mismatches = replay(rows, cache:get(start):totable())
      assert.equal(0, mismatches)
    end
    os.remove(path); os.remove(whole)
  end)

  it("refuses files that are not caches", function()
    local path = os.tmpname()
    local f = io.open(path, "wb"); f:write("not a cache"); f:close()
    assert.matches("weft.open_cache: ", H.err(weft.open_cache, path))
    assert.matches("not a weft cache", H.err(weft.diversity_cache, a, path))
    os.remove(path)
    assert.matches("weft.open_cache: .*No such file", H.err(weft.open_cache, "/no/such/cache"))
  end)
end)

describe("bad input to the compute engine", function()
  it("names the row, the argument and the problem", function()
    local a = weft.array("f32", 4, 3)
    for i = 1, 4 do a:set(i, 1, i) end
    a:set(3, 1, 0)
    assert.matches("weft.similarity: embeddings row 3 is all zeros", H.err(weft.similarity, a))
    a:set(3, 2, 0 / 0)
    assert.matches("weft.topk: embeddings row 3 contains NaN", H.err(weft.topk, a, 1))
    a:set(3, 2, math.huge)
    assert.matches("weft.diversity: embeddings row 3 contains Inf", H.err(weft.diversity, a, 1))
    a:set(3, 2, 1)
    assert.matches("k must be an integer in 1..N%-1 %(N = 4%), got 0", H.err(weft.topk, a, 0))
    assert.matches("k must be an integer in 1..N%-1 %(N = 4%), got 4", H.err(weft.topk, a, 4))
    assert.matches("start 5 is out of range 1..4", H.err(weft.diversity, a, 5))
    assert.matches("start 0 is out of range", H.err(weft.diversity, a, 0))
    assert.matches("must be a 2%-D array", H.err(weft.similarity, weft.array("f32", 3)))
    assert.matches("must be f32 or f64, got i32", H.err(weft.similarity, weft.array("i32", 3, 2)))
    assert.matches("expected a weft.array %(got table%)", H.err(weft.similarity, { { 1 } }))
    assert.matches("threads must be a positive integer", H.err(weft.similarity, a, { threads = 0 }))
    assert.matches("k must be an integer in 1..N%-1 %(N = 1%), got 1", H.err(weft.topk, weft.array("f32", 1, 3), 1))
    assert.matches("opts.similarity must be the 4×4 f32 array",
      H.err(weft.diversity, a, 1, { similarity = weft.array("f32", 3, 3) }))
  end)
end)
