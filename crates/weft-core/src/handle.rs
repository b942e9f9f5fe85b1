//! The weft objects that cross threads by reference rather than by copy.

use crate::{
    array::Array, channel::Channel, counter::Counter, frozen::Frozen, pool::Pool,
    shared_table::SharedTable, task::Task,
};
use std::sync::Arc;

/// A shared weft object inside a [`crate::Message`]. Cloning shares, never copies.
#[derive(Clone)]
pub enum Handle {
    /// A spawned thread or a pool future.
    Task(Arc<Task>),
    /// A channel.
    Channel(Arc<Channel>),
    /// A worker pool.
    Pool(Arc<Pool>),
    /// A view of a frozen table (boxed, like the array view, to keep
    /// [`crate::Value`] at 24 bytes).
    Frozen(Box<Frozen>),
    /// An atomic counter.
    Counter(Arc<Counter>),
    /// A mutable shared table.
    Table(Arc<SharedTable>),
    /// A view of an off-heap array.
    Array(Box<Array>),
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Handle::Task(_) => f.write_str("Handle::Task"),
            Handle::Channel(_) => f.write_str("Handle::Channel"),
            Handle::Pool(_) => f.write_str("Handle::Pool"),
            Handle::Frozen(t) => write!(f, "Handle::{t:?}"),
            Handle::Counter(_) => f.write_str("Handle::Counter"),
            Handle::Table(_) => f.write_str("Handle::Table"),
            Handle::Array(a) => write!(f, "Handle::{a:?}"),
        }
    }
}
