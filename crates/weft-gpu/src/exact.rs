//! The host side of exact top-k: re-scoring a shortlist with the CPU engine's arithmetic.
//!
//! weft-compute's kernel computes every S[i, j] as one fused-multiply-add chain over
//! k = 0..d in order from 0 (gemm.rs, "whichever code path ... same bits"); [`dot_chain`]
//! is that chain, so a re-scored candidate has the CPU engine's score bit for bit, and the
//! ranking (larger score, then lower id) is the CPU engine's.

/// S[i, j] as the CPU engine computes it: `acc = a[k]·b[k] + acc` fused, k in order.
pub fn dot_chain(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has FMA (checked just above), the only feature the function needs.
            return unsafe { dot_chain_fma(a, b) };
        }
    }
    dot_chain_plain(a, b)
}

/// The same chain compiled with FMA instructions: `mul_add` becomes one `vfmadd` instead of
/// a libm call (same bits: both are the correctly rounded fused operation).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
fn dot_chain_fma(a: &[f32], b: &[f32]) -> f32 {
    dot_chain_plain(a, b)
}

#[inline(always)]
fn dot_chain_plain(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = 0.0f32;
    for (x, y) in a.iter().zip(b) {
        acc = x.mul_add(*y, acc);
    }
    acc
}

/// `a` ranks ahead of `b`: larger score, equal scores by lower id (weft-compute's order).
pub fn better(sa: f32, ia: u32, sb: f32, ib: u32) -> bool {
    sa > sb || (sa == sb && ia < ib)
}

/// The best `ids.len()` of `cands` for row `i` of `e` (`n × d` row-major), best first,
/// scored with [`dot_chain`]; `cands` must hold the row's true top k and never `i`.
pub fn rank(
    e: &[f32],
    d: usize,
    i: usize,
    cands: impl Iterator<Item = u32>,
    ids: &mut [u32],
    scores: &mut [f32],
) {
    let k = ids.len();
    let a = &e[i * d..(i + 1) * d];
    let mut scored: Vec<(f32, u32)> = cands
        .map(|j| (dot_chain(a, &e[j as usize * d..(j as usize + 1) * d]), j))
        .collect();
    let by_rank = |x: &(f32, u32), y: &(f32, u32)| {
        if better(x.0, x.1, y.0, y.1) {
            std::cmp::Ordering::Less
        } else if better(y.0, y.1, x.0, x.1) {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    };
    if scored.len() > k {
        scored.select_nth_unstable_by(k - 1, by_rank);
        scored.truncate(k);
    }
    scored.sort_unstable_by(by_rank);
    for (p, (s, j)) in scored.into_iter().enumerate() {
        ids[p] = j;
        scores[p] = s;
    }
}
