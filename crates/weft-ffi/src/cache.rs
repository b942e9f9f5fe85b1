//! The diversity cache (docs/cache-format.md) from C: filling it (resume, force, threads,
//! budget, a progress callback, a cancel token) and reading it (open / info / get / close).

use crate::args::{budget, embeddings, non_null, out_slice, path, threads};
use crate::status::{guard, weft_status, Failure};
use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use weft_compute::{count, Cache, CacheInfo, CacheWriter, ComputeError};

/// Called after every committed batch of orderings with the count complete on disk, n, and
/// the options' `user` pointer. It runs on the thread that called `weft_diversity_cache`
/// and must return normally (no longjmp, no exception through weft).
pub type weft_progress_fn =
    Option<unsafe extern "C" fn(done: usize, total: usize, user: *mut c_void)>;

/// A cancel flag the host sets (from any thread, or from the progress callback) to stop a
/// cache run after the orderings in flight (opaque; `weft_cancel_new` / `weft_cancel_free`).
pub struct weft_cancel {
    flag: AtomicBool,
}

/// The options of `weft_diversity_cache`. Start from `weft_cache_options_default()`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct weft_cache_options {
    /// Non-zero: continue an unfinished cache of the same embeddings (a missing file starts
    /// a new one). Not with `force`.
    pub resume: c_int,
    /// Non-zero: replace an existing file, even a finished cache.
    pub force: c_int,
    /// Worker threads; 0 = every core.
    pub threads: usize,
    /// Bytes the compact similarity matrix (n²·2) may take; 0 = half of physical memory.
    /// Beyond it every step is computed from the embeddings (slow, same file).
    pub budget: u64,
    /// Progress callback, or NULL.
    pub progress: weft_progress_fn,
    /// Passed to `progress` unchanged.
    pub user: *mut c_void,
    /// Checked between orderings; when set the call returns `WEFT_ERR_CANCELLED` with the
    /// batches committed so far saved. NULL: not cancellable.
    pub cancel: *const weft_cancel,
}

impl Default for weft_cache_options {
    fn default() -> Self {
        weft_cache_options {
            resume: 0,
            force: 0,
            threads: 0,
            budget: 0,
            progress: None,
            user: std::ptr::null_mut(),
            cancel: std::ptr::null(),
        }
    }
}

/// The state of a cache file: what its header and bitmap say (`weft_cache_info`, and
/// `weft_diversity_cache` when it returns).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct weft_cache_state {
    /// Items (and orderings).
    pub n: usize,
    /// Embedding width.
    pub d: usize,
    /// Bytes per id in the file: 2 when n ≤ 65,535, else 4.
    pub id_width: usize,
    /// Orderings complete on disk.
    pub done: usize,
    /// 1 when all n are complete, else 0.
    pub complete: c_int,
    /// SHA-256 of the raw embeddings (docs/cache-format.md).
    pub hash: [u8; 32],
}

impl From<&CacheInfo> for weft_cache_state {
    fn from(i: &CacheInfo) -> Self {
        weft_cache_state {
            n: i.n,
            d: i.d,
            id_width: i.id_width,
            done: i.done,
            complete: i.complete as c_int,
            hash: i.hash,
        }
    }
}

/// The default cache options: create (no resume, no force), every core, the default
/// budget, no progress callback, not cancellable.
#[no_mangle]
pub extern "C" fn weft_cache_options_default() -> weft_cache_options {
    weft_cache_options::default()
}

/// A new, unset cancel token (NULL only if memory runs out). Free it with
/// `weft_cancel_free` after the last call that uses it has returned.
#[no_mangle]
pub extern "C" fn weft_cancel_new() -> *mut weft_cancel {
    std::panic::catch_unwind(|| {
        Box::into_raw(Box::new(weft_cancel {
            flag: AtomicBool::new(false),
        }))
    })
    .unwrap_or(std::ptr::null_mut())
}

/// Sets the token (thread-safe; NULL is ignored): running and later cache calls that use
/// it stop after the orderings in flight.
///
/// # Safety
/// `c` is NULL or a live token.
#[no_mangle]
pub unsafe extern "C" fn weft_cancel_set(c: *const weft_cancel) {
    // SAFETY: NULL or a live token (the contract); an atomic store is thread-safe.
    if let Some(c) = unsafe { c.as_ref() } {
        c.flag.store(true, Ordering::Relaxed);
    }
}

/// Clears the token, so it can be used again (NULL is ignored).
///
/// # Safety
/// `c` is NULL or a live token.
#[no_mangle]
pub unsafe extern "C" fn weft_cancel_reset(c: *const weft_cancel) {
    // SAFETY: as in weft_cancel_set.
    if let Some(c) = unsafe { c.as_ref() } {
        c.flag.store(false, Ordering::Relaxed);
    }
}

/// Releases a token (NULL is ignored).
///
/// # Safety
/// `c` is NULL or a live token no running call uses.
#[no_mangle]
pub unsafe extern "C" fn weft_cancel_free(c: *mut weft_cancel) {
    if !c.is_null() {
        // SAFETY: created by weft_cancel_new and freed once (the contract).
        drop(unsafe { Box::from_raw(c) });
    }
}

/// Computes every diversity ordering of `emb` (n × d, raw: the cache hashes and
/// normalises them) into the cache file `path`, in batches each synced before it is marked
/// complete. An existing file is refused unless `opts->resume` (continue it: same
/// embeddings only) or `opts->force` (replace it). Cancelled: `WEFT_ERR_CANCELLED`, the
/// committed orderings stay and a later call with `resume` continues. `info` (may be
/// NULL) receives the state reached, also on cancellation. Another writer of the same path
/// is refused with `WEFT_ERR_BUSY`.
///
/// # Safety
/// `emb` points to n·d floats; `path` is a NUL-terminated string; `opts` is NULL or valid
/// (its `cancel` NULL or a live token); `info` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn weft_diversity_cache(
    emb: *const f32,
    n: usize,
    d: usize,
    path: *const c_char,
    opts: *const weft_cache_options,
    info: *mut weft_cache_state,
) -> c_int {
    guard("weft_diversity_cache", || {
        // SAFETY: the function's contract.
        let (rows, p) = unsafe { (embeddings(emb, n, d)?, path_arg(path)?) };
        // SAFETY: NULL or a valid struct (the contract).
        let o = unsafe { opts.as_ref() }.copied().unwrap_or_default();
        if o.resume != 0 && o.force != 0 {
            return Err(ComputeError::ResumeWithForce.into());
        }
        weft_compute::threads::resolve(threads(o.threads))?;
        // SAFETY: NULL or a live token (the contract).
        let token = unsafe { o.cancel.as_ref() };
        let never = AtomicBool::new(false);
        let cancel = token.map_or(&never, |c| &c.flag);
        let writer = if o.resume != 0 && p.exists() {
            CacheWriter::resume(&p, rows)
        } else {
            CacheWriter::create(&p, rows, o.force != 0)
        };
        let mut writer = writer?.budget(budget(o.budget));
        let mut report = |pr: weft_compute::Progress| {
            if let Some(f) = o.progress {
                // SAFETY: the host's callback with its own user pointer (its contract:
                // it returns normally).
                unsafe { f(pr.done, pr.total, o.user) };
            }
        };
        let before = writer.info().done;
        let reached = writer.run(threads(o.threads), &mut report, cancel);
        let state = match &reached {
            Ok(i) => i.clone(),
            Err(_) => Cache::open(&p)
                .map(|c| c.info().clone())
                .unwrap_or_else(|_| writer.info().clone()),
        };
        if !info.is_null() {
            // SAFETY: NULL or writable (the contract).
            unsafe { info.write((&state).into()) };
        }
        let saved = format!(
            "{} of {} are saved in {}",
            state.done.max(before),
            count(state.n, "ordering"),
            p.display()
        );
        match reached {
            Ok(i) if i.complete => Ok(()),
            Ok(_) => Err(Failure::new(
                weft_status::WEFT_ERR_CANCELLED,
                format!("cancelled: {saved}; call again with resume to continue"),
            )),
            Err(e @ (ComputeError::CacheReplaced { .. } | ComputeError::Threads(_))) => {
                Err(e.into())
            }
            Err(e) => {
                let f = Failure::from(e);
                Err(Failure::new(
                    f.status,
                    format!("{}; {saved}; call again with resume to continue", f.message),
                ))
            }
        }
    })
}

/// The cache path argument.
///
/// # Safety
/// As for [`path`].
unsafe fn path_arg(p: *const c_char) -> Result<std::path::PathBuf, Failure> {
    // SAFETY: forwarded contract.
    let p = unsafe { path(p, "path") }?;
    if p.is_dir() {
        return Err(Failure::new(
            weft_status::WEFT_ERR_IO,
            format!("{}: is a directory; name a cache file", p.display()),
        ));
    }
    Ok(p)
}

/// A diversity cache opened for reading (opaque). Its functions only read it, so it may be
/// used from several threads at once.
pub struct weft_cache {
    cache: Cache,
}

/// Opens and validates the cache file `path`; `*out` receives the handle (NULL on error).
///
/// # Safety
/// `path` is a NUL-terminated string; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn weft_cache_open(path: *const c_char, out: *mut *mut weft_cache) -> c_int {
    guard("weft_cache_open", || {
        non_null(out, "out")?;
        // SAFETY: writable (the contract); cleared first so an error leaves NULL.
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: the function's contract.
        let p = unsafe { path_arg(path) }?;
        let cache = Cache::open(&p)?;
        // SAFETY: as above.
        unsafe { out.write(Box::into_raw(Box::new(weft_cache { cache }))) };
        Ok(())
    })
}

/// The cache's state as it was when opened.
///
/// # Safety
/// `cache` is NULL or a live handle; `info` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn weft_cache_info(
    cache: *const weft_cache,
    info: *mut weft_cache_state,
) -> c_int {
    guard("weft_cache_info", || {
        non_null(cache, "cache")?;
        non_null(info, "info")?;
        // SAFETY: a live handle and a writable struct (the contract).
        unsafe { info.write((*cache).cache.info().into()) };
        Ok(())
    })
}

/// The ordering from `start` (0-based) into `out` (`out_len` ≥ n ids, 0-based). Fails
/// when `start` is out of range or its ordering is not complete in the file.
///
/// # Safety
/// `cache` is NULL or a live handle; `out` points to `out_len` writable ids.
#[no_mangle]
pub unsafe extern "C" fn weft_cache_get(
    cache: *const weft_cache,
    start: usize,
    out: *mut u32,
    out_len: usize,
) -> c_int {
    guard("weft_cache_get", || {
        non_null(cache, "cache")?;
        // SAFETY: a live handle (the contract).
        let c = unsafe { &(*cache).cache };
        let n = c.info().n;
        // SAFETY: the function's contract.
        let out = unsafe { out_slice(out, out_len, n, "out", "an ordering of n ids") }?;
        out.copy_from_slice(&c.get(start)?);
        Ok(())
    })
}

/// Closes a cache (NULL is ignored).
///
/// # Safety
/// `cache` is NULL or a live handle not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn weft_cache_close(cache: *mut weft_cache) {
    if !cache.is_null() {
        // SAFETY: created by weft_cache_open and closed once (the contract).
        drop(unsafe { Box::from_raw(cache) });
    }
}
