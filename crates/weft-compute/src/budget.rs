//! The memory budget: how many bytes a kernel may hold for an N×N intermediate.
//!
//! Kernels that would like a full similarity matrix (or its compact form) check it against
//! the budget; when it does not fit they compute blocks or rows of S on the fly from the
//! embeddings instead (slower, same results). Outputs the caller asked for in full (the
//! matrix of [`fn@crate::similarity`]) are refused with [`crate::ComputeError::OverBudget`].

/// A memory budget in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    bytes: u64,
}

/// Used when physical memory cannot be read (non-Linux systems without /proc).
const FALLBACK_PHYSICAL: u64 = 8 << 30;

impl Budget {
    /// A budget of exactly `bytes`.
    pub fn bytes(bytes: u64) -> Self {
        Budget { bytes }
    }

    /// A fraction of physical memory (clamped to 0..=1).
    pub fn fraction(f: f64) -> Self {
        let f = f.clamp(0.0, 1.0);
        Budget {
            bytes: (physical_memory() as f64 * f) as u64,
        }
    }

    /// The budget in bytes.
    pub fn get(&self) -> u64 {
        self.bytes
    }

    /// Whether `bytes` fit.
    pub fn fits(&self, bytes: u64) -> bool {
        bytes <= self.bytes
    }
}

impl Default for Budget {
    /// Half of physical memory.
    fn default() -> Self {
        Budget::fraction(0.5)
    }
}

/// Physical memory in bytes, from `/proc/meminfo` (`MemTotal`), or 8 GiB when unknown.
pub fn physical_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                let rest = l.strip_prefix("MemTotal:")?;
                let kib: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
                Some(kib * 1024)
            })
        })
        .unwrap_or(FALLBACK_PHYSICAL)
}
