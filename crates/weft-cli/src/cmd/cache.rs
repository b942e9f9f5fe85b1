//! `weft cache info CACHE` and `weft cache export CACHE --starts LIST -o SEQS.npy`: read a
//! diversity cache (weft_compute::Cache). `weft cache merge PART... -o CACHE` joins the
//! part files of a sharded run (weft_compute::cache::merge).

use crate::cmd;
use crate::error::{Failure, Outcome};
use crate::opts::{Common, ProgressMode};
use crate::output::{self, Outputs};
use crate::progress::Reporter;
use crate::starts::{self, Starts};
use clap::Subcommand;
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;
use weft_compute::{Cache, ComputeError};
use weft_core::DType;

const EXAMPLE: &str = "\
Examples:
  $ weft cache info fortunes.cache
  {\"n\":2000,\"d\":384,\"done\":2000,\"complete\":true,\"id_width\":2,\"hash\":\"5b0f…\"}
  $ weft cache export fortunes.cache --starts 0-49,100 -o seqs.npy";

/// Read a diversity cache: its state, or chosen orderings as .npy.
#[derive(clap::Args)]
#[command(after_help = EXAMPLE)]
pub struct Args {
    #[command(subcommand)]
    pub command: CacheCommand,
}

/// The `cache` subcommands.
#[derive(Subcommand)]
pub enum CacheCommand {
    /// Print one JSON object: n, d, done, complete, id_width, hash, shard.
    #[command(after_help = "Example:
  $ weft cache info fortunes.cache
  {\"n\":2000,\"d\":384,\"done\":416,\"complete\":false,\"id_width\":2,\"hash\":\"5b0f…\"}

n: items (and orderings); d: embedding width; done: orderings complete on disk;
id_width: bytes per id in the file (2 when n ≤ 65535, else 4); hash: SHA-256 of the
raw embeddings (docs/cache-format.md); shard: null for a cache, \"K/M\" for the part file
of a sharded run (then done and complete count that shard's starts only).")]
    Info {
        /// The cache file.
        #[arg(value_name = "CACHE")]
        cache: PathBuf,
    },
    /// Write the orderings from chosen starts as an S×N uint32 .npy (0-based ids).
    #[command(after_help = "Example:
  $ weft cache export fortunes.cache --starts 0-49,100 -o seqs.npy
  weft: wrote seqs.npy: 51 orderings of 2000 items (51×2000 uint32, 0-based)

Every requested ordering must be complete in the cache; finish an unfinished cache with
`weft diversity-cache EMB.npy -o CACHE --resume`.")]
    Export {
        /// The cache file.
        #[arg(value_name = "CACHE")]
        cache: PathBuf,
        /// Starts (0-based): a list with inclusive ranges, e.g. 0-49,100,200-210, or `all`.
        #[arg(long, value_name = "LIST", value_parser = starts::parse)]
        starts: Starts,
        /// Where to write the S×N uint32 orderings (one row per start, in the order given).
        #[arg(short, long, value_name = "SEQS.npy")]
        output: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Join the finished part files of a sharded run (`weft diversity-cache --shard K/M`)
    /// into the full cache, byte-identical to one unsharded run.
    #[command(after_help = "Example:
  $ weft diversity-cache emb.npy -o part0.cache --shard 0/2
  $ weft diversity-cache emb.npy -o part1.cache --shard 1/2
  $ weft cache merge part0.cache part1.cache -o fortunes.cache
  weft: wrote fortunes.cache: 2000 orderings of 2000 items from 2 parts (0.41 s)

Refused, with nothing written: a part of other embeddings, an unfinished part, a full cache,
a part given twice, parts that overlap, starts no part holds. Parts of different shard
counts are accepted when together they hold every start once. See docs/cluster.md.")]
    Merge {
        /// The part files, in any order.
        #[arg(value_name = "PART", required = true)]
        parts: Vec<PathBuf>,
        /// The cache file to write.
        #[arg(short, long, value_name = "CACHE")]
        output: PathBuf,
        /// Replace an existing file at CACHE (never one of the parts).
        #[arg(long)]
        force: bool,
        /// Print nothing on stderr but the error line of a failure.
        #[arg(long, short = 'q')]
        quiet: bool,
        /// Progress on stderr: `bar` (only when stderr is a terminal), `json` (one object
        /// per line), `none`.
        #[arg(long, value_enum, value_name = "MODE", default_value = "bar")]
        progress: ProgressMode,
    },
}

/// Runs the command.
pub fn run(a: Args) -> Outcome {
    match a.command {
        CacheCommand::Info { cache } => info(&cache),
        CacheCommand::Export {
            cache,
            starts,
            output,
            common,
        } => export(&cache, &starts, &output, &common),
        CacheCommand::Merge {
            parts,
            output,
            force,
            quiet,
            progress,
        } => {
            // No --threads: a merge is one sequential copy.
            let common = Common {
                threads: None,
                quiet,
                progress,
            };
            merge(&parts, &output, force, &common)
        }
    }
}

fn merge(parts: &[PathBuf], out: &Path, force: bool, common: &Common) -> Outcome {
    let t0 = Instant::now();
    let rep = Reporter::new(common);
    let mut phase = None;
    let merged = weft_compute::cache::merge(parts, out, force, &mut |p| {
        phase
            .get_or_insert_with(|| rep.phase("merge", 0, p.total as u64))
            .set(p.done as u64)
    });
    // Finished only on success: a failed merge must not show 100 %.
    if let (Some(phase), true) = (phase, merged.is_ok()) {
        phase.finish();
    }
    let info = merged.map_err(Failure::compute)?;
    rep.summary(&format!(
        "wrote {}: {} of {} from {} ({})",
        out.display(),
        weft_compute::count(info.n, "ordering"),
        weft_compute::count(info.n, "item"),
        weft_compute::count(parts.len(), "part"),
        cmd::secs(t0)
    ));
    Ok(())
}

fn info(path: &Path) -> Outcome {
    let cache = Cache::open(path).map_err(Failure::compute)?;
    let i = cache.info();
    let line = json!({
        "n": i.n,
        "d": i.d,
        "done": i.done,
        "complete": i.complete,
        "id_width": i.id_width,
        "hash": i.hash_hex(),
        "shard": i.shard.map(|s| s.to_string()),
    });
    writeln!(std::io::stdout().lock(), "{line}")
        .map_err(|e| Failure::new(format!("cannot write to standard output: {e}")))
}

fn export(path: &Path, starts: &Starts, out: &Path, common: &Common) -> Outcome {
    let t0 = Instant::now();
    let rep = Reporter::new(common);
    output::check_not_input(out, &[path])?;
    output::check_writable(out)?;
    let cache = Cache::open(path).map_err(Failure::compute)?;
    let n = cache.info().n;
    let list = starts
        .expand(n)
        .map_err(|e| Failure::new(format!("{}: {e}", path.display())))?;
    let mut phase = rep.phase("export", 0, list.len() as u64);
    let mut missing = Vec::new();
    let seqs = output::matrix::<u32>(DType::U32, list.len(), n, |o| {
        for (r, &s) in list.iter().enumerate() {
            match cache.get(s) {
                Ok(seq) => o[r * n..(r + 1) * n].copy_from_slice(&seq),
                // Its completion bit is clear (start is in range: checked above).
                Err(ComputeError::CacheMissing { .. }) => missing.push(s),
                Err(e) => return Err(Failure::compute(e)),
            }
            if r % 64 == 63 {
                phase.set(r as u64 + 1);
            }
        }
        Ok(())
    })?;
    if missing.is_empty() {
        phase.finish();
    }
    if let Some(first) = missing.first() {
        return Err(Failure::new(format!(
            "{}: {} of the {} requested {} not in the cache yet (the first: start {first}; \
             {} of {n} are done); finish it with `weft diversity-cache EMB.npy -o {} --resume`",
            path.display(),
            missing.len(),
            list.len(),
            if list.len() == 1 {
                "ordering is"
            } else {
                "orderings are"
            },
            cache.info().done,
            path.display()
        )));
    }
    let mut outs = Outputs::new();
    outs.stage(&seqs, out)?;
    outs.commit()?;
    rep.summary(&format!(
        "wrote {}: {} of {} ({s}×{n} uint32, 0-based) ({})",
        out.display(),
        weft_compute::count(list.len(), "ordering"),
        weft_compute::count(n, "item"),
        cmd::secs(t0),
        s = list.len()
    ));
    Ok(())
}
