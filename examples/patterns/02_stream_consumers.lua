-- Pattern 2: a stream of records analysed by a pool of consumers, with back-pressure
-- and a clean shutdown.
--
-- Problem: records arrive one by one (a log, a socket, a file being read); each takes
-- some CPU to analyse. A producer pushes them into a *bounded* channel; a pool of
-- consumers pops and analyses them; when the input ends the producer closes the
-- channel, the consumers drain what is left and return their partial results, and the
-- main thread joins them and merges. Every record is counted exactly once.
--
-- What people usually get wrong:
--  * An unbounded queue (a Lanes linda or effil.channel() with no limit) in front of
--    slower consumers: the producer races ahead and memory grows with the backlog.
--    weft.channel(n) holds at most n; push blocks while it is full (back-pressure).
--  * No end-of-stream protocol: consumers wait forever, or one "STOP" sentinel per
--    consumer is pushed and miscounted. Here ch:close() is the signal: pop/iter keep
--    returning the queued items, then end ("closed"). Nothing queued is lost.
--  * Joining the consumers before closing the channel: a deadlock.
--  * Consumers writing into a shared Lua table: each has its own copy (see pattern 3).
--    Return a partial result from each consumer and merge after join.
--  * Polling with pop(0) in a busy loop: burns a core. pop() / iter() block.
--
-- Run:  target/release/weft run examples/patterns/02_stream_consumers.lua [RECORDS]  (default 20000)
local weft = require "weft"

local RECORDS = math.floor(tonumber(arg and arg[1]) or 20000)
local CONSUMERS = math.max(2, weft.cpus())
local CAPACITY = 16

local ch = weft.channel(CAPACITY)
local pool = weft.pool { size = CONSUMERS }

-- a consumer: analyse records until the channel is closed and drained
local function consume(records, id)
  local seen, sum, by_sensor = 0, 0, {}
  for rec in records:iter() do
    local h = rec.value -- "analysis": a little CPU per record
    for _ = 1, 200 do h = (h * 31 + 7) % 1000003 end
    seen = seen + 1
    sum = sum + rec.value
    by_sensor[rec.sensor] = (by_sensor[rec.sensor] or 0) + 1
  end
  return { id = id, seen = seen, sum = sum, by_sensor = by_sensor }
end

local consumers = {}
for i = 1, CONSUMERS do consumers[i] = pool:submit(consume, ch, i) end

-- the producer: a record at a time; count how often the channel was full
local blocked, max_len = 0, 0
for i = 1, RECORDS do
  local rec = { id = i, sensor = "s" .. (i % 5), value = i % 1000 }
  if not ch:push(rec, 0) then -- full: the consumers are behind
    blocked = blocked + 1
    assert(ch:push(rec)) -- block until there is room
  end
  max_len = math.max(max_len, #ch)
end
ch:close() -- end of stream: consumers drain what is queued, then their iter() ends

-- merge the partial results
local seen, sum, by_sensor = 0, 0, {}
for _, f in ipairs(consumers) do
  local r = f:join()
  print(string.format("consumer %d analysed %d records", r.id, r.seen))
  seen, sum = seen + r.seen, sum + r.sum
  for k, n in pairs(r.by_sensor) do by_sensor[k] = (by_sensor[k] or 0) + n end
end
pool:close()

local want_sum = 0
for i = 1, RECORDS do want_sum = want_sum + i % 1000 end
print(string.format("%d records, %d consumers, channel capacity %d: the producer found it full %d times (%.0f%%), never more than %d queued",
  seen, CONSUMERS, CAPACITY, blocked, 100 * blocked / RECORDS, max_len))

assert(seen == RECORDS, "every record analysed exactly once")
assert(sum == want_sum, "the values add up")
for s = 0, 4 do
  local want = 0
  for i = 1, RECORDS do if i % 5 == s then want = want + 1 end end
  assert(by_sensor["s" .. s] == want, "per-sensor counts are exact")
end
assert(max_len <= CAPACITY, "a bounded channel never holds more than its capacity")
assert(select(2, ch:pop(0)) == "closed", "closed and drained")
print("ok")
