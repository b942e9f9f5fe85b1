//! The weft objects that cross threads by reference rather than by copy.

use crate::{channel::Channel, pool::Pool, task::Task};
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
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Handle::Task(_) => f.write_str("Handle::Task"),
            Handle::Channel(_) => f.write_str("Handle::Channel"),
            Handle::Pool(_) => f.write_str("Handle::Pool"),
        }
    }
}
