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
/// fused), the lanes are then summed pairwise in a fixed tree. Deterministic everywhere.
#[inline]
pub(crate) fn score(c: &[f64], e: &[f32]) -> f64 {
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

/// c += e, in f64.
#[inline]
pub(crate) fn add_row(c: &mut [f64], e: &[f32]) {
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
    fn score_is_the_dot_product_on_exact_data() {
        let c: Vec<f64> = (0..19).map(|i| i as f64 * 0.5).collect();
        let e: Vec<f32> = (0..19)
            .map(|i| if i % 3 == 0 { -0.5 } else { 0.25 })
            .collect();
        let want: f64 = c.iter().zip(&e).map(|(a, b)| a * f64::from(*b)).sum();
        assert_eq!(score(&c, &e), want);
    }
}
