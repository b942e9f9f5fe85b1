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
use weft_core::message::{Bytecode, Message, Node, Value};

/// Materialised nodes of one message, ready for its values to be pushed.
pub struct Decoder<'m> {
    msg: &'m Message,
    /// Stack slot of the scratch table holding the nodes (0 when the message has none).
    objs: c_int,
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
        // SAFETY: balanced stack work; the only calls that can fail run under pcall.
        unsafe {
            if msg.nodes.is_empty() {
                return Ok(Decoder { msg, objs: 0 });
            }
            if ffi::lua_checkstack(state, 8) == 0 {
                return Err("weft: out of Lua stack space".into());
            }
            ffi::lua_createtable(state, msg.nodes.len() as c_int, 0);
            let objs = ffi::lua_gettop(state);
            let decoder = Decoder { msg, objs };
            let mut loads = codec.loads.borrow_mut();
            loads.begin();
            for (i, node) in msg.nodes.iter().enumerate() {
                match node {
                    Node::Table(t) => ffi::lua_createtable(
                        state,
                        (t.numbers.len() + t.array.len()) as c_int,
                        t.hash.len() as c_int,
                    ),
                    Node::Function(f) => {
                        if let Err(e) = loads.push_function(state, &f.code) {
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
                Node::Table(t) => {
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
                Node::Function(f) => {
                    for (n, v) in f.upvalues.iter().enumerate() {
                        self.push(state, v)?;
                        if ffi::lua_setupvalue(state, target, n as c_int + 1).is_null() {
                            ffi::lua_pop(state, 1);
                        }
                    }
                }
            }
            ffi::lua_settop(state, target - 1);
            Ok(())
        }
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
                Value::Nil => ffi::lua_pushnil(state),
                Value::Bool(b) => ffi::lua_pushboolean(state, *b as c_int),
                Value::Int(i) => ffi::lua_pushinteger(state, *i as ffi::lua_Integer),
                Value::Num(n) => ffi::lua_pushnumber(state, *n),
                Value::Str(s) => push_bytes(state, s),
                Value::Node(n) => {
                    ffi::lua_rawgeti(state, self.objs, *n as ffi::lua_Integer + 1);
                }
                Value::Module(m) => {
                    push_module_value(state, m, true).map_err(|e| format!("weft: {e}"))?
                }
                Value::Handle(h) => {
                    push_named(state, c"weft.import");
                    super::stash_handle(h.clone());
                    pcall(state, 0, 1)
                        .map_err(|e| format!("weft: cannot receive a handle: {e}"))?;
                }
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

/// Store `numbers` at keys `1..` of the table at `target`: through the JIT-compiled
/// `weft.unpack_numbers` helper on LuaJIT, element by element otherwise.
unsafe fn fill_numbers(state: *mut ffi::lua_State, target: c_int, numbers: &[f64]) {
    if numbers.is_empty() {
        return;
    }
    // SAFETY: the helper only reads `numbers.len()` doubles from the pointer, under pcall.
    unsafe {
        push_named(state, c"weft.unpack_numbers");
        if ffi::lua_type(state, -1) == ffi::LUA_TFUNCTION {
            ffi::lua_pushvalue(state, target);
            ffi::lua_pushinteger(state, numbers.len() as ffi::lua_Integer);
            ffi::lua_pushlightuserdata(state, numbers.as_ptr() as *mut std::ffi::c_void);
            if pcall(state, 3, 0).is_ok() {
                return;
            }
        } else {
            ffi::lua_pop(state, 1);
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
    // SAFETY: forwarded contract; on error the stack is restored.
    unsafe {
        let top = ffi::lua_gettop(state);
        if ffi::lua_checkstack(state, msg.values.len() as c_int + 8) == 0 {
            return Err(format!(
                "weft: too many values to receive ({})",
                msg.values.len()
            ));
        }
        if let Some(n) = push_flat_table(state, msg)? {
            return Ok(n);
        }
        let d = Decoder::new(state, codec, msg)?;
        for v in &msg.values {
            if let Err(e) = d.push(state, v) {
                ffi::lua_settop(state, top);
                return Err(e);
            }
        }
        d.finish(state);
        Ok(msg.values.len() as c_int)
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
    let d = Decoder { msg, objs: 0 };
    // SAFETY: same contract as push_all; `fill` of a node with no node references never
    // reads the (absent) scratch table.
    unsafe {
        ffi::lua_createtable(
            state,
            (t.numbers.len() + t.array.len()) as c_int,
            t.hash.len() as c_int,
        );
        let target = ffi::lua_gettop(state);
        fill_numbers(state, target, &t.numbers);
        let offset = t.numbers.len() as ffi::lua_Integer;
        for (j, v) in t.array.iter().enumerate() {
            d.push(state, v)?;
            ffi::lua_rawseti(state, target, offset + j as ffi::lua_Integer + 1);
        }
        for (k, v) in &t.hash {
            d.push(state, k)?;
            d.push(state, v)?;
            ffi::lua_rawset(state, target);
        }
    }
    Ok(Some(1))
}

/// Loaded functions by bytecode, so a function received many times (a pool task
/// submitted in a loop) is loaded once per state. A cached closure is handed out at most
/// once per message, so two distinct closures of the same code in one message stay
/// distinct; receiving it again rebinds its upvalues to the new values.
#[derive(Default)]
pub struct LoadCache {
    entries: HashMap<u64, Cached>,
    epoch: u64,
    next_slot: ffi::lua_Integer,
}

struct Cached {
    code: Arc<Bytecode>,
    slot: ffi::lua_Integer,
    used_in: u64,
}

const LOAD_CACHE_LIMIT: usize = 256;
const LOADED_FUNCTIONS: &std::ffi::CStr = c"weft.loaded_functions";

impl LoadCache {
    fn begin(&mut self) {
        self.epoch += 1;
    }

    unsafe fn push_function(
        &mut self,
        state: *mut ffi::lua_State,
        code: &Arc<Bytecode>,
    ) -> Result<(), String> {
        // SAFETY: registry table reads and writes are balanced; loading binary chunks
        // produced by lua_dump in this same process and Lua flavour.
        unsafe {
            let epoch = self.epoch;
            if let Some(c) = self.entries.get_mut(&code.hash) {
                if c.used_in != epoch && (Arc::ptr_eq(&c.code, code) || c.code.bytes == code.bytes)
                {
                    c.used_in = epoch;
                    push_named(state, LOADED_FUNCTIONS);
                    ffi::lua_rawgeti(state, -1, c.slot);
                    ffi::lua_remove(state, -2);
                    if ffi::lua_type(state, -1) == ffi::LUA_TFUNCTION {
                        return Ok(());
                    }
                    ffi::lua_pop(state, 1);
                }
            }
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
            if self.entries.contains_key(&code.hash) {
                return Ok(());
            }
            if self.entries.len() >= LOAD_CACHE_LIMIT {
                self.entries.clear();
                ffi::lua_pushnil(state);
                ffi::lua_setfield(state, ffi::LUA_REGISTRYINDEX, LOADED_FUNCTIONS.as_ptr());
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
                    used_in: epoch,
                },
            );
            Ok(())
        }
    }

    /// Number of distinct functions loaded and cached (for tests).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
