-- A bounded random workload: threads spawning, pushing, popping and cancelling at once.
-- At the end every message pushed was popped exactly once or is still queued.
local describe, it, assert, before_each, after_each = describe, it, assert, before_each, after_each
local _ENV = _G -- functions sent to threads must see the real globals, not busted's env

local weft = require "weft"
local H = require "helpers"

local DURATION = 3 -- seconds of random work per interpreter

-- The run's seed: WEFT_SEED if set, else the clock. It is printed, so a failing run's random
-- choices can be replayed (the threads' timing, of course, cannot).
local function the_seed()
  local given = os.getenv("WEFT_SEED")
  if given == nil or given == "" then return os.time() end
  local n = tonumber(given)
  if n == nil or n ~= math.floor(n) or n < 0 or n >= 2 ^ 31 then
    error("WEFT_SEED must be an integer in 0 .. 2^31-1, got '" .. given .. "'")
  end
  return n
end

-- Producer child: push ids base+1 .. base+n, recording each successful push.
-- The count hook is removed so cancellation can only land inside a blocking weft call,
-- where it means "not pushed": the ledger stays exact.
local function producer(ch, ledger, base, n)
  require("weft").interruptible(false) -- cancel only at pop/push: the ledger stays exact
  local done = 0
  for i = 1, n do
    local id = base + i
    if ch:push(id, 0.005) then
      ledger:push(id)
      done = done + 1
    end
  end
  return done
end

-- Consumer child: pop up to n items, recording each one.
local function consumer(ch, ledger, n)
  require("weft").interruptible(false) -- cancel only at pop/push: the ledger stays exact
  local got = 0
  for _ = 1, n do
    local v = ch:pop(0.005)
    if v ~= nil then
      ledger:push(v)
      got = got + 1
    end
  end
  return got
end

-- Compute child: a busy loop (interpreted, so the hook can cancel it), bounded.
local function busy(limit)
  local w = require "weft"
  local x, deadline = 0, os.clock() + limit
  while os.clock() < deadline do
    for i = 1, 1000 do x = x + i % 3 end
    w.check()
  end
  return x
end

local function actor(me, seed, ch, pushed, popped, stop, errors, pool)
  local w = require "weft"
  math.randomseed(seed + me * 7919)
  local seq = 0
  local function next_base(n)
    local base = me * 10000000 + seq
    seq = seq + n
    return base
  end
  local function settle(h, what)
    -- Wait for a child; a child that never finishes is a deadlock.
    if not h:wait(10) then
      errors:push(what .. " did not finish within 10 s (status " .. tostring(h:status()) .. ")")
      return
    end
    local st, text = h:status()
    if st == "failed" then errors:push(what .. " failed: " .. tostring(text)) end
  end
  local nap = w.channel() -- nobody pushes here: pop(t) is a sleep
  local ops = 0
  while select(2, stop:pop(0)) ~= "closed" do
    ops = ops + 1
    local r = math.random(1, 12)
    if r <= 3 then
      local id = next_base(1) + 1
      if ch:push(id, 0.005) then pushed:push(id) end
    elseif r <= 6 then
      local v = ch:pop(0.005)
      if v ~= nil then popped:push(v) end
    elseif r == 7 then
      local n = math.random(1, 30)
      local h = w.spawn(producer, ch, pushed, next_base(n), n)
      if math.random() < 0.5 then nap:pop(0.001); h:cancel() end
      settle(h, "producer")
    elseif r == 8 then
      local h = w.spawn(consumer, ch, popped, math.random(1, 30))
      if math.random() < 0.5 then nap:pop(0.001); h:cancel() end
      settle(h, "consumer")
    elseif r == 9 then
      local h = w.spawn(busy, 5)
      nap:pop(0) -- a moment for it to start (or not)
      h:cancel()
      settle(h, "busy thread")
      if h:status() ~= "cancelled" then
        errors:push("busy thread not cancelled: " .. tostring(h:status()))
      end
    elseif r == 10 then
      local n = math.random(1, 10)
      settle(pool:submit(producer, ch, pushed, next_base(n), n), "pool producer")
    elseif r == 11 then
      settle(pool:submit(consumer, ch, popped, math.random(1, 10)), "pool consumer")
    else
      local f = pool:submit(busy, 5)
      if math.random() < 0.5 then nap:pop(0.001) end
      f:cancel()
      settle(f, "pool busy task")
      if f:status() ~= "cancelled" then
        errors:push("pool busy task not cancelled: " .. tostring(f:status()))
      end
    end
  end
  return ops
end

describe("stress", function()
  it("random spawn/push/pop/cancel for a few seconds loses and duplicates nothing", function()
    local ch = weft.channel(32)
    local pushed, popped = weft.channel(), weft.channel()
    local stop, errors = weft.channel(), weft.channel()
    local pool = weft.pool { size = 2 }
    local seed = the_seed()
    print(("\nstress: seed %d (replay with WEFT_SEED=%d)"):format(seed, seed))
    local actors = {}
    for me = 1, 4 do
      actors[me] = weft.spawn(actor, me, seed, ch, pushed, popped, stop, errors, pool)
    end
    H.sleep(DURATION)
    stop:close()
    local total_ops = 0
    for me = 1, 4 do
      local ops, why = actors[me]:join(30)
      assert.is_nil(why, "actor " .. me .. " did not finish (deadlock?), WEFT_SEED=" .. seed)
      assert.are.equal("number", type(ops))
      total_ops = total_ops + ops
    end
    pool:close()
    assert.is_true(total_ops > 20, "the actors did some work (" .. total_ops .. " ops)")

    local errs = {}
    while #errors > 0 do errs[#errs + 1] = errors:pop(0) end
    assert.are.same({}, errs)

    -- What is still queued counts as delivered.
    local remaining = #ch
    while true do
      local v = ch:pop(0)
      if v == nil then break end
      popped:push(v)
    end
    local P, Q = {}, {}
    while #pushed > 0 do P[#P + 1] = pushed:pop(0) end
    while #popped > 0 do Q[#Q + 1] = popped:pop(0) end
    assert.is_true(#P > 0, "something was pushed")
    assert.is_true(remaining <= 32)

    -- exactly once: same count, same sum, no duplicates, same set
    assert.are.equal(#P, #Q, "every pushed message was popped once or still queued")
    assert.are.equal(H.sum(P), H.sum(Q))
    local seen = {}
    for _, v in ipairs(Q) do
      assert.is_nil(seen[v], "message " .. tostring(v) .. " was popped twice")
      seen[v] = true
    end
    for _, v in ipairs(P) do
      assert.is_true(seen[v] == true, "message " .. tostring(v) .. " was lost")
    end
  end)
end)
