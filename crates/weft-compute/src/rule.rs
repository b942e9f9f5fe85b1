//! The diversity decision rule, evaluated in f64, and the error bounds that let faster
//! approximate sums find its choice.
//!
//! State after t picks: the centroid sum c = Σ e_seq[i], accumulated in f64 in pick order from
//! the f32 normalised rows. The next pick is the unchosen j with the smallest
//! `score(c, e_j)` (an f64 dot product in a fixed order), ties to the lowest j. Every code path
//! (S in memory as f32, S compacted to i16, no S at all) picks exactly this item: approximate
//! sums only pre-select the few candidates within a proven error band of the minimum, and
//! those are re-scored here. So orderings do not depend on threads, storage or budget.

/// Lanes of the fixed-order dot product.
const LANES: usize = 8;

/// c·e in f64: lane l accumulates products k ≡ l (mod 8) in order (multiply then add, never
/// fused), the lanes are then summed pairwise in a fixed tree. Deterministic everywhere: the
/// AVX-512 build of the same code gives the same bits.
pub(crate) fn score(c: &[f64], e: &[f32]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") {
        // SAFETY: avx512f is available (checked just above).
        return unsafe { score_avx512(c, e) };
    }
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        // SAFETY: avx2 is available (checked just above).
        return unsafe { score_avx2(c, e) };
    }
    score_body(c, e)
}

/// [`score_body`] compiled for AVX2: the 8 lanes become two 4-wide vectors; multiplies and
/// adds stay separate (Rust never fuses them), so the bits are the portable ones. The
/// baseline x86-64 build runs it 2 lanes at a time, and scoring the shortlisted candidates
/// was the largest cost of an ordering step after reading S.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn score_avx2(c: &[f64], e: &[f32]) -> f64 {
    score_body(c, e)
}

/// [`score_body`] with explicit AVX-512: the same lanes, the same separate multiply and add,
/// the same reduction tree, so the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn score_avx512(c: &[f64], e: &[f32]) -> f64 {
    use std::arch::x86_64::*;
    let d = c.len().min(e.len());
    let mut acc = _mm512_setzero_pd();
    let mut k = 0;
    while k + LANES <= d {
        // SAFETY: k + 8 ≤ d, so 8 values of each slice are in bounds.
        unsafe {
            let x = _mm512_cvtps_pd(_mm256_loadu_ps(e.as_ptr().add(k)));
            let y = _mm512_loadu_pd(c.as_ptr().add(k));
            acc = _mm512_add_pd(acc, _mm512_mul_pd(y, x));
        }
        k += LANES;
    }
    if k < d {
        let m: __mmask8 = (1u8 << (d - k)) - 1;
        // SAFETY: the masked loads touch only the d − k < 8 remaining values.
        unsafe {
            let x = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, e.as_ptr().add(k)));
            let y = _mm512_maskz_loadu_pd(m, c.as_ptr().add(k));
            acc = _mm512_mask_add_pd(acc, m, acc, _mm512_mul_pd(y, x));
        }
    }
    let mut a = [0.0f64; LANES];
    // SAFETY: `a` holds 8 f64.
    unsafe { _mm512_storeu_pd(a.as_mut_ptr(), acc) };
    ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))
}

#[inline(always)]
fn score_body(c: &[f64], e: &[f32]) -> f64 {
    debug_assert_eq!(c.len(), e.len());
    let mut acc = [0.0f64; LANES];
    let mut cc = c.chunks_exact(LANES);
    let mut ec = e.chunks_exact(LANES);
    for (cv, ev) in (&mut cc).zip(&mut ec) {
        for l in 0..LANES {
            acc[l] += cv[l] * f64::from(ev[l]);
        }
    }
    for (l, (cv, ev)) in cc.remainder().iter().zip(ec.remainder()).enumerate() {
        acc[l] += cv * f64::from(*ev);
    }
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
}

/// c += e, in f64 (each element one rounded addition, whatever the instruction set).
pub(crate) fn add_row(c: &mut [f64], e: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        // SAFETY: avx2 is available (checked just above).
        return unsafe { add_row_avx2(c, e) };
    }
    add_row_body(c, e)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn add_row_avx2(c: &mut [f64], e: &[f32]) {
    add_row_body(c, e)
}

#[inline(always)]
fn add_row_body(c: &mut [f64], e: &[f32]) {
    for (x, &y) in c.iter_mut().zip(e) {
        *x += f64::from(y);
    }
}

/// Bound on |S32[i,j] − e_i·e_j| for the f32 FMA chain of [`crate::gemm`] over unit rows:
/// γ_d·Σ|e_ik·e_jk| with u = 2⁻²⁴, Σ|e_ik·e_jk| ≤ ‖e_i‖‖e_j‖ ≤ 1 + small; padded by 2 %.
pub(crate) fn entry_bound_f32(d: usize) -> f64 {
    let u = f64::powi(2.0, -24);
    (d as f64 + 2.0) * u * 1.02
}

/// Bound on |score(c_t, e_j) − c_t·e_j (exact)| after t picks, padded generously: the f64
/// centroid sums and the dot product each add (t + d)·u₆₄ relative error.
pub(crate) fn rule_slack(t: usize, d: usize) -> f64 {
    let u = f64::powi(2.0, -53);
    4.0 * (t as f64 + d as f64 + 4.0) * (t as f64 + 1.0) * u
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_score_has_the_portable_bits() {
        for d in [1, 7, 8, 19, 384] {
            let c: Vec<f64> = (0..d).map(|i| (i as f64 * 0.37).sin() * 3.1).collect();
            let e: Vec<f32> = (0..d).map(|i| (i as f32 * 0.91).cos()).collect();
            assert_eq!(
                score(&c, &e).to_bits(),
                score_body(&c, &e).to_bits(),
                "d = {d}"
            );
        }
    }

    #[test]
    fn score_is_the_dot_product_on_exact_data() {
        let c: Vec<f64> = (0..19).map(|i| i as f64 * 0.5).collect();
        let e: Vec<f32> = (0..19)
            .map(|i| if i % 3 == 0 { -0.5 } else { 0.25 })
            .collect();
        let want: f64 = c.iter().zip(&e).map(|(a, b)| a * f64::from(*b)).sum();
        assert_eq!(score(&c, &e), want);
    }

    /// `score_avx2` and `add_row_avx2` called directly against the portable loops, bit for
    /// bit, at every length 0..=40 (tails of 1..7 past the 8 lanes) and long ones.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn isa_avx2_score_and_add_row_match_portable() {
        let have = is_x86_feature_detected!("avx2");
        if !crate::isa_check::runs("avx2", "avx2", have, "rule::score_avx2, rule::add_row_avx2") {
            return;
        }
        let mut rng = crate::isa_check::Rng::new(43);
        for d in (0..=40).chain([384, 385]) {
            let c: Vec<f64> = (0..d).map(|_| f64::from(rng.unit()) * 9.0).collect();
            let e: Vec<f32> = (0..d).map(|_| rng.unit()).collect();
            // SAFETY: avx2 is available (checked above).
            let got = unsafe { score_avx2(&c, &e) };
            assert_eq!(
                got.to_bits(),
                score_body(&c, &e).to_bits(),
                "score, d = {d}"
            );
            let (mut a, mut b) = (c.clone(), c.clone());
            // SAFETY: avx2 is available (checked above).
            unsafe { add_row_avx2(&mut a, &e) };
            add_row_body(&mut b, &e);
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a), bits(&b), "add_row, d = {d}");
        }
    }

    /// `score_avx512` called directly (whatever `score` dispatches to) against the portable
    /// loop, bit for bit, at every length 0..=40 (masked tails of 1..7) and a long one.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn isa_avx512_score_matches_portable() {
        let have = is_x86_feature_detected!("avx512f");
        if !crate::isa_check::runs("avx512", "avx512f", have, "rule::score_avx512") {
            return;
        }
        let mut rng = crate::isa_check::Rng::new(41);
        for d in (0..=40).chain([384, 385]) {
            let c: Vec<f64> = (0..d).map(|_| f64::from(rng.unit()) * 9.0).collect();
            let e: Vec<f32> = (0..d).map(|_| rng.unit()).collect();
            // SAFETY: avx512f is available (checked above).
            let got = unsafe { score_avx512(&c, &e) };
            assert_eq!(got.to_bits(), score_body(&c, &e).to_bits(), "d = {d}");
        }
    }
}
