-- Gigabytes of numbers off the Lua heap: arrays totalling 8 GB (by default), filled and
-- summed through LuaJIT FFI pointers, while the Lua heap stays at a few hundred KB.
--
--   cargo run --release -- run examples/big_arrays.lua [GB]
--
-- What people usually get wrong: holding big numeric data in Lua tables. Each number
-- costs 16 bytes there (8 in LuaJIT's array part, plus the table's own growth), every
-- full GC cycle walks it, and non-GC64 LuaJIT builds cap the whole heap at 2 GB. A
-- weft.array holds 4 bytes per f32 in memory Rust owns; the GC sees one small userdata.
local weft = require "weft"

local GB = tonumber(arg[1]) or 8
local CHUNK = 2 ^ 28 -- f32 elements per array: 1 GiB
local total = math.floor(GB * 2 ^ 30 / 4)

collectgarbage()
local heap0 = collectgarbage("count")
local mem0 = weft.memory()
local t0 = os.time()

-- allocate here; fill and sum in a pool, one task per array, through the arrays' pointers
local pool = weft.pool { size = weft.cpus() }
local arrays, futures, filled = {}, {}, 0
while filled < total do
  local n = math.min(CHUNK, total - filled)
  local a = weft.array("f32", n)
  arrays[#arrays + 1] = a
  futures[#futures + 1] = pool:submit(function(arr, first)
    local p, s = arr:ptr(), 0
    for i = 0, #arr - 1 do p[i] = (first + i) % 7 end -- small integers: exact in f32
    for i = 0, #arr - 1 do s = s + p[i] end
    return s
  end, a, filled)
  filled = filled + n
end
local sum = 0
for _, f in ipairs(futures) do sum = sum + f:join() end
pool:close()

-- the expected sum of (i % 7) for i = 0 .. total-1
local full, rest = math.floor(total / 7), total % 7
local want = full * 21 + rest * (rest - 1) / 2

local held = weft.memory() - mem0
collectgarbage()
local heap_growth_kb = collectgarbage("count") - heap0
print(string.format("%d arrays, %.2f GB of f32 held by weft (weft.memory()), sum %.0f (expected %.0f)",
  #arrays, held / 1e9, sum, want))
print(string.format("Lua heap grew by %.0f KB; about %d s", heap_growth_kb, os.time() - t0))

assert(sum == want, "the sum of every element is exact")
assert(held >= total * 4, "weft.memory() counts every byte")
assert(heap_growth_kb < 1024, "the Lua heap stays small")
for _, a in ipairs(arrays) do a:free() end
assert(weft.memory() - mem0 < 2 ^ 20, "freeing returns the memory")
print("ok")
