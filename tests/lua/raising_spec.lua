-- Tables whose metamethods raise (Penlight's `strict`, proxies) passed to every weft
-- function that takes a table: each call either works or fails with a string error that
-- pcall catches; the process never dies. (Before the fix, LuaJIT aborted with "Rust
-- cannot catch foreign exceptions" and PUC Lua longjmp'd over Rust frames.)
local weft = require "weft"
local H = require "helpers"

local METAMETHODS = {
  "__index", "__newindex", "__len", "__pairs", "__ipairs", "__tostring", "__call",
  "__eq", "__lt", "__le", "__concat", "__unm", "__add",
}

--- A table every metamethod of which raises.
local function raising()
  local mt = {}
  for _, name in ipairs(METAMETHODS) do
    mt[name] = function() error("raising " .. name, 2) end
  end
  return setmetatable({}, mt)
end

--- Penlight-style strict table: reading a missing field raises.
local function strict(fields)
  return setmetatable(fields or {}, {
    __index = function(_, k) error("strict: no field " .. tostring(k), 2) end,
  })
end

--- A table whose metatable's own metatable raises on any read (so reading a metafield
--- through the metatable's metamethods would raise).
local function meta_raising()
  local meta = setmetatable({}, {
    __index = function(_, k) error("meta-meta " .. tostring(k), 2) end,
  })
  return setmetatable({}, meta)
end

--- An error object whose __tostring raises too.
local function raising_error_object()
  return setmetatable({}, {
    __index = function()
      error(setmetatable({}, { __tostring = function() error("tostring of the error") end }))
    end,
  })
end

local function embeddings()
  local a = weft.array("f32", 4, 3)
  local v = { { 1, 0, 0 }, { 0, 1, 0 }, { 0, 0, 1 }, { 1, 1, 0 } }
  for i = 1, 4 do
    for j = 1, 3 do a:set(i, j, v[i][j]) end
  end
  return a
end

--- pcall `f`: it must either succeed or fail with a string.
local function survives(f, ...)
  local ok, e = pcall(f, ...)
  if not ok then
    assert.is_string(e, "the error is not a string: " .. tostring(type(e)))
  end
  return ok, e
end

describe("options tables are read through their metamethods", function()
  local emb, dir, npy, jsonl
  setup(function()
    emb = embeddings()
    npy = H.tmpname(".npy")
    emb:save_npy(npy)
    jsonl = H.tmpname(".jsonl")
    H.write(jsonl, '{"a": 1}\n{"b": "two"}\n')
    dir = H.tmpname(".cache")
  end)
  teardown(function()
    H.remove(npy, jsonl, dir)
  end)

  local calls = {
    { "weft.similarity", "threads", function(o) return weft.similarity(emb, o) end },
    { "weft.topk", "threads", function(o) return weft.topk(emb, 2, o) end },
    { "weft.diversity", "threads", function(o) return weft.diversity(emb, 1, o) end },
    { "weft.diversity_cache", "threads",
      function(o) return weft.diversity_cache(emb, dir, o) end },
    { "weft.load_npy", "mmap", function(o) return weft.load_npy(npy, o) end },
    { "weft.read_jsonl", "frozen", function(o) return weft.read_jsonl(jsonl, o) end },
  }

  for _, c in ipairs(calls) do
    local name, field, call = c[1], c[2], c[3]

    it(name .. ": a raising __index is the call's error, naming the option", function()
      local ok, e = pcall(call, strict())
      assert.is_false(ok)
      assert.is_string(e)
      assert.matches(name .. ": options." .. field .. ": ", e, 1, true)
      assert.matches("strict: no field " .. field, e, 1, true)
    end)

    it(name .. ": a table whose every metamethod raises fails cleanly", function()
      local ok, e = pcall(call, raising())
      assert.is_false(ok)
      assert.matches("raising __index", e, 1, true)
    end)

    it(name .. ": an error object that cannot be printed is still reported", function()
      local ok, e = pcall(call, raising_error_object())
      assert.is_false(ok)
      assert.matches("error object is a table value", e, 1, true)
    end)
  end

  it("a proxy's __index is honoured (the option takes effect)", function()
    local bad = setmetatable({}, { __index = function(_, k)
      if k == "threads" then return "many" end
    end })
    local ok, e = pcall(weft.topk, emb, 2, bad)
    assert.is_false(ok)
    assert.matches("threads must be a positive integer (got string)", e, 1, true)
    local ids = weft.topk(emb, 2, setmetatable({}, { __index = { threads = 1 } }))
    assert.equal(4, #ids)
    local a = weft.read_jsonl(jsonl, setmetatable({}, { __index = { frozen = true } }))
    assert.equal("weft.frozen", getmetatable(a))
  end)
end)

describe("tables with raising metatables as data", function()
  local emb
  setup(function() emb = embeddings() end)

  local kinds = { raising = raising, strict = strict, meta_raising = meta_raising }
  for kind, make in pairs(kinds) do
    describe("(" .. kind .. ")", function()
      it("weft.freeze refuses it with a string error", function()
        local ok, e = survives(weft.freeze, make())
        assert.is_false(ok)
        assert.matches("weft.freeze", e, 1, true)
      end)

      it("a shared table refuses it as a value and as a key", function()
        local s = weft.table()
        assert.is_false((survives(function() s.x = make() end)))
        assert.is_false((survives(function() s[make()] = 1 end)))
        survives(function() return s[make()] end)
        assert.is_false((survives(function() return s:add(make(), 1) end)))
      end)

      it("channel:push refuses it; spawn refuses it as an argument", function()
        local ch = weft.channel()
        assert.is_false((survives(function() return ch:push(make()) end)))
        assert.is_false((survives(function() return weft.spawn(function() end, make()) end)))
        assert.is_false((survives(function() return weft.spawn(make()) end)))
      end)

      it("weft.pool and map/range options survive it", function()
        survives(function() return weft.pool(make()) end)
        local pool = weft.pool { size = 1 }
        survives(function() return pool:map(function(x) return x end, { 1, 2 }, make()) end)
        survives(function() return pool:range(2, function() end, make()) end)
        survives(function() return pool:map(function(x) return x end, make()) end)
        pool:close()
      end)

      it("array, compute and cache arguments survive it", function()
        survives(weft.array, make(), 2)
        survives(weft.array, "f32", make())
        local a = weft.array("f64", 3)
        survives(function() return a[make()] end)
        survives(function() a[make()] = 1 end)
        survives(function() a[1] = make() end)
        survives(a.get, a, make())
        survives(a.slice, a, make(), 2)
        survives(a.save_npy, a, make())
        survives(weft.similarity, make())
        survives(weft.topk, emb, make())
        survives(weft.diversity, emb, make())
        survives(weft.diversity_cache, emb, make())
        survives(weft.open_cache, make())
        survives(weft.load_npy, make())
        survives(weft.read_jsonl, make())
        survives(weft.counter, make())
        local f = weft.freeze { 1, 2, x = 3 }
        survives(function() return f[make()] end)
      end)
    end)
  end
end)

describe("pool options and items through metamethods", function()
  it("a raising pool or map/range options table is a one-line error", function()
    local ok, e = pcall(weft.pool, strict())
    assert.is_false(ok)
    assert.matches("strict: no field size", e, 1, true)
    assert.is_nil(e:find("\n"), "expected one line, got: " .. e)
    local pool = weft.pool { size = 1 }
    for _, call in ipairs {
      function() return pool:map(function(x) return x end, { 1, 2 }, strict()) end,
      function() return pool:range(2, function() end, strict()) end,
    } do
      ok, e = pcall(call)
      assert.is_false(ok)
      assert.matches("strict: no field chunk", e, 1, true)
      assert.is_nil(e:find("\n"), "expected one line, got: " .. e)
    end
    pool:close()
  end)

  it("map reads a proxy's items as #items and items[i] do", function()
    local proxy = setmetatable({}, {
      __len = function() return 3 end,
      __index = function(_, i) return i * 10 end,
    })
    local pool = weft.pool { size = 1 }
    local out = pool:map(function(x) return x + 1 end, proxy)
    pool:close()
    assert.are.same({ 11, 21, 31 }, out)
  end)
end)

describe("a raising options table in a child interpreter", function()
  it("does not kill the process (pcall catches it)", function()
    local npy = H.tmpname(".npy")
    local jsonl = H.tmpname(".jsonl")
    weft.array("f32", 3, 2):save_npy(npy)
    H.write(jsonl, "{}\n")
    local rc, out = H.run_script(string.format([[
      local weft = require "weft"
      local strict = setmetatable({}, { __index = function(_, k) error("strict: " .. k) end })
      local emb = weft.load_npy(%q)
      print(pcall(weft.topk, emb, 2, strict))
      print(pcall(weft.load_npy, %q, strict))
      print(pcall(weft.read_jsonl, %q, strict))
      print("survived")
    ]], npy, npy, jsonl))
    H.remove(npy, jsonl)
    assert.equal(0, rc, out)
    assert.matches("survived", out, 1, true)
    assert.matches("options.threads", out, 1, true)
    assert.matches("options.mmap", out, 1, true)
    assert.matches("options.frozen", out, 1, true)
  end)
end)

describe("errors of raw functions", function()
  it("are positioned at the Lua caller's line", function()
    local a = weft.array("f32", 2)
    local ok, e = pcall(function()
      local x = a[5]
      return x
    end)
    assert.is_false(ok)
    assert.matches("^[^:]*raising_spec%.lua:%d+: weft: index 5 out of range", e)
    ok, e = pcall(function()
      local ids = weft.topk(a, 2, strict())
      return ids
    end)
    assert.is_false(ok)
    assert.matches("^[^:]*raising_spec%.lua:%d+: weft%.topk: ", e)
  end)
end)

describe("tostring of a freed handle", function()
  it("prints the kind and that it was freed", function()
    local a = weft.array("f32", 2)
    a:free()
    assert.equal("weft.array (freed)", tostring(a))
    local ok, e = pcall(a.get, a, 1)
    assert.is_false(ok)
    assert.matches("freed", e, 1, true)
  end)
end)

describe("a NaN key of a shared table", function()
  it("says NaN cannot be a key", function()
    local s = weft.table()
    local ok, e = pcall(function() s[0 / 0] = 1 end)
    assert.is_false(ok)
    assert.matches("must not be NaN", e, 1, true)
    ok, e = pcall(s.add, s, 0 / 0, 1)
    assert.is_false(ok)
    assert.matches("must not be NaN", e, 1, true)
    assert.is_nil(s[0 / 0])
  end)
end)
