-- Latency while other processes use the cores (issue 15): pool{size=1} submit + join and a
-- fresh spawn + join, with 0, 1 and 8 busy-loop processes that this file starts and kills.
--
--   LUA_CPATH="$PWD/target/lua/luajit/?.so;;" luajit bench/busy_load.lua [--quick] [--json]
--
-- bench/runtime.lua runs the same section last (`require "busy_load".run(B, quick)`).
-- Each busy loop is the interpreter running this script (`arg[-1]`) on `while true`; they
-- are killed when their load level is measured, also when the measurement raises, and each
-- ends by itself after LIFETIME seconds should this process die without killing them (the
-- watchdog's os.exit, a signal).

local weft = require "weft"

local M = {}

local LIFETIME = 120
local LEVELS = { 0, 1, 8 }
if os.getenv("WEFT_BUSY_LEVELS") then -- e.g. "1,8": only these levels (A/B comparisons)
  LEVELS = {}
  for n in os.getenv("WEFT_BUSY_LEVELS"):gmatch("%d+") do LEVELS[#LEVELS + 1] = tonumber(n) end
end

local function one() return 1 end

--- The interpreter to run busy loops with: this one when its name is plain, else luajit.
local function interpreter()
  local a = arg and arg[-1]
  if type(a) == "string" and a:match("^[%w%./_%-]+$") then return a end
  return "luajit"
end

--- Start `k` busy-loop processes; returns their pids.
local function start_busy(k)
  local code = string.format(
    "local e = os.time() + %d while os.time() < e do for _ = 1, 1e7 do end end", LIFETIME)
  local pids = {}
  for i = 1, k do
    local p = io.popen(string.format("%s -e '%s' >/dev/null 2>&1 & echo $!", interpreter(), code))
    local pid = p and p:read("*l")
    if p then p:close() end
    if not (pid and pid:match("^%d+$")) then
      error("bench/busy_load.lua: could not start busy loop " .. i .. " of " .. k)
    end
    pids[#pids + 1] = pid
  end
  return pids
end

local function kill(pids)
  if #pids > 0 then os.execute("kill " .. table.concat(pids, " ") .. " 2>/dev/null") end
end

--- The q-quantile of `xs` (nearest rank).
local function quantile(xs, q)
  local s = {}
  for i = 1, #xs do s[i] = xs[i] end
  table.sort(s)
  return s[math.max(1, math.min(#s, math.ceil(q * #s)))]
end

--- One load level: `reps` repetitions, each with a fresh pool (the scheduler places each
--- new worker thread anew: one placement can be bad for a whole run) timing every round
--- trip alone, then `spawns` fresh spawn + join.
local function measure(B, load, reps, trips, spawns)
  local now, check = B.now, B.check
  local medians, p99s, spawn_medians = {}, {}, {}
  local sleeper = weft.channel()
  local pids = start_busy(load)
  local s0, share
  local ok, err = xpcall(function()
    sleeper:pop(0.3) -- let the busy loops start running
    s0 = B.cpu_sample()
    for r = 1, reps do
      local pool = weft.pool { size = 1 }
      for _ = 1, 50 do pool:submit(one):join() end -- warm: function loaded in the worker
      local xs, bad = {}, 0
      for i = 1, trips do
        local t0 = now()
        if pool:submit(one):join() ~= 1 then bad = bad + 1 end
        xs[i] = (now() - t0) * 1e6
      end
      pool:close()
      check(bad == 0, "pool:submit(one):join() ~= 1 under load " .. load)
      local ys = {}
      for i = 1, spawns do
        local t0 = now()
        if weft.spawn(one):join() ~= 1 then bad = bad + 1 end
        ys[i] = (now() - t0) * 1e6
      end
      check(bad == 0, "spawn(one):join() ~= 1 under load " .. load)
      medians[r], p99s[r], spawn_medians[r] = quantile(xs, 0.5), quantile(xs, 0.99), quantile(ys, 0.5)
    end
    share = B.others_share(s0, B.cpu_sample())
  end, debug.traceback)
  kill(pids)
  if not ok then error(err, 0) end
  return B.stats(medians), B.stats(p99s), B.stats(spawn_medians), share
end

--- Measure every load level and add its rows to the report.
function M.run(B, quick)
  local reps, trips, spawns = quick and 3 or 5, quick and 300 or 1000, quick and 50 or 100
  B.section("busy load")
  for _, load in ipairs(LEVELS) do
    B.progress("7. latency with ", load, " busy-loop process(es)")
    local med, p99, spawn, share = measure(B, load, reps, trips, spawns)
    local used = share and string.format("other processes used %.0f%% of the cores meanwhile", 100 * share)
      or "others' share of the cores: n/a"
    B.row("load" .. load .. "_pool1_submit_join_us",
      string.format("%d busy loop(s): pool{size=1} submit + join, median of %d round trips (a fresh pool per rep)",
        load, trips), "µs", med, spawn, "baseline: fresh spawn + join, same rep")
    B.row("load" .. load .. "_pool1_submit_join_p99_us",
      string.format("%d busy loop(s): the same, 99th percentile", load), "µs", p99, spawn,
      "baseline: fresh spawn + join median, same rep")
    B.row("load" .. load .. "_spawn_join_us",
      string.format("%d busy loop(s): fresh spawn + join, median of %d", load, spawns), "µs", spawn, nil, used)
  end
end

if ... == "busy_load" then return M end

-- standalone
package.path = (arg and arg[0] and arg[0]:match("^(.*)/") or "bench") .. "/?.lua;" .. package.path
local B = require "harness"
B.start("bench/busy_load.lua")
B.progress("weft ", tostring(weft.version), ", ", _VERSION, jit and (" / " .. jit.version) or "",
  ", cpus ", tostring(weft.cpus()), B.QUICK and ", quick" or "")
M.run(B, B.QUICK)
B.section(nil)
B.finish()
