-- `device = "cpu" | "gpu" | "auto"` in the compute options, and weft.devices().
-- With WEFT_REQUIRE_GPU=1 (make test) a missing adapter or a module built without the
-- `gpu` feature fails; elsewhere the GPU cases are pending with the reason.
local describe, it, assert, pending = describe, it, assert, pending
local _ENV = _G

local weft = require "weft"
local H = require "helpers"

local required = os.getenv("WEFT_REQUIRE_GPU") == "1"

-- 60 unit rows of 0 / ±0.5 in 8 dimensions (exact arithmetic, many ties), from a fixed
-- Park–Miller sequence (exact in doubles).
local function exact_rows()
  local n, d = 60, 8
  local a = weft.array("f32", n, d)
  local x = 7
  for i = 1, n do
    local used = {}
    local k = 0
    while k < 4 do
      x = (x * 16807) % 2147483647
      local j = x % d + 1
      if not used[j] then
        used[j] = true
        k = k + 1
        a:set(i, j, (math.floor(x / 256) % 2 == 0) and 0.5 or -0.5)
      end
    end
  end
  return a, n
end

-- Whether the GPU path can run here; otherwise the reason.
local function gpu_available()
  local list = weft.devices()
  if #list > 0 then return true end
  local ok, err = pcall(weft.similarity, weft.array("f32", 2, 2), { device = "gpu" })
  return false, ok and "no adapter listed" or err
end

local function same(a, b)
  local n, k = a:shape()
  for i = 1, n do
    for j = 1, (k or 1) do
      if a:get(i, j) ~= b:get(i, j) then return false, i, j end
    end
  end
  return true
end

describe("device option", function()
  it("refuses an unknown device, naming the option and the choices", function()
    local e = exact_rows()
    for _, call in ipairs {
      function() return weft.similarity(e, { device = "tpu" }) end,
      function() return weft.topk(e, 3, { device = "tpu" }) end,
      function() return weft.diversity(e, 1, { device = "tpu" }) end,
      function() return weft.diversity_cache(e, H.tmpname(".cache"), { device = "tpu" }) end,
    } do
      local err = H.err(call)
      assert.truthy(err:find('options.device must be "cpu", "gpu" or "auto" (got "tpu")', 1, true), err)
    end
    local err = H.err(weft.topk, e, 3, { device = 1 })
    assert.truthy(err:find("weft.topk: options.device must be", 1, true), err)
  end)

  it("runs on the CPU for device = cpu and auto without a real GPU", function()
    local e = exact_rows()
    local s_cpu = weft.similarity(e, { device = "cpu" })
    local s_default = weft.similarity(e)
    assert.truthy(same(s_cpu, s_default))
    local real = false
    for _, a in ipairs(weft.devices()) do real = real or a.type ~= "cpu" end
    if not real then
      local ids = weft.topk(e, 5, { device = "auto" })
      assert.truthy(same(ids, (weft.topk(e, 5, { device = "cpu" }))))
    end
  end)

  it("lists adapters with their type, limits and f64 support", function()
    local ok, why = gpu_available()
    if not ok then
      assert.is_false(required, "WEFT_REQUIRE_GPU=1 but: " .. tostring(why))
      return pending("no GPU here: " .. tostring(why))
    end
    for _, a in ipairs(weft.devices()) do
      assert.is_string(a.name)
      assert.is_string(a.backend)
      assert.truthy(({ discrete = 1, integrated = 1, virtual = 1, cpu = 1, other = 1 })[a.type], a.type)
      assert.truthy(a.max_storage_binding_size > 0 and a.max_buffer_size >= a.max_storage_binding_size)
      assert.truthy(a.max_workgroup_storage_size > 0)
      assert.is_boolean(a.f64)
    end
  end)

  it("device = gpu gives the CPU engine's similarity and top-k", function()
    local ok, why = gpu_available()
    if not ok then
      assert.is_false(required, "WEFT_REQUIRE_GPU=1 but: " .. tostring(why))
      return pending("no GPU here: " .. tostring(why))
    end
    local e, n = exact_rows()
    assert.truthy(same(weft.similarity(e, { device = "gpu" }), weft.similarity(e, { device = "cpu" })))
    for _, k in ipairs { 1, 6, n - 1 } do
      local ids_g, sc_g = weft.topk(e, k, { device = "gpu" })
      local ids_c, sc_c = weft.topk(e, k, { device = "cpu" })
      assert.truthy(same(ids_g, ids_c), "ids, k = " .. k)
      assert.truthy(same(sc_g, sc_c), "scores, k = " .. k)
    end
    -- Orderings and the cache: the CPU engine's, bit for bit.
    local g = weft.diversity(e, 3, { device = "gpu" })
    assert.truthy(same(g, weft.diversity(e, 3, { device = "cpu" })), "diversity")
    local pg = weft.diversity(e, { 1, 9 }, { device = "gpu", length = 20 })
    assert.truthy(same(pg, weft.diversity(e, { 1, 9 }, { device = "cpu", length = 20 })), "prefixes")
    local files = {}
    for _, device in ipairs { "gpu", "cpu" } do
      local path = H.tmpname(".cache")
      local info = weft.diversity_cache(e, path, { device = device })
      assert.is_true(info.complete)
      local f = assert(io.open(path, "rb"))
      files[device] = f:read("*a")
      f:close()
      os.remove(path)
    end
    assert.truthy(files.gpu == files.cpu, "the caches differ")
    -- Input errors read as on the CPU, 1-based.
    e:set(3, 2, 0 / 0)
    local err = H.err(weft.topk, e, 2, { device = "gpu" })
    assert.truthy(err:find("weft.topk: embeddings row 3", 1, true), err)
  end)
end)
