//! [`Message`] → Lua values on a state's stack.
//!
//! Decoding is iterative: every node is created first (tables empty, functions loaded),
//! kept in one scratch table, and only then filled, so cycles and deep nesting need no
//! recursion and each shared node is rebuilt exactly once.

use super::modules::push_module_value;
use super::raw::{pcall, push_bytes, push_named};
use super::CodecState;
use mlua::ffi;
use std::collections::HashMap;
use std::ffi::c_int;
use std::sync::Arc;
use weft_core::message::{Bytecode, Message, Node, TableNode, Value};

/// Materialised nodes of one message, ready for its values to be pushed.
pub struct Decoder<'m> {
    msg: &'m Message,
    /// Stack slot of the scratch table holding the nodes (0 when the message has none).
    objs: c_int,
    /// The cached task function this decode borrowed (see [`LoadCache`]).
    borrowed: Option<u64>,
}

impl<'m> Decoder<'m> {
    /// Create and fill every node of `msg`; leaves a scratch table on the stack when the
    /// message has nodes (removed by [`Decoder::finish`]).
    ///
    /// # Safety
    /// Must run on the thread owning `state`, inside a protected call.
    pub unsafe fn new(
        state: *mut ffi::lua_State,
        codec: &CodecState,
        msg: &'m Message,
    ) -> Result<Decoder<'m>, String> {
        // SAFETY: forwarded contract.
        unsafe { Self::build(state, codec, msg, None) }
    }

    /// Like [`Decoder::new`] for a task's call message: the function that is its first
    /// value may be the worker's cached copy (the caller must then
    /// [`LoadCache::release`] what [`Decoder::borrowed`] names once the call returns).
    ///
    /// # Safety
    /// As for [`Decoder::new`].
    pub unsafe fn for_task(
        state: *mut ffi::lua_State,
        codec: &CodecState,
        msg: &'m Message,
    ) -> Result<Decoder<'m>, String> {
        let task_node = match msg.values.first() {
            Some(Value::Node(n))
                if matches!(msg.nodes.get(*n as usize), Some(Node::Function(_))) =>
            {
                Some(*n)
            }
            _ => None,
        };
        // SAFETY: forwarded contract.
        unsafe { Self::build(state, codec, msg, task_node) }
    }

    /// The cached function borrowed by this decode, if any.
    pub fn borrowed(&self) -> Option<u64> {
        self.borrowed
    }

    unsafe fn build(
        state: *mut ffi::lua_State,
        codec: &CodecState,
        msg: &'m Message,
        task_node: Option<u32>,
    ) -> Result<Decoder<'m>, String> {
        // SAFETY: balanced stack work; the only calls that can fail run under pcall.
        unsafe {
            if msg.nodes.is_empty() {
                return Ok(Decoder {
                    msg,
                    objs: 0,
                    borrowed: None,
                });
            }
            if ffi::lua_checkstack(state, 8) == 0 {
                return Err("weft: out of Lua stack space".into());
            }
            ffi::lua_createtable(state, msg.nodes.len() as c_int, 0);
            let objs = ffi::lua_gettop(state);
            let mut decoder = Decoder {
                msg,
                objs,
                borrowed: None,
            };
            let mut loads = codec.loads.borrow_mut();
            for (i, node) in msg.nodes.iter().enumerate() {
                match node {
                    Node::Table(t) => ffi::lua_createtable(
                        state,
                        (t.numbers.len() + t.array.len()) as c_int,
                        t.hash.len() as c_int,
                    ),
                    Node::Function(f) => {
                        // A function given an environment is loaded anew: setfenv on a
                        // cached closure would leak that environment to later tasks.
                        let loaded = if task_node == Some(i as u32) && f.env.is_none() {
                            loads
                                .push_task_function(state, &f.code, f.upvalues.len())
                                .map(|b| decoder.borrowed = b)
                        } else {
                            load(state, &f.code)
                        };
                        if let Err(e) = loaded {
                            if let Some(hash) = decoder.borrowed.take() {
                                loads.release(hash);
                            }
                            ffi::lua_settop(state, objs - 1);
                            return Err(e);
                        }
                    }
                }
                ffi::lua_rawseti(state, objs, i as ffi::lua_Integer + 1);
            }
            drop(loads);
            for (i, node) in msg.nodes.iter().enumerate() {
                if let Err(e) = decoder.fill(state, i, node) {
                    ffi::lua_settop(state, objs - 1);
                    return Err(e);
                }
            }
            Ok(decoder)
        }
    }

    unsafe fn fill(&self, state: *mut ffi::lua_State, i: usize, node: &Node) -> Result<(), String> {
        // SAFETY: the node object is pushed, filled and popped; values pushed one at a time.
        unsafe {
            ffi::lua_rawgeti(state, self.objs, i as ffi::lua_Integer + 1);
            let target = ffi::lua_gettop(state);
            match node {
                Node::Table(t) => self.fill_table(state, target, t)?,
                Node::Function(f) => {
                    for (n, v) in f.upvalues.iter().enumerate() {
                        self.push(state, v)?;
                        if ffi::lua_setupvalue(state, target, n as c_int + 1).is_null() {
                            ffi::lua_pop(state, 1);
                        }
                    }
                    if let Some(env) = &f.env {
                        self.push(state, env)?;
                        set_environment(state, target);
                    }
                }
            }
            ffi::lua_settop(state, target - 1);
            Ok(())
        }
    }

    /// Store a table node's contents into the (empty) table at `target`.
    unsafe fn fill_table(
        &self,
        state: *mut ffi::lua_State,
        target: c_int,
        t: &TableNode,
    ) -> Result<(), String> {
        // SAFETY: values are pushed one at a time and stored into `target`.
        unsafe {
            fill_numbers(state, target, &t.numbers);
            let offset = t.numbers.len() as ffi::lua_Integer;
            for (j, v) in t.array.iter().enumerate() {
                self.push(state, v)?;
                ffi::lua_rawseti(state, target, offset + j as ffi::lua_Integer + 1);
            }
            for (k, v) in &t.hash {
                self.push(state, k)?;
                self.push(state, v)?;
                ffi::lua_rawset(state, target);
            }
        }
        Ok(())
    }

    /// Push one value of the message (a root value or anything inside it).
    ///
    /// # Safety
    /// Same state and protected context as [`Decoder::new`].
    pub unsafe fn push(&self, state: *mut ffi::lua_State, v: &Value) -> Result<(), String> {
        // SAFETY: each arm pushes exactly one value or returns an error with none pushed.
        unsafe {
            if ffi::lua_checkstack(state, 6) == 0 {
                return Err("weft: out of Lua stack space".into());
            }
            match v {
                Value::Node(n) => {
                    ffi::lua_rawgeti(state, self.objs, *n as ffi::lua_Integer + 1);
                }
                leaf => push_leaf(state, leaf)?,
            }
            Ok(())
        }
    }

    /// The message's root values.
    pub fn values(&self) -> &'m [Value] {
        &self.msg.values
    }

    /// Drop the scratch table, keeping everything pushed above it.
    ///
    /// # Safety
    /// Same state; nothing below the scratch table may have been popped.
    pub unsafe fn finish(self, state: *mut ffi::lua_State) {
        if self.objs != 0 {
            // SAFETY: objs is a valid slot holding the scratch table.
            unsafe { ffi::lua_remove(state, self.objs) };
        }
    }
}

/// Make the table on top of the stack (popped) the environment of the function at `f`.
#[cfg(not(feature = "lua54"))]
unsafe fn set_environment(state: *mut ffi::lua_State, f: c_int) {
    // SAFETY: `f` holds a freshly loaded Lua function and the top a table.
    unsafe {
        ffi::lua_setfenv(state, f);
    }
}

/// Lua 5.4 senders never set `env` (`_ENV` is an ordinary upvalue there).
#[cfg(feature = "lua54")]
unsafe fn set_environment(state: *mut ffi::lua_State, _: c_int) {
    // SAFETY: pops the value pushed by the caller.
    unsafe { ffi::lua_pop(state, 1) };
}

/// Push a value that is not a node: a scalar, a string, a module value or a handle.
///
/// # Safety
/// A valid state with 6 free slots, inside a protected call.
pub(crate) unsafe fn push_leaf(state: *mut ffi::lua_State, v: &Value) -> Result<(), String> {
    // SAFETY: forwarded contract; on success exactly 1 value(s) are left on top.
    unsafe { crate::stack::checked(state, 1, || push_leaf_unchecked(state, v)) }
}

/// [`push_leaf`] without its debug-build stack check.
unsafe fn push_leaf_unchecked(state: *mut ffi::lua_State, v: &Value) -> Result<(), String> {
    // SAFETY: each arm pushes exactly one value or returns an error with none pushed.
    unsafe {
        match v {
            Value::Nil => ffi::lua_pushnil(state),
            Value::Bool(b) => ffi::lua_pushboolean(state, *b as c_int),
            Value::Int(i) => ffi::lua_pushinteger(state, *i as ffi::lua_Integer),
            Value::Num(n) => ffi::lua_pushnumber(state, *n),
            Value::Str(s) => push_bytes(state, s),
            Value::ShortStr { len, bytes } => push_bytes(state, &bytes[..*len as usize]),
            Value::Node(_) => {
                return Err("weft: internal error: a node where a leaf was expected".into())
            }
            Value::Module(m) => {
                push_module_value(state, m, true).map_err(|e| format!("weft: {e}"))?
            }
            Value::Handle(h) => {
                if !crate::handles::push_handle(state, h)? {
                    push_named(state, c"weft.import");
                    super::stash_handle(h.clone());
                    pcall(state, 0, 1)
                        .map_err(|e| format!("weft: cannot receive a handle: {e}"))?;
                }
            }
        }
        Ok(())
    }
}

/// Store `numbers` at keys `1..` of the table at `target`: through the JIT-compiled
/// `weft.unpack_numbers` helper on LuaJIT, element by element otherwise.
unsafe fn fill_numbers(state: *mut ffi::lua_State, target: c_int, numbers: &[f64]) {
    if numbers.is_empty() {
        return;
    }
    // SAFETY: the helper only reads `numbers.len()` doubles from the pointer, under pcall.
    unsafe {
        if super::raw::push_helper(state, c"weft.unpack_numbers") {
            ffi::lua_pushvalue(state, target);
            ffi::lua_pushinteger(state, numbers.len() as ffi::lua_Integer);
            ffi::lua_pushlightuserdata(state, numbers.as_ptr() as *mut std::ffi::c_void);
            if pcall(state, 3, 0).is_ok() {
                return;
            }
        }
        for (i, n) in numbers.iter().enumerate() {
            ffi::lua_pushnumber(state, *n);
            ffi::lua_rawseti(state, target, i as ffi::lua_Integer + 1);
        }
    }
}

/// Push all root values of `msg`; returns how many.
///
/// # Safety
/// Must run on the thread owning `state`, inside a protected call.
pub unsafe fn push_all(
    state: *mut ffi::lua_State,
    codec: &CodecState,
    msg: &Message,
) -> Result<c_int, String> {
    // SAFETY: forwarded contract.
    unsafe {
        let check = crate::stack::StackCheck::new(state);
        let n = match push_flat_table(state, msg)? {
            Some(n) => n,
            None => push_values(state, codec, msg, false).map(|(n, _)| n)?,
        };
        check.expect(n);
        Ok(n)
    }
}

/// Push a task's call message (its function first, then arguments); returns how many
/// values were pushed and the cache key of the task function if it was borrowed from the
/// worker's cache (release it with [`LoadCache::release`] after the call).
///
/// # Safety
/// As for [`push_all`].
pub unsafe fn push_task(
    state: *mut ffi::lua_State,
    codec: &CodecState,
    msg: &Message,
) -> Result<(c_int, Option<u64>), String> {
    // SAFETY: forwarded contract.
    unsafe { push_values(state, codec, msg, true) }
}

unsafe fn push_values(
    state: *mut ffi::lua_State,
    codec: &CodecState,
    msg: &Message,
    task: bool,
) -> Result<(c_int, Option<u64>), String> {
    // SAFETY: on error the stack is restored and nothing stays borrowed.
    unsafe {
        let top = ffi::lua_gettop(state);
        if ffi::lua_checkstack(state, msg.values.len() as c_int + 8) == 0 {
            return Err(format!(
                "weft: too many values to receive ({})",
                msg.values.len()
            ));
        }
        let d = if task {
            Decoder::for_task(state, codec, msg)?
        } else {
            Decoder::new(state, codec, msg)?
        };
        let borrowed = d.borrowed();
        for v in &msg.values {
            if let Err(e) = d.push(state, v) {
                if let Some(h) = borrowed {
                    codec.loads.borrow_mut().release(h);
                }
                ffi::lua_settop(state, top);
                return Err(e);
            }
        }
        d.finish(state);
        Ok((msg.values.len() as c_int, borrowed))
    }
}

/// The common channel item: one table holding only scalars. Built directly, without the
/// scratch table that general messages need. `None` if `msg` is not of that shape.
unsafe fn push_flat_table(
    state: *mut ffi::lua_State,
    msg: &Message,
) -> Result<Option<c_int>, String> {
    let (Some(Value::Node(0)), 1, [Node::Table(t)]) =
        (msg.values.first(), msg.values.len(), msg.nodes.as_slice())
    else {
        return Ok(None);
    };
    let is_flat = |v: &Value| !matches!(v, Value::Node(_));
    if !t.array.iter().all(is_flat) || !t.hash.iter().all(|(k, v)| is_flat(k) && is_flat(v)) {
        return Ok(None);
    }
    let d = Decoder {
        msg,
        objs: 0,
        borrowed: None,
    };
    // SAFETY: same contract as push_all; `fill` of a node with no node references never
    // reads the (absent) scratch table.
    unsafe {
        ffi::lua_createtable(
            state,
            (t.numbers.len() + t.array.len()) as c_int,
            t.hash.len() as c_int,
        );
        let target = ffi::lua_gettop(state);
        d.fill_table(state, target, t)?;
    }
    Ok(Some(1))
}

/// Load a received function from its bytecode.
unsafe fn load(state: *mut ffi::lua_State, code: &Bytecode) -> Result<(), String> {
    // SAFETY: forwarded contract; on success exactly 1 value(s) are left on top.
    unsafe { crate::stack::checked(state, 1, || load_unchecked(state, code)) }
}

/// [`load`] without its debug-build stack check.
unsafe fn load_unchecked(state: *mut ffi::lua_State, code: &Bytecode) -> Result<(), String> {
    // SAFETY: loading binary chunks produced by lua_dump in this same process and Lua
    // flavour; an error message is popped.
    unsafe {
        let status = ffi::luaL_loadbufferx(
            state,
            code.bytes.as_ptr() as *const _,
            code.bytes.len(),
            c"=weft".as_ptr(),
            c"b".as_ptr(),
        );
        if status != ffi::LUA_OK {
            let msg = String::from_utf8_lossy(super::raw::str_bytes(state, -1)).into_owned();
            ffi::lua_pop(state, 1);
            return Err(format!("weft: cannot load a received function: {msg}"));
        }
        Ok(())
    }
}

#[cfg(feature = "luajit")]
extern "C-unwind" {
    // In LuaJIT 2.1's C API (from Lua 5.2), though not in mlua-sys's 5.1 declarations.
    fn lua_upvaluejoin(state: *mut ffi::lua_State, f1: c_int, n1: c_int, f2: c_int, n2: c_int);
}
#[cfg(feature = "lua54")]
use ffi::lua_upvaluejoin;

/// Lua 5.1 has no `lua_upvaluejoin`, so it cannot give a cached closure fresh upvalues:
/// there every task function is loaded anew. On LuaJIT only functions without upvalues
/// are reused: compiled traces may hold a closure's upvalue objects as constants, so
/// swapping them (rebinding or joining) under a reused closure left traces reading freed
/// upvalues (seen as crashes and wrong values in examples/nearest_fortunes.lua).
const CAN_REUSE: bool = cfg!(any(feature = "luajit", feature = "lua54"));

/// Give the function on top of the stack `n` new upvalue cells, so closures created by
/// an earlier run of it keep theirs.
#[cfg(any(feature = "luajit", feature = "lua54"))]
unsafe fn fresh_upvalues(state: *mut ffi::lua_State, n: usize) -> Result<(), String> {
    // SAFETY: the cell factory returns a closure with one fresh upvalue; joining makes the
    // function's upvalue i that cell. Balanced pushes and pops.
    unsafe {
        let f = ffi::lua_gettop(state);
        for i in 1..=n as c_int {
            push_named(state, c"weft.fresh_cell");
            pcall(state, 0, 1)?;
            lua_upvaluejoin(state, f, i, -1, 1);
            ffi::lua_pop(state, 1);
        }
        Ok(())
    }
}

#[cfg(not(any(feature = "luajit", feature = "lua54")))]
unsafe fn fresh_upvalues(_: *mut ffi::lua_State, _: usize) -> Result<(), String> {
    Ok(())
}

/// Task functions by bytecode, so a function submitted to a pool many times is loaded
/// once per worker. Only a task's own function is cached (on LuaJIT only one without
/// upvalues, see `CAN_REUSE`), it is handed out only while no running task uses it (a
/// nested task of the same code gets a fresh load), and on Lua 5.4 each reuse gets fresh
/// upvalue cells. What remains shared with the previous run is the closure's identity.
/// Everything else a message carries is loaded anew.
#[derive(Default)]
pub struct LoadCache {
    entries: HashMap<u64, Cached>,
    next_slot: ffi::lua_Integer,
}

struct Cached {
    code: Arc<Bytecode>,
    slot: ffi::lua_Integer,
    busy: bool,
}

const LOAD_CACHE_LIMIT: usize = 256;
const LOADED_FUNCTIONS: &std::ffi::CStr = c"weft.loaded_functions";

impl LoadCache {
    /// Push the task function for `code` (with `upvalues` upvalues); returns the cache key
    /// it borrowed, to [`LoadCache::release`] after the call.
    unsafe fn push_task_function(
        &mut self,
        state: *mut ffi::lua_State,
        code: &Arc<Bytecode>,
        upvalues: usize,
    ) -> Result<Option<u64>, String> {
        // SAFETY: registry table reads and writes are balanced.
        unsafe {
            if !CAN_REUSE || (cfg!(feature = "luajit") && upvalues > 0) {
                return load(state, code).map(|()| None);
            }
            if let Some(c) = self.entries.get_mut(&code.hash) {
                if !c.busy && (Arc::ptr_eq(&c.code, code) || c.code.bytes == code.bytes) {
                    push_named(state, LOADED_FUNCTIONS);
                    ffi::lua_rawgeti(state, -1, c.slot);
                    ffi::lua_remove(state, -2);
                    if ffi::lua_type(state, -1) == ffi::LUA_TFUNCTION {
                        fresh_upvalues(state, upvalues)?;
                        c.busy = true;
                        return Ok(Some(code.hash));
                    }
                    ffi::lua_pop(state, 1);
                }
            }
            load(state, code)?;
            if self.entries.contains_key(&code.hash) {
                return Ok(None);
            }
            if self.entries.len() >= LOAD_CACHE_LIMIT {
                self.entries.retain(|_, c| c.busy);
            }
            push_named(state, LOADED_FUNCTIONS);
            if ffi::lua_type(state, -1) != ffi::LUA_TTABLE {
                ffi::lua_pop(state, 1);
                ffi::lua_createtable(state, 16, 0);
                ffi::lua_pushvalue(state, -1);
                ffi::lua_setfield(state, ffi::LUA_REGISTRYINDEX, LOADED_FUNCTIONS.as_ptr());
            }
            self.next_slot += 1;
            ffi::lua_pushvalue(state, -2);
            ffi::lua_rawseti(state, -2, self.next_slot);
            ffi::lua_pop(state, 1);
            self.entries.insert(
                code.hash,
                Cached {
                    code: code.clone(),
                    slot: self.next_slot,
                    busy: true,
                },
            );
            Ok(Some(code.hash))
        }
    }

    /// The task that borrowed `hash` has returned; its function may be handed out again.
    pub fn release(&mut self, hash: u64) {
        if let Some(c) = self.entries.get_mut(&hash) {
            c.busy = false;
        }
    }
}
