//! The float64 reference every compute result is checked against, and the data sets the
//! checks use. Shared by weft-compute's tests and weft-cli's (which include this file by
//! path), so both hold the engine to the same definitions.
#![allow(dead_code)]

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
    /// Uniform in [-1, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Exact-arithmetic embeddings: each row has 4 entries of ±0.5 (unit length exactly) and
/// zeros elsewhere; rows 3 and 4 are antipodal (the centroid of an ordering from 3 becomes
/// zero), rows 10..14 duplicate row 9, and the small support makes many exact ties. Every
/// dot product and running sum is exact in f32.
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

/// Random embeddings, n × d, entries uniform in [-1, 1).
pub fn random_set(n: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng(seed);
    (0..n * d).map(|_| rng.unit()).collect()
}

/// Rows normalised in f64 (not rounded to f32).
pub fn normalize64(data: &[f32], n: usize, d: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(n * d);
    for row in data.chunks_exact(d).take(n) {
        let norm = row
            .iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>()
            .sqrt();
        out.extend(row.iter().map(|&x| f64::from(x) / norm));
    }
    out
}

/// Row q of S = E·Eᵀ in f64.
pub fn sim_row64(e: &[f64], n: usize, d: usize, q: usize) -> Vec<f64> {
    let a = &e[q * d..(q + 1) * d];
    (0..n)
        .map(|j| {
            a.iter()
                .zip(&e[j * d..(j + 1) * d])
                .map(|(x, y)| x * y)
                .sum()
        })
        .collect()
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

/// Top-k of a row of S (item q excluded) by score descending, ties to the lower id.
pub fn topk64(row: &[f64], q: usize, k: usize) -> Vec<u32> {
    let mut ids: Vec<u32> = (0..row.len() as u32).filter(|&j| j as usize != q).collect();
    ids.sort_by(|&a, &b| {
        row[b as usize]
            .partial_cmp(&row[a as usize])
            .unwrap()
            .then(a.cmp(&b))
    });
    ids.truncate(k);
    ids
}

/// The diversity ordering in f64: running sums of S, argmin over the unchosen, ties to the
/// lowest index.
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

/// Replays `seq` in f64: the worst excess of a pick's mean similarity to the chosen set
/// over the minimum among the candidates (0 when every pick is the f64 minimum).
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
