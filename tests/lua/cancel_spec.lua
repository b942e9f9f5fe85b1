-- Cancellation: blocking weft calls, weft.check(), the instruction-count hook.
local describe, it, assert, before_each, after_each = describe, it, assert, before_each, after_each
local _ENV = _G -- functions sent to threads must see the real globals, not busted's env

local weft = require "weft"
local H = require "helpers"

local spawn_ready = H.spawn_ready

local function assert_cancelled(h)
  assert.is_true(h:wait(10), "the cancelled thread finished")
  assert.are.equal("cancelled", (h:status()))
  local ok, e = pcall(h.join, h, 10)
  assert.is_false(ok)
  assert.are.equal("string", type(e))
  assert.is_truthy(e:find("cancelled", 1, true), e)
  -- and again
  ok, e = pcall(h.join, h)
  assert.is_false(ok)
  assert.is_truthy(tostring(e):find("cancelled", 1, true), tostring(e))
end

describe("cancel", function()
  it("interrupts a thread blocked in ch:pop()", function()
    local ch = weft.channel()
    local h = spawn_ready(function(ready, c)
      ready:push("ready")
      return c:pop() -- no timeout: only cancellation ends this
    end, ch)
    assert.is_false(h:wait(0.05))
    h:cancel()
    assert_cancelled(h)
  end)

  it("interrupts a thread blocked in ch:push() on a full channel", function()
    local ch = weft.channel(1)
    ch:push("filler")
    local h = spawn_ready(function(ready, c)
      ready:push("ready")
      return c:push("never fits")
    end, ch)
    assert.is_false(h:wait(0.05))
    h:cancel()
    assert_cancelled(h)
    assert.are.equal(1, #ch)
    assert.are.equal("filler", ch:pop(0))
  end)

  it("interrupts a thread blocked in join()", function()
    local gate = weft.channel()
    local slow = weft.spawn(function(g) return g:pop(10) end, gate)
    local waiter = spawn_ready(function(ready, s)
      ready:push("ready")
      return s:join()
    end, slow)
    assert.is_false(waiter:wait(0.05))
    waiter:cancel()
    assert_cancelled(waiter)
    -- cancelling the waiter does not touch the thread it waited for
    assert.are.equal("running", slow:status())
    gate:push("done")
    assert.are.equal("done", slow:join(10))
  end)

  it("weft.check() raises the string 'cancelled' in a cancelled thread", function()
    local out = weft.channel()
    local h = spawn_ready(function(ready, o)
      local w = require "weft"
      w.interruptible(false) -- only weft.check() can stop this loop
      ready:push("ready")
      local deadline = os.clock() + 10
      while os.clock() < deadline do
        local ok, e = pcall(w.check)
        if not ok then
          o:push({ type = type(e), value = e })
          return "caught"
        end
      end
      o:push({ value = "not cancelled" })
      return "deadline"
    end, out)
    H.sleep(0.05)
    h:cancel()
    local got = out:pop(10)
    assert.are.same({ type = "string", value = "cancelled" }, got)
    assert.is_true(h:wait(10))
  end)

  it("weft.check() is a no-op in the main script and in threads never cancelled", function()
    for _ = 1, 100 do
      local ok, e = pcall(weft.check)
      assert.is_true(ok, e)
    end
    local h = weft.spawn(function()
      local w = require "weft"
      for _ = 1, 100000 do w.check() end
      return "fine"
    end)
    assert.are.equal("fine", h:join(10))
  end)

  it("stops a loop that calls weft.check()", function()
    local h = spawn_ready(function(ready)
      local w = require "weft"
      ready:push("ready")
      local deadline = os.clock() + 20 -- a bound, so a failure never leaves it spinning
      local x = 0
      while os.clock() < deadline do
        for i = 1, 1000 do x = x + i end
        w.check()
      end
      return "ran to the deadline"
    end)
    H.sleep(0.05)
    h:cancel()
    assert_cancelled(h)
  end)

  if H.lua54 then
    it("stops `while true do end` through the count hook (Lua 5.4)", function()
      local h = spawn_ready(function(ready)
        ready:push("ready")
        while true do end
      end)
      H.sleep(0.05)
      h:cancel()
      assert_cancelled(h)
    end)

    it("stops a busy loop in a function the thread calls (Lua 5.4)", function()
      local function spin(n)
        local x = 0
        while true do x = (x + n) % 1000003 end
      end
      local h = spawn_ready(function(ready)
        ready:push("ready")
        return spin(7)
      end)
      H.sleep(0.05)
      h:cancel()
      assert_cancelled(h)
    end)
  end

  if H.jit then
    it("stops interpreted code through the count hook (LuaJIT, jit off)", function()
      local h = spawn_ready(function(ready)
        jit.off()
        ready:push("ready")
        local deadline = os.clock() + 20 -- a bound: never spins forever
        local x = 0
        while os.clock() < deadline do x = x + 1 end
        return "ran to the deadline"
      end)
      H.sleep(0.05)
      h:cancel()
      assert_cancelled(h)
    end)

    it("reaches a JIT-compiled loop when its trace returns to the interpreter", function()
      -- LuaJIT runs no hooks inside compiled traces (documented): the hook set by cancel()
      -- fires once the loop's trace exits, before the code after the loop runs.
      local marker = H.tmpname(".out")
      local h = spawn_ready(function(ready, path)
        ready:push("ready")
        local x = 0
        for i = 1, 2e8 do x = x + i % 7 end
        local f = io.open(path, "w")
        f:write("completed ", string.format("%.0f", x))
        f:close()
        return x
      end, marker)
      H.sleep(0.02)
      h:cancel()
      assert_cancelled(h)
      local f = io.open(marker, "r")
      if f then f:close() end
      H.remove(marker)
      assert.is_nil(f, "the code after the loop did not run")
    end)
  end

  it("on a finished thread changes nothing", function()
    local h = weft.spawn(function() return "result" end)
    assert.are.equal("result", h:join(10))
    h:cancel()
    h:cancel()
    assert.are.equal("done", (h:status()))
    assert.are.equal("result", h:join(10))
  end)

  it("twice is harmless", function()
    local h = spawn_ready(function(ready, c)
      ready:push("ready")
      return c:pop()
    end, weft.channel())
    h:cancel()
    h:cancel()
    assert_cancelled(h)
  end)

  it("interrupts a running pool task; the worker keeps working", function()
    local pool = weft.pool { size = 1 }
    local ready = weft.channel()
    local f = pool:submit(function(r)
      r:push("ready")
      return weft.channel():pop() -- blocks until cancelled
    end, ready)
    assert.are.equal("ready", ready:pop(10))
    f:cancel()
    assert_cancelled(f)
    assert.are.equal(9, pool:submit(function(x) return x * x end, 3):join(10))
    pool:close()
  end)

  it("stops a pool task in a weft.check() loop", function()
    local pool = weft.pool { size = 1 }
    local ready = weft.channel()
    local f = pool:submit(function(r)
      local w = require "weft"
      r:push("ready")
      local deadline = os.clock() + 20
      while os.clock() < deadline do w.check() end
      return "deadline"
    end, ready)
    assert.are.equal("ready", ready:pop(10))
    f:cancel()
    assert_cancelled(f)
    pool:close()
  end)
end)
