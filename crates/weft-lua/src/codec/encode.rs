//! Lua stack values → [`Message`].

use super::path::{render, Segment};
use super::raw::str_bytes;
use super::CodecState;
use mlua::ffi;
use rustc_hash::FxHashMap as HashMap;
use std::ffi::{c_int, c_void};
use std::sync::Arc;
use weft_core::message::SmallVec;
use weft_core::message::{
    Bytecode, FunctionNode, Message, ModuleRef, Node, Sequence, TableNode, Value,
};

/// Deeper nesting than this is refused. The encoder recurses once per level (a few
/// hundred bytes of native stack, and up to 2 Lua stack slots, where Lua 5.1 and LuaJIT
/// allow 8000 per call), so the limit fits worker threads (16 MiB stacks) and a main
/// thread (8 MiB); `stack_left` refuses earlier on a thread with a smaller stack.
pub const MAX_DEPTH: u32 = 3000;

/// Native stack kept free below the encoder: Lua helpers and export callbacks it calls
/// run on the same stack.
const STACK_RESERVE: usize = 256 * 1024;

thread_local! {
    /// The calling thread's stack as (lowest address, size); (0, 0): unknown.
    static STACK: std::cell::Cell<Option<(usize, usize)>> = const { std::cell::Cell::new(None) };
}

/// The calling thread's stack as (lowest address, size), or (0, 0) when it cannot be had.
fn stack_bounds() -> (usize, usize) {
    // SAFETY: pthread_getattr_np fills a zeroed attr for the calling thread, which is
    // destroyed after reading its stack bounds.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return (0, 0);
        }
        let mut addr = std::ptr::null_mut();
        let mut size = 0;
        let ok = libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0;
        libc::pthread_attr_destroy(&mut attr);
        if ok {
            (addr as usize, size)
        } else {
            (0, 0)
        }
    }
}

/// The machine stack pointer of the caller (near enough: within this function's frame).
///
/// Not a local's address: AddressSanitizer with `detect_stack_use_after_return` puts locals
/// in a heap "fake stack", which made every value look too deep (depth 1) in an ASan build.
#[inline(always)]
fn stack_pointer() -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        let sp: usize;
        // SAFETY: reads the stack pointer register into a local; no memory is touched.
        unsafe {
            std::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags))
        };
        sp
    }
    #[cfg(target_arch = "aarch64")]
    {
        let sp: usize;
        // SAFETY: reads the stack pointer register into a local; no memory is touched.
        unsafe {
            std::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags))
        };
        sp
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let here = 0u8;
        std::ptr::addr_of!(here) as usize
    }
}

/// Bytes of native stack left below the caller's frame, if the thread's stack is known.
fn stack_left() -> Option<usize> {
    let (low, size) = STACK.with(|c| match c.get() {
        Some(bounds) => bounds,
        None => {
            let bounds = stack_bounds();
            c.set(Some(bounds));
            bounds
        }
    });
    let sp = stack_pointer();
    (low != 0 && sp >= low && sp - low <= size).then(|| sp - low)
}

/// What the root values are, for error messages ("argument 2", "result 1", "item 7").
#[derive(Clone, Copy, Debug)]
pub enum Label {
    /// A call's argument.
    Argument,
    /// A task's result.
    Result,
    /// An element of a `map` list.
    Item,
    /// A value pushed into a channel.
    Value,
    /// A task's error value.
    Error,
}

impl Label {
    fn noun(self) -> &'static str {
        match self {
            Label::Argument => "argument",
            Label::Result => "result",
            Label::Item => "item",
            Label::Value => "value",
            Label::Error => "error value",
        }
    }
}

enum Fail {
    Refused {
        reason: String,
        path: Vec<Segment>,
    },
    /// A by-name-only value missed the module index; rebuild it and retry once.
    Stale,
}

fn refuse<T>(reason: impl Into<String>) -> Result<T, Fail> {
    Err(Fail::Refused {
        reason: reason.into(),
        path: Vec::new(),
    })
}

fn within<T>(segment: impl FnOnce() -> Segment, r: Result<T, Fail>) -> Result<T, Fail> {
    r.map_err(|f| match f {
        Fail::Refused { reason, mut path } => {
            path.push(segment());
            Fail::Refused { reason, path }
        }
        Fail::Stale => Fail::Stale,
    })
}

/// Tables and functions already encoded, by identity. Most messages hold a handful, so
/// a short linear list comes first and a hash map only past that: a channel item should
/// not pay for a hash map allocation.
#[derive(Default)]
struct Seen {
    few: SmallVec<[(*const c_void, u32); FEW]>,
    many: HashMap<*const c_void, u32>,
}

const FEW: usize = 16;

impl Seen {
    fn get(&self, p: *const c_void) -> Option<u32> {
        if self.many.is_empty() {
            self.few.iter().find(|(q, _)| *q == p).map(|&(_, n)| n)
        } else {
            self.many.get(&p).copied()
        }
    }

    fn insert(&mut self, p: *const c_void, n: u32) {
        if self.many.is_empty() && self.few.len() < FEW {
            self.few.push((p, n));
            return;
        }
        if self.many.is_empty() {
            self.many.extend(self.few.drain(..));
        }
        self.many.insert(p, n);
    }

    fn forget_from(&mut self, first: u32) {
        self.few.retain(|entry| entry.1 < first);
        self.many.retain(|_, n| *n < first);
    }
}

/// Builds one [`Message`] from values on a Lua stack. Tables and functions met twice
/// (or inside themselves) become one node.
///
/// Tables and functions are recognised by address, so each one recorded must stay alive
/// while the encoder runs: a collected one's address may be reused by a later value, which
/// would then be encoded as a reference to the old one. The encoder enforces this itself:
/// every value it records by address is also stored in its anchor table (a registry
/// reference, made on the first record and released when the encoder is dropped), so the
/// garbage collector cannot take it whatever the caller does with the stack.
pub struct Encoder<'a> {
    codec: &'a CodecState,
    seen: Seen,
    /// The state and registry reference of the anchor table (node number + 1 → the table
    /// or function of that node), once something was recorded.
    anchor: Option<(*mut ffi::lua_State, c_int)>,
    /// False for [`Encoder::for_held_values`]: nothing is anchored.
    anchoring: bool,
    nodes: weft_core::message::Nodes,
    values: weft_core::message::Values,
    depth: u32,
    index_rebuilt: bool,
}

impl Drop for Encoder<'_> {
    fn drop(&mut self) {
        if let Some((state, r)) = self.anchor.take() {
            // SAFETY: `push`'s contract: the state's call that ran the encoder is still
            // running on this thread; unref only clears a registry slot (no error).
            unsafe { ffi::luaL_unref(state, ffi::LUA_REGISTRYINDEX, r) };
        }
    }
}

impl<'a> Encoder<'a> {
    /// An empty message under construction.
    pub fn new(codec: &'a CodecState) -> Encoder<'a> {
        Encoder {
            codec,
            seen: Seen::default(),
            anchor: None,
            anchoring: true,
            nodes: Default::default(),
            values: Default::default(),
            depth: 0,
            index_rebuilt: false,
        }
    }

    /// An encoder for values that the caller keeps on the Lua stack until the encoder is
    /// finished or dropped, running no other code between pushes (a channel push's
    /// argument; a call's arguments or results, encoded where they lie). While it runs,
    /// every table and function it records is reachable from those values (the encoder
    /// reads raw and runs no code but weft's own helpers, which change nothing), so none
    /// can be collected and its address reused: the anchor table and its registry
    /// reference, ~20 % of a small table's push, are left out.
    ///
    /// # Safety
    /// Every value pushed stays on the stack until [`Encoder::finish`] or drop, and no Lua
    /// code runs between the pushes.
    pub unsafe fn for_held_values(codec: &'a CodecState) -> Encoder<'a> {
        let mut encoder = Encoder::new(codec);
        encoder.anchoring = false;
        encoder
    }

    /// Append the value at stack index `idx` as the next root value. On refusal the
    /// error reads `weft: cannot send <label> <number><path> (<reason>)`.
    ///
    /// Values recognised by address are kept alive by the encoder (see [`Encoder`]), so
    /// the caller may pop `idx` once this returns.
    ///
    /// # Safety
    /// Must run on the thread owning `state`, inside a protected call; `idx` is valid.
    /// Every push of one encoder uses the same `state`, and the encoder is dropped (or
    /// finished) while that state's current call is still running (it releases its
    /// anchor through `state`).
    pub unsafe fn push(
        &mut self,
        state: *mut ffi::lua_State,
        idx: c_int,
        label: Label,
        number: usize,
    ) -> Result<(), String> {
        // SAFETY: forwarded contract.
        unsafe {
            let idx = ffi::lua_absindex(state, idx);
            let top = ffi::lua_gettop(state);
            let check = crate::stack::StackCheck::new(state);
            let nodes_before = self.nodes.len() as u32;
            loop {
                match self.value(state, idx) {
                    Ok(v) => {
                        // Encoding reads the stack: whatever it pushed, it popped.
                        check.expect(0);
                        self.values.push(v);
                        return Ok(());
                    }
                    Err(Fail::Stale) if !self.index_rebuilt => {
                        ffi::lua_settop(state, top);
                        self.nodes.truncate(nodes_before as usize);
                        self.seen.forget_from(nodes_before);
                        self.codec.modules.borrow_mut().rebuild(state);
                        self.index_rebuilt = true;
                    }
                    Err(Fail::Stale) => unreachable!("a rebuilt index never reports staleness"),
                    Err(Fail::Refused { reason, mut path }) => {
                        ffi::lua_settop(state, top);
                        path.reverse();
                        let path = render(&path);
                        let sep = if path.is_empty() || path.starts_with(' ') {
                            ""
                        } else {
                            " "
                        };
                        return Err(format!(
                            "weft: cannot send {} {number}{sep}{path} ({reason})",
                            label.noun()
                        ));
                    }
                }
            }
        }
    }

    /// The finished message.
    pub fn finish(mut self) -> Message {
        Message {
            values: std::mem::take(&mut self.values),
            nodes: std::mem::take(&mut self.nodes),
        }
    }

    /// Remember the table or function at `idx` (address `ptr`) as node `node`, and store it
    /// in the anchor table so that it stays alive, and its address unique, for as long as
    /// the encoder lives.
    ///
    /// # Safety
    /// As for [`Encoder::push`]; 3 free stack slots. Allocates (the anchor table, its
    /// growth), which is why the encoder runs inside a protected call.
    unsafe fn record(
        &mut self,
        state: *mut ffi::lua_State,
        idx: c_int,
        ptr: *const c_void,
        node: u32,
    ) {
        // SAFETY: balanced registry and table operations on a valid state (the caller
        // checked the stack space).
        unsafe {
            let check = crate::stack::StackCheck::new(state);
            let idx = ffi::lua_absindex(state, idx);
            self.seen.insert(ptr, node);
            if !self.anchoring {
                return;
            }
            match self.anchor {
                Some((anchored, r)) => {
                    debug_assert_eq!(anchored, state, "an encoder is used with one state");
                    ffi::lua_rawgeti(state, ffi::LUA_REGISTRYINDEX, r as ffi::lua_Integer);
                }
                None => {
                    ffi::lua_createtable(state, 4, 0);
                    ffi::lua_pushvalue(state, -1);
                    let r = ffi::luaL_ref(state, ffi::LUA_REGISTRYINDEX);
                    self.anchor = Some((state, r));
                }
            }
            ffi::lua_pushvalue(state, idx);
            ffi::lua_rawseti(state, -2, ffi::lua_Integer::from(node) + 1);
            ffi::lua_pop(state, 1);
            check.expect(0);
        }
    }

    unsafe fn value(&mut self, state: *mut ffi::lua_State, idx: c_int) -> Result<Value, Fail> {
        // SAFETY: idx is an absolute, valid index (push and the recursive callers ensure it).
        unsafe {
            match ffi::lua_type(state, idx) {
                ffi::LUA_TNIL => Ok(Value::Nil),
                ffi::LUA_TBOOLEAN => Ok(Value::Bool(ffi::lua_toboolean(state, idx) != 0)),
                ffi::LUA_TNUMBER => Ok(number(state, idx)),
                ffi::LUA_TSTRING => Ok(Value::string(str_bytes(state, idx))),
                ffi::LUA_TTABLE => self.table(state, idx),
                ffi::LUA_TFUNCTION => self.function(state, idx),
                ffi::LUA_TUSERDATA => self.userdata(state, idx),
                ffi::LUA_TLIGHTUSERDATA => {
                    refuse("a light userdata: a raw C pointer has no meaning in another thread")
                }
                ffi::LUA_TTHREAD => refuse("a coroutine"),
                #[cfg(feature = "luajit")]
                ffi::LUA_TCDATA => {
                    refuse("a LuaJIT cdata; put numeric data in a weft.array to share it")
                }
                _ => refuse("a value of a type weft cannot send"),
            }
        }
    }

    fn enter(&mut self) -> Result<(), Fail> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return refuse(format!("nested more than {MAX_DEPTH} levels deep"));
        }
        if stack_left().is_some_and(|left| left < STACK_RESERVE) {
            return refuse(format!(
                "nested {} levels deep, more than this thread's stack allows",
                self.depth
            ));
        }
        Ok(())
    }

    unsafe fn by_name(&mut self, state: *mut ffi::lua_State, idx: c_int) -> Option<ModuleRef> {
        // SAFETY: idx valid; the index reads tables only.
        unsafe {
            if !self.codec.modules.borrow().is_built() {
                self.codec.modules.borrow_mut().rebuild(state);
                self.index_rebuilt = true;
            }
            self.codec.modules.borrow().lookup(state, idx)
        }
    }

    fn stale_or(&self, reason: &str) -> Result<Value, Fail> {
        if self.index_rebuilt {
            refuse(reason)
        } else {
            Err(Fail::Stale)
        }
    }

    unsafe fn table(&mut self, state: *mut ffi::lua_State, idx: c_int) -> Result<Value, Fail> {
        // SAFETY: idx holds a table; lua_next iteration with balanced pops; each nested
        // value is encoded at an absolute index above the iteration slots.
        unsafe {
            let ptr = ffi::lua_topointer(state, idx);
            if let Some(n) = self.seen.get(ptr) {
                return Ok(Value::Node(n));
            }
            if let Some(m) = self.by_name(state, idx) {
                return Ok(Value::Module(Box::new(m)));
            }
            if ffi::lua_getmetatable(state, idx) != 0 {
                ffi::lua_pop(state, 1);
                return refuse(
                    "a table with a metatable, which can be neither sent nor frozen; \
                     pass plain data and set the metatable again where it is used",
                );
            }
            if ffi::lua_checkstack(state, 4) == 0 {
                return refuse(format!(
                    "nested {} levels deep, more than the Lua stack allows",
                    self.depth
                ));
            }
            self.enter()?;
            let node = self.nodes.len() as u32;
            self.nodes.push(Node::Table(TableNode::default()));
            self.record(state, idx, ptr, node);
            // The sequence part first, by index: much cheaper than lua_next for the big
            // numeric arrays people hand to workers. Holes inside the border stay nil.
            let len = ffi::lua_rawlen(state, idx);
            let numbers = bulk_numbers(state, idx, len);
            let mut array = Sequence::with_capacity(len - numbers.len());
            for i in numbers.len() + 1..=len {
                ffi::lua_rawgeti(state, idx, i as ffi::lua_Integer);
                let slot = ffi::lua_gettop(state);
                let v = if ffi::lua_type(state, slot) == ffi::LUA_TNUMBER {
                    number(state, slot)
                } else {
                    within(|| Segment::Index(i as i64), self.value(state, slot))?
                };
                array.push(v);
                ffi::lua_settop(state, slot - 1);
            }
            let mut hash = Vec::new();
            // Then everything else. A traversal must start from the beginning: keys can
            // come before the sequence's last key in traversal order (LuaJIT's t[0],
            // hash-part keys of a table built out of order). Keys 1..=len are skipped.
            match other_keys(state, idx, len) {
                Some(list) => {
                    // The keys outside the sequence, listed by the JIT-compiled helper.
                    let n = if list == 0 {
                        0
                    } else {
                        ffi::lua_rawlen(state, list)
                    };
                    for i in 1..=n {
                        ffi::lua_rawgeti(state, list, i as ffi::lua_Integer);
                        let key = ffi::lua_gettop(state);
                        ffi::lua_pushvalue(state, key);
                        ffi::lua_rawget(state, idx);
                        self.entry(state, key, numbers.len(), &mut array, &mut hash)?;
                        ffi::lua_settop(state, key - 1);
                    }
                    if list != 0 {
                        ffi::lua_settop(state, list - 1);
                    }
                }
                None => {
                    ffi::lua_pushnil(state);
                    while ffi::lua_next(state, idx) != 0 {
                        let key = ffi::lua_gettop(state) - 1;
                        if !in_sequence(state, key, len) {
                            self.entry(state, key, numbers.len(), &mut array, &mut hash)?;
                        }
                        ffi::lua_settop(state, key);
                    }
                }
            }
            self.nodes[node as usize] = Node::Table(TableNode {
                numbers,
                array,
                hash,
            });
            self.depth -= 1;
            Ok(Value::Node(node))
        }
    }

    /// Encode the key at `key` and the value just above it into the sequence (when the
    /// key continues it) or the hash part.
    unsafe fn entry(
        &mut self,
        state: *mut ffi::lua_State,
        key: c_int,
        numbers: usize,
        array: &mut Sequence,
        hash: &mut Vec<(Value, Value)>,
    ) -> Result<(), Fail> {
        let value = key + 1;
        // SAFETY: key and value are valid slots above the iteration state.
        unsafe {
            match next_array_index(state, key, numbers + array.len()) {
                Some(i) => {
                    let v = within(|| Segment::Index(i), self.value(state, value))?;
                    array.push(v);
                }
                None => {
                    let k = within(|| Segment::Key, self.value(state, key))?;
                    let v = within(|| key_segment(state, key), self.value(state, value))?;
                    hash.push((k, v));
                }
            }
        }
        Ok(())
    }

    unsafe fn function(&mut self, state: *mut ffi::lua_State, idx: c_int) -> Result<Value, Fail> {
        // SAFETY: idx holds a function; getupvalue pushes one value per call, popped below.
        unsafe {
            let ptr = ffi::lua_topointer(state, idx);
            if let Some(n) = self.seen.get(ptr) {
                return Ok(Value::Node(n));
            }
            if ffi::lua_iscfunction(state, idx) != 0 {
                return match self.by_name(state, idx) {
                    Some(m) => Ok(Value::Module(Box::new(m))),
                    None => self.stale_or("a C function not found in package.loaded"),
                };
            }
            if ffi::lua_checkstack(state, 4) == 0 {
                return refuse(format!(
                    "nested {} levels deep, more than the Lua stack allows",
                    self.depth
                ));
            }
            let code = match self.codec.dumps.borrow_mut().dump(state, idx) {
                Some(code) => code,
                None => return refuse("a function that cannot be dumped"),
            };
            self.enter()?;
            let node = self.nodes.len() as u32;
            self.nodes.push(Node::Function(FunctionNode {
                code: code.clone(),
                upvalues: Vec::new(),
                env: None,
            }));
            self.record(state, idx, ptr, node);
            let mut upvalues = Vec::new();
            for n in 1.. {
                let name = ffi::lua_getupvalue(state, idx, n);
                if name.is_null() {
                    break;
                }
                let slot = ffi::lua_gettop(state);
                let v = within(
                    || {
                        Segment::Upvalue(
                            std::ffi::CStr::from_ptr(name)
                                .to_string_lossy()
                                .into_owned(),
                        )
                    },
                    self.value(state, slot),
                )?;
                upvalues.push(v);
                ffi::lua_settop(state, slot - 1);
            }
            let env = self.environment(state, idx)?;
            self.nodes[node as usize] = Node::Function(FunctionNode {
                code,
                upvalues,
                env,
            });
            self.depth -= 1;
            Ok(Value::Node(node))
        }
    }

    /// Lua 5.1/LuaJIT: the environment of the Lua function at `idx`, when it is not the
    /// globals. A plain table crosses as a copy (the receiver `setfenv`s it); a table with
    /// a metatable cannot be copied faithfully: with no fields of its own it is a view of
    /// the globals (a strict-mode wrapper, busted's sandbox) and the receiver's globals
    /// stand in for it, otherwise it is refused rather than silently dropped.
    #[cfg(not(feature = "lua54"))]
    unsafe fn environment(
        &mut self,
        state: *mut ffi::lua_State,
        idx: c_int,
    ) -> Result<Option<Value>, Fail> {
        // SAFETY: idx holds a Lua function (4 slots were checked); lua_getfenv pushes its
        // environment, popped before returning (on refusal `push` restores the stack).
        unsafe {
            ffi::lua_getfenv(state, idx);
            let env = ffi::lua_gettop(state);
            let sent = if ffi::lua_type(state, env) != ffi::LUA_TTABLE
                || ffi::lua_rawequal(state, env, ffi::LUA_GLOBALSINDEX) != 0
            {
                None
            } else if ffi::lua_getmetatable(state, env) != 0 {
                ffi::lua_pop(state, 1);
                ffi::lua_pushnil(state);
                if ffi::lua_next(state, env) == 0 {
                    None
                } else {
                    return within(
                        || Segment::Environment,
                        refuse(
                            "a table with a metatable and fields of its own: only a plain \
                             table (copied) or the globals can be a sent function's environment",
                        ),
                    );
                }
            } else {
                Some(within(|| Segment::Environment, self.value(state, env))?)
            };
            ffi::lua_settop(state, env - 1);
            Ok(sent)
        }
    }

    /// Lua 5.4 has no function environments: `_ENV` is an upvalue, sent like any other.
    #[cfg(feature = "lua54")]
    unsafe fn environment(
        &mut self,
        _: *mut ffi::lua_State,
        _: c_int,
    ) -> Result<Option<Value>, Fail> {
        Ok(None)
    }

    unsafe fn userdata(&mut self, state: *mut ffi::lua_State, idx: c_int) -> Result<Value, Fail> {
        // SAFETY: metatable reads are balanced; the export callback runs under lua_pcall.
        unsafe {
            let top = ffi::lua_gettop(state);
            if ffi::lua_getmetatable(state, idx) != 0 {
                // Raw, as Lua reads metafields: a metatable's own __index never runs.
                ffi::lua_pushstring(state, c"__weft_export".as_ptr());
                ffi::lua_rawget(state, -2);
                if ffi::lua_type(state, -1) == ffi::LUA_TFUNCTION {
                    ffi::lua_pushvalue(state, idx);
                    let exported = super::raw::pcall(state, 1, 0);
                    ffi::lua_settop(state, top);
                    return match (exported, super::take_handle()) {
                        (Ok(()), Some(h)) => Ok(Value::Handle(h)),
                        (Err(e), _) => refuse(format!("a weft handle that cannot be shared: {e}")),
                        (Ok(()), None) => refuse("a weft handle that cannot be shared"),
                    };
                }
                ffi::lua_settop(state, top);
            }
            if let Some(m) = self.by_name(state, idx) {
                return Ok(Value::Module(Box::new(m)));
            }
            let what = userdata_name(state, idx);
            self.stale_or(&format!(
                "{what}, not a weft handle and not found in package.loaded"
            ))
        }
    }
}

unsafe fn userdata_name(state: *mut ffi::lua_State, idx: c_int) -> String {
    // SAFETY: balanced metatable read.
    unsafe {
        let top = ffi::lua_gettop(state);
        let mut name = "a userdata".to_string();
        if ffi::lua_getmetatable(state, idx) != 0 {
            ffi::lua_pushstring(state, c"__name".as_ptr());
            ffi::lua_rawget(state, -2);
            if ffi::lua_type(state, -1) == ffi::LUA_TSTRING {
                name = format!(
                    "a userdata ({})",
                    String::from_utf8_lossy(str_bytes(state, -1))
                );
            }
        }
        ffi::lua_settop(state, top);
        name
    }
}

/// Sequences shorter than this go through the C API; longer ones are worth a call into
/// the JIT-compiled packing helper.
#[cfg(feature = "luajit")]
const BULK_MIN: usize = 64;

/// On LuaJIT, copy the leading run of numbers of the table at `idx` (sequence length
/// `len`) into a Rust buffer with `weft.pack_numbers`, a Lua loop the JIT compiles to a
/// few instructions per element (the C API costs ~25 ns per element).
#[cfg(feature = "luajit")]
unsafe fn bulk_numbers(state: *mut ffi::lua_State, idx: c_int, len: usize) -> Vec<f64> {
    if len < BULK_MIN {
        return Vec::new();
    }
    let mut buf: Vec<f64> = Vec::with_capacity(len);
    // SAFETY: the helper writes at most `len` doubles to the buffer and returns how many;
    // it runs under lua_pcall. The buffer is not touched by anything else meanwhile.
    unsafe {
        if !super::raw::push_helper(state, c"weft.pack_numbers") {
            return Vec::new();
        }
        ffi::lua_pushvalue(state, idx);
        ffi::lua_pushinteger(state, len as ffi::lua_Integer);
        ffi::lua_pushlightuserdata(state, buf.as_mut_ptr() as *mut c_void);
        if super::raw::pcall(state, 3, 1).is_err() {
            return Vec::new();
        }
        let packed = (ffi::lua_tointeger(state, -1).max(0) as usize).min(len);
        ffi::lua_pop(state, 1);
        buf.set_len(packed);
    }
    buf
}

/// On LuaJIT, for a long sequence, let the JIT-compiled `weft.other_keys` helper list the
/// keys outside 1..=len (a `pairs` loop is ~7x cheaper there than `lua_next` through the
/// C API). `Some(0)`: there are none; `Some(slot)`: a list of them at `slot`; `None`: use
/// `lua_next`.
#[cfg(feature = "luajit")]
unsafe fn other_keys(state: *mut ffi::lua_State, idx: c_int, len: usize) -> Option<c_int> {
    if len < BULK_MIN {
        return None;
    }
    // SAFETY: calls the helper under lua_pcall; leaves one value or nothing.
    unsafe {
        if !super::raw::push_helper(state, c"weft.other_keys") {
            return None;
        }
        ffi::lua_pushvalue(state, idx);
        ffi::lua_pushinteger(state, len as ffi::lua_Integer);
        super::raw::pcall(state, 2, 1).ok()?;
        if ffi::lua_type(state, -1) == ffi::LUA_TTABLE {
            Some(ffi::lua_gettop(state))
        } else {
            ffi::lua_pop(state, 1);
            Some(0)
        }
    }
}

#[cfg(not(feature = "luajit"))]
unsafe fn other_keys(_: *mut ffi::lua_State, _: c_int, _: usize) -> Option<c_int> {
    None
}

#[cfg(not(feature = "luajit"))]
unsafe fn bulk_numbers(_: *mut ffi::lua_State, _: c_int, _: usize) -> Vec<f64> {
    Vec::new()
}

/// Is the key at `key` one of 1..=len (already encoded from the sequence)?
unsafe fn in_sequence(state: *mut ffi::lua_State, key: c_int, len: usize) -> bool {
    // SAFETY: key is a valid index; only type checks and number reads.
    unsafe {
        if ffi::lua_type(state, key) != ffi::LUA_TNUMBER {
            return false;
        }
        #[cfg(feature = "lua54")]
        {
            ffi::lua_isinteger(state, key) != 0
                && (1..=len as ffi::lua_Integer).contains(&ffi::lua_tointeger(state, key))
        }
        #[cfg(not(feature = "lua54"))]
        {
            let n = ffi::lua_tonumber(state, key);
            n >= 1.0 && n <= len as f64 && n.fract() == 0.0
        }
    }
}

/// If the key at `key` is the next array index (`len + 1`), return it.
unsafe fn next_array_index(state: *mut ffi::lua_State, key: c_int, len: usize) -> Option<i64> {
    // SAFETY: key is a valid index; only type checks and conversions of numbers.
    unsafe {
        if ffi::lua_type(state, key) != ffi::LUA_TNUMBER {
            return None;
        }
        let want = len as i64 + 1;
        #[cfg(feature = "lua54")]
        {
            (ffi::lua_isinteger(state, key) != 0 && ffi::lua_tointeger(state, key) == want)
                .then_some(want)
        }
        #[cfg(not(feature = "lua54"))]
        {
            (ffi::lua_tonumber(state, key) == want as f64).then_some(want)
        }
    }
}

unsafe fn key_segment(state: *mut ffi::lua_State, key: c_int) -> Segment {
    // SAFETY: key is a valid index; strings are read without conversion.
    unsafe {
        match ffi::lua_type(state, key) {
            ffi::LUA_TSTRING => Segment::Field(str_bytes(state, key).to_vec()),
            ffi::LUA_TNUMBER => {
                let n = ffi::lua_tonumber(state, key);
                if n.fract() == 0.0 && n.abs() < 9.0e15 {
                    Segment::Index(n as i64)
                } else {
                    Segment::OtherKey
                }
            }
            _ => Segment::OtherKey,
        }
    }
}

unsafe fn number(state: *mut ffi::lua_State, idx: c_int) -> Value {
    // SAFETY: idx holds a number.
    unsafe {
        #[cfg(feature = "lua54")]
        if ffi::lua_isinteger(state, idx) != 0 {
            return Value::Int(ffi::lua_tointeger(state, idx));
        }
        Value::Num(ffi::lua_tonumber(state, idx))
    }
}

/// Dumped bytecode of functions this state has sent, so a function submitted many times is
/// dumped once. The functions are kept alive in a registry table while cached, so a
/// pointer in the map can never name a different, newer function.
#[derive(Default)]
pub struct DumpCache {
    by_function: HashMap<*const c_void, Arc<Bytecode>>,
}

const DUMP_CACHE_LIMIT: usize = 256;
const KEEPALIVE: &std::ffi::CStr = c"weft.dumped";

/// The `lua_Writer` that appends a dumped chunk to the `Vec<u8>` passed as `out`.
pub(crate) unsafe extern "C-unwind" fn write_chunk(
    _: *mut ffi::lua_State,
    p: *const c_void,
    size: usize,
    out: *mut c_void,
) -> c_int {
    // SAFETY: `out` is the Vec passed to lua_dump below; p/size describe a valid buffer.
    unsafe {
        let out = &mut *(out as *mut Vec<u8>);
        out.extend_from_slice(std::slice::from_raw_parts(p as *const u8, size));
    }
    0
}

impl DumpCache {
    /// The bytecode of the Lua function at `idx` (absolute), or None if it cannot be dumped.
    ///
    /// # Safety
    /// `idx` must hold a Lua (not C) function; 4 free stack slots.
    pub unsafe fn dump(&mut self, state: *mut ffi::lua_State, idx: c_int) -> Option<Arc<Bytecode>> {
        // SAFETY: lua_dump reads the function on top of the stack; registry writes balanced.
        unsafe {
            let ptr = ffi::lua_topointer(state, idx);
            if let Some(code) = self.by_function.get(&ptr) {
                return Some(code.clone());
            }
            let mut bytes = Vec::new();
            ffi::lua_pushvalue(state, idx);
            let status = ffi::lua_dump(
                state,
                write_chunk,
                &mut bytes as *mut Vec<u8> as *mut c_void,
                0,
            );
            ffi::lua_pop(state, 1);
            if status != 0 || bytes.is_empty() {
                return None;
            }
            let code = Arc::new(Bytecode::new(bytes));
            if self.by_function.len() >= DUMP_CACHE_LIMIT {
                self.by_function.clear();
                ffi::lua_pushnil(state);
                ffi::lua_setfield(state, ffi::LUA_REGISTRYINDEX, KEEPALIVE.as_ptr());
            }
            ffi::lua_getfield(state, ffi::LUA_REGISTRYINDEX, KEEPALIVE.as_ptr());
            if ffi::lua_type(state, -1) != ffi::LUA_TTABLE {
                ffi::lua_pop(state, 1);
                ffi::lua_createtable(state, 0, 16);
                ffi::lua_pushvalue(state, -1);
                ffi::lua_setfield(state, ffi::LUA_REGISTRYINDEX, KEEPALIVE.as_ptr());
            }
            ffi::lua_pushvalue(state, idx);
            ffi::lua_pushboolean(state, 1);
            ffi::lua_rawset(state, -3);
            ffi::lua_pop(state, 1);
            self.by_function.insert(ptr, code.clone());
            Some(code)
        }
    }
}
