//! Test helpers: the float64 reference and data sets (`reference`, shared with weft-cli's
//! tests), reading .npy files, the fortunes embeddings.
#![allow(dead_code)]

use std::path::Path;

#[path = "../reference/mod.rs"]
mod reference;
pub use reference::*;

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
