-- Pattern 8: what not to do, what happens when you do, and what to do instead.
--
-- Problem: moving existing Lua code onto threads, where some values cannot follow.
--
-- A. Sharing one Lua state between OS threads (explained here, NOT run).
--
--    A tutorial pattern for "threads in LuaJIT" casts a Lua function to a C callback and
--    hands it to pthread_create:
--
--        ffi.cdef [[ int pthread_create(void *, const void *, void *(*)(void *), void *); ]]
--        local cb = ffi.cast("void *(*)(void *)", function(arg) work(); return nil end)
--        local tid = ffi.new("uint64_t[1]")
--        ffi.C.pthread_create(tid, nil, cb, nil)   -- the new thread enters *this* lua_State
--
--    The callback runs on the new OS thread *inside the same lua_State* the main thread
--    is running. A lua_State (and LuaJIT's global_State: its GC, string table, JIT
--    traces, the callback slots themselves) has no locks: two threads in it at once
--    interleave half-done stack pushes, allocations and GC steps. Nothing fails at once;
--    later a value is wrong, the GC frees a live object, or the process segfaults or
--    panics (e.g. "bad callback", "PANIC: unprotected error"). Measured on LuaJIT 2.1 for
--    weft's design: panics, corrupted values or segfaults in 20 of 20 longer runs. PUC
--    Lua is no safer: its lua_lock/lua_unlock hooks are no-ops in standard builds.
--    Entering it "only briefly" or "only to read" does not help: even a read pushes onto
--    the shared stack. There is no safe version of this.
--
--    Instead: one Lua state per OS thread. weft.spawn / weft.pool give each worker its
--    own state; functions travel as bytecode, upvalues and arguments are copied, and
--    shared data lives outside Lua (weft.array, weft.freeze, weft.counter, channels).
--
-- B. Sending a value that cannot be copied into another state (run below).
--
--    A userdata (a file handle, a socket, a database connection, newproxy()), a
--    coroutine, an anonymous C function and LuaJIT cdata point at memory or machinery of
--    the state that made them; another state cannot use them. A table with a metatable
--    carries behaviour (its metamethods) that a copy would silently lose. Code written
--    for effil or Lanes often passes such values around and finds out late. weft refuses
--    every one at the call that tries to send it (spawn, submit, map, push, join), with
--    the path of the offending value inside the arguments, upvalues, results or items.
--    Module values cross by name: io.stdout, math.sqrt, require "ffi" are re-resolved in
--    the other state, so they work.
--
--    Instead: send what the value is made from — a path, an address, plain data — and
--    build the object in the worker (or once per worker in pool{init = ...}); create a
--    coroutine inside the worker; share numbers through weft.array and read-only tables
--    through weft.freeze; send plain tables and setmetatable() on the other side.
--
-- Run:  target/release/weft run examples/patterns/08_what_not_to_do.lua
local weft = require "weft"
local ffi = require "ffi"

local checked = 0
local function refused(what, want, f, ...) -- f(...) must fail with a message containing want
  local ok, err = pcall(f, ...)
  err = tostring(err)
  print(string.format("%-44s -> %s", what, ok and "accepted!" or err))
  assert(not ok, what .. " must be refused")
  assert(err:find(want, 1, true), "the error names the value: " .. want)
  checked = checked + 1
end
local function noop() end

print("refused, with the path of the value:")
refused("spawn(fn, coroutine)", "argument 2 (a coroutine)",
  weft.spawn, noop, coroutine.create(noop))
refused("spawn(fn, {config = {handler = userdata}})", "argument 2 .config.handler (a userdata",
  weft.spawn, noop, { config = { handler = newproxy(true) } })
local log = assert(io.open(arg and arg[0] or "/dev/null")) -- a FILE* that is not io.stdout
refused("a function with an open file as upvalue", "upvalue 'log' (a userdata",
  weft.spawn, function() return log:read("*l") end)
log:close()
refused("an anonymous C function (coroutine.wrap)", ".on_event (a C function not found in package.loaded)",
  weft.spawn, noop, { on_event = coroutine.wrap(noop) })
refused("LuaJIT cdata (ffi.new)", "argument 2 (a LuaJIT cdata",
  weft.spawn, noop, ffi.new("double[4]"))
refused("a table with a metatable", "argument 2 (a table with a metatable",
  weft.spawn, noop, setmetatable({}, { __index = {} }))
local ch = weft.channel(4)
refused("ch:push(userdata)", "value 1 (a userdata",
  ch.push, ch, newproxy(false))
refused("a worker returning a coroutine", "result 1 .co (a coroutine)", function()
  return weft.spawn(function() return { co = coroutine.create(print) } end):join()
end)

-- module values cross by name: this works, in the worker it is that state's io.stdout
local th = weft.spawn(function(out, sqrt) out:write("  (written by a worker through io.stdout)\n"); return sqrt(16) end,
  io.stdout, math.sqrt)
print("accepted, by name: io.stdout and math.sqrt")
assert(th:join() == 4)

-- what to do instead: send the path, open in the worker; create the coroutine there
local path = os.tmpname()
local f = assert(io.open(path, "w")); f:write("one\ntwo\nthree\n"); f:close()
local lines = weft.spawn(function(p)
  local n = 0
  for _ in io.lines(p) do n = n + 1 end -- the worker opens (and closes) its own handle
  local gen = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i * 10) end end)
  return n, gen() + gen() + gen()
end, path)
local n, s = lines:join()
os.remove(path)
print(string.format("instead: the worker opened the file by path (%d lines) and made its own coroutine (sum %d)", n, s))
assert(n == 3 and s == 60)
print(string.format("%d refusals checked", checked))
print("ok")
