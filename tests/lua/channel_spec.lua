-- weft.channel: capacity, push/pop/timeouts, close and drain, len, iter, MPMC.
local describe, it, assert, before_each, after_each = describe, it, assert, before_each, after_each
local _ENV = _G -- functions sent to threads must see the real globals, not busted's env

local weft = require "weft"
local H = require "helpers"

describe("weft.channel", function()
  it("accepts nil (unbounded) and positive integer capacities", function()
    assert.is_not_nil(weft.channel())
    assert.is_not_nil(weft.channel(nil))
    assert.is_not_nil(weft.channel(1))
    assert.is_not_nil(weft.channel(1000))
    assert.is_not_nil(weft.channel(4.0))
  end)

  it("refuses a capacity that is not a positive integer", function()
    for _, bad in ipairs({ 0, -1, 2.5, "x", true, {} }) do
      local ok, e = pcall(weft.channel, bad)
      assert.is_false(ok, "capacity " .. tostring(bad) .. " must be refused")
      assert.are.equal("string", type(e))
      assert.is_truthy(e:find("capacity", 1, true), e)
    end
  end)

  it("is first in, first out", function()
    local ch = weft.channel()
    for i = 1, 100 do assert.is_true(ch:push(i)) end
    for i = 1, 100 do assert.are.equal(i, ch:pop(0)) end
  end)

  it("keeps the order of mixed numbers, strings and tables", function()
    local ch = weft.channel()
    local items = { 1, "a", 2.5, { t = 1 }, -0.0, true, 3, "b", 1e300, { 4 } }
    for _, v in ipairs(items) do assert.is_true(ch:push(v)) end
    local got = {}
    for i = 1, #items do got[i] = ch:pop(0) end
    assert.are.same(items, got)
    -- and across a thread, with numbers pushed there
    local back = weft.spawn(function(c)
      for i = 1, 5 do c:push(i); c:push("s" .. i) end
      return true
    end, ch):join(10)
    assert.is_true(back)
    for i = 1, 5 do
      assert.are.equal(i, ch:pop(0))
      assert.are.equal("s" .. i, ch:pop(0))
    end
    assert.are.equal(0, #ch)
  end)

  it("an unbounded channel takes many items without blocking", function()
    local ch = weft.channel()
    for i = 1, 10000 do ch:push(i, 0) end
    assert.are.equal(10000, #ch)
    assert.are.equal(10000, ch:len())
  end)

  it("reports its length with # and len()", function()
    local ch = weft.channel(10)
    assert.are.equal(0, #ch)
    assert.are.equal(0, ch:len())
    ch:push("a"); ch:push("b"); ch:push("c")
    assert.are.equal(3, #ch)
    assert.are.equal(3, ch:len())
    ch:pop()
    assert.are.equal(2, #ch)
    assert.are.equal(2, ch:len())
  end)

  it("push on a full channel times out with false, 'timeout'", function()
    local ch = weft.channel(2)
    assert.is_true(ch:push(1, 0))
    assert.is_true(ch:push(2, 0))
    local r = H.pack(ch:push(3, 0.05))
    assert.are.same({ n = 2, false, "timeout" }, r)
    r = H.pack(ch:push(3, 0))
    assert.are.same({ n = 2, false, "timeout" }, r)
    assert.are.equal(2, #ch)
    assert.are.equal(1, ch:pop(0))
    assert.is_true(ch:push(3, 0))
    assert.are.same({ 2, 3 }, { ch:pop(0), ch:pop(0) })
  end)

  it("pop on an empty channel times out with nil, 'timeout'", function()
    local ch = weft.channel()
    local r = H.pack(ch:pop(0.05))
    assert.are.same({ n = 2, nil, "timeout" }, r)
    r = H.pack(ch:pop(0))
    assert.are.same({ n = 2, nil, "timeout" }, r)
  end)

  it("a blocked push resumes when a consumer pops", function()
    local ch = weft.channel(1)
    ch:push("first")
    local h = weft.spawn(function(c) return c:push("second", 10) end, ch)
    assert.is_false(h:wait(0.05), "the producer is blocked on a full channel")
    assert.are.equal("first", ch:pop(1))
    assert.is_true(h:join(10))
    assert.are.equal("second", ch:pop(1))
  end)

  it("a blocked pop resumes when a producer pushes", function()
    local ch = weft.channel()
    local h = weft.spawn(function(c) return c:pop(10) end, ch)
    assert.is_false(h:wait(0.05))
    ch:push({ payload = "hello" })
    assert.are.same({ payload = "hello" }, h:join(10))
  end)

  it("refuses to push nil", function()
    local ch = weft.channel()
    local ok, e = pcall(ch.push, ch, nil)
    assert.is_false(ok)
    assert.are.equal("string", type(e))
    assert.are.equal(0, #ch)
  end)

  it("pushes false and other falsy-looking values", function()
    local ch = weft.channel()
    ch:push(false); ch:push(0); ch:push("")
    local r = H.pack(ch:pop(0))
    assert.are.same({ n = 1, false }, r)
    assert.are.equal(0, ch:pop(0))
    assert.are.equal("", ch:pop(0))
  end)

  it("after close, items pushed before still come out, then nil, 'closed'", function()
    local ch = weft.channel()
    ch:push(1); ch:push(2)
    ch:close()
    assert.are.equal(1, ch:pop(0))
    assert.are.equal(2, ch:pop())
    local r = H.pack(ch:pop(1))
    assert.are.same({ n = 2, nil, "closed" }, r)
    r = H.pack(ch:pop())
    assert.are.same({ n = 2, nil, "closed" }, r)
  end)

  it("push after close returns false, 'closed'", function()
    local ch = weft.channel(1)
    ch:close()
    local r = H.pack(ch:push("late"))
    assert.are.same({ n = 2, false, "closed" }, r)
    assert.are.equal(0, #ch)
  end)

  it("close wakes a blocked pop with nil, 'closed'", function()
    local ch = weft.channel()
    local h = weft.spawn(function(c) return c:pop(10) end, ch)
    assert.is_false(h:wait(0.05))
    ch:close()
    local r = H.pack(h:join(10))
    assert.are.same({ n = 2, nil, "closed" }, r)
  end)

  it("close wakes a blocked push with false, 'closed'", function()
    local ch = weft.channel(1)
    ch:push(1)
    local h = weft.spawn(function(c) return c:push(2, 10) end, ch)
    assert.is_false(h:wait(0.05))
    ch:close()
    local r = H.pack(h:join(10))
    assert.are.same({ n = 2, false, "closed" }, r)
  end)

  it("iter yields every item and ends when closed and drained", function()
    local ch = weft.channel()
    for i = 1, 5 do ch:push(i * 10) end
    ch:close()
    local got = {}
    for v in ch:iter() do got[#got + 1] = v end
    assert.are.same({ 10, 20, 30, 40, 50 }, got)
  end)

  it("iter in a consumer thread follows a producer until close", function()
    local ch = weft.channel(4)
    local consumer = weft.spawn(function(c)
      local n, s = 0, 0
      for v in c:iter() do n = n + 1; s = s + v end
      return n, s
    end, ch)
    for i = 1, 100 do assert.is_true(ch:push(i, 10)) end
    ch:close()
    local n, s = consumer:join(10)
    assert.are.equal(100, n)
    assert.are.equal(5050, s)
  end)

  it("the same channel seen from two states compares equal", function()
    local ch = weft.channel()
    local back = weft.spawn(function(c) return c end, ch):join(10)
    assert.is_true(back == ch)
    assert.is_true(rawequal(ch, ch))
    assert.is_false(weft.channel() == ch)
    back:push("via the copy")
    assert.are.equal("via the copy", ch:pop(0))
    assert.are.equal(0, #back)
  end)

  it("is multi-producer multi-consumer: every message arrives exactly once", function()
    local producers, consumers, per = 4, 3, 500
    local ch = weft.channel(16)
    local ps, cs = {}, {}
    for c = 1, consumers do
      cs[c] = weft.spawn(function(q)
        local got = {}
        for v in q:iter() do got[#got + 1] = v end
        return got
      end, ch)
    end
    for p = 1, producers do
      ps[p] = weft.spawn(function(q, id, n)
        for i = 1, n do
          local ok, why = q:push(id * 100000 + i, 10)
          if not ok then error("push failed: " .. tostring(why)) end
        end
        return n
      end, ch, p, per)
    end
    for p = 1, producers do assert.are.equal(per, ps[p]:join(20)) end
    ch:close()
    local all = {}
    for c = 1, consumers do
      local got = cs[c]:join(20)
      assert.are.equal("table", type(got))
      for _, v in ipairs(got) do all[#all + 1] = v end
    end
    assert.are.equal(producers * per, #all)
    local want = {}
    for p = 1, producers do
      for i = 1, per do want[#want + 1] = p * 100000 + i end
    end
    assert.are.same(H.sorted(want), H.sorted(all))
    -- each producer's messages arrive in order within each consumer
    for c = 1, consumers do
      local got = cs[c]:join(1)
      local last = {}
      for _, v in ipairs(got) do
        local id, i = math.floor(v / 100000), v % 100000
        assert.is_true((last[id] or 0) < i, "per-producer order is kept")
        last[id] = i
      end
    end
  end)

  -- On LuaJIT, short flat tables ("rows": keys 1..n, n <= 8, numbers, strings and
  -- booleans, no metatable) take an FFI path; everything that merely looks like one must
  -- take the general path and arrive intact. Under PUC Lua all take the general path.
  local function look_alikes()
    local hash_first = {}
    hash_first.k = "hash key made before the sequence"
    hash_first[1] = 5
    local hash_last = { 1, 2 }
    hash_last.k = true
    local holed = { 1, 2, nil, 4 }
    local zero = { [0] = "zero", "one" }
    local nine = { 1, 2, 3, 4, 5, 6, 7, 8, 9 }
    return {
      { 1, "x" },
      { -0.0, 1e300, -1 / 0, 2 ^ 53 + 2 },
      { "a\0b", string.rep("long ", 40), "" },
      { true, false, "t" },
      { 1, 2, 3, 4, 5, 6, 7, 8 },
      nine, hash_first, hash_last, holed, zero,
      { 1, { 2, "nested" } },
      { k = "only hash" },
      {},
    }
  end

  local function assert_same_values(want, got)
    assert.are.same(want, got)
    if type(want) == "table" then
      -- NaN-free, so same() suffices; also check key counts (same() ignores nothing)
      local n, m = 0, 0
      for _ in pairs(want) do n = n + 1 end
      for _ in pairs(got) do m = m + 1 end
      assert.are.equal(n, m)
    end
  end

  it("rows and tables that look like rows arrive intact, in order, in one state", function()
    local ch = weft.channel()
    local items = look_alikes()
    for _, v in ipairs(items) do
      assert.is_true(ch:push(v))
      ch:push(7) -- a number between every table: the paths interleave
    end
    for _, v in ipairs(items) do
      assert_same_values(v, ch:pop(0))
      assert.are.equal(7, ch:pop(0))
    end
    assert.are.equal(0, #ch)
  end)

  it("rows and look-alikes cross threads both ways", function()
    local to, from = weft.channel(), weft.channel(4)
    local echo = weft.spawn(function(a, b)
      local n = 0
      for v in a:iter() do
        b:push(v, 10)
        n = n + 1
      end
      b:close()
      return n
    end, to, from)
    local items = look_alikes()
    local got = {}
    local consumer = weft.spawn(function(c)
      local all = {}
      for v in c:iter() do all[#all + 1] = v end
      return all
    end, from)
    for _ = 1, 50 do
      for _, v in ipairs(items) do assert.is_true(to:push(v)) end
    end
    to:close()
    assert.are.equal(50 * #items, echo:join(20))
    got = consumer:join(20)
    assert.are.equal(50 * #items, #got)
    for r = 0, 49 do
      for i, v in ipairs(items) do assert_same_values(v, got[r * #items + i]) end
    end
  end)

  it("a table with a cycle and shared subtables keeps its shape through a channel", function()
    -- the collector at its most eager, so that anything the encoder failed to keep alive
    -- would be collected (and its address reused) while later items are encoded
    local pause = collectgarbage("setpause", 0)
    local ch = weft.channel()
    for i = 1, 200 do
      local shared = { i }
      local t = { a = shared, b = shared, list = { shared, { i, shared } } }
      t.self = t
      ch:push(t)
      ch:push({ tostring(i), { i } }) -- garbage in between
    end
    collectgarbage("setpause", pause)
    for i = 1, 200 do
      local t = ch:pop(0)
      assert.are.equal(t, t.self)
      assert.are.equal(t.a, t.b)
      assert.are.equal(t.a, t.list[1])
      assert.are.equal(t.a, t.list[2][2])
      assert.are.equal(i, t.a[1])
      assert.are.same({ tostring(i), { i } }, ch:pop(0))
    end
  end)

  it("a popped row keeps its strings after later pops", function()
    local ch = weft.channel()
    ch:push({ "first", string.rep("y", 64) })
    ch:push({ "second", "z" })
    local a = ch:pop(0)
    local b = ch:pop(0)
    assert.are.same({ "first", string.rep("y", 64) }, a)
    assert.are.same({ "second", "z" }, b)
  end)

  it("refuses a short table with a metatable, as any table with one", function()
    local ch = weft.channel()
    local ok, e = pcall(ch.push, ch, setmetatable({ 1, 2 }, {}))
    assert.is_false(ok)
    assert.is_truthy(tostring(e):find("metatable", 1, true), e)
    assert.are.equal(0, #ch)
  end)

  it("a row waits for room in a full channel and times out there", function()
    local ch = weft.channel(1)
    assert.is_true(ch:push({ 1, "x" }))
    local ok, why = ch:push({ 2, "y" }, 0.01)
    assert.is_false(ok)
    assert.are.equal("timeout", why)
    assert.are.same({ 1, "x" }, ch:pop(0))
    ch:close()
    ok, why = ch:push({ 3, "z" })
    assert.is_false(ok)
    assert.are.equal("closed", why)
  end)
end)
