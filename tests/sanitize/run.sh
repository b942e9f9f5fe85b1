#!/usr/bin/env bash
# The Rust test suites under ThreadSanitizer and AddressSanitizer, and the busted specs
# against an AddressSanitizer build of the Lua module (LuaJIT, Lua 5.4, Lua 5.1).
#
#   bash tests/sanitize/run.sh [tsan] [asan] [asan-lua]     (default: all three)
#
# Needs the nightly toolchain with rust-src (installed here when missing). Each part has its
# own target directory (target/tsan, target/asan, target/asan-module-<LUA>), so a sanitizer
# build never mixes with the normal one. Any sanitizer report fails the run.
#
# What runs, and what does not (and why):
# - TSan: the lib and integration tests of weft-core, weft-npy, weft-compute and weft-lua
#   (weft-npy: the .npy reader and writer, weft-core's file format until it moved): they are
#   where the threads are (channel, pool, task, cancel, shared tables, the codec handing Lua
#   values between states, the compute engine's worker threads). TSan needs every crate,
#   std included, built with -Zsanitizer=thread, hence -Zbuild-std. Not run under TSan:
#   weft-cli (its tests drive the `weft` binary as a subprocess; what that binary runs on
#   threads is the same weft-lua/weft-core code covered here, and a TSan build of the binary
#   would add minutes of build for no new code) and weft-ffi (its one Rust test checks the
#   generated header; its C, LuaJIT-FFI and Python tests live in crates/weft-ffi/tests/run.sh
#   and do not run under a sanitizer yet).
# - ASan: the same three crates. No -Zbuild-std: ASan finds bad accesses in instrumented
#   code and in every heap block (malloc is intercepted), and std's generic code is
#   instrumented where weft instantiates it. Not weft-cli: its unsafe code is
#   Lua::unsafe_new and the CPU-detection cache (src/cpu_detect.rs: one 16-byte store into
#   the buffer LuaJIT passes, unit-tested against LuaJIT's own function), and its tests
#   run, as a subprocess, code covered here and by the specs.
# - ASan Lua module: the busted specs under Debian's luajit, lua5.4 and lua5.1 with the module built
#   with -Zsanitizer=address. rustc links the ASan runtime into executables only, not into a
#   cdylib, and the interpreters are not instrumented, so the runtime is preloaded: gcc's
#   libasan.so (same runtime interface, __asan_version_mismatch_check_v8, as the nightly's
#   LLVM). Lua 5.1 too (Debian's lua5.1): the module has code paths of its own for it
#   (e.g. the decoder does not reuse tables there).
set -euo pipefail
# A panic prints its message only: symbolising a backtrace of a sanitizer build takes
# seconds, enough to trip the tests' generous deadlines on a loaded machine.
export RUST_BACKTRACE=0
cd "$(dirname "$0")/../.."
ROOT=$PWD

rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src' ||
  rustup component add --toolchain nightly rust-src 2>/dev/null ||
  rustup toolchain install nightly --profile minimal --component rust-src
HOST=$(rustc +nightly -vV | sed -n 's/^host: //p')

parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(tsan asan asan-lua)

# Crates whose tests run under both sanitizers. weft-lua without its `gpu` feature (as the
# ASan module below): weft-gpu is safe Rust over wgpu, and a GPU driver (Mesa's lavapipe,
# uninstrumented, with threads of its own) under TSan would report its own internals.
CRATES=(-p weft-core -p weft-npy -p weft-compute -p weft-lua --no-default-features --features weft-lua/luajit)

tsan() {
  echo "== ThreadSanitizer: ${CRATES[*]}"
  # halt_on_error: the first race fails the test binary (and so the run).
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$ROOT/tests/sanitize/tsan.supp" \
  RUSTFLAGS="-Zsanitizer=thread" RUSTDOCFLAGS="-Zsanitizer=thread" \
    cargo +nightly test -Zbuild-std --target "$HOST" --target-dir target/tsan \
      "${CRATES[@]}" --lib --tests --no-fail-fast
}

asan() {
  echo "== AddressSanitizer: ${CRATES[*]}"
  ASAN_OPTIONS="detect_leaks=1 halt_on_error=1 detect_stack_use_after_return=1" \
  RUSTFLAGS="-Zsanitizer=address" RUSTDOCFLAGS="-Zsanitizer=address" \
    cargo +nightly test --target "$HOST" --target-dir target/asan \
      "${CRATES[@]}" --lib --tests --no-fail-fast
}

asan_lua() {
  local libasan
  libasan=$(gcc -print-file-name=libasan.so)
  [ -f "$libasan" ] || { echo "sanitize: gcc's libasan.so is missing (apt-get install libasan8)" >&2; exit 1; }
  for lua in luajit lua5.4 lua5.1; do
    local feature=luajit
    [ "$lua" = lua5.4 ] && feature=lua54
    [ "$lua" = lua5.1 ] && feature=lua51
    echo "== AddressSanitizer: the busted specs under $lua"
    # Release, as `make module` builds it, with debug assertions on.
    RUSTFLAGS="-Zsanitizer=address -Cdebug-assertions=on" \
      cargo +nightly build --release -p weft-lua --no-default-features --features "$feature,module" \
        --target "$HOST" --target-dir "target/asan-module-$lua"
    mkdir -p "target/asan-lua/$lua"
    cp "target/asan-module-$lua/$HOST/release/libweft_lua.so" "target/asan-lua/$lua/weft.so"
    # The interpreters are not ASan builds: leaks are not checked (the interpreter's own
    # allocations at exit are not ours to judge, and a leak inside the module would show as
    # a growing heap in the memory specs instead).
    # A 64 MiB main-thread stack: the specs hold the module to 3000 levels of nesting on
    # every thread, and ASan's frames (a red zone around every local, no slot reuse) use
    # about 5 KiB a level, so 8 MiB stops at ~1450 levels, with the module's clean "more
    # than this thread's stack allows" error. Worker threads have 16 MiB of their own.
    ( ulimit -s 65536
      ASAN_OPTIONS="detect_leaks=0 halt_on_error=1" \
      LD_PRELOAD="$libasan" WEFT_LUA_MODULE_DIR="$ROOT/target/asan-lua" \
        bash tests/lua/run.sh "$lua" )
  done
}

for part in "${parts[@]}"; do
  case "$part" in
    tsan) tsan ;;
    asan) asan ;;
    asan-lua) asan_lua ;;
    *) echo "sanitize: unknown part '$part' (tsan, asan, asan-lua)" >&2; exit 2 ;;
  esac
done
echo "sanitize: ${parts[*]} clean"
