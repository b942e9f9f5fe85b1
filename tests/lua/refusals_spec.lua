-- Values weft refuses to send, and the error that names them.
local describe, it, assert, before_each, after_each = describe, it, assert, before_each, after_each
local _ENV = _G -- functions sent to threads must see the real globals, not busted's env

local weft = require "weft"
local H = require "helpers"

local function noop() end

local function plain(s) return s end

-- The error raised by f(...), which must fail with a string.
local function refusal(f, ...)
  local ok, e = pcall(f, ...)
  assert.is_false(ok, "expected an error")
  assert.are.equal("string", type(e))
  return e
end

local function has(e, needle)
  assert.is_truthy(e:find(needle, 1, true), "expected '" .. needle .. "' in: " .. e)
end

local function nested(depth)
  local root = {}
  local t = root
  for _ = 2, depth do
    t.next = {}
    t = t.next
  end
  return root
end

describe("refused values", function()
  it("a coroutine, naming the argument and the path", function()
    local co = coroutine.create(noop)
    local e = refusal(weft.spawn, noop, { config = { handler = co } })
    has(e, "weft: cannot send argument 2 .config.handler (a coroutine)")
  end)

  it("a coroutine as a direct argument", function()
    local e = refusal(weft.spawn, noop, coroutine.create(noop))
    has(e, "weft: cannot send argument 2 (a coroutine)")
  end)

  it("uses [i] segments for array positions", function()
    local e = refusal(weft.spawn, noop, { 1, 2, { x = coroutine.create(noop) } })
    has(e, "weft: cannot send argument 2 [3].x (a coroutine)")
    e = refusal(weft.spawn, noop, "a", "b", { list = { 10, 20, 30, coroutine.create(noop) } })
    has(e, "weft: cannot send argument 4 .list[4] (a coroutine)")
  end)

  it("a table with a metatable", function()
    local e = refusal(weft.spawn, noop, { obj = setmetatable({}, { __index = {} }) })
    has(e, "weft: cannot send argument 2 .obj")
    has(e, "metatable")
    e = refusal(weft.spawn, noop, setmetatable({}, {}))
    has(e, "weft: cannot send argument 2 (")
    has(e, "metatable")
  end)

  if H.jit then
    it("a LuaJIT cdata", function()
      local ffi = require "ffi"
      local e = refusal(weft.spawn, noop, { buf = ffi.new("int[3]") })
      has(e, "weft: cannot send argument 2 .buf (")
      has(e, "cdata")
      e = refusal(weft.spawn, noop, ffi.new("int[3]"))
      has(e, "weft: cannot send argument 2 (")
      has(e, "cdata")
      local box = ffi.new("int[3]")
      e = refusal(weft.spawn, function() return box end)
      has(e, "weft: cannot send argument 1 upvalue 'box' (")
      has(e, "cdata")
    end)
  end

  it("an anonymous C function", function()
    local iter = string.gmatch("a b", "%a")
    assert.are.equal("function", type(iter))
    local e = refusal(weft.spawn, noop, { each = iter })
    has(e, "weft: cannot send argument 2 .each (a C function not found in package.loaded)")
  end)

  it("a userdata that is neither a weft handle nor in package.loaded", function()
    local f = io.tmpfile()
    local ok, e = pcall(weft.spawn, noop, { file = f })
    f:close()
    assert.is_false(ok)
    assert.are.equal("string", type(e))
    has(e, "weft: cannot send argument 2 .file (")
    has(e, "not a weft handle")
    if H.lua54 then has(e, "FILE*") end
  end)

  it("a closed file handle too", function()
    local f = io.tmpfile()
    f:close()
    local e = refusal(weft.spawn, noop, f)
    has(e, "not a weft handle")
  end)

  it("nesting deeper than 3000 levels, while 150 levels cross", function()
    local e = refusal(weft.spawn, noop, nested(3001))
    has(e, "weft: cannot send argument 2")
    has(e, "nested more than 3000 levels deep")
    local depth = weft.spawn(function(t)
      local n = 0
      while t do n = n + 1; t = t.next end
      return n
    end, nested(150)):join(10)
    assert.are.equal(150, depth)
  end)

  it("a refused value inside an upvalue names the upvalue", function()
    local x = coroutine.create(noop)
    local e = refusal(weft.spawn, function() return x end)
    has(e, "weft: cannot send argument 1 upvalue 'x' (a coroutine)")
    local conf = { handler = coroutine.create(noop) }
    e = refusal(weft.spawn, function() return conf end)
    has(e, "weft: cannot send argument 1 upvalue 'conf'.handler (a coroutine)")
  end)

  it("a refused value in a helper's upvalue names the whole chain", function()
    local co = coroutine.create(noop)
    local function helper() return co end
    local e = refusal(weft.spawn, function() return helper() end)
    has(e, "upvalue 'helper'")
    has(e, "upvalue 'co'")
    has(e, "(a coroutine)")
  end)

  it("a refused channel item names 'value 1'", function()
    local ch = weft.channel()
    local e = refusal(ch.push, ch, coroutine.create(noop))
    has(e, "weft: cannot send value 1 (a coroutine)")
    e = refusal(ch.push, ch, { a = { setmetatable({}, {}) } })
    has(e, "weft: cannot send value 1 .a[1] (")
    has(e, "metatable")
    e = refusal(ch.push, ch, { fn = string.gmatch("x", "x") })
    has(e, "weft: cannot send value 1 .fn (a C function not found in package.loaded)")
    assert.are.equal(0, #ch, "nothing was pushed")
  end)

  it("a refused result fails the thread with 'cannot send result 1'", function()
    local h = weft.spawn(function() return coroutine.create(function() end) end)
    local e = refusal(h.join, h, 10)
    has(e, "cannot send result 1")
    has(e, "a coroutine")
    assert.are.equal("failed", (h:status()))
    local h2 = weft.spawn(function() return 1, { f = io.tmpfile() } end)
    e = refusal(h2.join, h2, 10)
    has(e, "cannot send result 2 .f (")
    has(e, "not a weft handle")
  end)

  it("a refused pool argument names its position", function()
    local pool = weft.pool { size = 1 }
    local e = refusal(pool.submit, pool, noop, 1, coroutine.create(noop))
    has(e, "weft: cannot send argument 3 (a coroutine)")
    local f = pool:submit(function() return coroutine.create(function() end) end)
    e = refusal(f.join, f, 10)
    has(e, "cannot send result 1")
    pool:close()
  end)

  it("leaves weft usable after a refusal", function()
    for _ = 1, 5 do
      refusal(weft.spawn, noop, coroutine.create(noop))
    end
    assert.are.equal("fine", weft.spawn(plain, "fine"):join(10))
  end)
end)
