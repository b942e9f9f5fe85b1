//! The value codec: Lua values on a state's stack ⇄ [`weft_core::Message`].
//!
//! Written against the raw C API because it is the hot path of every crossing (a channel
//! item, a task's arguments and results, a 10⁶-element table handed to a worker); going
//! through mlua's safe values would cost a registry reference per nested table.
//!
//! Every function here runs inside `Lua::exec_raw` (a protected call), on the thread that
//! owns the state. The encoder only reads the stack and never raises a Lua error; the
//! decoder raises only on memory exhaustion, and calls anything that can fail (`require`,
//! the handle import callback) through `lua_pcall`.

pub mod decode;
pub mod encode;
pub mod modules;
mod path;
pub(crate) mod raw;

pub use decode::Decoder;
pub use encode::{Encoder, Label};

use std::cell::RefCell;
use weft_core::Handle;

/// The codec's per-state caches. One lives in each Lua state weft touches.
#[derive(Default)]
pub struct CodecState {
    /// Identity → name for values that cross by name.
    pub modules: RefCell<modules::ModuleIndex>,
    /// Sent functions' bytecode.
    pub dumps: RefCell<encode::DumpCache>,
    /// Received functions, loaded once.
    pub loads: RefCell<decode::LoadCache>,
}

thread_local! {
    static HANDLE_SLOT: RefCell<Option<Handle>> = const { RefCell::new(None) };
}

/// Hand a handle between the codec and the export/import callbacks (which are mlua
/// functions called through `lua_pcall`, so they cannot take Rust arguments directly).
pub(crate) fn stash_handle(h: Handle) {
    HANDLE_SLOT.with(|s| *s.borrow_mut() = Some(h));
}

/// Take the handle last stashed on this thread.
pub(crate) fn take_handle() -> Option<Handle> {
    HANDLE_SLOT.with(|s| s.borrow_mut().take())
}
