-- Hardening (issue 13): environments of sent functions, polling loops that must stay
-- cancellable, handle cycles, and error messages that name the real problem.
local describe, it, assert = describe, it, assert
local _ENV = _G -- functions sent to threads must see the real globals, not busted's env

local weft = require "weft"
local H = require "helpers"

local spawn_ready = H.spawn_ready

local function assert_cancelled(h)
  assert.is_true(h:wait(60), "the cancelled thread finished")
  local ok, e = pcall(h.join, h)
  assert.is_false(ok, "the loop ran to its bound instead of being cancelled: " .. tostring(e))
  assert.are.equal("cancelled", (h:status()))
  assert.is_truthy(tostring(e):find("cancelled", 1, true), tostring(e))
end

describe("a polling loop", function()
  -- The loops are bounded by an iteration count, not a clock: a clock read is a C call,
  -- which would let LuaJIT leave its compiled trace and run the cancellation hook, and
  -- the point is a loop that never does. A loop that is not cancelled ends at its bound
  -- and the task returns normally, which fails the assertion (no hang).
  for _, timeout in ipairs({ 0, -1, 1e-9 }) do
    it("of ch:pop(" .. timeout .. ") is cancelled", function()
      local h = spawn_ready(function(ready, ch, t)
        ready:push("ready")
        for _ = 1, 3e7 do ch:pop(t) end
        return "ran to the bound"
      end, weft.channel(), timeout)
      H.sleep(0.05)
      h:cancel()
      assert_cancelled(h)
    end)

    it("of ch:pop(" .. timeout .. ") is cancelled with weft.interruptible(false)", function()
      local h = spawn_ready(function(ready, ch, t)
        local w = require "weft"
        w.interruptible(false)
        ready:push("ready")
        for _ = 1, 3e7 do ch:pop(t) end
        return "ran to the bound"
      end, weft.channel(), timeout)
      H.sleep(0.05)
      h:cancel()
      assert_cancelled(h)
    end)
  end

  it("of ch:push(v, 0) on a full channel is cancelled, numbers and tables alike", function()
    for _, v in ipairs({ 1.5, { 1 } }) do
      local full = weft.channel(1)
      full:push("filler")
      local h = spawn_ready(function(ready, ch, item)
        local w = require "weft"
        w.interruptible(false)
        ready:push("ready")
        for _ = 1, 1e7 do ch:push(item, 0) end
        return "ran to the bound"
      end, full, v)
      H.sleep(0.05)
      h:cancel()
      assert_cancelled(h)
      assert.are.equal(1, #full, "nothing was pushed")
    end
  end)
end)

describe("a sent function's environment", function()
  if setfenv then
    it("crosses as a copy when it is a plain table (setfenv, LuaJIT/5.1)", function()
      local f = loadstring("y = (y or 0) + 1 return x, y, print == nil")
      setfenv(f, { x = 41 })
      -- the environment is copied: the worker's writes do not reach the sender's table
      assert.are.same({ 41, 1, true }, { weft.spawn(f):join() })
      assert.are.same({ 41, 1, true }, { weft.spawn(f):join() })
      local p = weft.pool({ size = 1 })
      assert.are.same({ 41, 41 }, p:map(f, { 1, 2 }))
      -- a task function without an environment that follows gets the worker's globals
      local g = function() return type(print), x end
      assert.are.same({ "function" }, { p:submit(g):join() })
      p:close()
    end)

    it("is the receiver's globals when it is the sender's globals", function()
      local f = loadstring("return type(print), type(string.format)")
      setfenv(f, _G)
      assert.are.same({ "function", "function" }, { weft.spawn(f):join() })
    end)

    it("is refused, with its path, when it has a metatable and fields of its own", function()
      local f = loadstring("return x")
      setfenv(f, setmetatable({ x = 1 }, { __index = _G }))
      local e = H.err(weft.spawn, function() return f() end)
      assert.is_truthy(e:find("weft: cannot send argument 1 upvalue 'f' environment (", 1, true), e)
      assert.is_truthy(e:find("metatable", 1, true), e)
    end)
  else
    it("crosses as a copy: _ENV of load(src, name, 't', env) (Lua 5.4)", function()
      local f = load("y = (y or 0) + 1 return x, y, print == nil", "=f", "t", { x = 41 })
      assert.are.same({ 41, 1, true }, { weft.spawn(f):join() })
      assert.are.same({ 41, 1, true }, { weft.spawn(f):join() })
      local e = H.err(weft.spawn, load("return x", "=g", "t", setmetatable({}, {})))
      assert.is_truthy(e:find("weft: cannot send argument 1 upvalue '_ENV' (", 1, true), e)
    end)
  end
end)

describe("errors name the real problem", function()
  it("weft.freeze of a table with a metatable says so, with the path", function()
    local e = H.err(weft.freeze, setmetatable({}, {}))
    assert.is_truthy(e:find("weft.freeze: cannot freeze (a table with a metatable, which can be neither sent nor frozen", 1, true), e)
    assert.is_falsy(e:find("weft.freeze it", 1, true), e)
    e = H.err(weft.freeze, { a = { b = setmetatable({}, {}) } })
    assert.is_truthy(e:find("weft.freeze: cannot freeze .a.b (a table with a metatable", 1, true), e)
  end)

  it("counts beyond 2^53 are refused with the real limit", function()
    local p = weft.pool({ size = 1 })
    local e = H.err(p.range, p, 2 ^ 62, function() end)
    assert.is_truthy(e:find("range: n must be an integer in 1..2^53, got 4.6116860184274e+18", 1, true), e)
    e = H.err(p.range, p, 10, function() end, { chunk = 1e18 })
    assert.is_truthy(e:find("chunk must be an integer in 1..2^53, got 1e+18", 1, true), e)
    e = H.err(p.range, p, 1.5, function() end)
    assert.is_truthy(e:find("range: n must be an integer in 1..2^53, got 1.5", 1, true), e)
    e = H.err(weft.pool, { size = 2 ^ 60 })
    assert.is_truthy(e:find("weft.pool: size must be an integer in 1..1024, got 1.1529215046068e+18", 1, true), e)
    -- 2^53 itself is accepted as a chunk size
    assert.are.same({ 3 }, p:range(3, function(a, b) return b - a + 1 end, { chunk = 2 ^ 53 }))
    p:close()
  end)

  it("a channel method called with '.' or a pool given a number says what is wrong", function()
    local ch = weft.channel()
    for _, v in ipairs({ 1, "s", {} }) do
      local e = H.err(ch.push, {}, v)
      assert.is_truthy(e:find("channel:push: call with ':' (got a table as the channel)", 1, true), e)
      assert.is_falsy(e:find("weft.lua", 1, true), e)
      assert.is_falsy(e:find("userdata", 1, true), e)
    end
    local e = H.err(function()
      local v = ch.pop(5) -- not a tail call: the error is positioned at this line
      return v
    end)
    assert.is_truthy(e:find("hardening_spec.lua:%d+: channel:pop: call with ':' %(got a number as the channel%)"), e)
    e = H.err(function() return weft.pool(3) end)
    assert.is_truthy(e:find("weft.pool: expected an options table {size = n, init = f}, got number", 1, true), e)
    assert.is_falsy(e:find("converting", 1, true), e)
  end)

  it("weft.spawn of a number says 'got number'", function()
    local e = H.err(weft.spawn, 42)
    assert.is_truthy(e:find("weft.spawn: argument 1 must be a function, got number", 1, true), e)
  end)

  it("a 300-node linked list can be sent and frozen; past the limit the path is short", function()
    local list
    for i = 1, 300 do list = { value = i, next = list } end
    local f = weft.freeze(list)
    local n, node = 0, f
    while node do n = n + 1; node = node.next end
    assert.are.equal(300, n)
    local ch = weft.channel()
    ch:push(list)
    local got = ch:pop(0)
    assert.are.equal(300, got.value)
    assert.are.equal(297, got.next.next.next.value)
    -- sent to a worker and back
    local depth = weft.spawn(function(l)
      local d = 0
      while l do d = d + 1; l = l.next end
      return d
    end, list):join()
    assert.are.equal(300, depth)
    -- 3000 levels are the documented limit, on every thread
    local deep = {}
    for _ = 2, 3000 do deep = { next = deep } end
    assert.is_truthy(ch:push(deep))
    assert.are.equal(3000, weft.spawn(function(c)
      local l, d = c:pop(0), 0
      while l do d = d + 1; l = l.next end
      return d
    end, ch):join())
    deep = { next = deep }
    local e = H.err(ch.push, ch, deep)
    assert.is_truthy(e:find("nested more than 3000 levels deep", 1, true), e)
    assert.is_truthy(e:find("weft: cannot send value 1 .next.next.next.next ... .next.next.next.next (3000 levels) (", 1, true), e)
    assert.is_true(#e < 200, e)
    e = H.err(weft.freeze, deep)
    assert.is_truthy(e:find("weft.freeze: cannot freeze .next.next.next.next ... .next.next.next.next (3000 levels) (nested more than 3000 levels deep)", 1, true), e)
  end)
end)

describe("handles in a cycle", function()
  it("keep what they hold until the cycle is broken (the documented rule)", function()
    -- In a child process: the unbroken cycles are leaked on purpose.
    local rc, out = H.run_script([[
      local weft = require "weft"
      local function settle() collectgarbage() collectgarbage() end
      local function cycle(kind, broken)
        local a = weft.array("f64", 100000) -- 800000 bytes
        if kind == "self" then
          local s = weft.table()
          s.me = s
          s.data = a
          if broken then s.me = nil end
        elseif kind == "pair" then
          local s, t = weft.table(), weft.table()
          s.peer = t
          t.peer = s
          t.data = a
          if broken then t.peer = nil end
        else
          local ch, s = weft.channel(), weft.table()
          s.ch = ch
          s.data = a
          ch:push(s)
          if broken then ch:pop(0) end
        end
      end
      settle()
      local base = weft.memory()
      for _, kind in ipairs({ "self", "pair", "channel" }) do
        cycle(kind, true)
        settle()
        io.write(kind, " broken ", string.format("%d", weft.memory() - base), "\n")
        cycle(kind, false)
        settle()
        io.write(kind, " kept ", string.format("%d", weft.memory() - base), "\n")
        base = weft.memory()
      end
    ]])
    assert.are.equal(0, rc, out)
    assert.are.equal(table.concat({
      "self broken 0", "self kept 800000",
      "pair broken 0", "pair kept 800000",
      "channel broken 0", "channel kept 800000", "",
    }, "\n"), out)
  end)
end)
