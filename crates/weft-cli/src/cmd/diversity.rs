//! `weft diversity EMB.npy --starts 0,5,17 -o SEQS.npy`: diversity orderings from chosen
//! starts, one row of N uint32 ids (0-based) per start.

use crate::error::{Failure, Outcome};
use crate::opts::{parse_budget, Common, DeviceArg};
use crate::output::{self, Outputs};
use crate::progress::Reporter;
use crate::starts::{self, Starts};
use crate::{cmd, input};
use std::path::PathBuf;
use std::time::Instant;
use weft_compute::{Budget, Orderings};
use weft_core::DType;

const EXAMPLE: &str = "\
Example:
  $ weft diversity examples/data/emb.npy --starts 0,5,17 -o seqs.npy
  weft: wrote seqs.npy: 3 orderings of 2000 items (3×2000 uint32, 0-based) (0.35 s)
  >>> numpy.load('seqs.npy')[1, :5]   # the ordering from item 5 begins 5, …

Row r of SEQS is the ordering from the r-th start given: it begins with the start, and each
next item is the one whose cosine similarity to the centroid of the items before it is
lowest (ties to the lower id). --starts takes ids, inclusive ranges and `all`: 0-49,100.";

/// Write diversity orderings from the given start items.
#[derive(clap::Args)]
#[command(after_help = EXAMPLE)]
pub struct Args {
    /// Embeddings: a 2-D .npy file of N rows (float32; float64 and float16 are converted).
    #[arg(value_name = "EMB.npy")]
    pub emb: PathBuf,
    /// Start items (0-based): a list with inclusive ranges, e.g. 0,5,17 or 0-49,100, or `all`.
    #[arg(long, value_name = "LIST", value_parser = starts::parse)]
    pub starts: Starts,
    /// Where to write the S×N uint32 orderings (one row per start, in the order given).
    #[arg(short, long, value_name = "SEQS.npy")]
    pub output: PathBuf,
    /// Memory the similarity matrix may take (e.g. 8G); beyond it each step is computed from
    /// the embeddings (slow, same result). Default: half of physical memory.
    #[arg(long, value_name = "BYTES", value_parser = parse_budget)]
    pub budget: Option<Budget>,
    #[command(flatten)]
    pub device: DeviceArg,
    #[command(flatten)]
    pub common: Common,
}

/// Runs the command.
pub fn run(a: Args) -> Outcome {
    let t0 = Instant::now();
    let rep = Reporter::new(&a.common);
    output::check_not_input(&a.output, &[&a.emb])?;
    output::check_writable(&a.output)?;
    let mut emb = input::load(&a.emb, &rep)?;
    let view = emb.view()?;
    let n = view.rows.n();
    let unit = view.normalised(1)?;
    let starts = a
        .starts
        .expand(n)
        .map_err(|e| Failure::input(view.path, e))?;
    let rows = unit.rows();
    let (threads, budget) = (a.common.threads(), a.budget.unwrap_or_default());
    let fail = |e| Failure::input(view.path, e);
    let routed = |f| Failure::routed(view.path, f);
    let device = a.device.get();
    let seqs = output::matrix::<u32>(DType::U32, starts.len(), n, |out| {
        if let [start] = starts[..] {
            // One ordering: over the f32 matrix, the fastest path for a single start.
            let phase = rep.phase("ordering", 0, 1);
            let seq = weft_lua::device::diversity(
                device,
                "diversity",
                rows,
                None,
                start,
                threads,
                budget,
            )
            .map_err(routed)?;
            out.copy_from_slice(&seq);
            phase.finish();
            return Ok(());
        }
        if weft_lua::device::uses_gpu(device, "diversity", rows.n()).map_err(routed)? {
            // The GPU (or, under auto without one, the CPU engine) in chunks for progress;
            // each call builds its device copy of S again, so the chunks are large.
            let mut phase = rep.phase("orderings", 0, starts.len() as u64);
            for (i, group) in starts.chunks(2048).enumerate() {
                let seqs = weft_lua::device::diversity_prefixes(
                    device,
                    "diversity",
                    rows,
                    None,
                    group,
                    n,
                    threads,
                    budget,
                )
                .map_err(routed)?;
                for (j, seq) in seqs.into_iter().enumerate() {
                    let row = i * 2048 + j;
                    out[row * n..(row + 1) * n].copy_from_slice(&seq);
                }
                phase.set((i * 2048 + group.len()) as u64);
            }
            phase.finish();
            return Ok(());
        }
        // Several on the CPU: one compact copy of S shared by all, in chunks for progress.
        let build = rep.phase("prepare", 0, 1);
        let engine = Orderings::new(rows, threads, budget).map_err(fail)?;
        build.finish();
        let mut phase = rep.phase("orderings", 0, starts.len() as u64);
        let chunk = 4 * weft_compute::threads::resolve(threads)
            .map_err(fail)?
            .max(4);
        for (i, group) in starts.chunks(chunk).enumerate() {
            for (j, seq) in engine.run(group).map_err(fail)?.into_iter().enumerate() {
                let row = i * chunk + j;
                out[row * n..(row + 1) * n].copy_from_slice(&seq);
            }
            phase.set(((i * chunk) + group.len()) as u64);
        }
        phase.finish();
        Ok(())
    })?;
    let phase = rep.phase("write", 0, 1);
    let mut outs = Outputs::new();
    outs.stage(&seqs, &a.output)?;
    outs.commit()?;
    phase.finish();
    rep.summary(&format!(
        "wrote {}: {} of {} ({s}×{n} uint32, 0-based) ({})",
        a.output.display(),
        weft_compute::count(starts.len(), "ordering"),
        weft_compute::count(n, "item"),
        cmd::secs(t0),
        s = starts.len()
    ));
    Ok(())
}
