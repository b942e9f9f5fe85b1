//! Raw-C-API userdata for the shared-data handles (frozen tables, arrays, counters,
//! shared tables), whose element reads must cost tens of nanoseconds, not the several
//! hundred an mlua method call costs.
//!
//! Each value lives in a full userdata as a [`Slot`]: a per-type magic number (checked
//! together with the userdata's size before any access, so a foreign userdata can never
//! be mistaken for ours) and the Rust value. Metatables are built once per state by the
//! type's [`RawType::metatable`] and kept in the registry; `__gc` drops the value.
//!
//! Functions here raise Lua errors directly (they are raw `lua_CFunction`s): [`guard`]
//! runs the Rust body, catches panics, and only calls `lua_error` after every Rust value
//! of the body has been dropped.
//!
//! Inside a body no Lua error may be raised at all: LuaJIT throws its errors as foreign
//! exceptions, which abort the process when they reach `catch_unwind` ("Rust cannot catch
//! foreign exceptions"), and PUC Lua's `longjmp` would skip the destructors of the body's
//! values. So every C API call that can raise (a metamethod, an allocation) runs through
//! [`protect`], which turns the Lua error into the body's ordinary `Err`.

use crate::codec::raw::push_bytes;
use mlua::ffi;
use std::ffi::{c_int, CStr};
use std::panic::AssertUnwindSafe;
use weft_core::key::KeyRef;
use weft_core::Handle;

/// How a Rust type appears in Lua as a raw userdata.
pub(crate) trait RawType: Sized + 'static {
    /// Identifies the type inside a userdata.
    const MAGIC: u64;
    /// Registry key of the metatable, and the name in messages (`weft.array`).
    const NAME: &'static CStr;
    /// Fill the metatable on top of the stack (beyond `__gc`, `__metatable` and
    /// `__weft_export`, which [`push`] adds).
    ///
    /// # Safety
    /// A valid state with the new metatable on top.
    unsafe fn metatable(state: *mut ffi::lua_State);
    /// The shared object, for crossing to another thread (`None`: this kind stays in
    /// the state that made it).
    fn handle(&self) -> Option<Handle>;
    /// Whether two userdata stand for the same shared object (`__eq`).
    fn same(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
    /// What `tostring` shows.
    fn describe(&self) -> String {
        format!("{}: {:p}", type_name::<Self>(), self)
    }
    /// Whether values of this type hold memory outside the Lua heap (arrays), which the
    /// collector is told about before one is pushed ([`crate::gc_pace`]).
    const HOLDS_MEMORY: bool = false;
}

/// The memory of one userdata.
#[repr(C)]
pub(crate) struct Slot<T> {
    magic: u64,
    /// `None` after `__gc` or an explicit release.
    pub value: Option<T>,
}

/// Push `value` as a new userdata of its type.
///
/// The allocations (the block, the metatable on first use) run under [`protect`] before
/// `value` is written, so a memory error drops `value` as an ordinary `Err` does.
///
/// # Safety
/// A valid state with 3 free stack slots.
pub(crate) unsafe fn push<T: RawType>(state: *mut ffi::lua_State, value: T) -> Result<(), String> {
    // SAFETY: forwarded contract; the body leaves the userdata (one value) on success.
    unsafe { crate::stack::checked(state, 1, || push_unchecked(state, value)) }
}

/// [`push`] without its debug-build stack check.
///
/// # Safety
/// As for [`push`].
unsafe fn push_unchecked<T: RawType>(state: *mut ffi::lua_State, value: T) -> Result<(), String> {
    let mut block = std::ptr::null_mut::<Slot<T>>();
    // SAFETY: allocations only, under protect; the block stays on the stack below its
    // metatable.
    unsafe {
        protect(state, 0, 2, &mut |state| {
            if T::HOLDS_MEMORY {
                crate::gc_pace::step(state);
            }
            block = ffi::lua_newuserdata(state, std::mem::size_of::<Slot<T>>()) as *mut Slot<T>;
            push_metatable::<T>(state);
        })?;
    }
    // SAFETY: the userdata block is sized for Slot<T>, Lua aligns it for any C type, and
    // it is initialised before the metatable (and so `__gc`) is attached; setting a
    // metatable allocates nothing.
    unsafe {
        block.write(Slot {
            magic: T::MAGIC,
            value: Some(value),
        });
        ffi::lua_setmetatable(state, -2);
    }
    Ok(())
}

/// Push the type's metatable, building it on first use in this state.
///
/// # Safety
/// A valid state with 3 free stack slots.
pub(crate) unsafe fn push_metatable<T: RawType>(state: *mut ffi::lua_State) {
    // SAFETY: balanced registry reads and writes on a valid state.
    unsafe {
        let check = crate::stack::StackCheck::new(state);
        ffi::lua_getfield(state, ffi::LUA_REGISTRYINDEX, T::NAME.as_ptr());
        if ffi::lua_type(state, -1) == ffi::LUA_TTABLE {
            check.expect(1);
            return;
        }
        ffi::lua_pop(state, 1);
        ffi::lua_createtable(state, 0, 12);
        set_fn(state, c"__gc", collect::<T>);
        set_fn(state, c"__weft_export", export::<T>);
        set_fn(state, c"__eq", eq::<T>);
        set_fn(state, c"__tostring", tostring::<T>);
        ffi::lua_pushstring(state, T::NAME.as_ptr());
        ffi::lua_setfield(state, -2, c"__metatable".as_ptr());
        T::metatable(state);
        ffi::lua_pushvalue(state, -1);
        ffi::lua_setfield(state, ffi::LUA_REGISTRYINDEX, T::NAME.as_ptr());
        // The new metatable, and nothing a `metatable` filler may have left.
        check.expect(1);
    }
}

/// `table[name] = f` for the table on top of the stack.
///
/// # Safety
/// A valid state with a table on top and one free slot.
pub(crate) unsafe fn set_fn(state: *mut ffi::lua_State, name: &CStr, f: ffi::lua_CFunction) {
    // SAFETY: pushes a C function and stores it in the table below it.
    unsafe {
        ffi::lua_pushcfunction(state, f);
        ffi::lua_setfield(state, -2, name.as_ptr());
    }
}

/// The slot at `idx` if it is a userdata of type `T`, as a raw pointer (no reference is
/// made, so nothing aliases until a caller dereferences it).
///
/// # Safety
/// `idx` is a valid stack index.
unsafe fn slot_ptr<T: RawType>(state: *mut ffi::lua_State, idx: c_int) -> Option<*mut Slot<T>> {
    // SAFETY: the type and size are checked before the magic number is read, so the read
    // stays inside the block; the magic number then proves the layout.
    unsafe {
        if ffi::lua_type(state, idx) != ffi::LUA_TUSERDATA
            || ffi::lua_rawlen(state, idx) != std::mem::size_of::<Slot<T>>()
        {
            return None;
        }
        let p = ffi::lua_touserdata(state, idx) as *mut Slot<T>;
        ((*p).magic == T::MAGIC).then_some(p)
    }
}

/// The slot at `idx` if it is a userdata of type `T`. Shared access only: the one way to
/// change a slot is [`take`], so two calls on the same userdata never alias a `&mut`.
///
/// # Safety
/// `idx` is a valid stack index. The reference must not outlive the userdata's
/// reachability (in practice: the raw function call it was obtained in) nor be alive
/// across a [`take`] of the same userdata.
pub(crate) unsafe fn slot<'a, T: RawType>(
    state: *mut ffi::lua_State,
    idx: c_int,
) -> Option<&'a Slot<T>> {
    // SAFETY: slot_ptr checked the layout; the caller rules out a concurrent `take`.
    unsafe { slot_ptr::<T>(state, idx).map(|p| &*p) }
}

/// Move the value out of the slot at `idx` (`a:free()`, `__gc`): `None` when `idx` is not
/// a userdata of type `T` or its value was already taken.
///
/// # Safety
/// `idx` is a valid stack index, and no reference obtained from [`slot`], [`arg`] or
/// `slot_ref` to this userdata is alive (the `&mut` made here is the only access).
pub(crate) unsafe fn take<T: RawType>(state: *mut ffi::lua_State, idx: c_int) -> Option<T> {
    // SAFETY: slot_ptr checked the layout; the caller guarantees exclusivity.
    unsafe { slot_ptr::<T>(state, idx).and_then(|p| (*p).value.take()) }
}

/// The live value in a slot reached by address (the LuaJIT FFI passes a userdata as its
/// payload pointer).
///
/// # Safety
/// `p` must be the payload of a live userdata created by [`push`] (for any type: the
/// magic number tells them apart).
#[cfg(feature = "luajit")]
pub(crate) unsafe fn slot_ref<'a, T: RawType>(p: *const Slot<T>) -> Option<&'a T> {
    // SAFETY: every slot starts with its magic number; the value is read only when the
    // number says the layout is Slot<T>.
    unsafe {
        if p.is_null() || (*p).magic != T::MAGIC {
            return None;
        }
        (*p).value.as_ref()
    }
}

/// The live value at `idx`, or an error naming the argument.
///
/// # Safety
/// As for [`slot`].
pub(crate) unsafe fn arg<'a, T: RawType>(
    state: *mut ffi::lua_State,
    idx: c_int,
    what: &str,
) -> Result<&'a T, String> {
    // SAFETY: forwarded contract.
    match unsafe { slot::<T>(state, idx) } {
        Some(Slot { value: Some(v), .. }) => Ok(v),
        Some(_) => Err(format!("{what}: this {} was freed", type_name::<T>())),
        None => Err(format!(
            "{what}: expected a {} (got {})",
            type_name::<T>(),
            // SAFETY: valid index.
            unsafe { type_of(state, idx) }
        )),
    }
}

fn type_name<T: RawType>() -> &'static str {
    T::NAME.to_str().unwrap_or("weft handle")
}

/// Lua's name for the type at `idx`.
///
/// # Safety
/// `idx` is a valid (or none) index.
pub(crate) unsafe fn type_of(state: *mut ffi::lua_State, idx: c_int) -> String {
    // SAFETY: lua_typename returns a static string for any type code.
    unsafe {
        let t = ffi::lua_type(state, idx);
        if t == ffi::LUA_TNONE {
            return "no value".into();
        }
        CStr::from_ptr(ffi::lua_typename(state, t))
            .to_string_lossy()
            .into_owned()
    }
}

/// An integer argument (LuaJIT passes floats: they must be integral).
pub(crate) unsafe fn int_arg(
    state: *mut ffi::lua_State,
    idx: c_int,
    what: &str,
) -> Result<i64, String> {
    // SAFETY: type-checked reads of a valid index.
    unsafe {
        if ffi::lua_type(state, idx) != ffi::LUA_TNUMBER {
            return Err(format!(
                "{what} must be an integer (got {})",
                type_of(state, idx)
            ));
        }
        #[cfg(feature = "lua54")]
        if ffi::lua_isinteger(state, idx) != 0 {
            return Ok(ffi::lua_tointeger(state, idx));
        }
        let n = ffi::lua_tonumber(state, idx);
        weft_core::key::integral(n).ok_or_else(|| format!("{what} must be an integer (got {n})"))
    }
}

/// The key at `idx` as a lookup key for frozen and shared tables (`None`: a key neither
/// can hold: nil, NaN, a table, a function).
pub(crate) unsafe fn key_at<'a>(state: *mut ffi::lua_State, idx: c_int) -> Option<KeyRef<'a>> {
    // SAFETY: type-checked reads of a valid index; a string key stays on the stack.
    unsafe {
        match ffi::lua_type(state, idx) {
            ffi::LUA_TNUMBER => {
                #[cfg(feature = "lua54")]
                if ffi::lua_isinteger(state, idx) != 0 {
                    return Some(KeyRef::Int(ffi::lua_tointeger(state, idx)));
                }
                KeyRef::number(ffi::lua_tonumber(state, idx))
            }
            ffi::LUA_TSTRING => Some(KeyRef::Str(crate::codec::raw::str_bytes(state, idx))),
            ffi::LUA_TBOOLEAN => Some(KeyRef::Bool(ffi::lua_toboolean(state, idx) != 0)),
            _ => None,
        }
    }
}

/// Run a raw function's body; raise its error (at the caller's position) or its panic
/// as a Lua error once the body's values are dropped.
///
/// The body returns its result count as a `u8`, widened here. The C ABI leaves the
/// upper half of `rax` undefined for an `int` return, and an optimised
/// `Result<c_int, _>` return did leave garbage there; Debian's LuaJIT 2.1 then crashed
/// in `lj_vm_return` (as in LuaJIT issue #319). Widening a byte always clears it.
///
/// # Safety
/// Call only as the whole body of a `lua_CFunction`.
pub(crate) unsafe fn guard(
    state: *mut ffi::lua_State,
    body: impl FnOnce(*mut ffi::lua_State) -> Result<u8, String>,
) -> c_int {
    let msg = match std::panic::catch_unwind(AssertUnwindSafe(|| body(state))) {
        Ok(Ok(n)) => {
            // The results a body promises must be on the stack (debug builds).
            // SAFETY: reading the top of the running function's state.
            let top = unsafe { ffi::lua_gettop(state) };
            debug_assert!(
                top >= c_int::from(n),
                "weft: Lua stack unbalanced: a raw function returns {n} value(s) but has fewer"
            );
            return c_int::from(n);
        }
        Ok(Err(msg)) => msg,
        Err(_) => "weft: internal error (a panic was caught; please report it)".to_string(),
    };
    // SAFETY: the body's values are gone. The message is built under protect (if that
    // fails, its memory error is raised instead), and `msg` is dropped before lua_error
    // unwinds through this frame, outside catch_unwind.
    unsafe {
        let bytes: &[u8] = msg.as_bytes();
        let built = protect(state, 0, 1, &mut |state| {
            // Level 0 is the trampoline, 1 the raw function, 2 its Lua caller.
            ffi::luaL_where(state, 2);
            push_bytes(state, bytes);
            ffi::lua_concat(state, 2);
        });
        if let Err(e) = built {
            drop(e);
            ffi::lua_pushstring(state, c"not enough memory".as_ptr());
        }
        drop(msg);
        ffi::lua_error(state)
    }
}

/// Registry key (its address) of the protected-call trampoline on Lua 5.1 and LuaJIT,
/// where pushing a C function allocates a closure.
#[cfg(not(feature = "lua54"))]
static TRAMPOLINE_KEY: u8 = 0;

/// What [`trampoline`] runs: the caller's closure and how many results it leaves.
struct Call<'a> {
    body: &'a mut dyn FnMut(*mut ffi::lua_State),
    nresults: c_int,
}

thread_local! {
    /// The [`Call`] the next [`trampoline`] on this thread runs (null when none): handed
    /// over here rather than as a light userdata argument, which costs a push and a read.
    static CALL: std::cell::Cell<*mut std::ffi::c_void> =
        const { std::cell::Cell::new(std::ptr::null_mut()) };
}

/// The C function [`protect`] calls under `lua_pcall`; it takes the [`Call`] from
/// [`CALL`] (and does nothing if there is none, e.g. called from Lua by other means).
unsafe extern "C-unwind" fn trampoline(state: *mut ffi::lua_State) -> c_int {
    let call = CALL.with(|c| c.replace(std::ptr::null_mut())) as *mut Call;
    if call.is_null() {
        return 0;
    }
    // SAFETY: `protect` stored a pointer to a Call that outlives its lua_pcall, which is
    // the call running now. A Lua error raised by the body unwinds (LuaJIT) or longjmps
    // (PUC Lua) through this frame and the body's, which own nothing, to that lua_pcall;
    // no catch_unwind is crossed.
    unsafe {
        ((*call).body)(state);
        match (*call).nresults {
            ffi::LUA_MULTRET => ffi::lua_gettop(state),
            n => n,
        }
    }
}

/// Push the trampoline without raising.
#[cfg(feature = "lua54")]
unsafe fn push_trampoline(state: *mut ffi::lua_State) -> Result<(), String> {
    // SAFETY: a light C function: nothing is allocated.
    unsafe { ffi::lua_pushcfunction(state, trampoline) };
    Ok(())
}

/// Push the trampoline without raising: the closure is made once per state, under
/// `lua_cpcall` (which protects its own closure), and kept in the registry under an
/// integer reference; `registry[TRAMPOLINE_KEY]` holds that reference.
#[cfg(not(feature = "lua54"))]
unsafe fn push_trampoline(state: *mut ffi::lua_State) -> Result<(), String> {
    thread_local! {
        /// The reference last seen to hold the trampoline (in whichever state): checked
        /// before use, so a reference of another state costs only a second lookup.
        static REF: std::cell::Cell<ffi::lua_Integer> = const { std::cell::Cell::new(0) };
    }
    unsafe extern "C-unwind" fn install(state: *mut ffi::lua_State) -> c_int {
        // SAFETY: runs under lua_cpcall; raising here is caught there.
        unsafe {
            ffi::lua_pushcfunction(state, trampoline);
            let r = ffi::luaL_ref(state, ffi::LUA_REGISTRYINDEX);
            ffi::lua_pushlightuserdata(state, key());
            ffi::lua_pushinteger(state, r as ffi::lua_Integer);
            ffi::lua_rawset(state, ffi::LUA_REGISTRYINDEX);
        }
        0
    }
    fn key() -> *mut std::ffi::c_void {
        &TRAMPOLINE_KEY as *const u8 as *mut std::ffi::c_void
    }
    /// Push `registry[r]` if it is the trampoline.
    unsafe fn push_ref(state: *mut ffi::lua_State, r: ffi::lua_Integer) -> bool {
        // SAFETY: raw registry reads allocate nothing; the value is popped unless it is
        // the trampoline.
        unsafe {
            if r <= 0 {
                return false;
            }
            ffi::lua_rawgeti(state, ffi::LUA_REGISTRYINDEX, r);
            let f = ffi::lua_tocfunction(state, -1);
            if f.map(|f| f as *const ()) == Some(trampoline as *const ()) {
                return true;
            }
            ffi::lua_pop(state, 1);
            false
        }
    }
    // SAFETY: raw registry reads with integer and light userdata keys allocate nothing;
    // the install runs under lua_cpcall.
    unsafe {
        if push_ref(state, REF.with(|r| r.get())) {
            return Ok(());
        }
        for attempt in 0..2 {
            ffi::lua_pushlightuserdata(state, key());
            ffi::lua_rawget(state, ffi::LUA_REGISTRYINDEX);
            let r = ffi::lua_tointeger(state, -1);
            ffi::lua_pop(state, 1);
            if push_ref(state, r) {
                REF.with(|c| c.set(r));
                return Ok(());
            }
            if attempt == 0 && ffi::lua_cpcall(state, install, std::ptr::null_mut()) != 0 {
                return Err(pop_error(state));
            }
        }
    }
    Err("weft: internal error: the protected-call function is missing".into())
}

/// Pop the error value `lua_pcall` left, as text, without calling anything that raises
/// (a number is formatted here: `lua_tolstring` would allocate).
unsafe fn pop_error(state: *mut ffi::lua_State) -> String {
    // SAFETY: type-checked reads of the top value, then one pop.
    unsafe {
        let text = match ffi::lua_type(state, -1) {
            ffi::LUA_TSTRING => {
                String::from_utf8_lossy(crate::codec::raw::str_bytes(state, -1)).into_owned()
            }
            ffi::LUA_TNUMBER => format!("{}", ffi::lua_tonumber(state, -1)),
            _ => format!("(error object is a {} value)", type_of(state, -1)),
        };
        ffi::lua_pop(state, 1);
        text
    }
}

/// Run `body` under `lua_pcall`, so that a Lua error it raises (a metamethod's error, a
/// memory error) comes back as `Err` with its text instead of unwinding through Rust.
///
/// The top `nargs` values are the body's arguments (the body runs in a new C frame:
/// index 1 is the first of them, and the caller's other slots are out of reach); it must
/// leave `nresults` values on top (or any number, all kept, for `LUA_MULTRET`), which
/// replace the arguments. On `Err` nothing is left.
/// The body must not panic and must not own values with destructors (a `longjmp` would
/// skip them): it should only borrow from its caller and call the C API.
///
/// # Safety
/// A valid state with `nargs` values and 3 free slots above them.
pub(crate) unsafe fn protect(
    state: *mut ffi::lua_State,
    nargs: c_int,
    nresults: c_int,
    body: &mut dyn FnMut(*mut ffi::lua_State),
) -> Result<(), String> {
    // SAFETY: forwarded contract. Success replaces the arguments with the results;
    // failure leaves neither.
    unsafe {
        let check = crate::stack::StackCheck::new(state);
        let result = protect_unchecked(state, nargs, nresults, body);
        if nresults != ffi::LUA_MULTRET {
            check.expect(if result.is_ok() {
                nresults - nargs
            } else {
                -nargs
            });
        }
        result
    }
}

/// [`protect`] without its debug-build stack check.
///
/// # Safety
/// As for [`protect`].
unsafe fn protect_unchecked(
    state: *mut ffi::lua_State,
    nargs: c_int,
    nresults: c_int,
    body: &mut dyn FnMut(*mut ffi::lua_State),
) -> Result<(), String> {
    let mut call = Call { body, nresults };
    // SAFETY: the trampoline goes below the arguments; the Call pointer is used only
    // during this lua_pcall (the previous one, of an enclosing protect, is restored).
    unsafe {
        if let Err(e) = push_trampoline(state) {
            ffi::lua_pop(state, nargs);
            return Err(e);
        }
        if nargs > 0 {
            ffi::lua_insert(state, -(nargs + 1));
        }
        let me = &mut call as *mut Call as *mut std::ffi::c_void;
        let previous = CALL.with(|c| c.replace(me));
        let status = ffi::lua_pcall(state, nargs, nresults, 0);
        CALL.with(|c| c.set(previous));
        if status != ffi::LUA_OK {
            return Err(pop_error(state));
        }
    }
    Ok(())
}

/// Push `t[name]` for the table at `idx`, through its metamethods (as `t.name` in Lua
/// would); a raising `__index` becomes `Err` with its message.
///
/// # Safety
/// A valid state, `idx` a valid index, 4 free slots.
pub(crate) unsafe fn get_field(
    state: *mut ffi::lua_State,
    idx: c_int,
    name: &CStr,
) -> Result<(), String> {
    // SAFETY: the table is passed to the protected body as its argument 1.
    unsafe {
        crate::stack::checked(state, 1, || {
            ffi::lua_pushvalue(state, idx);
            protect(state, 1, 1, &mut |state| {
                ffi::lua_getfield(state, 1, name.as_ptr());
            })
        })
    }
}

/// Encode the value at `idx` with `encoder` under protection: the encoder raises no Lua
/// error of its own, but dumping a function or reading a metafield may allocate, and a
/// memory error must not unwind into a raw function's `catch_unwind`.
///
/// # Safety
/// A valid state, `idx` a valid index, 4 free slots.
pub(crate) unsafe fn encode(
    state: *mut ffi::lua_State,
    encoder: &mut crate::codec::Encoder<'_>,
    idx: c_int,
    label: crate::codec::Label,
) -> Result<(), String> {
    let mut result = Ok(());
    // SAFETY: the value is the body's argument 1; the encoder is borrowed, not owned.
    unsafe {
        crate::stack::checked(state, 0, || {
            ffi::lua_pushvalue(state, idx);
            protect(state, 1, 0, &mut |state| {
                result = encoder.push(state, 1, label, 1);
            })
        })?;
    }
    result
}

/// Push a Rust string; a memory error comes back as `Err`.
///
/// # Safety
/// A valid state with 4 free slots.
pub(crate) unsafe fn push_str(state: *mut ffi::lua_State, bytes: &[u8]) -> Result<(), String> {
    // SAFETY: the body only copies the bytes into a new Lua string.
    // (protect checks the one result in debug builds.)
    unsafe { protect(state, 0, 1, &mut |state| push_bytes(state, bytes)) }
}

/// Push a Rust string, or, if Lua has no memory for it, Lua's own memory-error message
/// (a string made when the state was): one value either way, and nothing raised.
///
/// # Safety
/// A valid state with 4 free slots.
pub(crate) unsafe fn push_str_or_memory_error(state: *mut ffi::lua_State, bytes: &[u8]) {
    // SAFETY: as in `protect`; on failure lua_pcall leaves the error value, which is
    // kept as the result.
    unsafe {
        let mut call_body = |state: *mut ffi::lua_State| push_bytes(state, bytes);
        let mut call = Call {
            body: &mut call_body,
            nresults: 1,
        };
        if push_trampoline(state).is_err() {
            // The failed install left nothing; the error text is gone too.
            ffi::lua_pushnil(state);
            return;
        }
        let me = &mut call as *mut Call as *mut std::ffi::c_void;
        let previous = CALL.with(|c| c.replace(me));
        let _ = ffi::lua_pcall(state, 0, 1, 0);
        CALL.with(|c| c.set(previous));
    }
}

unsafe extern "C-unwind" fn collect<T: RawType>(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: `__gc` is called with the userdata; dropping an Arc cannot unwind into Lua
    // (a panic in a destructor is caught here).
    unsafe {
        // No reference to the userdata is alive: `__gc` runs on its own.
        let value = take::<T>(state, 1);
        let _ = std::panic::catch_unwind(AssertUnwindSafe(move || drop(value)));
    }
    0
}

unsafe extern "C-unwind" fn eq<T: RawType>(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: reads two stack slots and pushes one boolean.
    unsafe {
        let same = match (slot::<T>(state, 1), slot::<T>(state, 2)) {
            (Some(a), Some(b)) => matches!((&a.value, &b.value), (Some(a), Some(b)) if a.same(b)),
            _ => false,
        };
        ffi::lua_pushboolean(state, same as c_int);
    }
    1
}

unsafe extern "C-unwind" fn tostring<T: RawType>(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: raw function body; see `guard`.
    unsafe {
        guard(state, |state| {
            // A freed handle still prints (print and error messages call tostring).
            let text = match slot::<T>(state, 1) {
                Some(Slot { value: None, .. }) => format!("{} (freed)", type_name::<T>()),
                _ => arg::<T>(state, 1, "tostring")?.describe(),
            };
            push_str(state, text.as_bytes())?;
            Ok(1)
        })
    }
}

unsafe extern "C-unwind" fn export<T: RawType>(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: raw function body; see guard.
    unsafe {
        guard(state, |state| {
            let v = arg::<T>(state, 1, "weft")?;
            let h = v.handle().ok_or_else(|| {
                format!(
                    "a {} stays in the thread that made it (open it again there)",
                    type_name::<T>()
                )
            })?;
            crate::codec::stash_handle(h);
            Ok(0)
        })
    }
}
