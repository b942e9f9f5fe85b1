//! Top-k on the GPU, with the CPU engine's exact answer.
//!
//! For a block of rows the GPU computes the rows' slice of S (`sim.wgsl`) and, per row,
//! the k-th largest score g_k and the list of columns scoring ≥ g_k − margin
//! (`select.wgsl`). The host re-scores that list with the CPU engine's arithmetic
//! ([`crate::exact`]) and ranks it. Why the list holds the CPU engine's top k: GPU and CPU
//! scores are each within β = (d + 2)·2⁻²⁴·1.02 of the exact dot product of unit rows, so
//! they differ by ≤ 2β; the k items with the largest GPU scores have CPU scores
//! ≥ g_k − 2β, so the CPU's k-th score c_k ≥ g_k − 2β, and every CPU top-k item j has
//! g_j ≥ c_j − 2β ≥ c_k − 2β ≥ g_k − 4β = the threshold with margin 4β (plus rounding
//! slack). A row whose list overflows its capacity is re-scored in full on the host.

use weft_compute::{threads, ComputeError, Rows, TopK};

use crate::device::Gpu;
use crate::error::GpuError;
use crate::exact::rank;
use crate::kernel::dispatch;
use crate::plan::{blocks, MAX_GRID_ROWS};
use crate::similarity::{sim_params, SIM_WGSL};

const SELECT_WGSL: &str = include_str!("shaders/select.wgsl");

/// Rows per select dispatch: one workgroup each, at most 65,535 per grid axis.
const MAX_SELECT_ROWS: usize = 65_535;

/// The shortlist threshold's margin below g_k: 4β plus slack for the f32 subtraction
/// (half an ulp of a value ≤ 1 is ≤ 2⁻²⁵) and for rows normalised to 1 ± d·2⁻²⁴.
pub fn margin(d: usize) -> f32 {
    let beta = (d as f64 + 2.0) * 2f64.powi(-24) * 1.02;
    (4.0 * beta + 2f64.powi(-22)) as f32
}

/// Shortlist capacity per row: room for near-ties beyond k without a full re-score.
fn capacity(n: usize, k: usize) -> usize {
    (2 * k).max(k + 64).min(n - 1)
}

/// Like [`fn@weft_compute::topk`], on `gpu`, with the same ids and scores (module docs).
/// `threads` bounds the host threads re-scoring shortlists.
pub fn topk(gpu: &Gpu, e: Rows<'_>, k: usize, threads: Option<usize>) -> Result<TopK, GpuError> {
    let (n, d) = (e.n(), e.d());
    e.require(2)?;
    if k == 0 || k >= n {
        return Err(ComputeError::KOutOfRange { k, n }.into());
    }
    e.check_finite()?;
    let t = threads::resolve(threads)?;
    let cap = capacity(n, k);
    let m = gpu.upload_rows("the embeddings", e.data(), n, d, Some(MAX_GRID_ROWS))?;
    // A block's slice of S and its shortlists must each fit one binding.
    let row_bytes = (n as u64 * 4).max(cap as u64 * 4);
    let (list, per) = blocks(gpu, &m, row_bytes, MAX_SELECT_ROWS, "a block of top-k rows")?;
    let scratch = gpu.storage(
        "a block of the similarity matrix",
        (per * n * 4) as u64,
        wgpu::BufferUsages::empty(),
    )?;
    let cands = gpu.storage(
        "the top-k shortlists",
        (per * cap * 4) as u64,
        wgpu::BufferUsages::empty(),
    )?;
    let counts = gpu.storage(
        "the top-k shortlist lengths",
        (per * 4) as u64,
        wgpu::BufferUsages::empty(),
    )?;
    let staging = gpu.staging((per * cap * 4) as u64)?;
    let sim = gpu.pipeline("similarity", SIM_WGSL)?;
    let select = gpu.pipeline("topk-select", SELECT_WGSL)?;
    let mut out = TopK {
        ids: vec![0; n * k],
        scores: vec![0.0; n * k],
        k,
    };
    let mut listed = vec![0u32; per * cap];
    let mut count = vec![0u32; per];
    for blk in list {
        gpu.checked("computing top-k", || {
            let mut enc = gpu.device().create_command_encoder(&Default::default());
            for (pb, b) in m.parts.iter().enumerate() {
                let (c0, c1) = m.part_rows(pb);
                let params =
                    gpu.uniform(&sim_params(blk.rows, c1 - c0, d, blk.offset, 0, n, c0, 0));
                let bind = gpu.bind(&sim, &[&m.parts[blk.part], b, &scratch, &params]);
                dispatch(
                    &mut enc,
                    &sim,
                    &bind,
                    (
                        (c1 - c0).div_ceil(64) as u32,
                        blk.rows.div_ceil(64) as u32,
                        1,
                    ),
                );
            }
            let params = [
                n as u32,
                k as u32,
                cap as u32,
                blk.first as u32,
                margin(d).to_bits(),
                n as u32,
                0,
                0,
            ];
            let params = gpu.uniform(&params);
            let bind = gpu.bind(&select, &[&scratch, &cands, &counts, &params]);
            dispatch(&mut enc, &select, &bind, (blk.rows as u32, 1, 1));
            gpu.queue().submit([enc.finish()]);
        })?;
        gpu.read_into(
            "reading top-k shortlists back",
            &staging,
            &counts,
            0,
            &mut count[..blk.rows],
        )?;
        gpu.read_into(
            "reading top-k shortlists back",
            &staging,
            &cands,
            0,
            &mut listed[..blk.rows * cap],
        )?;
        let ids = &mut out.ids[blk.first * k..(blk.first + blk.rows) * k];
        let scores = &mut out.scores[blk.first * k..(blk.first + blk.rows) * k];
        finish(
            e,
            k,
            cap,
            blk.first,
            &count[..blk.rows],
            &listed,
            ids,
            scores,
            t,
        );
    }
    Ok(out)
}

/// Re-scores each row's shortlist (or, when it overflowed, every other item) on `t` threads.
#[allow(clippy::too_many_arguments)]
fn finish(
    e: Rows<'_>,
    k: usize,
    cap: usize,
    first: usize,
    count: &[u32],
    listed: &[u32],
    ids: &mut [u32],
    scores: &mut [f32],
    t: usize,
) {
    let (n, d) = (e.n(), e.d());
    let rows = count.len();
    let chunk = rows.div_ceil(t.max(1)).max(1);
    std::thread::scope(|s| {
        for (c, (ids, scores)) in ids
            .chunks_mut(chunk * k)
            .zip(scores.chunks_mut(chunk * k))
            .enumerate()
        {
            s.spawn(move || {
                for (r_in, (ids, scores)) in ids.chunks_mut(k).zip(scores.chunks_mut(k)).enumerate()
                {
                    let r = c * chunk + r_in;
                    let i = first + r;
                    let len = count[r] as usize;
                    if (k..=cap).contains(&len) {
                        rank(
                            e.data(),
                            d,
                            i,
                            listed[r * cap..r * cap + len].iter().copied(),
                            ids,
                            scores,
                        );
                    } else {
                        rank(
                            e.data(),
                            d,
                            i,
                            (0..n as u32).filter(|&j| j as usize != i),
                            ids,
                            scores,
                        );
                    }
                }
            });
        }
    });
}
