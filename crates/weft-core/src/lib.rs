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
//! - [`frozen`]: immutable snapshots of tables, read from any thread without a lock.
//! - [`counter`]: atomic integers; [`shared_table`]: the locked, mutable shared table.
//! - [`array`](mod@array): typed off-heap arrays shared by reference; [`npy`]: numpy's file format;
//!   [`memory`]: how many bytes weft holds.
//! - [`files`]: file identity (device, inode) and how an output path is written.
//! - [`key`]: hashable table keys, normalised as Lua normalises them.
//! - [`jsonl`]: JSON Lines files read into a message (a corpus as a table).
//!
//! The Lua binding (weft-lua) turns Lua values into [`message::Message`]s and back, and
//! runs Lua states on the threads this crate manages.
#![deny(missing_docs)]

pub mod array;
pub mod cancel;
pub mod channel;
pub mod counter;
pub mod deadline;
pub mod files;
pub mod frozen;
pub mod handle;
pub mod jsonl;
pub mod key;
pub mod memory;
pub mod message;
pub mod npy;
pub mod pool;
pub mod shared_table;
pub mod task;

pub use array::{Array, DType};
pub use cancel::CancelToken;
pub use channel::Channel;
pub use deadline::Deadline;
pub use frozen::Frozen;
pub use handle::Handle;
pub use message::{Message, Node, Value};
pub use pool::Pool;
pub use task::{Outcome, Status, Task};
