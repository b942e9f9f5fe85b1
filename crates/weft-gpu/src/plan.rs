//! How a job over N rows is cut to fit the device: the embeddings split across bindings
//! ([`crate::SplitRows`]), and blocks of rows whose N-wide slice of S fits one binding.

use crate::buffers::SplitRows;
use crate::device::Gpu;
use crate::error::GpuError;

/// Rows one dispatch can cover along a grid axis: 65,535 workgroups (the WebGPU minimum
/// every adapter offers) of 64 rows.
pub(crate) const MAX_GRID_ROWS: usize = 65_535 * 64;

/// One block of rows: all in one part of the embeddings.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Block {
    /// The part of [`SplitRows`] holding the block.
    pub part: usize,
    /// The block's first row (global index).
    pub first: usize,
    /// Its first row's index within the part.
    pub offset: usize,
    /// Rows in the block.
    pub rows: usize,
}

/// Blocks of at most `cap_rows` rows, each inside one part, such that `rows × bytes_per_row`
/// fits one binding. Fails when even one row does not.
pub(crate) fn blocks(
    gpu: &Gpu,
    m: &SplitRows,
    bytes_per_row: u64,
    cap_rows: usize,
    what: &str,
) -> Result<(Vec<Block>, usize), GpuError> {
    let fit = (gpu.max_binding() / bytes_per_row.max(1)) as usize;
    if fit == 0 {
        return Err(GpuError::LimitsTooSmall {
            adapter: gpu.summary().name.clone(),
            what: format!(
                "{what}: one row needs {bytes_per_row} bytes, a storage binding holds {}",
                gpu.max_binding()
            ),
        });
    }
    let per = fit.min(cap_rows).min(m.rows_per_part).max(1);
    let mut list = Vec::new();
    for p in 0..m.parts.len() {
        let (a, b) = m.part_rows(p);
        let mut first = a;
        while first < b {
            let rows = per.min(b - first);
            list.push(Block {
                part: p,
                first,
                offset: first - a,
                rows,
            });
            first += rows;
        }
    }
    Ok((list, per))
}
