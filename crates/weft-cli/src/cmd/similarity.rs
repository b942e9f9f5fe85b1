//! `weft similarity EMB.npy -o SIM.npy`: the N×N float32 cosine similarity matrix.

use crate::error::{Failure, Outcome};
use crate::opts::{parse_budget, Common, DeviceArg};
use crate::output::{self, Outputs};
use crate::progress::Reporter;
use crate::{cmd, input};
use std::path::PathBuf;
use std::time::Instant;
use weft_compute::{Budget, ComputeError};
use weft_core::DType;

const EXAMPLE: &str = "\
Example:
  $ weft similarity examples/data/emb.npy -o sim.npy
  weft: wrote sim.npy: 2000×2000 float32 similarities (0.21 s)
  >>> numpy.load('sim.npy')[0, :3]   # S[i, j] = cosine of rows i and j (0-based)";

/// Write the N×N float32 matrix of cosine similarities of the embeddings.
///
/// Rows are L2-normalised (norms in float64) and S = E·Eᵀ is computed on the upper triangle
/// and mirrored, so S[i, j] and S[j, i] are the same bits.
#[derive(clap::Args)]
#[command(after_help = EXAMPLE)]
pub struct Args {
    /// Embeddings: a 2-D .npy file of N rows (float32; float64 and float16 are converted).
    #[arg(value_name = "EMB.npy")]
    pub emb: PathBuf,
    /// Where to write the N×N float32 matrix.
    #[arg(short, long, value_name = "SIM.npy")]
    pub output: PathBuf,
    /// Memory the N×N matrix may take (e.g. 8G); larger inputs are refused. Default: half
    /// of physical memory.
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
    let rows = unit.rows();
    let budget = a.budget.unwrap_or_default();
    let needed = (n as u64).saturating_mul(n as u64).saturating_mul(4);
    if !budget.fits(needed) {
        // Checked before the output is allocated; the engine checks the same again.
        let e = ComputeError::OverBudget {
            what: "the similarity matrix",
            needed,
            budget: budget.get(),
        };
        let line = Failure::input(view.path, e);
        return Err(Failure::new(format!("{line} (--budget raises it)")));
    }
    let phase = rep.phase("similarity", 0, 1);
    let sim = output::matrix::<f32>(DType::F32, n, n, |out| {
        let device = a.device.get();
        weft_lua::device::similarity_into(
            device,
            "similarity",
            rows,
            out,
            a.common.threads(),
            budget,
        )
        .map_err(|f| Failure::routed(view.path, f))
    })?;
    phase.finish();
    let phase = rep.phase("write", 0, 1);
    let mut outs = Outputs::new();
    outs.stage(&sim, &a.output)?;
    outs.commit()?;
    phase.finish();
    rep.summary(&format!(
        "wrote {}: {n}×{n} float32 similarities ({})",
        a.output.display(),
        cmd::secs(t0)
    ));
    Ok(())
}
