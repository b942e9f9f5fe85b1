# weft — build the Lua module, run every test.
#
#   make module LUA=luajit|lua5.4|lua5.1   -> target/lua/<LUA>/weft.so
#   make test                              everything CI runs (installs what it needs)
#   make sanitize                          TSan/ASan runs of the tests (.ci/run runs it after make test)

LUA ?= luajit
CARGO ?= cargo

feature_luajit := luajit
feature_lua5.4 := lua54
feature_lua5.1 := lua51
FEATURE = $(feature_$(LUA))
# The module's GPU backend (weft-gpu: device = "gpu" | "auto", weft.devices()); on by
# default like the CLI's. `make module GPU=` builds a CPU-only module.
GPU ?= ,gpu

.PHONY: module modules test deps rust-test miri lua-test example-test lint bench bench-smoke clean python-test mpi-test

module:
	@test -n "$(FEATURE)" || { echo "make module: LUA must be luajit, lua5.4 or lua5.1 (got '$(LUA)')" >&2; exit 2; }
	$(CARGO) build --release -p weft-lua --no-default-features --features $(FEATURE),module,mimalloc$(GPU) --target-dir target/module-$(LUA)
	mkdir -p target/lua/$(LUA)
	cp target/module-$(LUA)/release/libweft_lua.so target/lua/$(LUA)/weft.so

modules:
	$(MAKE) module LUA=luajit
	$(MAKE) module LUA=lua5.4
	$(MAKE) module LUA=lua5.1

deps:
	bash .ci/install-deps

rust-test:
	$(CARGO) test --workspace
	# the Lua binding without the GPU backend: `gpu` refused in one line, `auto` the CPU
	$(CARGO) test -p weft-lua --no-default-features --features luajit --lib device
	# the compute engine's tests on real data are skipped in debug builds (too slow there)
	$(CARGO) test --release -p weft-compute

# weft-core under Miri: the shared data (array element access, storage, frozen snapshots,
# keys, counters, shared tables) and the runtime (messages, channels, tasks, cancellation,
# the pool); tests too long for Miri run a smaller twin there (tests/channel_small.rs).
# weft-npy's unit tests (the header parser and float16 widening, on bytes in memory) all
# run there. Left out: files::, memory:: and weft-npy's tests/npy.rs (files, /proc and
# mmap, which Miri's isolation refuses), and the Lua-facing unsafe code, which calls into C
# (covered by the busted specs under three interpreters instead).
MIRI_MODULES = array:: frozen:: key:: counter:: shared_table:: message:: channel:: task:: \
	cancel:: pool:: handle:: deadline:: wire::
miri:
	rustup component add --toolchain nightly miri rust-src 2>/dev/null || \
		rustup toolchain install nightly --profile minimal --component miri,rust-src
	$(CARGO) +nightly miri test -p weft-core --lib --test channel_small -- $(MIRI_MODULES)
	$(CARGO) +nightly miri test -p weft-npy --lib

# Every SIMD kernel called directly against its scalar path (whatever the dispatcher would
# prefer here), each printing whether it ran. A path this CPU lacks is skipped with a
# SKIPPED line, unless WEFT_REQUIRE_ISA names it: then it fails. AVX2 is required
# everywhere; AVX-512 too wherever this CPU has what the AVX-512 kernels need (avx512f and
# avx512bw), so on such a machine a kernel the tests fail to reach is an error, not a skip.
CPU_HAS_AVX512 := $(shell grep -m1 -w avx512f /proc/cpuinfo 2>/dev/null | grep -qw avx512bw && echo yes)
WEFT_REQUIRE_ISA ?= avx2$(if $(CPU_HAS_AVX512),$(comma)avx512)
comma := ,
.PHONY: isa-test
isa-test:
	WEFT_REQUIRE_ISA=$(WEFT_REQUIRE_ISA) $(CARGO) test -q -p weft-compute --lib isa_ -- --nocapture --test-threads=1

# The Rust tests under ThreadSanitizer and AddressSanitizer, and the busted specs against an
# ASan build of the module under luajit, lua5.4, lua5.1 (nightly; what runs and why: the script's
# header). Own target dirs: target/tsan, target/asan, target/asan-module-<LUA>.
.PHONY: sanitize
sanitize:
	bash tests/sanitize/run.sh

lua-test: modules
	bash tests/lua/run.sh luajit
	bash tests/lua/run.sh lua5.4
	bash tests/lua/run.sh lua5.1
	bash tests/lua/rock.sh
	bash tests/lua/readme.sh

example-test:
	$(CARGO) run --release -q -- run examples/site/build.lua
	bash tests/site/check.sh
	$(CARGO) run --release -q -- run examples/nearest_fortunes.lua
	# 8 GB of arrays off the Lua heap (the machine CI runs on has 23 GB)
	$(CARGO) run --release -q -- run examples/big_arrays.lua 8
	bash examples/patterns/run_all.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p weft-lua --no-default-features --features lua54,module,gpu,mimalloc --target-dir target/module-lua5.4 -- -D warnings
	# the CPU-only build (--no-default-features: no weft-gpu, no wgpu) stays warning-free
	$(CARGO) clippy -p weft-cli --no-default-features -- -D warnings
	# weft.mpi (weft-lua's `mpi` feature is off in the workspace build)
	$(CARGO) clippy -p weft-cli --features mpi --all-targets -- -D warnings

# The API documentation builds without a warning (broken or private links, and with
# #![deny(missing_docs)] on the library crates, an undocumented public item). `make lint`
# checks the declared rust-version: clippy's incompatible_msrv (denied in Cargo.toml's
# [workspace.lints]) fails on any std item newer than it.
.PHONY: doc
doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps

# The GPU tests run on Mesa's lavapipe (installed by `make deps`); here a missing adapter
# fails them instead of skipping.
test: export WEFT_REQUIRE_GPU = 1
test: deps lint doc rust-test mpi-test isa-test miri loom lua-test example-test mpi-lua-test ffi-test python-test bench-smoke

# weft built with MPI (`--features mpi`, Open MPI from .ci/install-deps) under real
# `mpirun -n 1..3` on this machine (crates/weft-cli/tests/mpi.rs); crates/weft-mpi's own
# mpirun tests run in rust-test.
mpi-test:
	$(CARGO) test -p weft-cli --features mpi --test mpi

# weft.mpi (tests/mpi/run.sh): the weft binary and the LuaJIT module built with the `mpi`
# feature (the module into target/lua-mpi, beside the plain one), run under mpirun with 1,
# 2 and 3 ranks. The module shares target/module-luajit (only weft-lua and MPI rebuild).
.PHONY: mpi-lua-test
mpi-lua-test:
	$(MAKE) module LUA=luajit
	$(CARGO) build --release -p weft-lua --no-default-features --features luajit,module,mimalloc$(GPU),mpi --target-dir target/module-luajit
	mkdir -p target/lua-mpi/luajit
	cp target/module-luajit/release/libweft_lua.so target/lua-mpi/luajit/weft.so
	$(CARGO) build --release -p weft-cli --features mpi
	bash tests/mpi/run.sh

# The channel's no-lost-wake-up argument (crates/weft-core/src/channel/README.md) model-
# checked by loom: every interleaving with up to LOOM_MAX_PREEMPTIONS preemptions. Its own
# target dir, since --cfg loom would otherwise rebuild the normal one.
.PHONY: loom
LOOM_MAX_PREEMPTIONS ?= 2
loom:
	LOOM_MAX_PREEMPTIONS=$(LOOM_MAX_PREEMPTIONS) RUSTFLAGS="--cfg loom" \
		$(CARGO) test -p weft-core --release --lib --target-dir target/loom -- loom_

# libweft (the C ABI): the C test program and example compiled with cc against
# include/weft.h, the LuaJIT FFI test and example, the Python ctypes test and example.
.PHONY: ffi-test
ffi-test:
	CARGO="$(CARGO)" bash crates/weft-ffi/tests/run.sh

# The Python package (python/, distribution weft-embed, imported as weft): built into a
# fresh venv the way the README installs it, linted (its own cargo workspace), then its
# pytest suite (an exit of 5, nothing collected, fails too) and the examples.
PYVENV = target/python-venv
python-test:
	rm -rf $(PYVENV)
	python3 -m venv $(PYVENV)
	$(PYVENV)/bin/pip install -q maturin numpy pytest hypothesis
	CARGO_TARGET_DIR=$(CURDIR)/target/python $(PYVENV)/bin/pip install ./python
	cd python && $(CARGO) fmt -- --check
	cd python && PYO3_PYTHON=$(CURDIR)/$(PYVENV)/bin/python $(CARGO) clippy --release --all-targets --target-dir ../target/python -- -D warnings
	cd python && ../$(PYVENV)/bin/python -m pytest -q tests
	$(PYVENV)/bin/python examples/python/fortunes.py > /dev/null
	$(PYVENV)/bin/python examples/python/threads.py --quick > /dev/null

LUAJIT_CPATH = LUA_CPATH="$(CURDIR)/target/lua/luajit/?.so;;"

# The benchmark tables of BENCHMARKS.md, measured here (LuaJIT module).
bench:
	$(MAKE) module LUA=luajit
	$(LUAJIT_CPATH) luajit bench/runtime.lua
	$(LUAJIT_CPATH) luajit bench/parallel.lua
	$(LUAJIT_CPATH) luajit bench/shared.lua
	$(CARGO) run --release -q -p weft-cli -- bench --emb ../shared/data/fortunes/emb.npy

# Each benchmark once, small: they check their own results, so this catches a broken one.
bench-smoke:
	$(MAKE) module LUA=luajit
	$(LUAJIT_CPATH) luajit bench/runtime.lua --quick > /dev/null
	$(LUAJIT_CPATH) luajit bench/parallel.lua 1 2e6 > /dev/null
	$(LUAJIT_CPATH) luajit bench/shared.lua --quick > /dev/null
	$(LUAJIT_CPATH) luajit bench/spawn_loop.lua 3 100 > /dev/null
	$(CARGO) run --release -q -p weft-cli -- bench --quick > /dev/null

clean:
	$(CARGO) clean
