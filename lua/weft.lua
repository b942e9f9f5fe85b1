-- The Lua face of weft: thin wrappers over the Rust core (crates/weft-lua).
--
-- Rust binding functions never raise (an error raised from an mlua callback would reach
-- Lua as a userdata); they return FAIL, value, level on failure. `check` turns that into
-- an ordinary error: a string for usage errors, positioned at the caller (level 2; the
-- wrappers call `check` in tail position so level 2 is the user's frame), or the original
-- error value of a failed task (level 0: it already carries its traceback).
local core, FAIL = ...
local error = error

local function check(first, ...)
  if first == FAIL then
    local value, level = ...
    error(value, level)
  end
  return first, ...
end

local function wrap(f)
  return function(...) return check(f(...)) end
end

local Task = {
  join = wrap(core.task_join),
  wait = wrap(core.task_wait),
  status = wrap(core.task_status),
  cancel = wrap(core.task_cancel),
}

local Channel = {
  push = wrap(core.channel_push),
  pop = wrap(core.channel_pop),
  close = wrap(core.channel_close),
  len = wrap(core.channel_len),
}

--- Iterate over popped values until the channel is closed and drained (or a pop times
--- out, when `timeout` is given).
function Channel.iter(ch, timeout)
  local pop = Channel.pop
  return function()
    return (pop(ch, timeout))
  end
end

local Pool = {
  submit = wrap(core.pool_submit),
  map = wrap(core.pool_map),
  range = wrap(core.pool_range),
  close = wrap(core.pool_close),
  size = wrap(core.pool_size),
}

core.set_methods(Task, Channel, Pool)

return {
  version = core.version,
  cpus = core.cpus,
  spawn = wrap(core.spawn),
  check = core.check,
  pool = wrap(core.pool),
  map = wrap(core.map),
  range = wrap(core.range),
  channel = wrap(core.channel),
}
