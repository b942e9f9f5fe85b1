#!/usr/bin/env bash
# The C ABI from its three kinds of host (`make ffi-test`): builds libweft.so, then
#   - the C test program, compiled with cc against include/weft.h, and the C example;
#   - LuaJIT: the header through ffi.cdef, the library and the wrapper module, and the
#     wrapper's example script;
#   - Python ctypes (numpy from Debian's python3-numpy): the test and the example.
# The header check (include/weft.h is what cbindgen generates) is a cargo test of
# weft-ffi, run by `cargo test --workspace`.
set -euo pipefail
cd "$(dirname "$0")/../../.."
CARGO=${CARGO:-cargo}
$CARGO build --release -p weft-ffi
lib="$PWD/target/release"
out="$PWD/target/ffi-test"
mkdir -p "$out"
cflags=(-std=c11 -Wall -Wextra -Werror -O2 -Iinclude)
link=(-L"$lib" -lweft -Wl,-rpath,"$lib" -lm -pthread)

echo "== C"
cc "${cflags[@]}" crates/weft-ffi/tests/c/weft_test.c "${link[@]}" -o "$out/weft_test"
"$out/weft_test"
cc "${cflags[@]}" examples/ffi/fortunes.c "${link[@]}" -o "$out/fortunes"
"$out/fortunes" examples/data/emb.npy > /dev/null 2>&1 || "$out/fortunes" examples/data/emb.npy

echo "== LuaJIT FFI"
luajit crates/weft-ffi/tests/lua/ffi_test.lua
luajit examples/ffi/fortunes.lua > /dev/null 2>&1 || luajit examples/ffi/fortunes.lua

echo "== Python ctypes"
# Debian's python3 has numpy (install-deps); a python3 earlier on PATH may not.
python=python3
for p in python3 /usr/bin/python3; do
  if "$p" -c "import numpy" 2>/dev/null; then python=$p; break; fi
done
"$python" -m unittest crates/weft-ffi/tests/python/test_ctypes.py
"$python" examples/python/ctypes_weft.py > /dev/null 2>&1 || "$python" examples/python/ctypes_weft.py
echo "ffi-test: all passed"
