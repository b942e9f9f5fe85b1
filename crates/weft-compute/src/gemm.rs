//! The blocked SIMD matrix-product kernel behind similarity, top-k and the cache: tiles of
//! S = E·Eᵀ computed from E packed into panels.
//!
//! Every S[i, j] is one fused-multiply-add chain over k = 0..d in order, starting from 0,
//! whichever code path computes it (AVX-512, AVX2 or scalar `mul_add`). So S is exactly
//! symmetric, and a tile computed for top-k holds the same bits as the full matrix.

use crate::rows::Rows;

/// Rows of E per A panel (broadcast side of the micro-kernel).
pub(crate) const MR: usize = 12;
/// Rows of E per B panel (vector side of the micro-kernel: two 16-lane vectors).
pub(crate) const NR: usize = 32;
/// Tile edge used by the drivers: a multiple of both `MR` and `NR`.
pub(crate) const BLOCK: usize = 384;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isa {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Scalar,
}

fn detect() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        if std::env::var_os("WEFT_COMPUTE_SCALAR").is_some() {
            return Isa::Scalar;
        }
        if is_x86_feature_detected!("avx512f") {
            return Isa::Avx512;
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            return Isa::Avx2;
        }
    }
    Isa::Scalar
}

/// E packed twice, as MR-row panels and NR-row panels, each stored k-major
/// (`panel[k * width + r]` = E[first + r, k]); rows past N are zero.
pub(crate) struct Packed {
    a: Vec<f32>,
    b: Vec<f32>,
    n: usize,
    d: usize,
    isa: Isa,
}

impl Packed {
    /// Packs the (normalised) rows.
    pub(crate) fn new(e: Rows<'_>) -> Packed {
        let (n, d) = (e.n(), e.d());
        Packed {
            a: pack(e, MR),
            b: pack(e, NR),
            n,
            d,
            isa: detect(),
        }
    }

    /// Computes S[i0.., j0..] for `rows` rows and `cols` columns into `out` (row stride
    /// `ld`). `i0` must be a multiple of `MR` and `j0` of `NR`; the tile must lie inside N×N.
    pub(crate) fn tile(
        &self,
        i0: usize,
        rows: usize,
        j0: usize,
        cols: usize,
        out: &mut [f32],
        ld: usize,
    ) {
        assert_eq!((i0 % MR, j0 % NR), (0, 0), "tile origin off the panel grid");
        assert!(i0 + rows <= self.n && j0 + cols <= self.n);
        assert!(rows == 0 || cols == 0 || (rows - 1) * ld + cols <= out.len());
        let d = self.d;
        let mut c = [0.0f32; MR * NR];
        for jb in (0..cols).step_by(NR) {
            let bp = &self.b[(j0 + jb) / NR * NR * d..][..NR * d];
            let nc = NR.min(cols - jb);
            for ib in (0..rows).step_by(MR) {
                let ap = &self.a[(i0 + ib) / MR * MR * d..][..MR * d];
                self.micro(ap, bp, &mut c);
                let nr = MR.min(rows - ib);
                for r in 0..nr {
                    let dst = &mut out[(ib + r) * ld + jb..][..nc];
                    dst.copy_from_slice(&c[r * NR..r * NR + nc]);
                }
            }
        }
    }

    fn micro(&self, a: &[f32], b: &[f32], c: &mut [f32; MR * NR]) {
        let d = self.d;
        debug_assert!(a.len() == MR * d && b.len() == NR * d);
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `detect` chose Avx512 only when avx512f is available; the panels hold
            // MR·d and NR·d values, exactly what the kernel reads.
            Isa::Avx512 => unsafe { x86::micro_avx512(d, a.as_ptr(), b.as_ptr(), c) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above, for avx2 + fma.
            Isa::Avx2 => unsafe { x86::micro_avx2(d, a.as_ptr(), b.as_ptr(), c) },
            Isa::Scalar => micro_scalar(d, a, b, c),
        }
    }
}

fn pack(e: Rows<'_>, width: usize) -> Vec<f32> {
    let (n, d) = (e.n(), e.d());
    let panels = n.div_ceil(width);
    let mut out = vec![0.0f32; panels * width * d];
    for p in 0..panels {
        let panel = &mut out[p * width * d..(p + 1) * width * d];
        for r in 0..width.min(n - p * width) {
            for (k, &x) in e.row(p * width + r).iter().enumerate() {
                panel[k * width + r] = x;
            }
        }
    }
    out
}

fn micro_scalar(d: usize, a: &[f32], b: &[f32], c: &mut [f32; MR * NR]) {
    for r in 0..MR {
        for j in 0..NR {
            let mut acc = 0.0f32;
            for k in 0..d {
                acc = a[k * MR + r].mul_add(b[k * NR + j], acc);
            }
            c[r * NR + j] = acc;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{MR, NR};
    use std::arch::x86_64::*;

    /// MR×NR tile: 24 zmm accumulators, two B vectors per k, A broadcast from memory.
    ///
    /// # Safety
    /// avx512f must be available; `a` must point to MR·d and `b` to NR·d readable f32.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn micro_avx512(
        d: usize,
        a: *const f32,
        b: *const f32,
        c: &mut [f32; MR * NR],
    ) {
        let mut acc = [_mm512_setzero_ps(); 2 * MR];
        for k in 0..d {
            // SAFETY: k < d, so b + k·NR + 16 + 16 ≤ b + NR·d and a + k·MR + MR ≤ a + MR·d.
            unsafe {
                let bk = b.add(k * NR);
                let b0 = _mm512_loadu_ps(bk);
                let b1 = _mm512_loadu_ps(bk.add(16));
                let ak = a.add(k * MR);
                for r in 0..MR {
                    let x = _mm512_set1_ps(*ak.add(r));
                    acc[2 * r] = _mm512_fmadd_ps(x, b0, acc[2 * r]);
                    acc[2 * r + 1] = _mm512_fmadd_ps(x, b1, acc[2 * r + 1]);
                }
            }
        }
        for r in 0..MR {
            // SAFETY: c has MR·NR values; row r spans r·NR .. r·NR + 32.
            unsafe {
                _mm512_storeu_ps(c.as_mut_ptr().add(r * NR), acc[2 * r]);
                _mm512_storeu_ps(c.as_mut_ptr().add(r * NR + 16), acc[2 * r + 1]);
            }
        }
    }

    /// MR×NR tile as four 6×16 sub-tiles of 12 ymm accumulators each.
    ///
    /// # Safety
    /// avx2 and fma must be available; `a` must point to MR·d and `b` to NR·d readable f32.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn micro_avx2(
        d: usize,
        a: *const f32,
        b: *const f32,
        c: &mut [f32; MR * NR],
    ) {
        for r0 in [0, 6] {
            for c0 in [0, 16] {
                let mut acc = [_mm256_setzero_ps(); 12];
                for k in 0..d {
                    // SAFETY: k < d and c0 + 16 ≤ NR, r0 + 6 ≤ MR keep reads in the panels.
                    unsafe {
                        let bk = b.add(k * NR + c0);
                        let b0 = _mm256_loadu_ps(bk);
                        let b1 = _mm256_loadu_ps(bk.add(8));
                        let ak = a.add(k * MR + r0);
                        for r in 0..6 {
                            let x = _mm256_set1_ps(*ak.add(r));
                            acc[2 * r] = _mm256_fmadd_ps(x, b0, acc[2 * r]);
                            acc[2 * r + 1] = _mm256_fmadd_ps(x, b1, acc[2 * r + 1]);
                        }
                    }
                }
                for r in 0..6 {
                    // SAFETY: row r0 + r < MR, columns c0 .. c0 + 16 ≤ NR.
                    unsafe {
                        let p = c.as_mut_ptr().add((r0 + r) * NR + c0);
                        _mm256_storeu_ps(p, acc[2 * r]);
                        _mm256_storeu_ps(p.add(8), acc[2 * r + 1]);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isa_check::{runs, Rng};

    #[test]
    fn simd_and_scalar_agree_bitwise() {
        let (n, d) = (50, 37);
        let data: Vec<f32> = (0..n * d)
            .map(|i| ((i * 7919 % 1000) as f32 / 1000.0) - 0.5)
            .collect();
        let e = Rows::new(&data, n, d).unwrap();
        let mut p = Packed::new(e);
        let mut fast = vec![0.0; n * n];
        p.tile(0, n, 0, n, &mut fast, n);
        p.isa = Isa::Scalar;
        let mut slow = vec![0.0; n * n];
        p.tile(0, n, 0, n, &mut slow, n);
        assert_eq!(fast, slow);
        for i in 0..n {
            for j in 0..n {
                assert_eq!(fast[i * n + j].to_bits(), fast[j * n + i].to_bits());
            }
        }
    }

    /// Depths around the vector widths and odd ones.
    const DEPTHS: [usize; 9] = [1, 2, 3, 7, 8, 15, 16, 17, 101];

    /// One micro-kernel against `micro_scalar`, bit for bit, on random panels of every depth
    /// in `DEPTHS`.
    #[cfg(target_arch = "x86_64")]
    fn micro_matches_scalar(kernel: unsafe fn(usize, *const f32, *const f32, &mut [f32; MR * NR])) {
        let mut rng = Rng::new(11);
        for d in DEPTHS {
            let a: Vec<f32> = (0..MR * d).map(|_| rng.unit()).collect();
            let b: Vec<f32> = (0..NR * d).map(|_| rng.unit()).collect();
            let mut want = [f32::NAN; MR * NR];
            micro_scalar(d, &a, &b, &mut want);
            let mut got = [f32::NAN; MR * NR];
            // SAFETY: the caller checked the CPU features; a holds MR·d and b NR·d values.
            unsafe { kernel(d, a.as_ptr(), b.as_ptr(), &mut got) };
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g.to_bits(), w.to_bits(), "d = {d}, entry {i}: {g} vs {w}");
            }
        }
    }

    /// Whole tiles through `Packed::tile` on one path against the scalar path, for odd N
    /// (partial MR and NR panels) and odd d.
    #[cfg(target_arch = "x86_64")]
    fn tiles_match_scalar(isa: Isa) {
        let mut rng = Rng::new(12);
        for (n, d) in [(1, 1), (13, 5), (33, 17), (45, 3), (97, 31)] {
            let data: Vec<f32> = (0..n * d).map(|_| rng.unit()).collect();
            let mut p = Packed::new(Rows::new(&data, n, d).unwrap());
            p.isa = isa;
            let mut got = vec![f32::NAN; n * n];
            p.tile(0, n, 0, n, &mut got, n);
            p.isa = Isa::Scalar;
            let mut want = vec![f32::NAN; n * n];
            p.tile(0, n, 0, n, &mut want, n);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g.to_bits(), w.to_bits(), "n = {n}, d = {d}, entry {i}");
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    fn have_avx2() -> bool {
        let have = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        runs("avx2", "avx2+fma", have, "gemm::micro_avx2")
    }

    #[cfg(target_arch = "x86_64")]
    fn have_avx512() -> bool {
        let have = is_x86_feature_detected!("avx512f");
        runs("avx512", "avx512f", have, "gemm::micro_avx512")
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn isa_avx2_micro_matches_scalar() {
        if have_avx2() {
            micro_matches_scalar(x86::micro_avx2);
            tiles_match_scalar(Isa::Avx2);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn isa_avx512_micro_matches_scalar() {
        if have_avx512() {
            micro_matches_scalar(x86::micro_avx512);
            tiles_match_scalar(Isa::Avx512);
        }
    }
}
