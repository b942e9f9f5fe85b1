//! SIGINT and SIGTERM during a long job: the first one sets the cancel flag (the job
//! finishes its current batch, saves it and stops); a second one exits at once with
//! 128 + the signal's number, which is safe too, since only committed work counts.

use crate::error::Failure;
use signal_hook::consts::{SIGINT, SIGTERM};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// The flag the handlers set, and which signal set it.
pub struct Interrupt {
    cancel: Arc<AtomicBool>,
    signal: Arc<AtomicUsize>,
}

impl Interrupt {
    /// Installs the handlers for SIGINT and SIGTERM.
    pub fn install() -> Result<Interrupt, Failure> {
        let cancel = Arc::new(AtomicBool::new(false));
        let signal = Arc::new(AtomicUsize::new(0));
        let fail = |e: std::io::Error| Failure::new(format!("cannot install signal handlers: {e}"));
        for sig in [SIGINT, SIGTERM] {
            // Registered first, so it sees the flag as it was before this signal: only a
            // second signal finds it set and exits.
            signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&cancel))
                .map_err(fail)?;
            signal_hook::flag::register(sig, Arc::clone(&cancel)).map_err(fail)?;
            signal_hook::flag::register_usize(sig, Arc::clone(&signal), sig as usize)
                .map_err(fail)?;
        }
        Ok(Interrupt { cancel, signal })
    }

    /// The cancel flag to hand to the engine.
    pub fn flag(&self) -> &AtomicBool {
        &self.cancel
    }

    /// The signal received, if any: (name, exit code).
    pub fn received(&self) -> Option<(&'static str, u8)> {
        match self.signal.load(Ordering::SeqCst) as i32 {
            0 => None,
            SIGINT => Some(("SIGINT", 130)),
            SIGTERM => Some(("SIGTERM", 143)),
            other => Some(("a signal", (128 + other).clamp(129, 255) as u8)),
        }
    }
}
