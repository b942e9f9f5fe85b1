//! The one error type of this crate: every failure names the input and what is wrong.

use std::path::PathBuf;

/// Why a kernel or a cache operation refused or failed. Row and item indices are 0-based.
#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
    /// The embedding matrix has too few rows for the operation.
    #[error("embeddings: need at least {need} {}, got {n}", if *.need == 1 { "row" } else { "rows" })]
    TooFewRows {
        /// Rows given.
        n: usize,
        /// Rows the operation needs.
        need: usize,
    },
    /// More rows than 32-bit ids can name.
    #[error("embeddings: {n} rows, more than the {max} that 32-bit ids can name")]
    TooManyRows {
        /// Rows given.
        n: usize,
        /// The limit.
        max: usize,
    },
    /// The data length does not match the declared shape, or the width is zero.
    #[error("embeddings: {len} values do not form a {n}×{d} matrix (d must be ≥ 1)")]
    Shape {
        /// Number of values in the buffer.
        len: usize,
        /// Declared rows.
        n: usize,
        /// Declared columns.
        d: usize,
    },
    /// A row cannot be normalised.
    #[error("embeddings: row {row} {problem}")]
    BadRow {
        /// 0-based row index.
        row: usize,
        /// What is wrong with it.
        problem: RowProblem,
    },
    /// A similarity matrix of the wrong size was passed.
    #[error("similarity matrix: {len} values, expected {n}×{n} = {expected}")]
    SimilarityShape {
        /// Values given.
        len: usize,
        /// Rows of the embeddings.
        n: usize,
        /// n·n.
        expected: usize,
    },
    /// `k` is outside `1..=n-1`.
    #[error("topk: k must be in 1..N-1 (N = {n}), got {k}")]
    KOutOfRange {
        /// Requested k.
        k: usize,
        /// Rows.
        n: usize,
    },
    /// A start item is outside `0..n`.
    #[error("diversity: start {start} is out of range 0..{n}")]
    StartOutOfRange {
        /// Requested start (0-based).
        start: usize,
        /// Rows.
        n: usize,
    },
    /// An output would not fit the memory budget.
    #[error("{what} needs {needed} bytes, more than the memory budget of {budget} bytes")]
    OverBudget {
        /// What was to be allocated.
        what: &'static str,
        /// Bytes it needs.
        needed: u64,
        /// The budget in force.
        budget: u64,
    },
    /// `threads` was zero or the pool could not be built.
    #[error("threads: {0}")]
    Threads(String),
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A cache file is not what it should be (not a cache, other version, truncated, …).
    #[error("{path}: {reason}")]
    CacheFormat {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The ordering from `start` is not complete in the cache yet (its bit is clear).
    #[error("{path}: the ordering from start {start} is not in the cache yet")]
    CacheMissing {
        /// The file.
        path: PathBuf,
        /// The start (0-based).
        start: usize,
    },
    /// A record marked complete holds something that is not an ordering.
    #[error(
        "{path}: the ordering from start {start} is damaged: {reason} (ids in the file are \
         0-based); rebuild the cache"
    )]
    CacheDamaged {
        /// The file.
        path: PathBuf,
        /// The start (0-based).
        start: usize,
        /// What is wrong, naming the position and the id.
        reason: String,
    },
    /// Another process holds the cache's write lock.
    #[error(
        "{path}: another process{} is writing this cache; wait for it to finish or stop it",
        holder.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    CacheBusy {
        /// The file.
        path: PathBuf,
        /// The holder's pid, as its lock file says.
        holder: Option<u32>,
    },
    /// The file a writer filled is no longer the file at its path.
    #[error(
        "{path}: the file was replaced or removed while this run wrote it; the orderings \
         computed went to the old file, not the one now at this path"
    )]
    CacheReplaced {
        /// The file.
        path: PathBuf,
    },
    /// `resume` and `force` were both asked for.
    #[error("{}", RESUME_WITH_FORCE)]
    ResumeWithForce,
    /// A cache file belongs to other embeddings, or resuming/overwriting it was refused.
    #[error("{path}: {reason}")]
    CacheRefused {
        /// The file.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },
}

/// The one rule for `resume` with `force`, in the words the CLI and Lua both use.
pub const RESUME_WITH_FORCE: &str = "resume and force cannot be used together: resume \
     continues an unfinished cache, force replaces it with a new one";

/// `count` and `noun`, plural unless the count is 1: "1 ordering", "3 orderings".
pub fn count(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// What makes a row impossible to normalise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowProblem {
    /// Every entry is zero.
    Zero,
    /// An entry is NaN.
    Nan,
    /// An entry is ±Inf.
    Inf,
    /// The norm overflows or underflows after normalisation (entries of absurd magnitude).
    Unnormalisable,
}

impl std::fmt::Display for RowProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RowProblem::Zero => "is all zeros",
            RowProblem::Nan => "contains NaN",
            RowProblem::Inf => "contains Inf",
            RowProblem::Unnormalisable => "cannot be normalised to unit length in f32",
        })
    }
}

impl ComputeError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        ComputeError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
