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
//! - [`array`](mod@array): typed off-heap arrays shared by reference (numpy's `.npy` file
//!   format for them is the weft-npy crate); [`memory`]: how many bytes weft holds.
//! - [`files`]: file identity (device, inode) and how an output path is written.
//! - [`key`]: hashable table keys, normalised as Lua normalises them.
//! - [`wire`]: a message as bytes, for another process (MPI ranks); arrays copied.
//!
//! The Lua binding (weft-lua) turns Lua values into [`message::Message`]s and back, and
//! runs Lua states on the threads this crate manages.
//!
//! # Examples
//!
//! An off-heap array, written element by element:
//!
//! ```
//! use weft_core::array::{Array, DType, Scalar};
//!
//! let a = Array::zeros(DType::F32, 2, Some(3))?; // 2 rows × 3 columns, zero-filled
//! a.set(4, Scalar::Num(2.5))?; // row 1, column 1 (row-major, 0-based)
//! assert_eq!(a.shape(), (2, Some(3)));
//! assert_eq!(a.get(4), Some(Scalar::Num(2.5)));
//! assert_eq!(a.get(6), None); // past the end
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A bounded channel between two threads; a closed channel still yields what it holds:
//!
//! ```
//! use weft_core::channel::{Channel, PopError};
//! use weft_core::deadline::Deadline;
//! use weft_core::message::{Message, Value};
//!
//! let ch = Channel::new(Some(4)); // at most 4 queued messages
//! let tx = ch.clone();
//! let producer = std::thread::spawn(move || {
//!     for i in 1..=3 {
//!         tx.push(Message::single(Value::Int(i)), Deadline::Never, None).unwrap();
//!     }
//!     tx.close();
//! });
//! let mut got = Vec::new();
//! loop {
//!     match ch.pop(Deadline::Never, None) {
//!         Ok(m) => match m.values[0] {
//!             Value::Int(i) => got.push(i),
//!             ref other => panic!("unexpected {other:?}"),
//!         },
//!         Err(PopError::Closed) => break,
//!         Err(e) => panic!("{e}"),
//!     }
//! }
//! producer.join().unwrap();
//! assert_eq!(got, [1, 2, 3]);
//! ```
#![deny(missing_docs)]

pub mod array;
mod backoff;
pub mod cancel;
pub mod channel;
pub mod counter;
pub mod deadline;
pub mod files;
pub mod frozen;
pub mod handle;
pub mod key;
pub mod memory;
pub mod message;
pub mod pool;
mod recycle;
pub mod shared_table;
pub mod task;
pub mod wire;

pub use array::{Array, DType};
pub use cancel::CancelToken;
pub use channel::Channel;
pub use deadline::Deadline;
pub use frozen::Frozen;
pub use handle::Handle;
pub use message::{Message, Node, Value};
pub use pool::Pool;
pub use task::{Outcome, Status, Task};
