-- weft.pool: workers, init, submit/futures, map, range, close, nesting; weft.map/range.
local describe, it, assert, before_each, after_each = describe, it, assert, before_each, after_each
local _ENV = _G -- functions sent to threads must see the real globals, not busted's env

local weft = require "weft"
local H = require "helpers"

local function square(x) return x * x end

local function bounds(first, last) return { first, last } end

-- Check that range chunks (a list of {first, last}) cover 1..n exactly once, in order.
local function assert_cover(chunks, n, chunk)
  local expect = 1
  for i, b in ipairs(chunks) do
    assert.are.equal(expect, b[1], "chunk " .. i .. " starts where the previous ended")
    assert.is_true(b[2] >= b[1], "chunk " .. i .. " is not empty")
    if chunk then
      assert.is_true(b[2] - b[1] + 1 <= chunk, "chunk " .. i .. " is at most " .. chunk)
    end
    expect = b[2] + 1
  end
  assert.are.equal(n + 1, expect, "the chunks end at n")
end

describe("weft.pool", function()
  it("has the requested size", function()
    for _, n in ipairs({ 1, 2, 3 }) do
      local pool = weft.pool { size = n }
      assert.are.equal(n, pool:size())
      pool:close()
    end
  end)

  it("defaults to a positive size", function()
    local pool = weft.pool {}
    assert.is_true(pool:size() >= 1)
    assert.are.equal(weft.cpus(), pool:size())
    pool:close()
  end)

  it("refuses a size that is not a positive integer", function()
    for _, bad in ipairs({ 0, -1, 1.5, "x", true }) do
      local ok, e = pcall(weft.pool, { size = bad })
      assert.is_false(ok, "size " .. tostring(bad) .. " must be refused")
      assert.are.equal("string", type(e))
      assert.is_truthy(e:find("size", 1, true), e)
    end
  end)

  it("runs init once per worker with its 1-based index, before weft.pool returns", function()
    local started = weft.channel()
    local pool = weft.pool { size = 3, init = function(i)
      WORKER_INDEX = i
      started:push(i)
    end }
    assert.are.equal(3, #started, "every init ran before weft.pool returned")
    local seen = {}
    for k = 1, 3 do seen[k] = started:pop(1) end
    assert.are.same({ 1, 2, 3 }, H.sorted(seen))
    assert.are.equal(0, #started)

    -- Three tasks held at a barrier run on three different workers; each sees the
    -- global its worker's init set.
    local ids, release = weft.channel(), weft.channel()
    local fs = {}
    for k = 1, 3 do
      fs[k] = pool:submit(function(out, gate)
        out:push(WORKER_INDEX)
        gate:pop(10)
        return WORKER_INDEX
      end, ids, release)
    end
    local got = {}
    for k = 1, 3 do got[k] = ids:pop(10) end
    for _ = 1, 3 do release:push(true) end
    assert.are.same({ 1, 2, 3 }, H.sorted(got))
    local joined = {}
    for k = 1, 3 do joined[k] = fs[k]:join(10) end
    assert.are.same({ 1, 2, 3 }, H.sorted(joined))
    pool:close()
    assert.are.equal(0, #started, "init ran only once per worker")
  end)

  it("raises 'failed to start' when init fails", function()
    local ok, e = pcall(weft.pool, { size = 2, init = function(i)
      if i == 2 then error("init exploded on " .. i) end
    end })
    assert.is_false(ok)
    assert.are.equal("string", type(e))
    assert.is_truthy(e:find("failed to start", 1, true), e)
    assert.is_truthy(e:find("init exploded on 2", 1, true), e)
  end)

  it("refuses an init that is not a function", function()
    local ok, e = pcall(weft.pool, { size = 1, init = 42 })
    assert.is_false(ok)
    assert.is_truthy(tostring(e):find("init", 1, true), e)
  end)
end)

describe("pool:submit", function()
  it("returns a future whose join gives the results", function()
    local pool = weft.pool { size = 2 }
    local f = pool:submit(function(a, b) return a .. b, nil, #a end, "ab", "cd")
    local r = H.pack(f:join(10))
    assert.are.equal(3, r.n)
    assert.are.same({ "abcd", nil, 2 }, { r[1], r[2], r[3] })
    assert.are.equal("done", f:status())
    assert.is_true(f:wait(0))
    pool:close()
  end)

  it("futures re-raise errors with a traceback, and copies of table errors", function()
    local pool = weft.pool { size = 1 }
    local f = pool:submit(function() error("future failed here") end)
    local ok, e = pcall(f.join, f, 10)
    assert.is_false(ok)
    assert.is_truthy(e:find("future failed here", 1, true), e)
    assert.is_truthy(e:find("stack traceback", 1, true), e)
    local st, text = f:status()
    assert.are.equal("failed", st)
    assert.is_truthy(text:find("future failed here", 1, true), text)
    local g = pool:submit(function() error({ why = "table" }) end)
    ok, e = pcall(g.join, g, 10)
    assert.is_false(ok)
    assert.are.same({ why = "table" }, e)
    -- the worker survives a failing task
    assert.are.equal(4, pool:submit(square, 2):join(10))
    pool:close()
  end)

  it("futures wait, time out, and report running", function()
    local pool = weft.pool { size = 1 }
    local gate = weft.channel()
    local f = pool:submit(function(g) return g:pop(10) end, gate)
    assert.is_false(f:wait(0.05))
    local r = H.pack(f:join(0.05))
    assert.are.same({ n = 2, nil, "timeout" }, r)
    gate:push("go")
    assert.are.equal("go", f:join(10))
    pool:close()
  end)

  it("a queued future can be cancelled before it runs", function()
    local pool = weft.pool { size = 1 }
    local gate, ran = weft.channel(), weft.channel()
    local blocker = pool:submit(function(g) return g:pop(10) end, gate)
    local queued = pool:submit(function(r) r:push("ran") return "ran" end, ran)
    queued:cancel()
    gate:push("released")
    assert.are.equal("released", blocker:join(10))
    assert.is_true(queued:wait(10))
    assert.are.equal("cancelled", queued:status())
    local ok, e = pcall(queued.join, queued, 10)
    assert.is_false(ok)
    assert.is_truthy(tostring(e):find("cancelled", 1, true), tostring(e))
    assert.are.equal(0, #ran, "the cancelled task never ran")
    pool:close()
  end)

  it("runs many submitted tasks", function()
    local pool = weft.pool { size = 3 }
    local fs = {}
    for i = 1, 200 do fs[i] = pool:submit(square, i) end
    local s = 0
    for i = 1, 200 do s = s + fs[i]:join(10) end
    assert.are.equal(200 * 201 * 401 / 6, s)
    pool:close()
  end)

  it("loads a function submitted many times once per worker", function()
    if H.puc51 then return end -- documented: Lua 5.1 reloads (no lua_upvaluejoin)
    local pool = weft.pool { size = 1 }
    local function probe()
      local me = debug.getinfo(1, "f").func
      SEEN = SEEN or {}
      if not SEEN[me] then
        SEEN[me] = true
        DISTINCT = (DISTINCT or 0) + 1
      end
      return DISTINCT
    end
    local last
    for _ = 1, 20 do last = pool:submit(probe):join(10) end
    assert.are.equal(1, last)
    pool:close()
  end)
end)

describe("a pool worker after a failed task", function()
  it("can require a module whose loading the failed task interrupted", function()
    -- Lua 5.1 and LuaJIT leave a sentinel in package.loaded when a require fails (or is
    -- cancelled); the worker's state is reused, so weft clears it
    local pool = weft.pool { size = 1 }
    local ok = pcall(function()
      pool:submit(function()
        package.preload.flaky = function() error("loading failed") end
        return require "flaky"
      end):join(10)
    end)
    assert.is_false(ok)
    local v = pool:submit(function()
      package.preload.flaky = function() return 42 end
      return require "flaky"
    end):join(10)
    assert.equal(42, v)
    pool:close()
  end)
end)

describe("pool:map", function()
  local pool

  before_each(function() pool = weft.pool { size = 3 } end)
  after_each(function() pool:close() end)

  it("names the item whose result cannot be sent", function()
    local e = H.err(pool.map, pool, function(i)
      if i == 2 then return coroutine.create(function() end) end
      return i
    end, { 1, 2, 3 })
    assert.matches("cannot send the result of map item 2 %(a coroutine", e)
  end)

  it("keeps every item's result table its own when the worker collects garbage", function()
    -- a chunk's results are encoded into one message; a collected result's address
    -- reused by the next result once made the next result a copy of the old one
    local r = pool:map(function(i)
      local t = { i = i }
      collectgarbage()
      return t
    end, H.iota(60), { chunk = 20 })
    for k = 1, 60 do assert.equal(k, r[k].i) end
  end)

  it("returns a new table of results in order", function()
    local items = H.iota(100)
    local out = pool:map(square, items)
    assert.are_not.equal(items, out)
    assert.are.equal(100, #out)
    for i = 1, 100 do assert.are.equal(i * i, out[i]) end
    assert.are.same(H.iota(100), items, "the input is untouched")
  end)

  it("gives the same results for every chunk size", function()
    local items = H.iota(50)
    local want = pool:map(square, items)
    for _, c in ipairs({ 1, 2, 7, 50, 1000 }) do
      assert.are.same(want, pool:map(square, items, { chunk = c }), "chunk " .. c)
    end
  end)

  it("keeps only the first result of each call", function()
    local out = pool:map(function(x) return x + 1, "extra", "more" end, { 1, 2, 3 })
    assert.are.same({ 2, 3, 4 }, out)
  end)

  it("maps tables and strings", function()
    local out = pool:map(function(t) return t.name:upper() .. #t.list end,
      { { name = "a", list = { 1 } }, { name = "b", list = { 1, 2 } } })
    assert.are.same({ "A1", "B2" }, out)
  end)

  it("returns an empty table for an empty list", function()
    local out = pool:map(square, {})
    assert.are.equal("table", type(out))
    assert.is_nil(next(out))
  end)

  it("raises 'map item <i> failed' for the lowest failing index", function()
    local function picky(x)
      if x == 17 or x == 33 or x == 90 then error("bad item " .. x) end
      return x
    end
    for _, c in ipairs({ 1, 5, 100 }) do
      local ok, e = pcall(pool.map, pool, picky, H.iota(100), { chunk = c })
      assert.is_false(ok)
      assert.are.equal("string", type(e))
      assert.is_truthy(e:find("map item 17 failed", 1, true), "chunk " .. c .. ": " .. e)
      assert.is_truthy(e:find("bad item 17", 1, true), e)
      assert.is_falsy(e:find("map item 33", 1, true), e)
    end
    -- the pool still works
    assert.are.same({ 1, 4 }, pool:map(square, { 1, 2 }))
  end)

  it("refuses an item that cannot be sent, naming it", function()
    local ok, e = pcall(pool.map, pool, square, { 1, 2, coroutine.create(square) })
    assert.is_false(ok)
    assert.is_truthy(tostring(e):find("cannot send item 3", 1, true), tostring(e))
  end)
end)

describe("pool:range", function()
  local pool

  before_each(function() pool = weft.pool { size = 3 } end)
  after_each(function() pool:close() end)

  it("calls fn(first, last) over 1..n in chunks, results in chunk order", function()
    local out = pool:range(10, bounds, { chunk = 3 })
    assert.are.same({ { 1, 3 }, { 4, 6 }, { 7, 9 }, { 10, 10 } }, out)
  end)

  it("covers 1..n exactly once for any n and chunk", function()
    for _, n in ipairs({ 1, 2, 7, 100, 1001 }) do
      for _, c in ipairs({ 1, 3, 64, 5000 }) do
        assert_cover(pool:range(n, bounds, { chunk = c }), n, c)
      end
      assert_cover(pool:range(n, bounds), n)
    end
  end)

  it("returns each chunk's first result so sums can be reduced", function()
    local parts = pool:range(1000, function(first, last)
      local s = 0
      for i = first, last do s = s + i end
      return s, "ignored"
    end, { chunk = 37 })
    assert.are.equal(math.ceil(1000 / 37), #parts)
    assert.are.equal(500500, H.sum(parts))
  end)

  it("returns an empty table for n = 0", function()
    local out = pool:range(0, bounds)
    assert.are.equal("table", type(out))
    assert.is_nil(next(out))
  end)

  it("re-raises an error from a chunk", function()
    local ok, e = pcall(pool.range, pool, 10, function(first)
      if first == 4 then error("range chunk exploded") end
      return first
    end, { chunk = 3 })
    assert.is_false(ok)
    assert.is_truthy(tostring(e):find("range chunk exploded", 1, true), tostring(e))
  end)

  it("queues chunks as it goes: a failure early in a billion chunks ends it at once", function()
    -- Queuing every chunk up front would need hundreds of GB before the first one ran.
    local calls = weft.counter(0)
    local ok, e = pcall(pool.range, pool, 1e9, function(first)
      calls:add(1)
      if first == 100 then error("stop at 100") end
    end, { chunk = 1 })
    assert.is_false(ok)
    assert.is_truthy(tostring(e):find("stop at 100", 1, true), tostring(e))
    -- chunks 1..100 ran; at most a window (4 per worker) beyond the failure was queued
    assert.is_true(calls:get() >= 100 and calls:get() <= 100 + 3 * 4, tostring(calls:get()))
  end)
end)

describe("pool:close", function()
  it("lets queued tasks finish and waits for the workers", function()
    local pool = weft.pool { size = 1 }
    local done = weft.channel()
    for i = 1, 3 do
      pool:submit(function(ch, k)
        local _, why = ch:pop(0.05) -- a short nap in the worker (nobody pushes to ch)
        done:push(k)
        return why
      end, weft.channel(), i)
    end
    pool:close()
    assert.are.equal(3, #done, "every queued task ran before close returned")
    assert.are.same({ 1, 2, 3 }, { done:pop(0), done:pop(0), done:pop(0) })
  end)

  it("refuses new work after close", function()
    local pool = weft.pool { size = 2 }
    pool:close()
    local ok, e = pcall(pool.submit, pool, square, 2)
    assert.is_false(ok)
    assert.is_truthy(tostring(e):find("closed", 1, true), tostring(e))
    ok, e = pcall(pool.map, pool, square, { 1, 2 })
    assert.is_false(ok)
    assert.is_truthy(tostring(e):find("closed", 1, true), tostring(e))
  end)
end)

describe("nested pool tasks", function()
  local function level(p, n)
    if n == 0 then return "bottom" end
    return n .. ">" .. p:submit(level, p, n - 1):join(10)
  end

  it("a task that submits to its own pool of size 1 and joins does not deadlock", function()
    local pool = weft.pool { size = 1 }
    local f = pool:submit(level, pool, 3)
    local r, why = f:join(20)
    assert.is_nil(why)
    assert.are.equal("3>2>1>bottom", r)
    pool:close()
  end)

  it("nested map and range inside a pool task do not deadlock", function()
    local pool = weft.pool { size = 2 }
    local f = pool:submit(function(p)
      local sq = p:map(function(x) return x * x end, { 1, 2, 3, 4 }, { chunk = 1 })
      local parts = p:range(10, function(a, b) return b - a + 1 end, { chunk = 2 })
      local n = 0
      for i = 1, #parts do n = n + parts[i] end
      return sq[4], n
    end, pool)
    local a, b = f:join(20)
    assert.are.same({ 16, 10 }, { a, b })
    pool:close()
  end)

  it("nested tasks of the same code keep their own upvalues", function()
    local function make(tag, child)
      return function(p)
        local below = child and p:submit(child, p):join(10) or "none"
        return tag .. "(" .. below .. ")"
      end
    end
    local pool = weft.pool { size = 1 }
    local f = pool:submit(make("outer", make("middle", make("inner", nil))), pool)
    local r, why = f:join(20)
    assert.is_nil(why)
    assert.are.equal("outer(middle(inner(none)))", r)
    pool:close()
  end)
end)

describe("the default pool", function()
  it("weft.map maps in order", function()
    assert.are.same({ 1, 4, 9, 16 }, weft.map(square, { 1, 2, 3, 4 }))
    local items = H.iota(300)
    local out = weft.map(function(x) return -x end, items)
    for i = 1, 300 do assert.are.equal(-i, out[i]) end
  end)

  it("weft.range covers 1..n and reduces", function()
    assert_cover(weft.range(777, bounds), 777)
    local parts = weft.range(100, function(a, b)
      local s = 0
      for i = a, b do s = s + i end
      return s
    end)
    assert.are.equal(5050, H.sum(parts))
    assert.is_nil(next(weft.range(0, bounds)))
  end)

  it("weft.map reports the failing item", function()
    local ok, e = pcall(weft.map, function(x)
      if x == 5 then error("five is bad") end
      return x
    end, H.iota(9))
    assert.is_false(ok)
    assert.is_truthy(e:find("map item 5 failed", 1, true), e)
    assert.is_truthy(e:find("five is bad", 1, true), e)
  end)
end)
