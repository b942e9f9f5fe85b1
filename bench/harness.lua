-- The benchmark harness shared by bench/*.lua: options, a wall clock, repetitions and
-- medians, the load other processes put on the cores, and the report (a Markdown table,
-- or JSON with --json).
--
--   local B = require "harness"
--   B.start("bench/NAME.lua")            -- parses arg; sets B.QUICK, B.JSON
--   B.section("name"); B.row(key, figure, unit, stats, baseline_stats, note); B.finish()
--
-- Options every benchmark takes: --quick (smaller sizes, fewer reps), --json,
-- --wait-quiet=SECONDS (wait for a quiet moment before each section).

local weft = require "weft"

local M = {}
local NAME = "bench"

-- options -----------------------------------------------------------------------------

local QUICK, JSON, WAIT_QUIET = false, false, 0

--- Parse the command line of the benchmark called `name`.
function M.start(name)
NAME = name
for _, a in ipairs(arg or {}) do
  if a == "--quick" then QUICK = true
  elseif a == "--json" then JSON = true
  elseif a:match("^%-%-wait%-quiet=%d+$") then WAIT_QUIET = tonumber(a:match("%d+"))
  elseif a == "-h" or a == "--help" then
    print("usage: " .. NAME .. " [--quick] [--json] [--wait-quiet=SECONDS]")
    os.exit(0)
  else
    io.stderr:write(NAME, ": unknown option ", a, "\n")
    os.exit(2)
  end
end
M.QUICK, M.JSON, M.WAIT_QUIET = QUICK, JSON, WAIT_QUIET
end

-- a wall clock --------------------------------------------------------------------------

local now, CLOCK
do
  local ok, ffi = pcall(require, "ffi")
  if ok then
    ffi.cdef [[
      struct weft_bench_timespec { long tv_sec; long tv_nsec; };
      int clock_gettime(int clk_id, struct weft_bench_timespec *tp);
    ]]
    local ts = ffi.new("struct weft_bench_timespec")
    local C = ffi.C
    now = function()
      C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
      return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
    end
    CLOCK = "clock_gettime(CLOCK_MONOTONIC) via ffi"
  else
    local okS, system = pcall(require, "system") -- lua-system (a busted dependency)
    if okS and system.monotime then
      now, CLOCK = system.monotime, "system.monotime (lua-system)"
    else
      local okK, socket = pcall(require, "socket")
      if okK and socket.gettime then
        now, CLOCK = socket.gettime, "socket.gettime (luasocket)"
      else
        now, CLOCK = os.clock, "os.clock (CPU time of the whole process: multi-threaded figures are wrong)"
        io.stderr:write("warning: no wall clock available; using os.clock\n")
      end
    end
  end
end

-- helpers -----------------------------------------------------------------------------

local failures = 0
local function check(cond, what)
  if not cond then
    failures = failures + 1
    io.stderr:write("SANITY CHECK FAILED: ", what, "\n")
  end
  return cond
end

local function progress(...)
  io.stderr:write(...)
  io.stderr:write("\n")
  io.stderr:flush()
end

local function stats(xs)
  local s = {}
  for i = 1, #xs do s[i] = xs[i] end
  table.sort(s)
  local n = #s
  local med = n % 2 == 1 and s[(n + 1) / 2] or (s[n / 2] + s[n / 2 + 1]) / 2
  return { median = med, min = s[1], max = s[n], reps = n, samples = xs }
end

--- Run `body()` `reps` times (after `warm` unmeasured runs); body returns a value to record.
local function repeat_(reps, body, warm)
  for _ = 1, warm or 1 do body() end
  local xs = {}
  for r = 1, reps do
    collectgarbage()
    xs[r] = body()
  end
  return stats(xs)
end

local function fmt(x)
  if x == nil then return "–" end
  local a = math.abs(x)
  if a >= 1e6 then return string.format("%.2f M", x / 1e6)
  elseif a >= 100 then return string.format("%.0f", x)
  elseif a >= 10 then return string.format("%.1f", x)
  elseif a >= 1 then return string.format("%.2f", x)
  else return string.format("%.3f", x) end
end

local function sci(n)
  local e = math.floor(math.log(n, 10) + 0.5)
  if 10 ^ e == n then return "1e" .. e end
  return string.format("%d", n)
end

-- CPU used by other processes (this machine is shared): /proc/stat minus our own use
local NCPU = weft.cpus()
local function cpu_sample()
  local f = io.open("/proc/stat")
  if not f then return nil end
  local line = f:read("*l")
  f:close()
  local v = {}
  for x in line:gmatch("%d+") do v[#v + 1] = tonumber(x) end
  -- user nice system idle iowait irq softirq steal
  local busy = v[1] + v[2] + v[3] + v[6] + v[7] + (v[8] or 0)
  local g = io.open("/proc/self/stat")
  if not g then return nil end
  local st = g:read("*a")
  g:close()
  local after = st:match("%) (.*)$")
  local fields = {}
  for x in after:gmatch("%S+") do fields[#fields + 1] = x end
  -- fields[1] is the state (field 3 of the file); utime, stime are fields 14, 15
  local own = tonumber(fields[12]) + tonumber(fields[13])
  return { busy = busy, own = own, t = now() }
end
--- Share of the machine's cores (0..1) used by other processes between two samples.
local function others_share(a, b)
  -- /proc/stat counts in 10 ms ticks: shorter windows say nothing
  if not (a and b) or b.t - a.t < 0.2 then return nil end
  local ticks = (b.busy - a.busy) - (b.own - a.own)
  return math.max(0, ticks / 100 / (b.t - a.t) / NCPU) -- USER_HZ = 100
end
--- With --wait-quiet=S: wait (at most S seconds) for a half-second window in which other
--- processes used under 5 % of the cores. Returns the share seen last (nil without /proc).
local sleeper = weft.channel()
local function wait_quiet()
  if WAIT_QUIET <= 0 then return nil end
  local deadline = now() + WAIT_QUIET
  local share
  repeat
    local a = cpu_sample()
    sleeper:pop(0.5)
    share = others_share(a, cpu_sample())
    if share == nil or share < 0.05 then return share end
  until now() > deadline
  progress("  (still busy: other processes use ", string.format("%.0f%%", 100 * share), " of the cores; going on)")
  return share
end

local sections = {}
local section_start
local function section(name)
  if name then wait_quiet() end
  local s = cpu_sample()
  if section_start and section_start.sample and s then
    section_start.share = others_share(section_start.sample, s)
  end
  if name then
    section_start = { name = name, sample = s }
    sections[#sections + 1] = section_start
  end
end

local rows = {}
--- Record one table row: `st` is the weft figure, `base` an optional same-unit baseline
--- (shown with the ratio weft/baseline), `note` what the baseline is or how to read the row.
local function row(key, figure, unit, st, base, note)
  rows[#rows + 1] = { key = key, figure = figure, unit = unit, st = st, base = base, note = note }
end

-- report ------------------------------------------------------------------------------------

--- Print the table (or JSON) and exit non-zero if a sanity check failed.
function M.finish()
local function ratio_text(r)
  if not r.base then return r.note or "" end
  local b = r.base.median
  local rel = r.st.median / b
  local s
  if r.unit == "msgs/s" then
    s = string.format("%s %s (weft = %.2f× of it)", fmt(b), r.unit, rel)
  else
    s = string.format("%s %s (weft = %.1f× it)", fmt(b), r.unit, rel)
  end
  return (r.note and (r.note .. ": ") or "") .. s
end

if JSON then
  local function num(x)
    if x ~= x or x == math.huge or x == -math.huge then return "null" end
    return string.format("%.6g", x)
  end
  local function esc(s) return (s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end)) end
  local function st_json(st)
    if not st then return "null" end
    local xs = {}
    for i, v in ipairs(st.samples) do xs[i] = num(v) end
    return string.format('{"median":%s,"min":%s,"max":%s,"reps":%d,"samples":[%s]}',
      num(st.median), num(st.min), num(st.max), st.reps, table.concat(xs, ","))
  end
  local out = {}
  for i, r in ipairs(rows) do
    out[i] = string.format('{"key":"%s","figure":"%s","unit":"%s","weft":%s,"baseline":%s,"note":%s}',
      r.key, esc(r.figure), esc(r.unit), st_json(r.st), st_json(r.base),
      r.note and ('"' .. esc(r.note) .. '"') or "null")
  end
  local secs = {}
  for i, sec in ipairs(sections) do
    secs[i] = string.format('{"name":"%s","others_share":%s}', esc(sec.name), sec.share and num(sec.share) or "null")
  end
  print(string.format('{"lua":"%s","quick":%s,"cpus":%d,"clock":"%s","failures":%d,"figures":[%s],"load":[%s]}',
    esc(jit and jit.version or _VERSION), tostring(QUICK), weft.cpus(), esc(CLOCK), failures,
    table.concat(out, ","), table.concat(secs, ",")))
else
  print(string.format("weft %s on %s, %d cpus%s", tostring(weft.version), jit and jit.version or _VERSION,
    weft.cpus(), QUICK and " (--quick: smaller sizes, fewer reps)" or ""))
  print()
  print("| figure | weft median | min–max | reps | baseline / ratio |")
  print("| --- | ---: | ---: | ---: | --- |")
  for _, r in ipairs(rows) do
    print(string.format("| %s | %s %s | %s–%s | %d | %s |", r.figure, fmt(r.st.median), r.unit,
      fmt(r.st.min), fmt(r.st.max), r.st.reps, ratio_text(r)))
  end
end

if not JSON and sections[1] and sections[1].sample then
  local parts = {}
  for _, sec in ipairs(sections) do
    parts[#parts + 1] = sec.share and string.format("%s %.0f%%", sec.name, 100 * sec.share)
      or (sec.name .. " n/a (too short)")
  end
  print()
  print("Other processes' use of the " .. NCPU .. " cores during each section (/proc/stat): " ..
    table.concat(parts, ", ") .. ".")
end

if failures > 0 then
  io.stderr:write(string.format("%s: %d sanity check(s) failed\n", NAME, failures))
  os.exit(1)
end
end

--- The channel benchmarks' producers (runtime.lua, channels_only.lua): push `count` items
--- into `ch`, close it, return `count`. They run on a pool worker, so they use no upvalues.
function M.produce_numbers(ch, count)
  for i = 1, count do ch:push(i) end
  ch:close()
  return count
end

function M.produce_tables(ch, count)
  for i = 1, count do ch:push({ i, "x" }) end
  ch:close()
  return count
end

M.now, M.CLOCK, M.NCPU = now, CLOCK, NCPU
M.check, M.progress, M.stats, M.repeat_ = check, progress, stats, repeat_
M.fmt, M.sci, M.section, M.row, M.wait_quiet = fmt, sci, section, row, wait_quiet
M.cpu_sample, M.others_share = cpu_sample, others_share
return M
