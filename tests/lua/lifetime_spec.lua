-- Lifetimes: handles collected while threads run; scripts ending with threads running.
local describe, it, assert, before_each, after_each = describe, it, assert, before_each, after_each
local _ENV = _G -- functions sent to threads must see the real globals, not busted's env

local weft = require "weft"
local H = require "helpers"

describe("handles garbage-collected while threads run", function()
  it("thread handles dropped before the threads finish cause no crash", function()
    local gate, results = weft.channel(), weft.channel()
    for i = 1, 20 do
      weft.spawn(function(g, r, k)
        g:pop(10)
        r:push(k)
        return k
      end, gate, results, i) -- the handle is dropped at once
    end
    collectgarbage()
    collectgarbage()
    for _ = 1, 20 do gate:push(true) end
    local got = {}
    for i = 1, 20 do got[i] = results:pop(10) end
    assert.are.same(H.iota(20), H.sorted(got))
    collectgarbage()
    collectgarbage()
    assert.are.equal(42, weft.spawn(function() return 42 end):join(10))
  end)

  it("a channel whose caller handle was collected keeps working in threads", function()
    local results = weft.channel()
    local h
    do
      local ch = weft.channel(4)
      h = weft.spawn(function(c, out)
        local s = 0
        for v in c:iter() do s = s + v end
        out:push(s)
        return s
      end, ch, results)
      local producer = weft.spawn(function(c)
        for i = 1, 100 do c:push(i, 10) end
        c:close()
        return true
      end, ch)
      ch = nil      -- luacheck: ignore (dropping the only caller-side handle)
      producer = nil -- luacheck: ignore
    end
    collectgarbage()
    collectgarbage()
    assert.are.equal(5050, results:pop(10))
    assert.are.equal(5050, h:join(10))
  end)

  it("a pool dropped without close does not crash or hang the collector", function()
    local done = weft.channel()
    do
      local pool = weft.pool { size = 2 }
      for i = 1, 4 do
        pool:submit(function(d, k) d:push(k) end, done, i)
      end
    end
    collectgarbage()
    collectgarbage()
    local got = {}
    for i = 1, 4 do got[i] = done:pop(10) end
    assert.are.same({ 1, 2, 3, 4 }, H.sorted(got))
  end)

  it("futures and pools collected while tasks are blocked cause no crash", function()
    local gate, out = weft.channel(), weft.channel()
    do
      local pool = weft.pool { size = 2 }
      for i = 1, 2 do
        pool:submit(function(g, o, k) g:pop(10); o:push(k) end, gate, out, i)
      end
    end
    collectgarbage()
    collectgarbage()
    gate:push(1); gate:push(2)
    local got = { out:pop(10), out:pop(10) }
    assert.are.same({ 1, 2 }, H.sorted(got))
  end)

  it("many short-lived handles in a loop", function()
    local out = weft.channel()
    for i = 1, 100 do
      local ch = weft.channel()
      weft.spawn(function(c, o, k) c:push(k); o:push(c:pop(1)) end, ch, out, i)
      if i % 10 == 0 then collectgarbage() end
    end
    collectgarbage()
    collectgarbage()
    local s = 0
    for _ = 1, 100 do s = s + out:pop(10) end
    assert.are.equal(5050, s)
  end)
end)

describe("a script that ends while threads are running", function()
  local prelude = [[
local weft = require "weft"
local ch = weft.channel()
local blocked = weft.spawn(function(c) return c:pop() end, ch)      -- blocked forever
local sleeper = weft.spawn(function()
  local w = require "weft"
  local nap = w.channel()
  while true do w.check(); nap:pop(0.01) end                         -- sleeps in a loop
end)
local pool = weft.pool { size = 2 }
pool:submit(function() return weft.channel():pop() end)            -- a stuck pool task
assert(not blocked:wait(0.05) and not sleeper:wait(0))
io.stdout:write("main reached the end\n")
io.stdout:flush()
]]

  local function run(source)
    local rc, out, secs = H.run_script(source, 20)
    assert.are_not.equal(124, rc, "the script hung until the timeout:\n" .. out)
    assert.are_not.equal(137, rc, "the script had to be killed:\n" .. out)
    assert.is_true(secs < 15, "the script took " .. secs .. " s")
    return rc, out
  end

  it("exits with status 0 after a normal end", function()
    local rc, out = run(prelude)
    assert.are.equal(0, rc, out)
    assert.is_truthy(out:find("main reached the end", 1, true), out)
  end)

  it("exits with the script's own status from os.exit(3)", function()
    local rc, out = run(prelude .. "os.exit(3)\n")
    assert.are.equal(3, rc, out)
    assert.is_truthy(out:find("main reached the end", 1, true), out)
  end)

  it("exits with os.exit(0, true) closing the state", function()
    local rc, out = run(prelude .. "os.exit(0, true)\n")
    assert.are.equal(0, rc, out)
  end)

  it("exits non-zero without hanging when the main chunk errors", function()
    local rc, out = run(prelude .. "error('main chunk failed on purpose')\n")
    assert.are_not.equal(0, rc, out)
    assert.is_truthy(out:find("main chunk failed on purpose", 1, true), out)
  end)

  it("exits promptly with threads spinning in busy loops", function()
    local rc, out = run(prelude .. [[
for _ = 1, 2 do
  weft.spawn(function()
    local w = require "weft"
    local x = 0
    while true do x = x + 1; if x % 1000 == 0 then w.check() end end
  end)
end
os.exit(5)
]])
    assert.are.equal(5, rc, out)
  end)

  it("a child script using threads normally exits 0 with its output", function()
    local rc, out = run([[
local weft = require "weft"
local h = weft.spawn(function(a, b) return a + b end, 40, 2)
print("sum", h:join(10))
]])
    assert.are.equal(0, rc, out)
    assert.is_truthy(out:find("sum\t42", 1, true), out)
  end)
end)
