//! weft-core: everything that crosses threads, and nothing that knows about Lua.
//!
//! - [`message`]: the owned, `Send` form of a Lua value graph (tables with cycles,
//!   functions as bytecode plus upvalues, modules by name, handles by reference).
//! - [`cancel`]: cancellation tokens and the "what am I blocked on" wake-up link.
//! - [`task`]: the completion latch and outcome shared by a thread handle or a pool future.
//! - [`channel`]: bounded or unbounded MPMC queues of messages, interruptible by cancel.
//! - [`pool`]: worker threads with a shared queue; waiting inside a worker helps run
//!   queued jobs, so a task that submits to its own pool and waits cannot deadlock.
//! - [`handle`]: the shared objects a message carries by reference.
//!
//! The Lua binding (weft-lua) turns Lua values into [`message::Message`]s and back, and
//! runs Lua states on the threads this crate manages.

pub mod cancel;
pub mod channel;
pub mod deadline;
pub mod handle;
pub mod message;
pub mod pool;
pub mod task;

pub use cancel::CancelToken;
pub use channel::Channel;
pub use deadline::Deadline;
pub use handle::Handle;
pub use message::{Message, Node, Value};
pub use pool::Pool;
pub use task::{Outcome, Status, Task};
