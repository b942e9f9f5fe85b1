-- Shared data: frozen tables, counters and shared tables, read and written from threads.
local describe, it, assert = describe, it, assert
local _ENV = _G -- functions sent to threads must see the real globals, not busted's env

local weft = require "weft"
local H = require "helpers"

describe("weft.freeze", function()
  local config = {
    name = "fortunes", k = 10, ratio = 0.25, on = true,
    tags = { "a", "b", "c" },
    nested = { deeper = { x = 42 } },
    [7] = "seven", [2.5] = "two and a half",
  }

  it("reads fields, indices, lengths and nested tables as in the original", function()
    local t = weft.freeze(config)
    assert.equal("fortunes", t.name)
    assert.equal(10, t.k)
    assert.equal(0.25, t.ratio)
    assert.is_true(t.on)
    assert.equal(3, #t.tags)
    assert.equal("b", t.tags[2])
    assert.equal(42, t.nested.deeper.x)
    assert.equal("seven", t[7])
    assert.equal("two and a half", t[2.5])
    assert.is_nil(t.missing)
    assert.is_nil(t.tags[4])
    assert.is_nil(t[{}])
  end)

  it("gives the same view for the same nested table, and survives cycles and sharing", function()
    local shared = { v = 1 }
    local cyclic = { a = shared, b = shared }
    cyclic.self = cyclic
    local t = weft.freeze(cyclic)
    assert.equal(t.a, t.b)
    assert.equal(t, t.self)
    assert.equal(t.self.self.a.v, 1)
    assert.equal(t.a, weft.freeze(t).a, "freezing a frozen table returns it")
  end)

  it("is immutable and independent of the original", function()
    local src = { x = 1, list = { 1, 2 } }
    local t = weft.freeze(src)
    src.x, src.list[1] = 99, 99
    assert.equal(1, t.x)
    assert.equal(1, t.list[1])
    assert.matches("read%-only", H.err(function() t.x = 2 end))
    assert.matches("read%-only", H.err(function() t.list[3] = 2 end))
  end)

  it("iterates with t:pairs() (and pairs(t) where __pairs is honoured)", function()
    local src = { 10, 20, 30, a = "x", b = { 1 } }
    local t = weft.freeze(src)
    local seen, n = {}, 0
    for k, v in t:pairs() do
      n = n + 1
      seen[k] = v
    end
    assert.equal(5, n)
    assert.equal(20, seen[2])
    assert.equal("x", seen.a)
    assert.equal(1, seen.b[1])
    if H.lua54 then
      local count = 0
      for _ in pairs(t) do count = count + 1 end
      assert.equal(5, count)
    end
  end)

  it("copies back with t:totable(), deep and mutable", function()
    local src = { 1, 2, { 3, name = "n" }, k = { deep = true } }
    src.loop = src
    local copy = weft.freeze(src):totable()
    assert.same({ 3, name = "n" }, copy[3])
    assert.is_true(copy.k.deep)
    assert.equal(copy, copy.loop)
    copy.k.deep = false
    assert.is_false(copy.k.deep)
    assert.same({ 3, name = "n" }, weft.freeze(src)[3]:totable())
  end)

  it("is read by threads and pool workers without copying it again", function()
    local t = weft.freeze({ items = { 5, 6, 7 }, label = "L" })
    local got = weft.spawn(function(ft)
      return ft.items[3] + #ft.items, ft.label
    end, t):join(10)
    assert.equal(10, got)
    local pool = weft.pool { size = 2 }
    local sums = pool:map(function(i) return t.items[i] * 2 end, { 1, 2, 3 })
    assert.same({ 10, 12, 14 }, sums)
    pool:close()
    -- a view received back from a thread is the same table
    local back = weft.spawn(function(ft) return ft.items end, t):join(10)
    assert.equal(t.items, back)
  end)

  it("holds other weft handles by reference", function()
    local c = weft.counter(0)
    local t = weft.freeze({ counter = c, data = weft.array("f64", 3) })
    weft.spawn(function(ft) ft.counter:add(5); ft.data[2] = 1.5 end, t):join(10)
    assert.equal(5, c:get())
    assert.equal(1.5, t.data[2])
  end)

  it("refuses functions, userdata and non-tables with the path", function()
    assert.matches("weft.freeze: cannot freeze %.config%.handler %(a function",
      H.err(weft.freeze, { config = { handler = function() end } }))
    assert.matches("weft.freeze: cannot freeze .*%(a coroutine",
      H.err(weft.freeze, { co = coroutine.create(function() end) }))
    assert.matches("weft.freeze: expected a table %(got number%)", H.err(weft.freeze, 5))
    assert.matches("weft.freeze: expected a table %(got no value%)", H.err(weft.freeze))
  end)
end)

describe("weft.counter", function()
  it("adds atomically from many threads", function()
    local c = weft.counter(100)
    local hs = {}
    for i = 1, 4 do
      hs[i] = weft.spawn(function(counter)
        for _ = 1, 5000 do counter:add(1) end
      end, c)
    end
    for _, h in ipairs(hs) do h:join(30) end
    assert.equal(20100, c:get())
    assert.equal(20095, c:add(-5))
    assert.equal(20096, c:add())
    c:set(7)
    assert.equal(7, c:get())
    assert.equal(0, weft.counter():get())
  end)

  it("refuses non-integers clearly", function()
    local c = weft.counter()
    assert.matches("c:add: the amount must be an integer %(got 1.5%)", H.err(c.add, c, 1.5))
    assert.matches("c:set: the value must be an integer %(got string%)", H.err(c.set, c, "x"))
    assert.matches("weft.counter: the start value must be an integer", H.err(weft.counter, {}))
    assert.matches("c:get: expected a weft.counter %(got number%)", H.err(c.get, 5))
  end)
end)

describe("weft.table", function()
  it("is one table shared by every thread", function()
    local s = weft.table()
    s.name = "shared"
    s[1] = { nested = true }
    weft.spawn(function(t)
      t.from_thread = t.name .. "!"
      t[#t + 1] = 2
    end, s):join(10)
    assert.equal("shared!", s.from_thread)
    assert.equal(2, #s)
    assert.is_true(s[1].nested)
    s.name = nil
    assert.is_nil(s.name)
  end)

  it("adds atomically with s:add, where t.n = t.n + 1 would race", function()
    local s = weft.table()
    local hs = {}
    for i = 1, 4 do
      hs[i] = weft.spawn(function(t)
        for _ = 1, 2000 do t:add("hits", 1) end
      end, s)
    end
    for _, h in ipairs(hs) do h:join(30) end
    assert.equal(8000, s.hits)
    assert.equal(8000.5, s:add("hits", 0.5))
  end)

  it("iterates a copy and refuses bad keys and values", function()
    local s = weft.table()
    s.a, s.b = 1, 2
    local n = 0
    for _ in s:pairs() do n = n + 1 end
    assert.equal(2, n)
    assert.same({ a = 1, b = 2 }, s:totable())
    assert.matches("keys of a shared table are strings, numbers or booleans %(got table%)",
      H.err(function() s[{}] = 1 end))
    assert.matches("weft: cannot store s.co %(a coroutine",
      H.err(function() s.co = coroutine.create(function() end) end))
    s.word = "x"
    assert.matches("s:add: the value at this key is not a number", H.err(s.add, s, "word", 1))
  end)
end)

describe("shared handles", function()
  it("compare equal when they stand for the same object, also after a round trip", function()
    local c, s, a, f = weft.counter(5), weft.table(), weft.array("u8", 4), weft.freeze({ 1 })
    local c2, s2, a2, f2 = weft.spawn(function(...) return ... end, c, s, a, f):join(10)
    assert.is_true(c == c2 and s == s2 and a == a2 and f == f2)
    assert.is_false(c == weft.counter(5))
    assert.is_false(s == weft.table())
    assert.is_true(a == a:slice(1, 4), "a full slice is the same view")
    assert.is_false(a == a:slice(1, 3))
    assert.is_false(f == weft.freeze({ 1 }))
    assert.matches("^weft.counter %(5%): 0x", tostring(c))
    assert.matches("^weft.array %(u8 4%): 0x", tostring(a))
    assert.matches("^weft.frozen %(#1%): 0x", tostring(f))
    assert.matches("^weft.table: 0x", tostring(s))
  end)
end)

describe("weft.read_jsonl", function()
  local function write(text)
    local p = os.tmpname()
    local f = io.open(p, "wb"); f:write(text); f:close()
    return p
  end

  it("reads each line's value, as tables or straight into a frozen table", function()
    local p = write('{"id": 0, "text": "a\\nb", "source": "x", "w": 0.5}\n\n{"id": 1, "tags": ["t", null, "u"], "skip": null}\n[1, 2, 3]\n')
    local rows = weft.read_jsonl(p)
    assert.equal(3, #rows)
    assert.equal("a\nb", rows[1].text)
    assert.equal(0.5, rows[1].w)
    assert.equal(0, rows[1].id)
    if H.lua54 then assert.equal("integer", math.type(rows[2].id)) end
    assert.equal("u", rows[2].tags[3])
    assert.is_nil(rows[2].tags[2])
    assert.is_nil(rows[2].skip)
    assert.same({ 1, 2, 3 }, rows[3])
    local frozen = weft.read_jsonl(p, { frozen = true })
    assert.equal(3, #frozen)
    assert.equal("a\nb", frozen[1].text)
    assert.equal(3, weft.spawn(function(t) return t[3][3] end, frozen):join(10))
    os.remove(p)
  end)

  it("reads the fortunes corpus shipped in examples/data", function()
    local t = weft.read_jsonl("examples/data/texts.jsonl", { frozen = true })
    assert.equal(2000, #t)
    assert.equal(1999, t[2000].id)
    assert.is_string(t[1].source)
  end)

  it("names the file and line of a syntax error, and a missing file", function()
    local p = write('{"ok": 1}\n{"broken": \n')
    assert.matches("weft.read_jsonl: .*:2: EOF while parsing", H.err(weft.read_jsonl, p))
    os.remove(p)
    assert.matches("weft.read_jsonl: /no/such.jsonl: No such file", H.err(weft.read_jsonl, "/no/such.jsonl"))
    assert.matches("path must be a string", H.err(weft.read_jsonl))
  end)
end)
