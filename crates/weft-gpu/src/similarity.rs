//! S = E·Eᵀ on the GPU: blocks of rows computed by the `sim.wgsl` tile kernel and read back
//! into the caller's row-major N×N buffer.
//!
//! Every entry is one fused-multiply-add chain over k = 0..d in order, the CPU engine's
//! summation (so on an adapter whose `fma` is fused the bits are the CPU engine's; any
//! adapter stays within (d + 2)·2⁻²⁴·1.02 of the exact dot product, docs/gpu.md).

use weft_compute::{Budget, ComputeError, Rows};

use crate::device::Gpu;
use crate::error::GpuError;
use crate::kernel::dispatch;
use crate::plan::{blocks, MAX_GRID_ROWS};

pub(crate) const SIM_WGSL: &str = include_str!("shaders/sim.wgsl");

/// The uniform block of `sim.wgsl`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn sim_params(
    rows_a: usize,
    rows_b: usize,
    d: usize,
    row_a0: usize,
    row_b0: usize,
    out_stride: usize,
    out_col0: usize,
    out_row0: usize,
) -> [u32; 8] {
    [
        rows_a, rows_b, d, row_a0, row_b0, out_stride, out_col0, out_row0,
    ]
    .map(|v| v as u32)
}

/// Like [`fn@weft_compute::similarity`], on `gpu`: S = E·Eᵀ of normalised rows, `n × n`.
pub fn similarity(gpu: &Gpu, e: Rows<'_>, budget: Budget) -> Result<Vec<f32>, GpuError> {
    check(e, budget)?;
    let mut s = vec![0.0f32; e.n() * e.n()];
    fill(gpu, e, &mut s)?;
    Ok(s)
}

/// Like [`fn@weft_compute::similarity_into`], on `gpu`. On an input error `out` is untouched;
/// on a device error (out of memory, device lost) it may be partly written.
pub fn similarity_into(
    gpu: &Gpu,
    e: Rows<'_>,
    out: &mut [f32],
    budget: Budget,
) -> Result<(), GpuError> {
    let n = e.n();
    if n.checked_mul(n) != Some(out.len()) {
        return Err(ComputeError::SimilarityShape {
            len: out.len(),
            n,
            expected: n.saturating_mul(n),
        }
        .into());
    }
    check(e, budget)?;
    fill(gpu, e, out)
}

/// The CPU engine's input checks: at least one row, finite values, n²·4 bytes in budget.
fn check(e: Rows<'_>, budget: Budget) -> Result<(), GpuError> {
    e.require(1)?;
    e.check_finite()?;
    let needed = (e.n() as u64) * (e.n() as u64) * 4;
    if !budget.fits(needed) {
        return Err(ComputeError::OverBudget {
            what: "the similarity matrix",
            needed,
            budget: budget.get(),
        }
        .into());
    }
    Ok(())
}

fn fill(gpu: &Gpu, e: Rows<'_>, out: &mut [f32]) -> Result<(), GpuError> {
    let (n, d) = (e.n(), e.d());
    let m = gpu.upload_rows("the embeddings", e.data(), n, d, Some(MAX_GRID_ROWS))?;
    let (list, per) = blocks(
        gpu,
        &m,
        n as u64 * 4,
        MAX_GRID_ROWS,
        "a block of the similarity matrix",
    )?;
    let bytes = (per * n * 4) as u64;
    let scratch = gpu.storage(
        "a block of the similarity matrix",
        bytes,
        wgpu::BufferUsages::empty(),
    )?;
    let staging = gpu.staging(bytes)?;
    let pipe = gpu.pipeline("similarity", SIM_WGSL)?;
    for blk in list {
        gpu.checked("computing the similarity matrix", || {
            let mut enc = gpu.device().create_command_encoder(&Default::default());
            for (pb, b) in m.parts.iter().enumerate() {
                let (c0, c1) = m.part_rows(pb);
                let params =
                    gpu.uniform(&sim_params(blk.rows, c1 - c0, d, blk.offset, 0, n, c0, 0));
                let bind = gpu.bind(&pipe, &[&m.parts[blk.part], b, &scratch, &params]);
                dispatch(
                    &mut enc,
                    &pipe,
                    &bind,
                    (
                        (c1 - c0).div_ceil(64) as u32,
                        blk.rows.div_ceil(64) as u32,
                        1,
                    ),
                );
            }
            gpu.queue().submit([enc.finish()]);
        })?;
        let rows = &mut out[blk.first * n..(blk.first + blk.rows) * n];
        gpu.read_into(
            "reading the similarity matrix back",
            &staging,
            &scratch,
            0,
            rows,
        )?;
    }
    Ok(())
}
