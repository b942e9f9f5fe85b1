//! Helpers for the batch-command tests: running the real `weft` binary, temporary folders,
//! writing and reading `.npy` files byte by byte (numpy's layout, no weft code), and a
//! float64 reference of every kernel.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

// ---------------------------------------------------------------------------------------
// Running weft
// ---------------------------------------------------------------------------------------

/// The binary under test.
pub const WEFT: &str = env!("CARGO_BIN_EXE_weft");

/// `weft ARGS` to completion.
pub fn weft<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(WEFT).args(args).output().unwrap()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts a successful run; returns its stderr.
#[track_caller]
pub fn ok(out: &Output) -> String {
    let err = text(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {err}", out.status.code());
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// Asserts a failure with exit code 1 and exactly one line on stderr, starting `weft: ` and
/// containing every fragment; returns the line.
#[track_caller]
pub fn fails(out: &Output, fragments: &[&str]) -> String {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "expected exit 1, stderr: {err}");
    assert_eq!(err.lines().count(), 1, "expected one line: {err:?}");
    assert!(err.starts_with("weft: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for f in fragments {
        assert!(err.contains(f), "missing {f:?} in: {err}");
    }
    err.trim_end().to_string()
}

/// Whether this process runs as root (who can write into read-only folders).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------------------
// Temporary folders
// ---------------------------------------------------------------------------------------

/// A fresh folder under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "weft-cli-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// `name` inside as a string, for command lines.
    pub fn path(&self, name: &str) -> String {
        self.join(name).to_str().unwrap().to_string()
    }

    /// Every entry's name, hidden ones included, sorted.
    pub fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------
// .npy files
// ---------------------------------------------------------------------------------------

/// A version 1.0 .npy file with the given header dict and data, padded as numpy pads.
pub fn npy_bytes(header: &str, data: &[u8]) -> Vec<u8> {
    let mut h = header.as_bytes().to_vec();
    let padding = (64 - (10 + h.len() + 1) % 64) % 64;
    h.resize(h.len() + padding, b' ');
    h.push(b'\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out
}

/// The header dict numpy writes for a C-order array.
pub fn header(descr: &str, shape: &str) -> String {
    format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}")
}

/// An n×d float32 file.
pub fn write_f32(path: &Path, data: &[f32], n: usize, d: usize) {
    assert_eq!(data.len(), n * d);
    let bytes: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(
        path,
        npy_bytes(&header("<f4", &format!("({n}, {d})")), &bytes),
    )
    .unwrap();
}

/// An n×d float64 file.
pub fn write_f64(path: &Path, data: &[f32], n: usize, d: usize) {
    let bytes: Vec<u8> = data
        .iter()
        .flat_map(|&x| f64::from(x).to_le_bytes())
        .collect();
    std::fs::write(
        path,
        npy_bytes(&header("<f8", &format!("({n}, {d})")), &bytes),
    )
    .unwrap();
}

/// An n×d float16 file; values must be exact in float16 (0, ±0.5, …).
pub fn write_f16(path: &Path, data: &[f32], n: usize, d: usize) {
    let half = |x: f32| -> u16 {
        match x {
            0.0 => 0,
            0.5 => 0x3800,
            -0.5 => 0xB800,
            1.0 => 0x3C00,
            -1.0 => 0xBC00,
            _ => panic!("{x} is not in this test's float16 table"),
        }
    };
    let bytes: Vec<u8> = data.iter().flat_map(|&x| half(x).to_le_bytes()).collect();
    std::fs::write(
        path,
        npy_bytes(&header("<f2", &format!("({n}, {d})")), &bytes),
    )
    .unwrap();
}

/// Reads an output .npy: checks the header is exactly what numpy writes for `descr`, C
/// order, 2-D; returns (shape, data bytes).
pub fn read_npy(path: &Path, descr: &str) -> ((usize, usize), Vec<u8>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        &bytes[..8],
        b"\x93NUMPY\x01\x00",
        "{}: magic/version",
        path.display()
    );
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!((10 + hlen) % 64, 0, "data aligned to 64 as numpy pads");
    let h = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
    assert!(h.ends_with('\n'));
    let prefix = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (");
    assert!(h.starts_with(&prefix), "{}: header {h:?}", path.display());
    let shape = &h[prefix.len()..h.find(')').unwrap()];
    let dims: Vec<usize> = shape.split(", ").map(|s| s.parse().unwrap()).collect();
    assert_eq!(dims.len(), 2, "{h}");
    let data = bytes[10 + hlen..].to_vec();
    assert_eq!(data.len(), dims[0] * dims[1] * 4, "{h}");
    ((dims[0], dims[1]), data)
}

/// A uint32 output: (rows, cols, values).
pub fn read_u32(path: &Path) -> (usize, usize, Vec<u32>) {
    let ((r, c), data) = read_npy(path, "<u4");
    let v = data
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    (r, c, v)
}

/// A float32 .npy (output, or an input written by [`write_f32`]): (rows, cols, values).
pub fn read_f32(path: &Path) -> (usize, usize, Vec<f32>) {
    let ((r, c), data) = read_npy(path, "<f4");
    let v = data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    (r, c, v)
}

/// The shipped example embeddings (2,000 × 384).
pub fn example_emb() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/emb.npy")
}

// ---------------------------------------------------------------------------------------
// Data and the float64 reference
// ---------------------------------------------------------------------------------------

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

/// S = E·Eᵀ in f64, n × n, on every core.
pub fn sim64(e: &[f64], n: usize, d: usize) -> Vec<f64> {
    let mut s = vec![0.0f64; n * n];
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let chunk = n.div_ceil(threads).max(1);
    std::thread::scope(|sc| {
        for (c, rows) in s.chunks_mut(chunk * n).enumerate() {
            sc.spawn(move || {
                for (r, out) in rows.chunks_mut(n).enumerate() {
                    out.copy_from_slice(&sim_row64(e, n, d, c * chunk + r));
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
