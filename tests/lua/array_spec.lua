-- Off-heap arrays: element access, views, crossing by reference, .npy files, bad input.
local describe, it, assert = describe, it, assert
local _ENV = _G -- functions sent to threads must see the real globals, not busted's env

local weft = require "weft"
local H = require "helpers"

local DTYPES = { "f32", "f64", "i32", "i64", "u8", "u16", "u32" }

local function tmpname(suffix)
  local p = os.tmpname()
  os.remove(p)
  return p .. suffix
end

describe("weft.array", function()
  it("is zero-filled, typed and bounds-checked for every dtype", function()
    for _, d in ipairs(DTYPES) do
      local a = weft.array(d, 5)
      assert.equal(d, a:dtype())
      assert.equal(5, #a)
      assert.equal(5, a:shape())
      for i = 1, 5 do assert.equal(0, a[i]) end
      a[5] = 7
      assert.equal(7, a[5])
      assert.equal(7, a:get(5))
      assert.matches("index 6 out of range %(array has 5 elements%)", H.err(function() return a[6] end))
      assert.matches("index 0 out of range", H.err(function() a[0] = 1 end))
    end
  end)

  it("keeps f32 precision, integer ranges and refuses what does not fit", function()
    local f = weft.array("f32", 1)
    f[1] = 0.1
    assert.is_true(f[1] ~= 0.1 and math.abs(f[1] - 0.1) < 1e-8, "rounded to float32")
    local u = weft.array("u8", 2)
    u[1] = 255
    assert.equal(255, u[1])
    assert.matches("256 does not fit in u8", H.err(function() u[1] = 256 end))
    assert.matches("%-1 does not fit in u8", H.err(function() u[2] = -1 end))
    assert.matches("1.5 does not fit in i32", H.err(function() weft.array("i32", 1)[1] = 1.5 end))
    assert.matches("array elements are numbers %(got string%)", H.err(function() u[1] = "x" end))
    assert.matches("array index must be an integer %(got 1.5%)", H.err(function() return u[1.5] end))
    if H.lua54 then
      local i = weft.array("i64", 1)
      i[1] = math.maxinteger
      assert.equal(math.maxinteger, i[1])
      assert.equal("integer", math.type(i[1]))
      assert.equal("float", math.type(weft.array("f64", 1)[1]))
    end
  end)

  it("is 2-D with get/set(i, j), rows as views and shape()", function()
    local a = weft.array("f64", 3, 4)
    local rows, cols = a:shape()
    assert.equal(3, rows)
    assert.equal(4, cols)
    assert.equal(3, #a)
    a:set(2, 3, 1.5)
    assert.equal(1.5, a:get(2, 3))
    local row = a[2]
    assert.equal(4, #row)
    assert.equal(1.5, row[3])
    row[4] = 9
    assert.equal(9, a:get(2, 4))
    assert.matches("index 5 out of range %(array has 4 columns%)", H.err(a.get, a, 1, 5))
    assert.matches("index 4 out of range %(array has 3 rows%)", H.err(a.set, a, 4, 1, 0))
    assert.matches("a%[i%] = v needs a 1%-D array", H.err(function() a[1] = 0 end))
    assert.same({ { 0, 0, 0, 0 }, { 0, 0, 1.5, 9 }, { 0, 0, 0, 0 } }, a:totable())
  end)

  it("slices rows as views sharing memory", function()
    local a = weft.array("i32", 10)
    local s = a:slice(3, 5)
    assert.equal(3, #s)
    s[1] = 42
    assert.equal(42, a[3])
    local m = weft.array("u16", 6, 2)
    local ms = m:slice(5, 6)
    ms:set(2, 2, 65535)
    assert.equal(65535, m:get(6, 2))
    assert.equal(0, #a:slice(4, 3), "an empty slice")
    assert.matches("slice 0..2 out of range %(array has 10 rows%)", H.err(a.slice, a, 0, 2))
    assert.matches("slice 5..11 out of range", H.err(a.slice, a, 5, 11))
    assert.matches("slice 7..5 out of range", H.err(a.slice, a, 7, 5))
  end)

  it("refuses unknown dtypes and bad sizes, and fails cleanly when memory runs out", function()
    assert.matches("unknown dtype 'f16' %(expected one of: f32 f64 i32 i64 u8 u16 u32%)",
      H.err(weft.array, "f16", 3))
    assert.matches("dtype must be a string %(got number%)", H.err(weft.array, 3, 3))
    assert.matches("rows must not be negative %(got %-1%)", H.err(weft.array, "f32", -1))
    assert.matches("rows must be an integer %(got 2.5%)", H.err(weft.array, "f32", 2.5))
    assert.matches("cols must not be negative", H.err(weft.array, "f32", 2, -3))
    assert.matches("cannot allocate %d+ bytes %(out of memory%)", H.err(weft.array, "u8", 2 ^ 52))
    assert.matches("too large to address", H.err(weft.array, "f64", 2 ^ 40, 2 ^ 30))
  end)

  it("frees on request; using a freed array is an error, not a crash", function()
    collectgarbage() -- else the new array's collector step may free earlier tests' arrays
    local before = weft.memory()
    local a = weft.array("f64", 1000000)
    assert.is_true(weft.memory() >= before + 8e6)
    local view = a:slice(1, 10)
    a:free()
    assert.matches("this weft.array was freed", H.err(function() return a[1] end))
    assert.matches("this weft.array was freed", H.err(a.shape, a))
    a:free() -- twice is harmless
    assert.equal(0, view[1], "another view keeps the memory")
    view:free()
    assert.is_true(weft.memory() <= before + 1e6)
    assert.matches("a:get: expected a weft.array %(got number%)", H.err(a.get, 5, 1))
    -- methods called on something else never read it as an array
    local m = weft.array("f64", 2, 2)
    assert.matches("a:get: expected a weft.array %(got string%)", H.err(m.get, "xxxxxxxxxxxxxxxx", 1, 1))
    assert.matches("a:set: expected a weft.array %(got userdata%)", H.err(m.set, weft.counter(), 1, 1, 1))
    assert.matches("a:get: expected a weft.array %(got table%)", H.err(m.get, {}, 1))
  end)

  it("reports freed memory kept for reuse as weft.memory()'s third value", function()
    collectgarbage()
    local bytes = 3 * 1048576 + 5 * 4096 -- a size no other test allocates
    local a = weft.array("u8", bytes)
    a[bytes] = 1
    local owned, _, kept = weft.memory()
    a:free()
    local owned_after, _, kept_after = weft.memory()
    assert.equal(owned - bytes, owned_after, "no longer allocated")
    assert.is_true(kept_after >= bytes and kept_after <= 64 * 1048576, "kept, within its bound")
    local again = weft.array("u8", bytes) -- takes the kept mapping back, cleared
    local _, _, kept_again = weft.memory()
    assert.equal(kept_after - bytes, kept_again)
    assert.equal(0, again[bytes])
    again:free()
  end)

  it("lives outside the Lua heap", function()
    collectgarbage()
    local heap = collectgarbage("count")
    local a = weft.array("f64", 16 * 1024 * 1024) -- 128 MiB
    a[#a] = 1
    collectgarbage()
    assert.is_true(collectgarbage("count") - heap < 64, "the Lua heap grew by less than 64 KiB")
    assert.is_true(weft.memory() >= 128 * 1024 * 1024)
    a:free()
  end)

  it("paces the collector by array memory, so dead arrays do not pile up", function()
    collectgarbage()
    local base, peak = weft.memory(), 0
    for i = 1, 400 do
      local a = weft.array("f32", 1000000) -- 4 MB, dead after this iteration
      a[1] = i
      peak = math.max(peak, weft.memory() - base)
    end
    -- 400 arrays are 1.6 GB; the Lua heap grows by a few KB, so unpaced most stay alive
    assert.is_true(peak < 200e6, string.format("%.0f MB of arrays alive at the peak", peak / 1e6))
    -- a stopped collector stays stopped (Lua 5.1 cannot tell weft it is stopped)
    if jit or _VERSION ~= "Lua 5.1" then
      collectgarbage()
      base = weft.memory()
      collectgarbage("stop")
      for _ = 1, 40 do weft.array("f32", 1000000) end
      local alive = weft.memory() - base
      collectgarbage("restart")
      collectgarbage()
      assert.is_true(alive >= 40 * 4e6, string.format("only %.0f MB alive while stopped", alive / 1e6))
      assert.is_true(weft.memory() - base < 4e6)
    end
  end)
end)

describe("arrays across threads", function()
  it("cross by reference: a thread's writes are seen by the caller", function()
    local a = weft.array("f64", 100)
    weft.spawn(function(arr)
      for i = 1, #arr do arr[i] = i * 2 end
    end, a):join(10)
    assert.equal(200, a[100])
    local ch = weft.channel()
    ch:push(a:slice(10, 20))
    local got = ch:pop(1)
    got[1] = -1
    assert.equal(-1, a[10])
    local made = weft.spawn(function() local b = weft.array("u32", 3); b[3] = 33; return b end):join(10)
    assert.equal(33, made[3])
  end)

  it("pool:range workers fill disjoint slices of one array", function()
    local n = 10007
    local a = weft.array("f64", n)
    local pool = weft.pool { size = 2 }
    pool:range(n, function(first, last)
      for i = first, last do a[i] = i * i end
    end, { chunk = 1000 })
    pool:close()
    local ok = true
    for i = 1, n do ok = ok and a[i] == i * i end
    assert.is_true(ok)
  end)
end)

describe("a:ptr()", function()
  if not H.jit then
    it("is a light userdata address outside LuaJIT", function()
      assert.equal("userdata", type(weft.array("f32", 2):ptr()))
    end)
    return
  end
  local ffi = require "ffi"

  it("is a typed, 0-based FFI pointer into the same memory", function()
    for _, d in ipairs(DTYPES) do
      local a = weft.array(d, 4)
      local p = a:ptr()
      assert.equal("cdata", type(p))
      p[3] = 9
      assert.equal(9, a[4])
      a[1] = 5
      assert.equal(5, tonumber(p[0]))
    end
    assert.is_true(ffi.istype("float *", weft.array("f32", 1):ptr()))
    assert.is_true(ffi.istype("uint16_t *", weft.array("u16", 1):ptr()))
  end)

  it("gives FFI-speed loops in workers too", function()
    local a = weft.array("f32", 1000)
    local p = a:ptr()
    for i = 0, 999 do p[i] = i end
    local sum = weft.spawn(function(arr)
      local q, s = arr:ptr(), 0
      for i = 0, #arr - 1 do s = s + q[i] end
      return s
    end, a):join(10)
    assert.equal(999 * 1000 / 2, sum)
  end)
end)

describe(".npy files", function()
  it("round-trip every dtype, 1-D and 2-D, read into memory or mapped", function()
    for _, d in ipairs(DTYPES) do
      local a = weft.array(d, 3, 2)
      a:set(1, 1, 1); a:set(3, 2, 100)
      local path = tmpname(".npy")
      a:save_npy(path)
      for _, opts in ipairs({ {}, { mmap = true } }) do
        local b = weft.load_npy(path, opts)
        assert.equal(d, b:dtype())
        local r, c = b:shape()
        assert.equal(3, r); assert.equal(2, c)
        assert.same(a:totable(), b:totable())
      end
      os.remove(path)
    end
    local v = weft.array("f64", 4)
    v[4] = 0.5
    local path = tmpname(".npy")
    v:save_npy(path)
    local w = weft.load_npy(path)
    assert.equal(4, w:shape())
    assert.equal(0.5, w[4])
    os.remove(path)
  end)

  it("maps read-only: writes through a mapped array are refused", function()
    local a = weft.array("f32", 8)
    local path = tmpname(".npy")
    a:save_npy(path)
    local m = weft.load_npy(path, { mmap = true })
    assert.matches("array is read%-only %(mapped from .*%.npy%)", H.err(function() m[1] = 1 end))
    if H.jit then
      assert.is_true(require("ffi").istype("const float *", m:ptr()))
    end
    local before_owned, before_mapped = weft.memory()
    assert.is_true(before_mapped >= 8 * 4)
    m:free()
    os.remove(path)
  end)

  it("reads the shipped fortunes embeddings (examples/data)", function()
    local path = "examples/data/emb.npy"
    local e = weft.load_npy(path, { mmap = true })
    local rows, cols = e:shape()
    assert.equal(2000, rows)
    assert.equal(384, cols)
    local norm = 0
    for j = 1, cols do norm = norm + e:get(1, j) ^ 2 end
    assert.is_true(math.abs(norm - 1) < 1e-3, "MiniLM rows are unit vectors")
  end)

  it("refuses missing, corrupt and truncated files with the path and the problem", function()
    assert.matches("weft.load_npy: .*/no/such/file.npy", H.err(weft.load_npy, "/no/such/file.npy"))
    local bad = tmpname(".npy")
    local f = io.open(bad, "wb"); f:write("not numpy at all"); f:close()
    assert.matches("not a .npy file", H.err(weft.load_npy, bad))
    -- a valid file cut short in its data
    local a = weft.array("f64", 100)
    a:save_npy(bad)
    f = io.open(bad, "rb"); local bytes = f:read("*a"); f:close()
    f = io.open(bad, "wb"); f:write(bytes:sub(1, #bytes - 8)); f:close()
    assert.matches("bytes", H.err(weft.load_npy, bad))
    assert.matches("bytes", H.err(weft.load_npy, bad, { mmap = true }))
    os.remove(bad)
    assert.matches("a:save_npy: .*/no/such/dir/x.npy", H.err(a.save_npy, a, "/no/such/dir/x.npy"))
    assert.matches("path must be a string %(got no value%)", H.err(a.save_npy, a))
  end)
end)
