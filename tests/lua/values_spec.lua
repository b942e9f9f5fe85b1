-- What crosses between states: as arguments, results, channel items and upvalues.
local describe, it, assert, before_each, after_each = describe, it, assert, before_each, after_each
local _ENV = _G -- functions sent to threads must see the real globals, not busted's env

local weft = require "weft"
local H = require "helpers"

-- Every way a value can travel; each returns the value after a round trip.
local function via_argument(v)
  return weft.spawn(function(x) return x end, v):join(10)
end

local function via_upvalue(v)
  return weft.spawn(function() return v end):join(10)
end

local function via_channel(v)
  -- main -> channel -> thread -> channel -> main
  local into, out = weft.channel(), weft.channel()
  assert(into:push(v))
  local h = weft.spawn(function(i, o)
    local x = i:pop(10)
    o:push(x)
    return true
  end, into, out)
  local got, why = out:pop(10)
  assert.is_true(h:join(10))
  assert.is_nil(why)
  return got
end

local function via_local_channel(v)
  local ch = weft.channel()
  assert(ch:push(v))
  return (ch:pop(1))
end

local routes = {
  argument = via_argument,
  upvalue = via_upvalue,
  channel = via_channel,
  ["local channel"] = via_local_channel,
}

local function each_route(f)
  for name, route in pairs(routes) do f(name, route) end
end

describe("values crossing", function()
  it("nil crosses as an argument and as an upvalue", function()
    local r = H.pack(via_argument(nil))
    assert.are.equal(1, r.n)
    assert.is_nil(r[1])
    assert.is_nil(via_upvalue(nil))
  end)

  it("booleans cross every route", function()
    each_route(function(name, route)
      assert.are.equal(true, route(true), name)
      assert.are.equal(false, route(false), name)
    end)
  end)

  it("numbers cross every route", function()
    each_route(function(name, route)
      for _, n in ipairs({ 0, 1, -1, 1.5, -2.25, 1e300, 2 ^ 53, 1 / 3, math.huge, -math.huge }) do
        assert.are.equal(n, route(n), name .. " " .. tostring(n))
      end
      local nan = route(0 / 0)
      assert.is_true(nan ~= nan, name .. ": NaN stays NaN")
      if not H.puc51 then -- 5.1 folds -0.0 into the constant 0 in this function
        assert.are.equal(-math.huge, 1 / route(-0.0), name .. ": negative zero keeps its sign")
      end
    end)
  end)

  if H.lua54 then
    it("keeps integers and floats apart on Lua 5.4 (every route)", function()
      each_route(function(name, route)
        local i, f = route(3), route(3.0)
        assert.are.equal("integer", math.type(i), name)
        assert.are.equal("float", math.type(f), name)
        assert.are.equal(3, i)
        assert.are.equal(3.0, f)
        local t = route({ 3, 3.0, k = 7, f = 7.0 })
        assert.are.equal("integer", math.type(t[1]), name)
        assert.are.equal("float", math.type(t[2]), name)
        assert.are.equal("integer", math.type(t.k), name)
        assert.are.equal("float", math.type(t.f), name)
      end)
    end)

    it("sees the integer/float distinction inside the thread on Lua 5.4", function()
      local a, b = weft.spawn(function(x, y) return math.type(x), math.type(y) end, 3, 3.0):join(10)
      assert.are.equal("integer", a)
      assert.are.equal("float", b)
    end)

    it("keeps large integers exact on Lua 5.4 (every route)", function()
      local big = math.tointeger(2 ^ 53) + 1
      each_route(function(name, route)
        for _, n in ipairs({ big, -big, math.maxinteger, math.mininteger }) do
          local got = route(n)
          assert.are.equal("integer", math.type(got), name)
          assert.is_true(got == n, name .. ": " .. tostring(n) .. " came back as " .. tostring(got))
        end
      end)
      -- arithmetic in the thread on the exact value
      local r = weft.spawn(function(x) return x + 1 end, big):join(10)
      assert.are.equal("integer", math.type(r))
      assert.is_true(r == big + 1)
    end)
  end

  it("strings with embedded zeros and non-UTF-8 bytes cross unchanged", function()
    local bytes = {}
    for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
    local all = table.concat(bytes)
    local samples = { "", "a\0b\0c", "\0", "\255\254\0\128\192", all, all:reverse(),
                      string.rep("x\0y", 100000) }
    each_route(function(name, route)
      for i, s in ipairs(samples) do
        local got = route(s)
        assert.are.equal("string", type(got))
        assert.are.equal(#s, #got, name .. " sample " .. i)
        assert.is_true(got == s, name .. " sample " .. i)
      end
    end)
    local len, b0, b255 = weft.spawn(function(x) return #x, x:byte(1), x:byte(256) end, all):join(10)
    assert.are.same({ 256, 0, 255 }, { len, b0, b255 })
  end)

  it("nested tables are deep-copied", function()
    local t = { a = { b = { c = { d = "deep" } } }, list = { 1, 2, { 3, 4, { 5 } } },
                mixed = { 10, 20, name = "m", [99] = "sparse" }, empty = {} }
    each_route(function(name, route)
      local got = route(t)
      assert.are.same(t, got, name)
      assert.are_not.equal(t, got)
    end)
  end)

  it("a copy is independent: changes in the thread do not affect the caller", function()
    local t = { n = 1, sub = { m = 1 } }
    local n, m = weft.spawn(function(x)
      x.n = 2; x.sub.m = 2
      return x.n, x.sub.m
    end, t):join(10)
    assert.are.same({ 2, 2 }, { n, m })
    assert.are.equal(1, t.n)
    assert.are.equal(1, t.sub.m)
    local u = weft.spawn(function() t.n = 3; return t.n end):join(10)
    assert.are.equal(3, u)
    assert.are.equal(1, t.n)
  end)

  it("tables with cycles keep them (t.self == t)", function()
    local t = { name = "root" }
    t.self = t
    t.child = { parent = t }
    t.child.child = t.child
    each_route(function(name, route)
      local got = route(t)
      assert.are.equal("root", got.name, name)
      assert.are.equal(got, got.self, name)
      assert.are.equal(got, got.child.parent, name)
      assert.are.equal(got.child, got.child.child, name)
    end)
    local inside = weft.spawn(function(x)
      return x.self == x and x.child.parent == x and x.child.child == x.child
    end, t):join(10)
    assert.is_true(inside)
  end)

  it("shared sub-tables stay shared", function()
    local sub = { v = 1 }
    local pair = { a = { s = sub }, b = { s = sub }, list = { sub, sub } }
    each_route(function(name, route)
      local got = route(pair)
      assert.are.equal(got.a.s, got.b.s, name)
      assert.are.equal(got.list[1], got.list[2], name)
      assert.are.equal(got.a.s, got.list[1], name)
      assert.are.equal(1, got.a.s.v)
    end)
    -- across two arguments of the same call
    local a, b = { s = sub }, { s = sub }
    local same, x, y = weft.spawn(function(p, q)
      p.s.v = 5 -- the one shared table changes for both
      return p.s == q.s, p, q
    end, a, b):join(10)
    assert.is_true(same)
    assert.are.equal(x.s, y.s)
    assert.are.equal(5, y.s.v)
    -- across two results
    local r1, r2 = weft.spawn(function()
      local s = {}
      return { s = s }, { s = s }
    end):join(10)
    assert.are.equal(r1.s, r2.s)
  end)

  it("tables with non-string keys keep their keys", function()
    local tk = { key = "table" }
    local t = { [1.5] = "float", [true] = "yes", [false] = "no", [-3] = "negative",
                [0] = "zero", [100] = "sparse", [tk] = "by table", [1] = "one", [2] = "two" }
    each_route(function(name, route)
      local got = route(t)
      assert.are.equal("float", got[1.5], name)
      assert.are.equal("yes", got[true], name)
      assert.are.equal("no", got[false], name)
      assert.are.equal("negative", got[-3], name)
      assert.are.equal("zero", got[0], name)
      assert.are.equal("sparse", got[100], name)
      assert.are.equal("one", got[1], name)
      assert.are.equal("two", got[2], name)
      local found, count = nil, 0
      for k, v in pairs(got) do
        count = count + 1
        if type(k) == "table" then found = { k = k, v = v } end
      end
      assert.are.equal(9, count, name)
      assert.is_not_nil(found, name .. ": the table key is kept")
      assert.are.same({ key = "table" }, found.k)
      assert.are.equal("by table", found.v)
    end)
  end)

  it("tables mixing a sequence with other keys keep every key, whatever the order", function()
    local function count(t)
      local n = 0
      for _ in pairs(t) do n = n + 1 end
      return n
    end
    local samples = {}
    -- sequence keys set explicitly (they may live in the hash part, in any order)
    for i = 1, 40 do
      samples[#samples + 1] = { ["k" .. i] = i, [1] = "one", [2] = "two" }
    end
    local t = {}
    t.c = 3; t[1] = "x"; t.a = 1; t.b = 2
    samples[#samples + 1] = t
    samples[#samples + 1] = { a = 1, b = 2, c = 3, [1] = "x" }
    samples[#samples + 1] = { [0] = "zero", [1] = "one" }
    samples[#samples + 1] = { [0] = "zero", "one", "two", name = "n" }
    samples[#samples + 1] = { [2] = "two", [1] = "one", [3] = "three", x = true }
    samples[#samples + 1] = { 1.5, [1.5] = "f", [true] = "t", [-1] = "neg" }
    each_route(function(name, route)
      for i, sample in ipairs(samples) do
        local got = route(sample)
        assert.are.equal(count(sample), count(got), name .. ": sample " .. i .. " lost keys")
        assert.are.same(sample, got, name .. ": sample " .. i)
      end
    end)
  end)

  it("numeric arrays of any length cross exactly, special values included", function()
    for _, n in ipairs({ 1, 2, 15, 16, 17, 100, 1000, 20000 }) do
      local t = {}
      for i = 1, n do t[i] = (i % 5 == 0) and -i / 3 or i * 0.5 end
      t[n] = -0.0
      if n > 3 then t[2] = math.huge; t[3] = -math.huge end
      each_route(function(name, route)
        local got = route(t)
        assert.are.equal(n, #got, name .. ": length " .. n)
        for i = 1, n do
          if got[i] ~= t[i] then
            error(name .. ": n = " .. n .. ", item " .. i .. " is " .. tostring(got[i])
              .. ", expected " .. tostring(t[i]))
          end
        end
        if not H.puc51 then -- 5.1 folds -0.0 into the constant 0 in this function
          assert.are.equal(-math.huge, 1 / got[n], name .. ": -0.0 keeps its sign")
        end
      end)
    end
  end)

  it("numeric arrays with NaN, non-numbers and extra keys keep everything", function()
    local t = {}
    for i = 1, 300 do t[i] = i end
    t[7] = 0 / 0
    t[50] = "a string among numbers"
    t[51] = { nested = true }
    t[200] = false
    t.name = "extra"
    each_route(function(name, route)
      local got = route(t)
      assert.are.equal(300, #got, name)
      assert.is_true(got[7] ~= got[7], name .. ": NaN")
      assert.are.equal("a string among numbers", got[50], name)
      assert.are.same({ nested = true }, got[51], name)
      assert.are.equal(false, got[200], name)
      assert.are.equal("extra", got.name, name)
      for i = 1, 300 do
        if i ~= 7 and i ~= 50 and i ~= 51 and i ~= 200 and got[i] ~= i then
          error(name .. ": item " .. i .. " is " .. tostring(got[i]))
        end
      end
    end)
  end)

  if H.lua54 then
    it("arrays mixing integers and floats keep each number's subtype (Lua 5.4)", function()
      local t = {}
      for i = 1, 100 do t[i] = (i % 2 == 0) and i or i + 0.0 end
      each_route(function(name, route)
        local got = route(t)
        for i = 1, 100 do
          local want = (i % 2 == 0) and "integer" or "float"
          assert.are.equal(want, math.type(got[i]), name .. " item " .. i)
        end
      end)
    end)
  end

  it("a table used both as a key and as a value is one table after crossing", function()
    local k = { id = 1 }
    local got = via_argument({ [k] = "v", also = k })
    assert.are.equal("v", got[got.also])
  end)

  it("a large array crosses intact", function()
    local t = H.iota(100000)
    local n, s = weft.spawn(function(x)
      local s = 0
      for i = 1, #x do s = s + x[i] end
      return #x, s
    end, t):join(20)
    assert.are.equal(100000, n)
    assert.are.equal(100000 * 100001 / 2, s)
    assert.are.same(t, via_local_channel(t))
  end)
end)

describe("functions crossing", function()
  it("a function argument is called in the thread", function()
    local r = weft.spawn(function(f, x) return f(x) end, function(x) return x * 3 end, 14):join(10)
    assert.are.equal(42, r)
  end)

  it("functions inside tables cross", function()
    local ops = { add = function(a, b) return a + b end, mul = function(a, b) return a * b end }
    local a, m = weft.spawn(function(o) return o.add(2, 3), o.mul(2, 3) end, ops):join(10)
    assert.are.same({ 5, 6 }, { a, m })
  end)

  it("a local function helper travels as an upvalue", function()
    local function helper(x) return x * 2 + 1 end
    assert.are.equal(21, weft.spawn(function(x) return helper(x) end, 10):join(10))
  end)

  it("a recursive local function travels as an upvalue", function()
    local function fact(n)
      if n <= 1 then return 1 end
      return n * fact(n - 1)
    end
    assert.are.equal(3628800, weft.spawn(function(n) return fact(n) end, 10):join(10))
    -- and as an argument, called directly
    assert.are.equal(120, weft.spawn(function(f) return f(5) end, fact):join(10))
  end)

  it("helpers of helpers travel too", function()
    local function square(x) return x * x end
    local function sum_squares(t)
      local s = 0
      for i = 1, #t do s = s + square(t[i]) end
      return s
    end
    local suffix = "!"
    local function report(t) return tostring(sum_squares(t)) .. suffix end
    assert.are.equal("14!", weft.spawn(function() return report({ 1, 2, 3 }) end):join(10))
  end)

  it("a C function from a module travels as an upvalue (local sqrt = math.sqrt)", function()
    local sqrt = math.sqrt
    local floor = math.floor
    local upper = string.upper
    local a, b, c = weft.spawn(function() return sqrt(144), floor(2.7), upper("abc") end):join(10)
    assert.are.same({ 12, 2, "ABC" }, { a, b, c })
  end)

  it("a C function also reachable under a name the receiver lacks still crosses", function()
    -- Compat shims alias functions (e.g. table.unpack = unpack on LuaJIT); the receiving
    -- state has only the original name, so sending must not pick an alias it cannot
    -- resolve. Run in a fresh interpreter so the aliases exist before weft first looks.
    local rc, out = H.run_script([[
for i = 1, 100 do string["weft_test_alias" .. i] = string.upper end
local weft = require "weft"
local up = string.upper
local ok, r = pcall(function() return weft.spawn(function() return up("x") end):join(10) end)
local ok2, r2 = pcall(function()
  return weft.spawn(function(f) return f("y") end, string.upper):join(10)
end)
print("upvalue:", ok, r)
print("argument:", ok2, r2)
]], 20)
    assert.are.equal(0, rc, out)
    assert.is_truthy(out:find("upvalue:\ttrue\tX", 1, false), out)
    assert.is_truthy(out:find("argument:\ttrue\tY", 1, false), out)
  end)

  it("module tables travel as upvalues (local str = string, local m = math)", function()
    local str, m, tbl = string, math, table
    local a, b, c, same = weft.spawn(function()
      return str.rep("ab", 3), m.max(3, 9, 4), tbl.concat({ 1, 2 }, ","),
        str == string and m == math and tbl == table
    end):join(10)
    assert.are.same({ "ababab", 9, "1,2", true }, { a, b, c, same })
  end)

  it("module tables cross as values and resolve to the receiver's module", function()
    local is_string, up, back = weft.spawn(function(s)
      return s == string, s.upper("x"), s
    end, string):join(10)
    assert.is_true(is_string)
    assert.are.equal("X", up)
    assert.are.equal(string, back)
  end)

  it("global C functions cross as values (print, tostring)", function()
    local is_print, is_tostring, s, back = weft.spawn(function(p, ts)
      return p == print, ts == tostring, ts(12), ts
    end, print, tostring):join(10)
    assert.is_true(is_print)
    assert.is_true(is_tostring)
    assert.are.equal("12", s)
    assert.are.equal(tostring, back)
  end)

  it("a function returned from a thread can be called by the caller", function()
    local f = weft.spawn(function()
      local k = 10
      local function helper(x) return x + k end
      return function(x) return helper(x) * 2 end
    end):join(10)
    assert.are.equal("function", type(f))
    assert.are.equal(22, f(1))
  end)

  local function make(k) return function() return k end end

  it("two closures of the same code returned by one thread keep their own upvalues", function()
    local f1, f2 = weft.spawn(function(mk) return mk(1), mk(2) end, make):join(10)
    assert.are.same({ 1, 2 }, { f1(), f2() })
  end)

  it("closures of the same code returned by two threads keep their own upvalues", function()
    local g1 = weft.spawn(function(mk) return mk("one") end, make):join(10)
    local g2 = weft.spawn(function(mk) return mk("two") end, make):join(10)
    assert.are.equal("two", g2())
    assert.are.equal("one", g1())
  end)

  it("closures of the same code popped from a channel keep their own upvalues", function()
    local ch = weft.channel()
    ch:push(make("a"))
    ch:push(make("b"))
    local c1, c2 = ch:pop(1), ch:pop(1)
    assert.are_not.equal(c1, c2)
    assert.are.equal("b", c2())
    assert.are.equal("a", c1())
  end)

  it("a function received twice keeps the first copy's upvalues", function()
    local counter = { n = 0 }
    local function bump() counter.n = counter.n + 1; return counter.n end
    local ch = weft.channel()
    ch:push(bump)
    ch:push(bump)
    local b1 = ch:pop(1)
    assert.are.same({ 1, 2 }, { b1(), b1() })
    local b2 = ch:pop(1)
    assert.are.equal(1, b2())
    assert.are.equal(3, b1(), "the first copy's state is its own")
  end)

  it("upvalues shared by two functions stay shared", function()
    local shared = { v = 0 }
    local function inc() shared.v = shared.v + 1 end
    local function get() return shared.v end
    local r = weft.spawn(function() inc(); inc(); return get() end):join(10)
    assert.are.equal(2, r)
    assert.are.equal(0, shared.v)
  end)
end)

describe("handles crossing", function()
  it("a channel passed to a thread is the same channel", function()
    local ch = weft.channel()
    local same, back = weft.spawn(function(c, d)
      c:push("from thread")
      return c == d, c
    end, ch, ch):join(10)
    assert.is_true(same)
    assert.is_true(back == ch)
    assert.are.equal("from thread", ch:pop(1))
    assert.is_true(via_upvalue(ch) == ch)
    assert.is_false(weft.channel() == ch)
  end)

  it("channels inside tables and channels through channels are the same channel", function()
    local a, b = weft.channel(), weft.channel()
    local carrier = weft.channel()
    carrier:push({ a = a, list = { b } })
    local h = weft.spawn(function(c)
      local msg = c:pop(10)
      msg.a:push("to a")
      msg.list[1]:push("to b")
      return true
    end, carrier)
    assert.is_true(h:join(10))
    assert.are.equal("to a", a:pop(1))
    assert.are.equal("to b", b:pop(1))
  end)

  it("a thread handle passed to another thread can be joined there", function()
    local gate = weft.channel()
    local worker = weft.spawn(function(g) return g:pop(10) * 2 end, gate)
    local waiter = weft.spawn(function(w) return w:join(10), w:status() end, worker)
    gate:push(21)
    local r, st = waiter:join(10)
    assert.are.equal(42, r)
    assert.are.equal("done", st)
    assert.is_true(via_argument(worker) == worker)
  end)

  it("a pool passed to a thread can be used there", function()
    local pool = weft.pool { size = 2 }
    local r, size, same = weft.spawn(function(p, q)
      return p:submit(function(x) return x + 1 end, 41):join(10), p:size(), p == q
    end, pool, pool):join(10)
    assert.are.same({ 42, 2, true }, { r, size, same })
    assert.is_true(via_argument(pool) == pool)
    pool:close()
  end)

  it("io.stdout crosses by name and is usable", function()
    local kind, same, flushed, back = weft.spawn(function(f)
      return io.type(f), f == io.stdout, f:flush() == f or f:flush() == true, f
    end, io.stdout):join(10)
    assert.are.equal("file", kind)
    assert.is_true(same)
    assert.is_true(flushed)
    assert.are.equal(io.stdout, back)
    local out = io.stdout
    assert.are.equal("file", weft.spawn(function() return io.type(out) end):join(10))
  end)
end)
