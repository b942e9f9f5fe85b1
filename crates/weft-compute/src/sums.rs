//! The per-step inner loop of a diversity ordering: add one row of S to the running sums of
//! every candidate and record the minimum of each block of 64 sums, so the global minimum and
//! the few candidates near it are found without a second pass over all N sums.
//!
//! f32 rows are added into f64 sums (S in memory as f32). The loop is written lane by lane so
//! the compiler vectorises it; it is compiled for AVX-512 and AVX2 and chosen at run time,
//! with the same results.

/// Sums per block whose minimum is recorded.
pub(crate) const BLOCK: usize = 64;

/// sums[j] += row[j] for all j; `mins[b]` = min of block b of the new sums.
pub(crate) fn add_f32(sums: &mut [f64], row: &[f32], mins: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: avx512f is available (checked just above).
            return unsafe { add_f32_avx512(sums, row, mins) };
        }
        if is_x86_feature_detected!("avx2") {
            // SAFETY: avx2 is available (checked just above).
            return unsafe { add_f32_avx2(sums, row, mins) };
        }
    }
    add_f32_body(sums, row, mins)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn add_f32_avx512(sums: &mut [f64], row: &[f32], mins: &mut [f64]) {
    add_f32_body(sums, row, mins)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn add_f32_avx2(sums: &mut [f64], row: &[f32], mins: &mut [f64]) {
    add_f32_body(sums, row, mins)
}

#[inline(always)]
fn add_f32_body(sums: &mut [f64], row: &[f32], mins: &mut [f64]) {
    const L: usize = 8;
    let full = sums.len() / BLOCK * BLOCK;
    let (sh, st) = sums.split_at_mut(full);
    let (rh, rt) = row.split_at(full);
    for ((s, r), m) in sh
        .chunks_exact_mut(BLOCK)
        .zip(rh.chunks_exact(BLOCK))
        .zip(mins.iter_mut())
    {
        let mut lane = [f64::INFINITY; L];
        for v in 0..BLOCK / L {
            for l in 0..L {
                let x = s[v * L + l] + f64::from(r[v * L + l]);
                s[v * L + l] = x;
                lane[l] = if x < lane[l] { x } else { lane[l] };
            }
        }
        *m = lane.iter().fold(f64::INFINITY, |a, &b| a.min(b));
    }
    if !st.is_empty() {
        let mut m = f64::INFINITY;
        for (x, &y) in st.iter_mut().zip(rt) {
            *x += f64::from(y);
            m = m.min(*x);
        }
        mins[full / BLOCK] = m;
    }
}

/// Number of block minima for `n` sums.
pub(crate) fn blocks(n: usize) -> usize {
    n.div_ceil(BLOCK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_minima_match_a_plain_loop() {
        let n = 200;
        let row: Vec<f32> = (0..n)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.25)
            .collect();
        let mut sums = vec![1.0f64; n];
        let mut mins = vec![0.0; blocks(n)];
        add_f32(&mut sums, &row, &mut mins);
        for (b, m) in mins.iter().enumerate() {
            let lo = b * BLOCK;
            let w = sums[lo..(lo + BLOCK).min(n)]
                .iter()
                .fold(f64::INFINITY, |a, &b| a.min(b));
            assert_eq!(*m, w);
        }
    }
}
