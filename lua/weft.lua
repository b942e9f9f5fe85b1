-- The Lua face of weft: thin wrappers over the Rust core (crates/weft-lua).
--
-- Rust binding functions never raise (an error raised from an mlua callback would reach
-- Lua as a userdata); they return FAIL, value, level on failure. `check` turns that into
-- an ordinary error: a string for usage errors, positioned at the caller (level 2; the
-- wrappers call `check` in tail position so level 2 is the user's frame), or the original
-- error value of a failed task (level 0: it already carries its traceback).
local core, FAIL = ...
local error, type = error, type

local function check(...)
  if ... == FAIL then
    local _, value, level = ...
    error(value, level)
  end
  return ...
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

-- push and pop are raw C functions taking the channel's address; the address is looked
-- up once per handle and cached here (weak keys: the cache never keeps a handle alive,
-- and the caller's own reference keeps it alive during the call).
local channel_ptr, raw_push, raw_pop = core.channel_ptr, core.raw_channel_push, core.raw_channel_pop
local addresses = setmetatable({}, { __mode = "k" })
-- `level` is the caller's frame as seen from here; `method` names the call in errors
-- (the usual mistake is `ch.push(v)`, which passes v as the channel).
local function address(ch, method, level)
  local p = addresses[ch]
  if p == nil then
    if type(ch) ~= "userdata" then
      error(("channel:%s: call with ':' (got a %s as the channel)"):format(method, type(ch)), level + 1)
    end
    local failed, why
    failed, why = channel_ptr(ch)
    if failed == FAIL then
      error(("channel:%s: %s"):format(method, why), level + 1)
    end
    p = failed
    addresses[ch] = p
  end
  return p
end

local Channel = {
  close = wrap(core.channel_close),
  len = wrap(core.channel_len),
}

function Channel.push(ch, v, timeout)
  return check(raw_push(address(ch, "push", 2), v, timeout))
end

function Channel.pop(ch, timeout)
  return check(raw_pop(address(ch, "pop", 2), timeout))
end

--- Iterate over popped values until the channel is closed and drained (or a pop times
--- out, when `timeout` is given).
function Channel.iter(ch, timeout)
  local pop = Channel.pop
  return function()
    return (pop(ch, timeout))
  end
end

-- LuaJIT: numbers and small flat tables ("rows": keys exactly 1..n, n <= core.ffi_row_max,
-- values numbers, strings or booleans, no metatable) take an FFI path that the JIT
-- compiles to direct calls (crates/weft-lua/src/fast/ffi_items.rs has the result codes);
-- anything else, or a timeout that is not a number, goes through the general functions
-- above. A row crosses as the same message the general encoder makes of it.
if core.ffi_push_number then
  local ffi = require "ffi"
  -- An anonymous struct, not ffi.cdef: this file may run twice in one state (a `require`
  -- cancelled half-way is retried), and a named struct cannot be declared twice.
  local cell_t = ffi.typeof("struct { double num; const char *str; size_t len; int32_t kind; }")
  local push_number = ffi.cast("int (*)(void *, double, double)", core.ffi_push_number)
  local push_row = ffi.cast(ffi.typeof("int (*)(void *, const $ *, int, double)", cell_t), core.ffi_push_row)
  local pop_item = ffi.cast(ffi.typeof("int (*)(void *, double, $ *, int32_t *)", cell_t), core.ffi_pop_item)
  local ROW_MAX = core.ffi_row_max
  local cells = ffi.new(ffi.typeof("$[?]", cell_t), ROW_MAX)
  local count = ffi.new("int32_t[1]")
  local forever = math.huge
  local ok_new, table_new = pcall(require, "table.new")
  if not ok_new then
    table_new = function() return {} end
  end
  local type, ffi_string = type, ffi.string
  -- The JIT cannot pass a light userdata as a C pointer; cache a cdata copy per handle.
  local cast, pointers = ffi.cast, setmetatable({}, { __mode = "k" })
  local function pointer(ch, method)
    local p = pointers[ch]
    if p == nil then
      p = cast("void *", address(ch, method, 3))
      pointers[ch] = p
    end
    return p
  end
  local general_push, general_pop = Channel.push, Channel.pop

  --- Describe value `x` in cell `c`; false when a row cannot hold it.
  local function fill(c, x)
    local t = type(x)
    if t == "number" then
      c.kind, c.num = 0, x
    elseif t == "string" then
      c.kind, c.str, c.len = 1, x, #x
    elseif t == "boolean" then
      c.kind, c.num = 2, x and 1 or 0
    else
      return false
    end
    return true
  end

  --- The value cell `c` describes (its string copied now: it points into the last row
  --- popped on this thread, valid only until the next pop).
  local function value(c)
    local kind = c.kind
    if kind == 0 then
      return c.num
    elseif kind == 1 then
      return ffi_string(c.str, c.len)
    end
    return c.num ~= 0
  end

  -- One straight-line checker and one builder per row length: LuaJIT cannot compile a
  -- short inner loop into the trace of the loop that pushes or pops (it aborts with
  -- "inner loop in root trace"), so the loops over keys and cells are unrolled here. Each
  -- is compiled on first use of its length: compiling all 16 on every load was ~40 % of
  -- what a spawned function that requires weft (or receives a handle) waited for.
  local checkers, builders = {}, {}

  local function new_checker(n)
    local check = { "local next, getmetatable, fill, cells = ...\nreturn function(v)",
      "  if getmetatable(v) ~= nil then return nil end\n  local k = nil" }
    for _ = 1, n do
      -- n keys in all, and 1..n all present: then the keys are exactly 1..n.
      check[#check + 1] = "  k = next(v, k)\n  if k == nil then return nil end"
    end
    check[#check + 1] = "  if next(v, k) ~= nil then return nil end"
    for i = 1, n do
      check[#check + 1] = ("  if not fill(cells[%d], v[%d]) then return nil end"):format(i - 1, i)
    end
    check[#check + 1] = ("  return %d\nend"):format(n)
    local f = assert(load(table.concat(check, "\n"), "=weft.row_check"))(next, getmetatable, fill, cells)
    checkers[n] = f
    return f
  end

  local function new_builder(n)
    local build = { "local table_new, value, cells = ...\nreturn function()",
      ("  local row = table_new(%d, 0)"):format(n) }
    for i = 1, n do
      build[#build + 1] = ("  row[%d] = value(cells[%d])"):format(i, i - 1)
    end
    build[#build + 1] = "  return row\nend"
    local f = assert(load(table.concat(build, "\n"), "=weft.row_build"))(table_new, value, cells)
    builders[n] = f
    return f
  end

  --- The length of `v` if it is a row, filling `cells`; nil otherwise.
  local function as_row(v)
    local n = #v
    if n < 1 or n > ROW_MAX then
      return nil
    end
    return (checkers[n] or new_checker(n))(v)
  end

  function Channel.push(ch, v, timeout)
    if timeout == nil or type(timeout) == "number" then
      local r
      local t = type(v)
      if t == "number" then
        r = push_number(pointer(ch, "push"), v, timeout or forever)
      elseif t == "table" then
        local n = as_row(v)
        if n then
          r = push_row(pointer(ch, "push"), cells, n, timeout or forever)
        end
      end
      if r == 0 then
        return true
      elseif r == 1 then
        return false, "timeout"
      elseif r == 2 then
        return false, "closed"
      elseif r == 3 then
        error("cancelled", 0)
      end
    end
    return general_push(ch, v, timeout)
  end

  function Channel.pop(ch, timeout)
    if timeout == nil or type(timeout) == "number" then
      local r = pop_item(pointer(ch, "pop"), timeout or forever, cells, count)
      if r == 0 then
        return cells[0].num
      elseif r == 5 then
        local n = count[0]
        return (builders[n] or new_builder(n))()
      elseif r == 1 then
        return nil, "timeout"
      elseif r == 2 then
        return nil, "closed"
      elseif r == 3 then
        error("cancelled", 0)
      end
    end
    return general_pop(ch, timeout)
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

-- weft.mpi: the ranks of an MPI job (crates/weft-lua/src/mpi.rs; ranks are 0-based). In a
-- weft built without the `mpi` feature it is still a table, whose every function raises
-- saying so, so a script fails at its first MPI call with the reason.
local mpi = {}
for _, name in ipairs({ "rank", "size", "send", "recv", "bcast", "gather", "allgather",
                        "reduce", "allreduce", "barrier" }) do
  local f = core["mpi_" .. name]
  mpi[name] = f and wrap(f) or function()
    error("weft.mpi." .. name .. ": this weft was built without MPI support (build with "
      .. "the cargo feature `mpi`; see docs/cluster.md)", 2)
  end
end

return {
  version = core.version,
  cpus = core.cpus,
  spawn = wrap(core.spawn),
  check = core.check,
  interruptible = core.interruptible,
  pool = wrap(core.pool),
  map = wrap(core.map),
  range = wrap(core.range),
  channel = wrap(core.channel),
  -- Shared data: raw C functions that raise their own errors (crates/weft-lua/src/rawud.rs).
  freeze = core.freeze,
  counter = core.counter,
  table = core.table,
  array = core.array,
  load_npy = core.load_npy,
  memory = core.memory,
  now = core.now,
  -- The compute engine (crates/weft-lua/src/compute.rs).
  similarity = core.similarity,
  topk = core.topk,
  diversity = core.diversity,
  diversity_cache = core.diversity_cache,
  open_cache = core.open_cache,
  devices = core.devices,
  read_jsonl = core.read_jsonl,
  mpi = mpi,
}
