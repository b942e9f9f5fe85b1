//! Status codes, the thread-local last error, and the guard every entry point runs its body
//! in (no Rust panic crosses the C boundary).

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use weft_compute::ComputeError;

/// What a weft function returns (as `int`): 0 on success, else one of these codes, with
/// the one-line message in `weft_last_error()`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum weft_status {
    /// Success.
    WEFT_OK = 0,
    /// A required pointer argument was NULL.
    WEFT_ERR_NULL = 1,
    /// An output buffer is too small for the result (its length is given in elements).
    WEFT_ERR_BUFFER = 2,
    /// The embeddings are unusable: a NaN, ±Inf or all-zero row, too few rows, d = 0.
    WEFT_ERR_INPUT = 3,
    /// k, a start or an id is out of range.
    WEFT_ERR_RANGE = 4,
    /// An argument or option is invalid (threads, resume with force, a misaligned buffer).
    WEFT_ERR_ARGUMENT = 5,
    /// The result would not fit the memory budget.
    WEFT_ERR_BUDGET = 6,
    /// A file operation failed (the message names the file and the system's reason).
    WEFT_ERR_IO = 7,
    /// A cache file is refused, not a cache, damaged, or lacks the ordering asked for.
    WEFT_ERR_CACHE = 8,
    /// Another process is writing the cache.
    WEFT_ERR_BUSY = 9,
    /// The cancel token was set; the orderings committed so far stay (resumable).
    WEFT_ERR_CANCELLED = 10,
    /// A bug in weft (a Rust panic, caught at the boundary).
    WEFT_ERR_INTERNAL = 11,
}

/// A failed call: its status and its message (without the function-name prefix).
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: weft_status,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(status: weft_status, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }
}

impl From<ComputeError> for Failure {
    fn from(e: ComputeError) -> Failure {
        use weft_status::*;
        let status = match &e {
            ComputeError::TooFewRows { .. }
            | ComputeError::TooManyRows { .. }
            | ComputeError::Shape { .. }
            | ComputeError::BadRow { .. } => WEFT_ERR_INPUT,
            ComputeError::SimilarityShape { .. } => WEFT_ERR_BUFFER,
            ComputeError::KOutOfRange { .. } | ComputeError::StartOutOfRange { .. } => {
                WEFT_ERR_RANGE
            }
            ComputeError::OverBudget { .. } => WEFT_ERR_BUDGET,
            ComputeError::Threads(_) | ComputeError::ResumeWithForce => WEFT_ERR_ARGUMENT,
            ComputeError::Io { .. } => WEFT_ERR_IO,
            ComputeError::CacheBusy { .. } => WEFT_ERR_BUSY,
            ComputeError::CacheFormat { .. }
            | ComputeError::CacheMissing { .. }
            | ComputeError::CacheDamaged { .. }
            | ComputeError::CacheReplaced { .. }
            | ComputeError::CacheRefused { .. } => WEFT_ERR_CACHE,
        };
        Failure::new(status, e.to_string())
    }
}

thread_local! {
    /// The message of this thread's last failed call ("" after a successful one).
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    // One line, no NUL (a C string ends at the first one).
    let line = message.replace(['\n', '\r'], " ").replace('\0', "");
    let c = CString::new(line).unwrap_or_default();
    // `try_with`: during thread teardown the slot may be gone; the message is then lost,
    // which is better than a panic.
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = c);
}

/// A pointer to this thread's last error message (valid until its next weft call).
pub(crate) fn last_error() -> *const c_char {
    LAST_ERROR
        .try_with(|slot| slot.borrow().as_ptr())
        .unwrap_or(c"".as_ptr())
}

/// Runs the body of the entry point `what`: its result becomes the status code, and its
/// error (or a caught panic) the thread's last error, prefixed with `what`.
pub(crate) fn guard(what: &str, body: impl FnOnce() -> Result<(), Failure>) -> c_int {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => {
            set_last_error("");
            weft_status::WEFT_OK as c_int
        }
        Ok(Err(f)) => {
            set_last_error(&format!("{what}: {}", f.message));
            f.status as c_int
        }
        Err(payload) => {
            let why = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(&format!(
                "{what}: internal error (a bug in weft, please report it): {why}"
            ));
            weft_status::WEFT_ERR_INTERNAL as c_int
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn last() -> String {
        // SAFETY: last_error points to this thread's NUL-terminated message.
        unsafe { CStr::from_ptr(last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn a_panic_becomes_an_internal_error_with_its_message() {
        let rc = guard("weft_test", || panic!("kaboom {}", 42));
        assert_eq!(rc, weft_status::WEFT_ERR_INTERNAL as c_int);
        assert_eq!(
            last(),
            "weft_test: internal error (a bug in weft, please report it): kaboom 42"
        );
    }

    #[test]
    fn the_last_error_is_one_line_per_thread_and_cleared_by_success() {
        let rc = guard("weft_a", || {
            Err(Failure::new(weft_status::WEFT_ERR_RANGE, "two\nlines"))
        });
        assert_eq!(rc, 4);
        assert_eq!(last(), "weft_a: two lines");
        // another thread has its own message
        std::thread::spawn(|| {
            assert_eq!(last(), "");
            guard("weft_b", || {
                Err(Failure::new(weft_status::WEFT_ERR_IO, "b"))
            });
            assert_eq!(last(), "weft_b: b");
        })
        .join()
        .unwrap();
        assert_eq!(last(), "weft_a: two lines");
        assert_eq!(guard("weft_c", || Ok(())), 0);
        assert_eq!(last(), "");
    }
}
