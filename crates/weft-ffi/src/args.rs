//! Caller-owned buffers and options, checked before they are read: NULL, alignment, sizes.

use crate::status::{weft_status, Failure};
use std::ffi::{c_char, CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use weft_compute::Budget;

/// The options of the compute calls. Start from `weft_options_default()`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct weft_options {
    /// Worker threads; 0 = every core (the default). At most 1024.
    pub threads: usize,
    /// Bytes the engine may use for the N×N similarity matrix; 0 = half of physical
    /// memory (the default). Beyond it top-k and orderings compute S on the fly (same
    /// results, slower) and a full similarity matrix is refused.
    pub budget: u64,
}

/// The engine's thread count: `None` (every core) for 0.
pub(crate) fn threads(t: usize) -> Option<usize> {
    (t != 0).then_some(t)
}

/// The engine's budget: the default (half of physical memory) for 0.
pub(crate) fn budget(b: u64) -> Budget {
    if b == 0 {
        Budget::default()
    } else {
        Budget::bytes(b)
    }
}

/// The options `opts` points to, or the defaults for NULL.
///
/// # Safety
/// `opts` is NULL or points to a valid `weft_options`.
pub(crate) unsafe fn options(opts: *const weft_options) -> weft_options {
    // SAFETY: the caller's contract: NULL or a valid struct.
    unsafe { opts.as_ref() }.copied().unwrap_or_default()
}

/// Fails with `WEFT_ERR_NULL` naming `name` when `p` is NULL.
pub(crate) fn non_null<T>(p: *const T, name: &str) -> Result<(), Failure> {
    if p.is_null() {
        return Err(Failure::new(
            weft_status::WEFT_ERR_NULL,
            format!("{name} is NULL"),
        ));
    }
    Ok(())
}

/// Checks that `p` may be viewed as `len` values of `T`: not NULL, aligned, and
/// `len · size_of::<T>()` bytes addressable (at most `isize::MAX`).
fn check_view<T>(p: *const T, len: usize, name: &str) -> Result<(), Failure> {
    non_null(p, name)?;
    if !p.is_aligned() {
        return Err(Failure::new(
            weft_status::WEFT_ERR_ARGUMENT,
            format!(
                "{name} is not aligned to {} bytes (its element size)",
                std::mem::align_of::<T>()
            ),
        ));
    }
    let bytes = len.checked_mul(std::mem::size_of::<T>());
    if !matches!(bytes, Some(b) if b <= isize::MAX as usize) {
        return Err(Failure::new(
            weft_status::WEFT_ERR_ARGUMENT,
            format!("{name}: {len} elements are more than memory can hold"),
        ));
    }
    Ok(())
}

/// `len` values of `T` at `p`, read-only.
///
/// # Safety
/// When `p` is not NULL it points to at least `len` initialised values of `T`, which
/// nobody writes during the call.
pub(crate) unsafe fn slice<'a, T>(p: *const T, len: usize, name: &str) -> Result<&'a [T], Failure> {
    check_view(p, len, name)?;
    // SAFETY: non-NULL, aligned and within isize::MAX bytes (checked); the caller vouches
    // for the length and for nobody writing it meanwhile.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// The caller's output buffer of `cap` values of `T`, which must hold at least `need`
/// (`what` says what it is for, in the error).
///
/// # Safety
/// When `p` is not NULL it points to at least `cap` writable values of `T`, which nothing
/// else reads or writes during the call.
pub(crate) unsafe fn out_slice<'a, T>(
    p: *mut T,
    cap: usize,
    need: usize,
    name: &str,
    what: &str,
) -> Result<&'a mut [T], Failure> {
    check_view(p, cap, name)?;
    if cap < need {
        return Err(Failure::new(
            weft_status::WEFT_ERR_BUFFER,
            format!("{name} holds {cap} elements, {what} needs {need}"),
        ));
    }
    // SAFETY: as in `slice`, writable and exclusively ours for the call (the contract).
    Ok(unsafe { std::slice::from_raw_parts_mut(p, need) })
}

/// The n×d embeddings at `emb`.
///
/// # Safety
/// As for [`slice`], with `n·d` values.
pub(crate) unsafe fn embeddings<'a>(
    emb: *const f32,
    n: usize,
    d: usize,
) -> Result<weft_compute::Rows<'a>, Failure> {
    let Some(len) = n.checked_mul(d) else {
        return Err(Failure::new(
            weft_status::WEFT_ERR_INPUT,
            format!("embeddings: {n}×{d} values are more than memory can hold"),
        ));
    };
    // SAFETY: forwarded contract.
    let data = unsafe { slice(emb, len, "emb") }?;
    Ok(weft_compute::Rows::new(data, n, d)?)
}

/// `count` product `a·b` of a result's size, or a buffer error when it overflows.
pub(crate) fn product(a: usize, b: usize, what: &str) -> Result<usize, Failure> {
    a.checked_mul(b).ok_or_else(|| {
        Failure::new(
            weft_status::WEFT_ERR_BUFFER,
            format!("{what}: {a}×{b} values are more than memory can hold"),
        )
    })
}

/// A file path from a C string (bytes as the system takes them; no encoding required).
///
/// # Safety
/// `p` is NULL or a NUL-terminated string.
pub(crate) unsafe fn path(p: *const c_char, name: &str) -> Result<PathBuf, Failure> {
    non_null(p, name)?;
    // SAFETY: non-NULL and NUL-terminated (the contract).
    let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
    if bytes.is_empty() {
        return Err(Failure::new(
            weft_status::WEFT_ERR_ARGUMENT,
            format!("{name} is empty; name a file"),
        ));
    }
    Ok(PathBuf::from(OsStr::from_bytes(bytes)))
}
