//! Test helpers: a float64 reference of every kernel, a tiny .npy reader, data builders.
#![allow(dead_code)]

use std::path::Path;

/// Rows normalised in f64 (not rounded to f32).
pub fn normalize64(data: &[f32], n: usize, d: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(n * d);
    for i in 0..n {
        let row = &data[i * d..(i + 1) * d];
        let norm = row
            .iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>()
            .sqrt();
        out.extend(row.iter().map(|&x| f64::from(x) / norm));
    }
    out
}

/// S = E·Eᵀ in f64, n×n, computed with as many threads as there are cores.
pub fn sim64(e: &[f64], n: usize, d: usize) -> Vec<f64> {
    let mut s = vec![0.0f64; n * n];
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let chunk = n.div_ceil(threads).max(1);
    std::thread::scope(|sc| {
        for (c, rows) in s.chunks_mut(chunk * n).enumerate() {
            sc.spawn(move || {
                for (r, out) in rows.chunks_mut(n).enumerate() {
                    let i = c * chunk + r;
                    let a = &e[i * d..(i + 1) * d];
                    for (j, o) in out.iter_mut().enumerate() {
                        let b = &e[j * d..(j + 1) * d];
                        *o = a.iter().zip(b).map(|(x, y)| x * y).sum();
                    }
                }
            });
        }
    });
    s
}

/// Top-k of row q by (score desc, id asc), excluding q.
pub fn topk64(s: &[f64], n: usize, q: usize, k: usize) -> Vec<u32> {
    let mut ids: Vec<u32> = (0..n as u32).filter(|&j| j as usize != q).collect();
    let row = &s[q * n..(q + 1) * n];
    ids.sort_by(|&a, &b| {
        row[b as usize]
            .partial_cmp(&row[a as usize])
            .unwrap()
            .then(a.cmp(&b))
    });
    ids.truncate(k);
    ids
}

/// The diversity ordering in f64: running sums of S, argmin, ties to the lowest index.
pub fn ordering64(s: &[f64], n: usize, start: usize) -> Vec<u32> {
    let mut sums = vec![0.0f64; n];
    let mut chosen = vec![false; n];
    let mut seq = vec![start as u32];
    chosen[start] = true;
    for _ in 1..n {
        let last = *seq.last().unwrap() as usize;
        let mut best: Option<(f64, usize)> = None;
        for j in 0..n {
            sums[j] += s[last * n + j];
            if !chosen[j] && best.is_none_or(|(b, _)| sums[j] < b) {
                best = Some((sums[j], j));
            }
        }
        let j = best.unwrap().1;
        chosen[j] = true;
        seq.push(j as u32);
    }
    seq
}

/// Replays `seq` in f64; returns the worst excess of a pick's mean similarity to the chosen
/// set over the minimum among the candidates (0 when every pick is the f64 minimum).
pub fn replay_excess(s: &[f64], n: usize, seq: &[u32]) -> f64 {
    assert_eq!(seq.len(), n, "an ordering holds every item");
    let mut seen = vec![false; n];
    for &j in seq {
        assert!(!seen[j as usize], "item {j} appears twice");
        seen[j as usize] = true;
    }
    let mut sums = vec![0.0f64; n];
    let mut chosen = vec![false; n];
    chosen[seq[0] as usize] = true;
    let mut worst = 0.0f64;
    for t in 1..n {
        let last = seq[t - 1] as usize;
        let mut min = f64::INFINITY;
        for j in 0..n {
            sums[j] += s[last * n + j];
            if !chosen[j] {
                min = min.min(sums[j]);
            }
        }
        let pick = seq[t] as usize;
        worst = worst.max((sums[pick] - min) / t as f64);
        chosen[pick] = true;
    }
    worst
}

/// Reads a 2-D f32 .npy file with weft-core's reader: (data, rows, cols).
pub fn read_npy_f32(path: &Path) -> (Vec<f32>, usize, usize) {
    let a = weft_core::npy::load(path)
        .unwrap_or_else(|e| panic!("{e}"))
        .array;
    let (n, d) = (a.rows(), a.row_len());
    // SAFETY: nothing else holds the freshly loaded array, so nothing writes it.
    let data = unsafe { a.as_slice::<f32>() }
        .expect("an f32 array")
        .to_vec();
    (data, n, d)
}

/// The fortunes embeddings of shared/data (7,090 × 384).
pub fn fortunes() -> (Vec<f32>, usize, usize) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/fortunes/emb.npy");
    read_npy_f32(&root)
}

/// A small deterministic generator (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Exact-arithmetic embeddings: n rows of width d, each with 4 entries of ±0.5 (unit length
/// exactly), the rest 0; rows 3 and 4 are antipodal, rows 10..14 duplicate row 9, and the
/// small support makes many exact ties. Every dot product and running sum is exact in f32.
pub fn exact_set(n: usize, d: usize, seed: u64) -> Vec<f32> {
    assert!(d >= 4 && n >= 15);
    let mut rng = Rng(seed);
    let mut data = vec![0.0f32; n * d];
    for i in 0..n {
        let row = &mut data[i * d..(i + 1) * d];
        let mut placed = 0;
        while placed < 4 {
            let k = rng.below(d);
            if row[k] == 0.0 {
                row[k] = if rng.next() & 1 == 0 { 0.5 } else { -0.5 };
                placed += 1;
            }
        }
    }
    for k in 0..d {
        data[4 * d + k] = -data[3 * d + k];
        for dup in 10..15 {
            data[dup * d + k] = data[9 * d + k];
        }
    }
    data
}
