//! `weft_context`: normalised embeddings (and S, when it fits the budget) held for many
//! calls — the shape of the users' old wrapper: upload once, then similarity, top-k and
//! orderings without normalising again or recomputing S.

use crate::args::{budget, embeddings, non_null, options, out_slice, product, threads};
use crate::status::guard;
use crate::{check_k, diversity_into, starts_arg, topk_buffers, topk_into, weft_options};
use std::ffi::c_int;
use weft_compute::Normalised;

/// Embeddings held by weft for many calls (opaque). Its functions only read it, so one
/// context may be used from several threads at once; free it once, after the last call.
pub struct weft_context {
    unit: Normalised,
    /// S = E·Eᵀ (n×n), when n²·4 bytes fit the budget.
    s: Option<Vec<f32>>,
    opts: weft_options,
    n: usize,
    d: usize,
}

/// Copies and L2-normalises `emb` (n × d; the caller's buffer is not kept) and, when n²·4
/// bytes fit `opts->budget`, computes S once; `*out` receives the context (NULL on error).
///
/// # Safety
/// `emb` points to n·d floats; `opts` is NULL or valid; `out` is a writable pointer.
#[no_mangle]
pub unsafe extern "C" fn weft_context_new(
    emb: *const f32,
    n: usize,
    d: usize,
    opts: *const weft_options,
    out: *mut *mut weft_context,
) -> c_int {
    guard("weft_context_new", || {
        non_null(out, "out")?;
        // SAFETY: `out` is writable (the contract); cleared first so an error leaves NULL.
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: the function's contract.
        let (rows, o) = unsafe { (embeddings(emb, n, d)?, options(opts)) };
        weft_compute::threads::resolve(threads(o.threads))?;
        if n == 0 {
            return Err(weft_compute::ComputeError::TooFewRows { n, need: 1 }.into());
        }
        let unit = Normalised::new(rows)?;
        let b = budget(o.budget);
        let bytes = (n as u64).saturating_mul(n as u64).saturating_mul(4);
        let s = if b.fits(bytes) {
            Some(weft_compute::similarity(
                unit.rows(),
                threads(o.threads),
                b,
            )?)
        } else {
            None
        };
        let ctx = Box::new(weft_context {
            unit,
            s,
            opts: o,
            n,
            d,
        });
        // SAFETY: as above.
        unsafe { out.write(Box::into_raw(ctx)) };
        Ok(())
    })
}

/// Releases a context (NULL is ignored). No call may use it afterwards.
///
/// # Safety
/// `ctx` is NULL or a context from `weft_context_new` not freed yet.
#[no_mangle]
pub unsafe extern "C" fn weft_context_free(ctx: *mut weft_context) {
    if !ctx.is_null() {
        // SAFETY: created by Box::into_raw in weft_context_new, freed once (the contract).
        // Dropping plain vectors cannot panic.
        drop(unsafe { Box::from_raw(ctx) });
    }
}

/// The context's rows and width, and whether it holds S (1) or computes it per call (0);
/// any of the out pointers may be NULL.
///
/// # Safety
/// `ctx` is a live context or NULL; the out pointers are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn weft_context_info(
    ctx: *const weft_context,
    n: *mut usize,
    d: *mut usize,
    holds_similarity: *mut c_int,
) -> c_int {
    guard("weft_context_info", || {
        non_null(ctx, "ctx")?;
        // SAFETY: a live context (the contract).
        let c = unsafe { &*ctx };
        // SAFETY: each pointer is NULL or writable (the contract).
        unsafe {
            if !n.is_null() {
                n.write(c.n);
            }
            if !d.is_null() {
                d.write(c.d);
            }
            if !holds_similarity.is_null() {
                holds_similarity.write(c.s.is_some() as c_int);
            }
        }
        Ok(())
    })
}

/// The n×n similarity matrix into `out` (`out_len` ≥ n·n floats): a copy of the held S,
/// or `WEFT_ERR_BUDGET` when S did not fit the context's budget.
///
/// # Safety
/// `ctx` is a live context or NULL; `out` points to `out_len` writable floats.
#[no_mangle]
pub unsafe extern "C" fn weft_context_similarity(
    ctx: *const weft_context,
    out: *mut f32,
    out_len: usize,
) -> c_int {
    guard("weft_context_similarity", || {
        non_null(ctx, "ctx")?;
        // SAFETY: a live context (the contract).
        let c = unsafe { &*ctx };
        let need = product(c.n, c.n, "the similarity matrix")?;
        // SAFETY: the function's contract.
        let out = unsafe { out_slice(out, out_len, need, "out", "the n×n similarity matrix") }?;
        match &c.s {
            Some(s) => out.copy_from_slice(s),
            None => weft_compute::similarity_into(
                c.unit.rows(),
                out,
                threads(c.opts.threads),
                budget(c.opts.budget),
            )?,
        }
        Ok(())
    })
}

/// Top-k of the context's rows, as `weft_topk`.
///
/// # Safety
/// `ctx` is a live context or NULL; `ids` (and `scores` unless NULL) point to `out_len`
/// writable elements.
#[no_mangle]
pub unsafe extern "C" fn weft_context_topk(
    ctx: *const weft_context,
    k: usize,
    ids: *mut u32,
    scores: *mut f32,
    out_len: usize,
) -> c_int {
    guard("weft_context_topk", || {
        non_null(ctx, "ctx")?;
        // SAFETY: a live context (the contract).
        let c = unsafe { &*ctx };
        check_k(k, c.n)?;
        // SAFETY: the function's contract.
        let (ids, scores) = unsafe { topk_buffers(ids, scores, out_len, c.n, k) }?;
        topk_into(c.unit.rows(), k, c.opts.threads, ids, scores)
    })
}

/// Diversity orderings of the context's rows, as `weft_diversity` (using the held S).
///
/// # Safety
/// `ctx` is a live context or NULL; `starts` points to `n_starts` ids; `out` to `out_len`
/// writable ids.
#[no_mangle]
pub unsafe extern "C" fn weft_context_diversity(
    ctx: *const weft_context,
    starts: *const u32,
    n_starts: usize,
    length: usize,
    out: *mut u32,
    out_len: usize,
) -> c_int {
    guard("weft_context_diversity", || {
        non_null(ctx, "ctx")?;
        // SAFETY: a live context (the contract).
        let c = unsafe { &*ctx };
        // SAFETY: the function's contract.
        let (list, len, need) = unsafe { starts_arg(starts, n_starts, c.n, length) }?;
        // SAFETY: the function's contract.
        let out = unsafe { out_slice(out, out_len, need, "out", "n_starts×length orderings") }?;
        diversity_into(c.unit.rows(), c.s.as_deref(), &list, len, c.opts, out)
    })
}
