//! Timeouts as absolute deadlines, so a wait that wakes early keeps its original budget.

use std::time::{Duration, Instant};

/// When a blocking call gives up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deadline {
    /// Wait as long as it takes.
    Never,
    /// Give up at this instant (an instant in the past means "try once, do not block").
    At(Instant),
}

impl Deadline {
    /// A deadline `seconds` from now; `None`, NaN or infinity mean [`Deadline::Never`],
    /// zero or negative mean "do not block".
    pub fn after_secs(seconds: Option<f64>) -> Deadline {
        match seconds {
            Some(s) if s.is_finite() => {
                let s = s.clamp(0.0, 1.0e9);
                Deadline::At(Instant::now() + Duration::from_secs_f64(s))
            }
            _ => Deadline::Never,
        }
    }

    /// True once the deadline has passed.
    pub fn expired(&self) -> bool {
        match self {
            Deadline::Never => false,
            Deadline::At(t) => Instant::now() >= *t,
        }
    }

    /// The instant to pass to a timed condition-variable wait, if any.
    pub fn instant(&self) -> Option<Instant> {
        match self {
            Deadline::Never => None,
            Deadline::At(t) => Some(*t),
        }
    }
}
