-- weft.spawn + join in a tight loop: the median repetition's mean time per spawn, for A/B
-- comparisons of the spawn path (issue 15). A short, low-noise companion of section 1 of
-- bench/runtime.lua, which runs 200 spawns per repetition.
--
--   weft run bench/spawn_loop.lua [REPS] [SPAWNS] [KIND]                  (default 7 2000 plain)
--   LUA_CPATH="$PWD/target/lua/luajit/?.so;;" luajit bench/spawn_loop.lua [REPS] [SPAWNS] [KIND]
--
-- KIND: "plain" spawns `function() return 1 end`; "require" a function that first runs
-- `require "weft"`; "channel" one that receives a channel and pushes to it (both need
-- weft's Rust bindings in the thread's state).

package.path = (arg and arg[0] and arg[0]:match("^(.*)/") or "bench") .. "/?.lua;" .. package.path
local B = require "harness"
local weft = require "weft"

local reps = tonumber(arg and arg[1]) or 7
local n = tonumber(arg and arg[2]) or 2000
local kind = arg and arg[3] or "plain"
local ch = weft.channel()
local spawn_one = ({
  plain = function() return weft.spawn(function() return 1 end) end,
  require = function() return weft.spawn(function() return require("weft") and 1 end) end,
  channel = function()
    return weft.spawn(function(c) c:push(1); return 1 end, ch)
  end,
})[kind]
if not spawn_one then error("KIND must be plain, require or channel, got " .. tostring(kind)) end

local function round()
  if spawn_one():join() ~= 1 then error("spawn(f):join() ~= 1") end
  if kind == "channel" and ch:pop(0) ~= 1 then error("nothing in the channel") end
end
for _ = 1, 200 do round() end -- park threads with states ready
local per = {}
for r = 1, reps do
  local t0 = B.now()
  for _ = 1, n do round() end
  per[r] = (B.now() - t0) / n * 1e6
end
table.sort(per)
print(string.format("spawn+join (%s) median %.1f us (min %.1f max %.1f) over %d reps of %d",
  kind, per[math.ceil(reps / 2)], per[1], per[reps], reps, n))
