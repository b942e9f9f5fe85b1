//! weft-lua: the `weft` Lua module.
//!
//! Built two ways from the same code: as a loadable `weft.so` for Debian's `luajit`,
//! `lua5.4` or `lua5.1` (feature `module` plus one flavour feature; see the Makefile), and
//! as a library the `weft` CLI embeds with a vendored LuaJIT (feature `vendored`).
//!
//! - [`codec`]: Lua values ⇄ `weft_core::Message`, on the raw C API.
//! - `runtime`: per-state data (`StateData`: `state_data` for raw code, `data_of` for
//!   mlua code) and the error convention (binding functions return failures;
//!   `lua/weft.lua` raises them as plain Lua errors). `setup`: the registry entries a
//!   state needs, written with the C API.
//! - `worker_state`: worker threads' states, built with the C API, mlua attached only on
//!   first need; `worker`: running one call (or a `map` chunk) in them; `spawner`: the
//!   parked threads behind `weft.spawn`; `ready_states`: the fresh states they take,
//!   built ahead on a background thread; `interrupt`: how cancellation reaches running
//!   Lua code.
//! - `tasks`, `pools`, `channels`: the API functions; `fast`: the hot channel paths as raw
//!   C functions and LuaJIT FFI entry points.
//! - `handles`: every `Handle` ⇄ userdata mapping: the mlua userdata of tasks, channels
//!   and pools, and the raw userdata of the shared-data kinds when the codec receives one.
//! - `rawud`: raw-C-API userdata whose reads cost tens of nanoseconds (the `RawType` trait,
//!   the checked slot, `guard`/`protect` for raising safely). It knows no kind: each kind
//!   implements `RawType`.
//! - The shared-data kinds, each a `RawType`: `frozen` (frozen tables), `arrays` (off-heap
//!   arrays and their `.npy` files, through weft-npy), `counters`, `shared_tables`;
//!   `jit_reads`: LuaJIT's FFI path for array and frozen-table reads.
//! - `compute`: the compute engine (weft-compute) on arrays; `progress`: its progress bar.
//! - `jsonl`: JSON Lines files read in Rust, as Lua tables or a frozen table.
//! - `mpi` (feature `mpi`): `weft.mpi`, values between the ranks of an MPI job, as bytes
//!   (`weft_core::wire`) over weft-mpi's world communicator.
//!
//! # Module graph
//!
//! Arrows point from a module to what it uses; lower layers never name higher ones.
//!
//! ```text
//! lib (open) ──► tasks, pools, channels, compute, jsonl, fast, worker, spawner
//!                  (worker, spawner ──► ready_states ──► worker_state ──► setup)
//!                  │
//!                  ▼
//! handles ───────► frozen, arrays, counters, shared_tables, jit_reads   (the kinds)
//!   ▲                  │
//!   │                  ▼
//! codec::decode      rawud ──► codec (encoder, raw strings), stack
//!   (a received handle)
//! runtime ◄── every raw binding (state_data, fail_mark)
//! ```
//!
//! `rawud` is a leaf among the kinds: it names none of them, they build on it. The one
//! loop left is by design: the codec turns a received handle into its kind's userdata
//! (through `handles`), and the kinds that hold values (frozen and shared tables) use the
//! codec to push those values; a shared table can hold a frozen table and the other way
//! round, so each side must reach the other. `jit_reads` and `arrays`/`frozen` name each
//! other (the FFI read path is registered with the metatables it reads).
//!
//! Positions and ids Lua sees are 1-based; nothing in this crate exposes a 0-based index.
//! MPI ranks (`weft.mpi`) are 0-based as MPI numbers them: a rank names a process, it is
//! not a position (`gather` puts rank r's value at index r + 1).
#![deny(missing_docs)]

// The module's allocator (feature `mimalloc`, set by `make module`): Lua tables made by a
// producer and messages freed by their consumer cross threads on every channel item, which
// glibc's per-thread arenas serve with locks; mimalloc frees across threads without one.
#[cfg(all(feature = "module", feature = "mimalloc"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod arrays;
mod channels;
pub mod codec;
mod compute;
mod counters;
pub mod device;
mod fast;
mod frozen;
mod gc_pace;
mod handles;
mod interrupt;
#[cfg(feature = "luajit")]
mod jit_reads;
mod jsonl;
#[cfg(feature = "mpi")]
mod mpi;
mod pools;
mod progress;
mod rawud;
mod ready_states;
mod runtime;
mod setup;
mod shared_tables;
mod spawner;
mod stack;
mod tasks;
pub mod worker;
pub mod worker_state;

use mlua::{Lua, Table};
use runtime::{export, fail_mark};

/// The version string Lua sees as `weft.version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Copy `values` out of `lua` into a [`weft_core::Message`] that any thread can own,
/// with the same rules as every weft crossing (errors name the refused value's path).
pub fn encode_values(lua: &Lua, values: mlua::MultiValue) -> Result<weft_core::Message, String> {
    setup::prepare_state(lua).map_err(|e| e.to_string())?;
    runtime::encode(lua, values, codec::Label::Argument, 1).map_err(runtime::Raise::into_text)
}

/// Rebuild a message's values in `lua` (which must have run [`open`]).
pub fn decode_values(lua: &Lua, msg: &weft_core::Message) -> Result<mlua::MultiValue, String> {
    runtime::decode(lua, msg).map_err(runtime::Raise::into_text)
}

/// Build (once per state) and return the `weft` module table, noting that Lua code in
/// this state used weft (`StateData::used_weft`).
pub fn open(lua: &Lua) -> mlua::Result<Table> {
    let module = module(lua)?;
    runtime::data_of(lua).used_weft.set(true);
    Ok(module)
}

/// Build (once per state) and return the `weft` module table, without noting a use: what
/// a spawn thread calls to build a state's module ahead (`WorkerState::open_weft`).
pub(crate) fn module(lua: &Lua) -> mlua::Result<Table> {
    if let Ok(Some(module)) = lua.named_registry_value::<Option<Table>>("weft.module") {
        return Ok(module);
    }
    setup::prepare_state(lua)?;
    let core = lua.create_table()?;
    core.set("version", VERSION)?;
    core.set("cpus", export(lua, "weft.cpus", |_, ()| Ok(pools::cpus()))?)?;
    core.set("spawn", export(lua, "weft.spawn", tasks::spawn)?)?;
    // SAFETY: `check` follows the lua_CFunction contract and raises only with no Rust
    // destructor pending.
    core.set("check", unsafe { lua.create_c_function(tasks::check)? })?;
    // SAFETY: a lua_CFunction that never raises.
    core.set("interruptible", unsafe {
        lua.create_c_function(interrupt::set_interruptible)?
    })?;
    core.set("task_join", export(lua, "join", tasks::join)?)?;
    core.set("task_wait", export(lua, "wait", tasks::wait)?)?;
    core.set("task_status", export(lua, "status", tasks::status)?)?;
    core.set("task_cancel", export(lua, "cancel", tasks::cancel)?)?;
    core.set(
        "channel",
        export(lua, "weft.channel", channels::new_channel)?,
    )?;
    core.set("channel_ptr", export(lua, "channel", channels::pointer)?)?;
    // SAFETY: both follow the lua_CFunction contract and never raise (see `fast`).
    unsafe {
        core.set(
            "raw_channel_push",
            lua.create_c_function(fast::channel_push)?,
        )?;
        core.set("raw_channel_pop", lua.create_c_function(fast::channel_pop)?)?;
    }
    #[cfg(feature = "luajit")]
    {
        use fast::ffi_items;
        use mlua::LightUserData;
        let address = |f: *const ()| LightUserData(f as *mut std::ffi::c_void);
        core.set(
            "ffi_push_number",
            address(ffi_items::push_number as *const ()),
        )?;
        core.set("ffi_push_row", address(ffi_items::push_row as *const ()))?;
        core.set("ffi_pop_item", address(ffi_items::pop_item as *const ()))?;
        core.set("ffi_row_max", ffi_items::ROW_MAX)?;
    }
    core.set(
        "channel_close",
        export(lua, "channel:close", channels::close)?,
    )?;
    core.set("channel_len", export(lua, "channel:len", channels::len)?)?;
    // SAFETY: raw functions following the `rawud::guard` convention.
    unsafe {
        core.set("freeze", lua.create_c_function(frozen::freeze)?)?;
        core.set("counter", lua.create_c_function(counters::new_counter)?)?;
        core.set("table", lua.create_c_function(shared_tables::new_table)?)?;
        core.set("array", lua.create_c_function(arrays::new_array)?)?;
        core.set("load_npy", lua.create_c_function(arrays::load_npy)?)?;
        core.set("memory", lua.create_c_function(arrays::memory)?)?;
        core.set("now", lua.create_c_function(now)?)?;
        core.set("similarity", lua.create_c_function(compute::similarity)?)?;
        core.set("topk", lua.create_c_function(compute::topk)?)?;
        core.set("diversity", lua.create_c_function(compute::diversity)?)?;
        core.set(
            "diversity_cache",
            lua.create_c_function(compute::diversity_cache)?,
        )?;
        core.set("open_cache", lua.create_c_function(compute::open_cache)?)?;
        core.set("read_jsonl", lua.create_c_function(jsonl::read_jsonl)?)?;
    }
    #[cfg(feature = "mpi")]
    {
        core.set("mpi_rank", export(lua, "weft.mpi.rank", mpi::rank)?)?;
        core.set("mpi_size", export(lua, "weft.mpi.size", mpi::size)?)?;
        core.set("mpi_send", export(lua, "weft.mpi.send", mpi::send)?)?;
        core.set("mpi_recv", export(lua, "weft.mpi.recv", mpi::recv)?)?;
        core.set("mpi_bcast", export(lua, "weft.mpi.bcast", mpi::bcast)?)?;
        core.set("mpi_gather", export(lua, "weft.mpi.gather", mpi::gather)?)?;
        core.set(
            "mpi_allgather",
            export(lua, "weft.mpi.allgather", mpi::allgather)?,
        )?;
        core.set("mpi_reduce", export(lua, "weft.mpi.reduce", mpi::reduce)?)?;
        core.set(
            "mpi_allreduce",
            export(lua, "weft.mpi.allreduce", mpi::allreduce)?,
        )?;
        core.set(
            "mpi_barrier",
            export(lua, "weft.mpi.barrier", mpi::barrier)?,
        )?;
    }
    core.set("devices", lua.create_function(device::devices)?)?;
    core.set("pool", export(lua, "weft.pool", pools::new_pool)?)?;
    core.set("pool_submit", export(lua, "pool:submit", pools::submit)?)?;
    core.set("pool_map", export(lua, "pool:map", pools::map)?)?;
    core.set("pool_range", export(lua, "pool:range", pools::range)?)?;
    core.set("pool_close", export(lua, "pool:close", pools::close)?)?;
    core.set("pool_size", export(lua, "pool:size", pools::size)?)?;
    core.set("map", export(lua, "weft.map", pools::default_map)?)?;
    core.set("range", export(lua, "weft.range", pools::default_range)?)?;
    core.set(
        "set_methods",
        lua.create_function(|lua, (task, channel, pool): (Table, Table, Table)| {
            lua.set_named_registry_value("weft.methods.task", task)?;
            lua.set_named_registry_value("weft.methods.channel", channel)?;
            lua.set_named_registry_value("weft.methods.pool", pool)
        })?,
    )?;
    static PRELUDE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let prelude = setup::load_cached(
        lua,
        &PRELUDE,
        c"=weft.lua",
        include_str!("../../../lua/weft.lua"),
    )?;
    let module: Table = prelude.call((core, fail_mark()))?;
    lua.set_named_registry_value("weft.module", &module)?;
    Ok(module)
}

/// `weft.now()`: seconds on a monotonic wall clock, for timing (`os.clock` counts the CPU
/// time of every thread of the process, which says little once work runs in parallel).
unsafe extern "C-unwind" fn now(state: *mut mlua::ffi::lua_State) -> std::ffi::c_int {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let origin = *START.get_or_init(std::time::Instant::now);
    // SAFETY: pushes one number on a valid state.
    unsafe { mlua::ffi::lua_pushnumber(state, origin.elapsed().as_secs_f64()) };
    1
}

/// Keep this shared object mapped until the process exits. The host interpreter unloads
/// C modules when its state closes, but weft's worker threads may still be running code
/// from this library at that moment (a script may end with threads still running).
#[cfg(feature = "module")]
fn pin_library() {
    static PINNED: std::sync::Once = std::sync::Once::new();
    PINNED.call_once(|| {
        // SAFETY: dladdr only reads loader tables for an address inside this library;
        // dlopen with RTLD_NOLOAD finds the already-loaded object and RTLD_NODELETE marks
        // it never to be unloaded. The handle is intentionally leaked.
        unsafe {
            let mut info: libc::Dl_info = std::mem::zeroed();
            if libc::dladdr(pin_library as *const libc::c_void, &mut info) != 0
                && !info.dli_fname.is_null()
            {
                libc::dlopen(
                    info.dli_fname,
                    libc::RTLD_NOW | libc::RTLD_NOLOAD | libc::RTLD_NODELETE,
                );
            }
        }
    });
}

/// `require "weft"` in a host interpreter.
#[cfg(feature = "module")]
#[mlua::lua_module(skip_memory_check)]
fn weft(lua: &Lua) -> mlua::Result<Table> {
    pin_library();
    open(lua)
}
