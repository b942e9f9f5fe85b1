-- weft.spawn + join in a tight loop: the median repetition's mean time per spawn, for A/B
-- comparisons of the spawn path (issue 15). A short, low-noise companion of section 1 of
-- bench/runtime.lua, which runs 200 spawns per repetition.
--
--   weft run bench/spawn_loop.lua [REPS] [SPAWNS]                          (default 7 2000)
--   LUA_CPATH="$PWD/target/lua/luajit/?.so;;" luajit bench/spawn_loop.lua [REPS] [SPAWNS]

package.path = (arg and arg[0] and arg[0]:match("^(.*)/") or "bench") .. "/?.lua;" .. package.path
local B = require "harness"
local weft = require "weft"

local function one() return 1 end
local reps = tonumber(arg and arg[1]) or 7
local n = tonumber(arg and arg[2]) or 2000
for _ = 1, 200 do weft.spawn(one):join() end -- park threads with states ready
local per = {}
for r = 1, reps do
  local t0 = B.now()
  for _ = 1, n do
    if weft.spawn(one):join() ~= 1 then error("spawn(one):join() ~= 1") end
  end
  per[r] = (B.now() - t0) / n * 1e6
end
table.sort(per)
print(string.format("spawn+join median %.1f us (min %.1f max %.1f) over %d reps of %d",
  per[math.ceil(reps / 2)], per[1], per[reps], reps, n))
