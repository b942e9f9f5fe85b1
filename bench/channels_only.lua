-- The channel figures of bench/runtime.lua alone, for quick A/B alternations of two builds
-- of the module (a full runtime.lua run takes ~15 s; this one ~3 s):
--   LUA_CPATH="$DIR/?.so;;" luajit bench/channels_only.lua
-- 1e5 items from a pool worker to the main state, medians of 7 runs: `{i, "x"}` tables
-- unbounded and with capacity 1024, numbers unbounded.
package.path = (arg and arg[0] and arg[0]:match("^(.*)/") or "bench") .. "/?.lua;" .. package.path
local weft = require "weft"
local harness = require "harness"
local now, produce_numbers, produce_tables = harness.now, harness.produce_numbers, harness.produce_tables
local n = 100000
local pool = weft.pool { size = 1 }
local function run(producer, capacity)
  local rates = {}
  for k = 1, 7 do
    local ch = capacity and weft.channel(capacity) or weft.channel()
    local t0 = now()
    local done = pool:submit(producer, ch, n)
    for i = 1, n do
      local v = ch:pop()
      assert(v == i or v[1] == i, "items arrive in order")
    end
    rates[k] = n / (now() - t0) / 1e6
    assert(done:join() == n)
  end
  table.sort(rates)
  return rates[4], rates[1], rates[7]
end
for _, case in ipairs {
  { '{i, "x"} unbounded', produce_tables },
  { '{i, "x"} capacity 1024', produce_tables, 1024 },
  { "numbers unbounded", produce_numbers },
} do
  print(string.format("%-24s median %.2f M/s (min %.2f, max %.2f)", case[1], run(case[2], case[3])))
end
pool:close()
