-- Shared helpers for the weft specs. Loaded with require "helpers" (run.sh adds this
-- directory to busted's --lpath). Nothing here is sent to threads.
local weft = require "weft"

local H = {}

H.jit = rawget(_G, "jit") ~= nil
H.lua54 = math.type ~= nil
-- PUC Lua 5.1: no lua_upvaluejoin (so no task-function cache), and its compiler merges
-- the constants 0 and -0.0 within a function.
H.puc51 = not H.jit and _VERSION == "Lua 5.1"
H.lua = os.getenv("WEFT_TEST_LUA") or (H.jit and "luajit" or "lua5.4")
H.cpath = os.getenv("WEFT_TEST_CPATH") or package.cpath

--- Sleep without burning CPU: a pop with a timeout on a channel nobody pushes to.
function H.sleep(seconds)
  local _, why = weft.channel():pop(seconds)
  assert(why == "timeout", "H.sleep: unexpected pop result " .. tostring(why))
end

--- Spawn fn(ready, ...) and wait until it pushes "ready" on `ready`, i.e. is about to
--- block or loop (the specs of cancellation need the thread inside its loop first).
function H.spawn_ready(fn, ...)
  local ready = weft.channel()
  local h = weft.spawn(fn, ready, ...)
  local v, why = ready:pop(10)
  assert(v == "ready", "the thread started (" .. tostring(why) .. ")")
  return h
end

--- Wall-clock seconds (sub-second), via date(1). Costs a fork; use sparingly.
function H.now()
  local p = io.popen("date +%s.%N")
  local s = p:read("*a")
  p:close()
  return tonumber(s)
end

--- pcall that returns the error as a string (tostring'ed).
function H.err(f, ...)
  local ok, e = pcall(f, ...)
  if ok then return nil end
  return type(e) == "string" and e or tostring(e)
end

function H.copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

function H.sorted(t, cmp)
  local c = {}
  for i = 1, #t do c[i] = t[i] end
  table.sort(c, cmp)
  return c
end

function H.sum(t)
  local s = 0
  for i = 1, #t do s = s + t[i] end
  return s
end

function H.iota(n)
  local t = {}
  for i = 1, n do t[i] = i end
  return t
end

function H.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- A temporary file name with the given suffix; the caller removes it with H.remove.
function H.tmpname(suffix)
  local base = os.tmpname()  -- created by mkstemp; we use base .. suffix next to it
  os.remove(base)
  return base .. (suffix or "")
end

function H.write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

function H.remove(...)
  for i = 1, select("#", ...) do
    local p = select(i, ...)
    if p then os.remove(p) end
  end
end

--- Run `source` as a script in a child interpreter of the same kind, with weft on its
--- cpath, under `timeout`. Returns exit status (124 = hit the timeout), combined output,
--- and the wall-clock seconds it took.
function H.run_script(source, limit)
  limit = limit or 20
  local path = H.tmpname(".lua")
  H.write(path, source)
  local cmd = string.format(
    "start=$(date +%%s%%N); LUA_CPATH=%s timeout -k 5 %d %s %s 2>&1; rc=$?; " ..
    "end=$(date +%%s%%N); echo; echo \"__weft_rc=$rc __weft_ms=$(( (end - start) / 1000000 ))\"",
    H.quote(H.cpath), limit, H.lua, H.quote(path))
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("*a")
  p:close()
  H.remove(path)
  local rc, ms = out:match("__weft_rc=(%d+) __weft_ms=(%d+)%s*$")
  assert(rc, "H.run_script: no status in output: " .. out)
  out = out:gsub("\n?__weft_rc=%d+ __weft_ms=%d+%s*$", "")
  return tonumber(rc), out, tonumber(ms) / 1000
end

--- Pack values with their count (LuaJIT has no table.pack).
function H.pack(...)
  return { n = select("#", ...), ... }
end

return H
