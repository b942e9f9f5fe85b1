//! `weft topk EMB.npy -k K --ids IDS.npy --scores SCORES.npy`: each item's k nearest
//! neighbours (0-based ids, uint32) and their cosine similarities (float32), best first.

use crate::error::{Failure, Outcome};
use crate::opts::{Common, DeviceArg};
use crate::output::{self, Outputs};
use crate::progress::Reporter;
use crate::{cmd, input};
use std::path::PathBuf;
use std::time::Instant;
use weft_core::DType;

const EXAMPLE: &str = "\
Example:
  $ weft topk examples/data/emb.npy -k 10 --ids ids.npy --scores scores.npy
  weft: wrote ids.npy (2000×10 uint32, 0-based) and scores.npy (2000×10 float32) (0.05 s)
  >>> numpy.load('ids.npy')[17]   # the 10 items nearest to item 17, best first

Row q of IDS lists the k items j ≠ q with the largest similarity to q, best first; equal
similarities go to the lower id.";

/// Write each item's k nearest neighbours by cosine similarity.
#[derive(clap::Args)]
#[command(after_help = EXAMPLE)]
#[command(group(clap::ArgGroup::new("out").args(["ids", "scores"]).required(true).multiple(true)))]
pub struct Args {
    /// Embeddings: a 2-D .npy file of N rows (float32; float64 and float16 are converted).
    #[arg(value_name = "EMB.npy")]
    pub emb: PathBuf,
    /// Neighbours per item, 1 ≤ K ≤ N − 1.
    #[arg(short, value_name = "K")]
    pub k: usize,
    /// Where to write the N×K uint32 neighbour ids (0-based).
    #[arg(long, value_name = "IDS.npy")]
    pub ids: Option<PathBuf>,
    /// Where to write the N×K float32 similarities.
    #[arg(long, value_name = "SCORES.npy")]
    pub scores: Option<PathBuf>,
    #[command(flatten)]
    pub device: DeviceArg,
    #[command(flatten)]
    pub common: Common,
}

/// Runs the command.
pub fn run(a: Args) -> Outcome {
    let t0 = Instant::now();
    let rep = Reporter::new(&a.common);
    if let (Some(i), Some(s)) = (&a.ids, &a.scores) {
        let same_end = weft_core::files::final_path(i).ok() == weft_core::files::final_path(s).ok();
        let regular = std::fs::metadata(i).is_ok_and(|m| m.is_file());
        let same_file =
            regular && weft_core::files::FileId::of_path(i) == weft_core::files::FileId::of_path(s);
        if i == s || same_end || same_file {
            return Err(Failure::new(format!(
                "{}: --ids and --scores name the same file",
                i.display()
            )));
        }
    }
    for p in a.ids.iter().chain(&a.scores) {
        output::check_not_input(p, &[&a.emb])?;
        output::check_writable(p)?;
    }
    let mut emb = input::load(&a.emb, &rep)?;
    let view = emb.view()?;
    let n = view.rows.n();
    let unit = view.normalised(1)?;
    let rows = unit.rows();
    let phase = rep.phase("topk", 0, 1);
    let found = weft_lua::device::topk(a.device.get(), "topk", rows, a.k, a.common.threads())
        .map_err(|f| Failure::routed(view.path, f))?;
    phase.finish();
    let k = found.k;
    let phase = rep.phase("write", 0, 1);
    let mut outs = Outputs::new();
    let mut wrote = Vec::new();
    if let Some(path) = &a.ids {
        let ids = output::matrix::<u32>(DType::U32, n, k, |o| {
            o.copy_from_slice(&found.ids);
            Ok(())
        })?;
        outs.stage(&ids, path)?;
        wrote.push(format!("{} ({n}×{k} uint32, 0-based)", path.display()));
    }
    if let Some(path) = &a.scores {
        let scores = output::matrix::<f32>(DType::F32, n, k, |o| {
            o.copy_from_slice(&found.scores);
            Ok(())
        })?;
        outs.stage(&scores, path)?;
        wrote.push(format!("{} ({n}×{k} float32)", path.display()));
    }
    outs.commit()?;
    phase.finish();
    rep.summary(&format!(
        "wrote {} ({})",
        wrote.join(" and "),
        cmd::secs(t0)
    ));
    Ok(())
}
