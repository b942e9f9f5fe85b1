-- weft.spawn, thread handles (join/wait/status/cancel basics), worker states.
local describe, it, assert, before_each, after_each = describe, it, assert, before_each, after_each
local _ENV = _G -- functions sent to threads must see the real globals, not busted's env

local weft = require "weft"
local H = require "helpers"

describe("weft module", function()
  it("has a version string", function()
    assert.are.equal("string", type(weft.version))
    assert.is_truthy(weft.version:match("^%d+%.%d+"))
  end)

  it("reports the number of cpus as an integer >= 1", function()
    local n = weft.cpus()
    assert.are.equal("number", type(n))
    assert.is_true(n >= 1)
    assert.are.equal(math.floor(n), n)
    if H.lua54 then assert.are.equal("integer", math.type(n)) end
  end)
end)

describe("weft.spawn", function()
  it("runs a function in a thread and join returns its results", function()
    local h = weft.spawn(function(a, b) return a + b, a * b end, 6, 7)
    local s, p = h:join(10)
    assert.are.equal(13, s)
    assert.are.equal(42, p)
  end)

  it("refuses a non-function first argument", function()
    for _, bad in ipairs({ 42, "print", {}, true }) do
      local e = H.err(weft.spawn, bad)
      assert.is_string(e)
      assert.is_truthy(e:find("argument 1 must be a function", 1, true), e)
    end
    local e = H.err(weft.spawn)
    assert.is_truthy(e and e:find("argument 1 must be a function", 1, true), e)
    e = H.err(weft.spawn, nil, 1)
    assert.is_truthy(e and e:find("argument 1 must be a function", 1, true), e)
  end)

  it("passes every argument, nils in the middle included", function()
    local h = weft.spawn(function(...)
      return select("#", ...), (select(1, ...)), (select(2, ...)), (select(3, ...))
    end, 1, nil, 3)
    local n, a, b, c = h:join(10)
    assert.are.equal(3, n)
    assert.are.equal(1, a)
    assert.is_nil(b)
    assert.are.equal(3, c)
  end)

  it("returns all results, nils in the middle and at the end included", function()
    local r = H.pack(weft.spawn(function() return nil, 2, nil, 4, nil end):join(10))
    assert.are.equal(5, r.n)
    assert.is_nil(r[1]); assert.are.equal(2, r[2]); assert.is_nil(r[3])
    assert.are.equal(4, r[4]); assert.is_nil(r[5])
  end)

  it("returns no values when the function returns none", function()
    local r = H.pack(weft.spawn(function() end):join(10))
    assert.are.equal(0, r.n)
  end)

  it("passes hundreds of arguments and returns thousands of results", function()
    local unpack = table.unpack or unpack
    local args = H.iota(200)
    local n, last = weft.spawn(function(...) return select("#", ...), (select(200, ...)) end,
      unpack(args)):join(10)
    assert.are.same({ 200, 200 }, { n, last })
    local r = H.pack(weft.spawn(function(k)
      local t = {}
      for i = 1, k do t[i] = i end
      return (rawget(table, "unpack") or rawget(_G, "unpack"))(t)
    end, 5000):join(10))
    assert.are.equal(5000, r.n)
    assert.are.equal(1, r[1])
    assert.are.equal(5000, r[5000])
  end)

  it("runs threads in parallel with the caller", function()
    local go, back = weft.channel(), weft.channel()
    local h = weft.spawn(function(i, o)
      local v = i:pop(10)
      o:push(v * 2)
      return "done"
    end, go, back)
    -- the thread is blocked waiting for us: it is running, not finished
    assert.are.equal("running", h:status())
    go:push(21)
    assert.are.equal(42, back:pop(10))
    assert.are.equal("done", h:join(10))
  end)

  it("re-raises a string error with the original message and a traceback", function()
    local h = weft.spawn(function()
      local function inner() error("kaboom-in-thread") end
      inner()
    end)
    local ok, e = pcall(h.join, h, 10)
    assert.is_false(ok)
    assert.are.equal("string", type(e))
    assert.is_truthy(e:find("kaboom-in-thread", 1, true), e)
    assert.is_truthy(e:find("stack traceback", 1, true), e)
  end)

  it("re-raises a table error as a copy of the table", function()
    local h = weft.spawn(function()
      error({ code = 42, msg = "table error", list = { 1, 2, 3 } })
    end)
    local ok, e = pcall(h.join, h, 10)
    assert.is_false(ok)
    assert.are.equal("table", type(e))
    assert.are.same({ code = 42, msg = "table error", list = { 1, 2, 3 } }, e)
  end)

  it("returns nil, 'timeout' when join times out, then the results later", function()
    local gate = weft.channel()
    local h = weft.spawn(function(g) return g:pop(10), "late" end, gate)
    local r = H.pack(h:join(0.05))
    assert.are.equal(2, r.n)
    assert.is_nil(r[1])
    assert.are.equal("timeout", r[2])
    gate:push("open")
    local a, b = h:join(10)
    assert.are.equal("open", a)
    assert.are.equal("late", b)
  end)

  it("join can be called again and returns the same results", function()
    local h = weft.spawn(function() return 1, { x = "y" }, "three" end)
    local a1, b1, c1 = h:join(10)
    local a2, b2, c2 = h:join(10)
    local a3, b3, c3 = h:join()
    assert.are.same({ 1, { x = "y" }, "three" }, { a1, b1, c1 })
    assert.are.same({ a1, b1, c1 }, { a2, b2, c2 })
    assert.are.same({ a1, b1, c1 }, { a3, b3, c3 })
  end)

  it("join of a failed thread raises every time", function()
    local h = weft.spawn(function() error("again and again") end)
    for _ = 1, 3 do
      local e = H.err(h.join, h, 10)
      assert.is_truthy(e and e:find("again and again", 1, true), e)
    end
  end)

  it("wait returns false while running and true once finished, never raising", function()
    local gate = weft.channel()
    local ok_h = weft.spawn(function(g) return g:pop(10) end, gate)
    assert.is_false(ok_h:wait(0.05))
    assert.is_false(ok_h:wait(0))
    gate:push(1)
    assert.is_true(ok_h:wait(10))
    assert.is_true(ok_h:wait())

    local bad = weft.spawn(function() error("wait must not raise this") end)
    local ok, finished = pcall(bad.wait, bad, 10)
    assert.is_true(ok)
    assert.is_true(finished)
  end)

  it("status goes from running to done", function()
    local gate = weft.channel()
    local h = weft.spawn(function(g) g:pop(10) return true end, gate)
    assert.are.equal("running", h:status())
    gate:push(true)
    assert.is_true(h:wait(10))
    assert.are.equal("done", h:status())
  end)

  it("status of a failed thread is 'failed' plus the error text with traceback", function()
    local h = weft.spawn(function() error("status-failure-text") end)
    assert.is_true(h:wait(10))
    local st, text = h:status()
    assert.are.equal("failed", st)
    assert.are.equal("string", type(text))
    assert.is_truthy(text:find("status-failure-text", 1, true), text)
    assert.is_truthy(text:find("stack traceback", 1, true), text)
  end)

  it("status of a finished thread has no second value", function()
    local h = weft.spawn(function() return 1 end)
    assert.is_true(h:wait(10))
    local st, extra = h:status()
    assert.are.equal("done", st)
    assert.is_nil(extra)
  end)

  it("runs many threads at once", function()
    local hs = {}
    for i = 1, 16 do
      hs[i] = weft.spawn(function(k)
        local s = 0
        for j = 1, 1000 * k do s = s + j end
        return k, s
      end, i)
    end
    for i = 1, 16 do
      local k, s = hs[i]:join(20)
      assert.are.equal(i, k)
      local n = 1000 * i
      assert.are.equal(n * (n + 1) / 2, s)
    end
  end)

  it("a thread cancelled before its function starts never runs it", function()
    -- Whether cancel lands before the thread takes its function is a race, so each of the
    -- twenty spawns is judged by what cancel reported: "cancelled" at once means the
    -- function had not started, and then it must never run. Cancel follows spawn within
    -- microseconds while a thread takes tens to start, so some land early. A function that
    -- did start turns interruption off first, so it cannot end "cancelled" after pushing
    -- (which would look like an early cancel that ran).
    local ran = weft.channel()
    local early = {}
    local hs = {}
    for i = 1, 20 do
      hs[i] = weft.spawn(function(r, k)
        require("weft").interruptible(false)
        r:push(k)
      end, ran, i)
      hs[i]:cancel()
      early[i] = hs[i]:status() == "cancelled"
    end
    local n_early = 0
    for i = 1, 20 do
      assert.is_true(hs[i]:wait(10))
      if early[i] then
        n_early = n_early + 1
        assert.are.equal("cancelled", hs[i]:status())
        local ok, e = pcall(hs[i].join, hs[i], 10)
        assert.is_false(ok)
        assert.is_truthy(tostring(e):find("cancelled", 1, true), tostring(e))
      end
    end
    assert.is_true(n_early > 0, "no cancel landed before its thread started")
    local v = ran:pop(0)
    while v ~= nil do
      assert.is_false(early[v], "thread " .. tostring(v) .. " ran after an early cancel")
      v = ran:pop(0)
    end
  end)

  it("weft.check() is a no-op outside a cancelled task", function()
    local ok, e = pcall(weft.check)
    assert.is_true(ok, e)
    local h = weft.spawn(function()
      local w = require "weft"
      for _ = 1, 1000 do w.check() end
      return "checked"
    end)
    assert.are.equal("checked", h:join(10))
  end)
end)

describe("a thread's Lua state", function()
  it("has every standard library", function()
    local h = weft.spawn(function()
      local t = {}
      for _, name in ipairs({ "string", "table", "math", "io", "os", "debug",
                              "coroutine", "package" }) do
        t[name] = type(_G[name])
      end
      t.require = type(require)
      t.tostring = type(tostring)
      t.pcall = type(pcall)
      t.upper = string.upper("abc")
      t.concat = table.concat({ "a", "b" }, "-")
      t.floor = math.floor(2.5)
      t.clock = type(os.clock())
      t.traceback = type(debug.traceback("x"))
      t.write = type(io.write)
      return t
    end)
    local t = h:join(10)
    for _, name in ipairs({ "string", "table", "math", "io", "os", "debug",
                            "coroutine", "package" }) do
      assert.are.equal("table", t[name], name)
    end
    assert.are.equal("function", t.require)
    assert.are.equal("function", t.tostring)
    assert.are.equal("function", t.pcall)
    assert.are.equal("ABC", t.upper)
    assert.are.equal("a-b", t.concat)
    assert.are.equal(2, t.floor)
    assert.are.equal("number", t.clock)
    assert.are.equal("string", t.traceback)
    assert.are.equal("function", t.write)
  end)

  it("has ffi and jit on LuaJIT, utf8 and integers on Lua 5.4", function()
    if H.jit then
      local a, b, c, d, e = weft.spawn(function()
        local ffi = require "ffi"
        local buf = ffi.new("int[4]")
        buf[2] = 7
        return type(jit), type(jit.version), type(ffi.new), tonumber(buf[2]),
          type(package.loaded.ffi)
      end):join(10)
      assert.are.same({ "table", "string", "function", 7, "table" }, { a, b, c, d, e })
    elseif H.puc51 then
      local a, b, c = weft.spawn(function()
        return type(string.format), type(debug.traceback), _VERSION
      end):join(10)
      assert.are.same({ "function", "function", "Lua 5.1" }, { a, b, c })
    else
      local a, b, c, d = weft.spawn(function()
        return type(utf8), math.type(3), math.type(3.0), utf8.char(72, 105)
      end):join(10)
      assert.are.same({ "table", "integer", "float", "Hi" }, { a, b, c, d })
    end
  end)

  it("inherits package.path and package.cpath and can require a module through them", function()
    local base = H.tmpname("")
    local modfile = base .. "_weftmod.lua"
    local entry = base .. "_?.lua"
    H.write(modfile, "return { answer = 42, hello = function(n) return 'hello ' .. n end }\n")
    local old = package.path
    package.path = entry .. ";" .. old
    local ok, path, cpath, answer, hello = pcall(function()
      return weft.spawn(function()
        local m = require "weftmod"
        return package.path, package.cpath, m.answer, m.hello("thread")
      end):join(10)
    end)
    package.path = old
    H.remove(modfile)
    assert.is_true(ok, path)
    assert.is_truthy(path:find(entry, 1, true), path)
    assert.are.equal(package.cpath, cpath)
    assert.are.equal(42, answer)
    assert.are.equal("hello thread", hello)
  end)

  it("can require weft and spawn threads of its own", function()
    local h = weft.spawn(function(n)
      local w = require "weft"
      local inner = {}
      for i = 1, n do
        inner[i] = w.spawn(function(k) return k * k end, i)
      end
      local s = 0
      for i = 1, n do s = s + inner[i]:join(10) end
      return type(w.spawn), type(w.channel), s
    end, 5)
    local a, b, s = h:join(20)
    assert.are.equal("function", a)
    assert.are.equal("function", b)
    assert.are.equal(1 + 4 + 9 + 16 + 25, s)
  end)

  it("can first require weft inside a coroutine, then use it after that coroutine is gone", function()
    -- A thread's state attaches weft's Rust bindings on first need: here from a coroutine
    -- that is collected before weft is used again from the thread's main function.
    local h = weft.spawn(function()
      local co = coroutine.wrap(function()
        local w = require "weft"
        local ch = w.channel()
        ch:push("from the coroutine")
        return ch
      end)
      local ch = co()
      co = nil
      collectgarbage()
      collectgarbage()
      local w = require "weft"
      local inner = w.spawn(function(c) return c:pop(), 7 end, ch)
      local got, seven = inner:join(10)
      local t = { w.map(function(x) return x * 2 end, { 1, 2, 3 }) }
      return got, seven, t[1][3]
    end)
    local got, seven, six = h:join(20)
    assert.are.equal("from the coroutine", got)
    assert.are.equal(7, seven)
    assert.are.equal(6, six)
  end)

  it("is fresh after a thread that used weft: weft not loaded, no globals", function()
    -- A spawn thread whose last function used weft builds its next state with weft's
    -- module ready; that state must still look like any other fresh one.
    for i = 1, 4 do
      assert.are.equal(i, weft.spawn(function(k)
        local w = require "weft"
        rawset(_G, "WEFT_AHEAD_LEAK", k)
        return w.spawn(function(j) return j end, k):join(10)
      end, i):join(10))
    end
    for _ = 1, 4 do
      local loaded, leak, same, inner = weft.spawn(function()
        local before = package.loaded.weft
        local leaked = rawget(_G, "WEFT_AHEAD_LEAK")
        local w = require "weft"
        return before == nil, leaked, w == require("weft"), w.spawn(function() return 9 end):join(10)
      end):join(10)
      assert.is_true(loaded, "weft was in package.loaded before require")
      assert.is_nil(leak)
      assert.is_true(same)
      assert.are.equal(9, inner)
    end
  end)

  it("can use a handle it received without requiring weft first", function()
    local ch = weft.channel()
    local counter = weft.counter(5)
    local h = weft.spawn(function(c, n)
      -- no require: the handles bring weft's methods with them
      c:push("pushed by a thread that never required weft")
      n:add(1)
      return n:get()
    end, ch, counter)
    local seen = h:join(20)
    assert.are.equal("pushed by a thread that never required weft", ch:pop(5))
    assert.are.equal(6, seen)
    assert.are.equal(6, counter:get())
  end)

  it("gets fresh globals: one thread's globals do not leak into the next", function()
    -- Enough back-to-back spawns that most states come from the background builder.
    for i = 1, 300 do
      local seen = weft.spawn(function(k)
        local before = rawget(_G, "WEFT_LEAK")
        rawset(_G, "WEFT_LEAK", k)
        string.weft_leak = k -- even a change to a library table stays in its thread
        return before
      end, i):join(10)
      assert.is_nil(seen, "thread " .. i .. " saw a global from an earlier thread")
    end
    local lib = weft.spawn(function() return string.weft_leak end):join(10)
    assert.is_nil(lib)
    assert.is_nil(string.weft_leak)
  end)

  it("sees package.path as it is when spawned, not as it was earlier", function()
    weft.spawn(function() return 1 end):join(10) -- any state prepared in advance
    local old = package.path
    package.path = "/weft/test/changed/?.lua;" .. old
    local ok, seen = pcall(function()
      return weft.spawn(function() return package.path end):join(10)
    end)
    package.path = old
    assert.is_true(ok, seen)
    assert.are.equal("/weft/test/changed/?.lua;" .. old, seen)
  end)

  it("gets fresh globals: the caller's globals do not leak into a thread", function()
    rawset(_G, "WEFT_TEST_GLOBAL", "main")
    local v = weft.spawn(function() return rawget(_G, "WEFT_TEST_GLOBAL") end):join(10)
    rawset(_G, "WEFT_TEST_GLOBAL", nil)
    assert.is_nil(v)
  end)
end)

describe("weft.now", function()
  it("is a monotonic wall clock in seconds, shared by threads", function()
    local t0 = weft.now()
    H.sleep(0.05)
    local t1 = weft.now()
    assert.is_true(t1 - t0 >= 0.045 and t1 - t0 < 5, "elapsed " .. (t1 - t0))
    local there = weft.spawn(function() return weft.now() end):join(10)
    assert.is_true(there >= t1, "a thread reads the same clock")
  end)
end)
