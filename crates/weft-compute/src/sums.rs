//! The per-step inner loop of a diversity ordering: add one row of S to the running sums of
//! every candidate and record the minimum of each block of 64 sums, so the global minimum and
//! the few candidates near it are found without a second pass over all N sums.
//!
//! Two forms: f32 rows into f64 sums (S in memory as f32) and i16 rows into i32 sums (S
//! compacted to i16). The loops are written lane by lane so the compiler vectorises them;
//! they are compiled for AVX-512 and AVX2 and chosen at run time, with the same results.

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

/// sums[j] += row[j] for all j; `mins[b]` = min of block b of the new sums.
pub(crate) fn add_i16(sums: &mut [i32], row: &[i16], mins: &mut [i32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512bw") {
            // SAFETY: avx512bw (and so avx512f) is available (checked just above).
            return unsafe { add_i16_avx512(sums, row, mins) };
        }
        if is_x86_feature_detected!("avx2") {
            // SAFETY: avx2 is available (checked just above).
            return unsafe { add_i16_avx2(sums, row, mins) };
        }
    }
    add_i16_body(sums, row, mins)
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

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn add_i16_avx512(sums: &mut [i32], row: &[i16], mins: &mut [i32]) {
    add_i16_body(sums, row, mins)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn add_i16_avx2(sums: &mut [i32], row: &[i16], mins: &mut [i32]) {
    add_i16_body(sums, row, mins)
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

#[inline(always)]
fn add_i16_body(sums: &mut [i32], row: &[i16], mins: &mut [i32]) {
    const L: usize = 16;
    let full = sums.len() / BLOCK * BLOCK;
    let (sh, st) = sums.split_at_mut(full);
    let (rh, rt) = row.split_at(full);
    for ((s, r), m) in sh
        .chunks_exact_mut(BLOCK)
        .zip(rh.chunks_exact(BLOCK))
        .zip(mins.iter_mut())
    {
        let mut lane = [i32::MAX; L];
        for v in 0..BLOCK / L {
            for l in 0..L {
                let x = s[v * L + l] + i32::from(r[v * L + l]);
                s[v * L + l] = x;
                lane[l] = lane[l].min(x);
            }
        }
        *m = lane.iter().copied().min().unwrap_or(i32::MAX);
    }
    if !st.is_empty() {
        let mut m = i32::MAX;
        for (x, &y) in st.iter_mut().zip(rt) {
            *x += i32::from(y);
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
        let row: Vec<i16> = (0..n).map(|i| ((i * 37 % 101) as i16) - 50).collect();
        let mut sums: Vec<i32> = (0..n).map(|i| (i % 7) as i32).collect();
        let want: Vec<i32> = sums.iter().zip(&row).map(|(a, &b)| a + b as i32).collect();
        let mut mins = vec![0; blocks(n)];
        add_i16(&mut sums, &row, &mut mins);
        assert_eq!(sums, want);
        for (b, m) in mins.iter().enumerate() {
            let lo = b * BLOCK;
            assert_eq!(*m, *want[lo..(lo + BLOCK).min(n)].iter().min().unwrap());
        }
        let rowf: Vec<f32> = row.iter().map(|&x| x as f32 * 0.25).collect();
        let mut sf = vec![1.0f64; n];
        let mut mf = vec![0.0; blocks(n)];
        add_f32(&mut sf, &rowf, &mut mf);
        for (b, m) in mf.iter().enumerate() {
            let lo = b * BLOCK;
            let w = sf[lo..(lo + BLOCK).min(n)]
                .iter()
                .fold(f64::INFINITY, |a, &b| a.min(b));
            assert_eq!(*m, w);
        }
    }
}
