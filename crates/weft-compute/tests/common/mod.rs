//! Test helpers: the float64 reference and data sets (`reference`, shared with weft-cli's
//! tests), reading .npy files, the fortunes embeddings.
#![allow(dead_code)]

use std::path::Path;

#[path = "../reference/mod.rs"]
mod reference;
pub use reference::*;

/// Reads a 2-D f32 .npy file with weft-npy's reader: (data, rows, cols).
pub fn read_npy_f32(path: &Path) -> (Vec<f32>, usize, usize) {
    let a = weft_npy::load(path).unwrap_or_else(|e| panic!("{e}")).array;
    let (n, d) = (a.rows(), a.row_len());
    // SAFETY: nothing else holds the freshly loaded array, so nothing writes it.
    let data = unsafe { a.as_slice::<f32>() }
        .expect("an f32 array")
        .to_vec();
    (data, n, d)
}

/// Real embeddings: the repository's examples/data/emb.npy (2,000 × 384, a subset of the
/// fortunes set), so that a fresh clone runs these tests. `WEFT_TEST_EMB=PATH` runs them on
/// another 2-D f32 .npy file instead (e.g. the full 7,090-row set).
pub fn fortunes() -> (Vec<f32>, usize, usize) {
    let path = match std::env::var_os("WEFT_TEST_EMB") {
        Some(p) => std::path::PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/emb.npy"),
    };
    read_npy_f32(&path)
}
