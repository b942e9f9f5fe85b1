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

/// The number written just before `what` in `text` (the word after the last space or
/// comma), e.g. `3.79` in `…, 3.79 GB of its rows read …` with `what` = ` GB of its rows`.
#[track_caller]
pub fn number_before(text: &str, what: &str) -> f64 {
    let head = &text[..text.find(what).unwrap_or_else(|| panic!("{what}: {text}"))];
    let word = head.rsplit([' ', ',']).next().unwrap();
    word.parse()
        .unwrap_or_else(|_| panic!("{word:?} before {what}: {text}"))
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

/// A test that cannot run on this machine (a missing tool or privilege): prints one
/// `SKIPPED` line and lets it pass — except under CI (the `CI` variable set and not `0` or
/// `false`, as `.ci/run` and CI services set it), where a skip hides a gap, so it fails.
pub fn skip(test: &str, why: &str) {
    let ci = std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
    assert!(
        !ci,
        "{test} cannot run here ({why}); under CI every test must run"
    );
    println!("SKIPPED {test}: {why} (under CI this fails)");
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

#[path = "../../../weft-compute/tests/reference/mod.rs"]
mod reference;
pub use reference::*;
