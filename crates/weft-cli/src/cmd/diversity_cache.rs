//! `weft diversity-cache EMB.npy -o CACHE [--resume] [--force]`: every diversity ordering,
//! in the resumable cache file of docs/cache-format.md (weft_compute::CacheWriter).
//!
//! Orderings are committed in batches (records synced, then their completion bits), so a
//! run killed at any moment loses at most the batch in flight. SIGINT/SIGTERM stop after the
//! current batch with one line giving the count saved and the command that resumes (exit
//! 130/143). A finished cache is never replaced without `--force`; an unfinished one is
//! continued only with `--resume`, and only for the same embeddings.
//!
//! The summary line of a CPU run gives the bytes of S read and the rate (`RunStats`).
//!
//! `--shard K/M` fills a part file with only shard K's starts (weft_compute::cache::Shard),
//! for batch systems; `weft cache merge` joins the parts (docs/cluster.md).

use crate::error::{Failure, Outcome};
use crate::opts::{parse_budget, Common, DeviceArg};
use crate::output;
use crate::progress::Reporter;
use crate::signals::Interrupt;
use crate::{cmd, input};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;
use weft_compute::cache::Shard;
use weft_compute::{
    count, Budget, Cache, CacheInfo, CacheWriter, ComputeError, Progress, RunStats,
};

const EXAMPLE: &str = "\
Example:
  $ weft diversity-cache examples/data/emb.npy -o fortunes.cache
  ^C
  weft: interrupted by SIGINT: 782 of 2000 orderings are saved in fortunes.cache; resume with: weft diversity-cache examples/data/emb.npy -o fortunes.cache --resume
  $ weft diversity-cache examples/data/emb.npy -o fortunes.cache --resume
  weft: fortunes.cache is complete: 2000 orderings of 2000 items (1218 computed now, 0.36 s; S built in 0.05 s, 3.79 GB of its rows read in 0.28 s = 13.3 GB/s; 1205 orderings took the rest of an earlier one)
  $ weft cache export fortunes.cache --starts 0-49 -o seqs.npy

Exit codes: 0 complete; 1 failure (the orderings committed so far stay, resumable);
130 after SIGINT, 143 after SIGTERM (a second signal stops at once; committed work is safe).";

/// Compute the diversity ordering from every start into a resumable cache file.
#[derive(clap::Args)]
#[command(after_help = EXAMPLE)]
pub struct Args {
    /// Embeddings: a 2-D .npy file of N rows (float32; float64 and float16 are converted).
    #[arg(value_name = "EMB.npy")]
    pub emb: PathBuf,
    /// The cache file to write (or to continue with --resume).
    #[arg(short, long, value_name = "CACHE")]
    pub output: PathBuf,
    /// Continue an unfinished cache of the same embeddings (a missing file starts anew).
    /// Not with --force (exit 2).
    #[arg(long)]
    pub resume: bool,
    /// Replace an existing file, even a finished cache.
    #[arg(long)]
    pub force: bool,
    /// Memory the compact similarity matrix (N²·2 bytes) may take; beyond it every step is
    /// computed from the embeddings (slow, same file). What is left keeps finished
    /// orderings (N²·4 bytes for all of them, and their snapshots), so that later orderings
    /// that meet one take the rest of its picks (faster, same file).
    /// Default: half of physical memory.
    #[arg(long, value_name = "BYTES", value_parser = parse_budget)]
    pub budget: Option<Budget>,
    /// Compute only shard K of M (0-based K < M ≤ N): the starts ⌊K·N/M⌋..⌊(K+1)·N/M⌋,
    /// into a part file for `weft cache merge`. --resume of a part needs the same K/M.
    #[arg(long, value_name = "K/M", value_parser = Shard::parse)]
    pub shard: Option<Shard>,
    #[command(flatten)]
    pub device: DeviceArg,
    #[command(flatten)]
    pub common: Common,
}

/// How the missing orderings get computed once the file is open: by this process
/// (`CacheWriter::run`), or by every rank of an MPI job (`super::diversity_cache_mpi`).
pub type Fill<'f> = dyn FnMut(
        &mut CacheWriter<'_>,
        Option<usize>,
        &mut dyn FnMut(Progress),
        &AtomicBool,
    ) -> Result<CacheInfo, weft_lua::device::Failure>
    + 'f;

/// Runs the command.
pub fn run(a: Args) -> Outcome {
    #[cfg(feature = "mpi")]
    if weft_mpi::launcher::several_ranks(|v| std::env::var(v).ok()).is_some() {
        return super::diversity_cache_mpi::run(a);
    }
    let device = a.device.get();
    run_with(a, &mut |w, threads, progress, cancel| {
        weft_lua::device::fill_cache(device, "diversity-cache", w, threads, progress, cancel)
    })
}

/// The command, with `fill` computing what is missing.
pub fn run_with(a: Args, fill: &mut Fill<'_>) -> Outcome {
    let t0 = Instant::now();
    if a.resume && a.force {
        // One rule with weft.diversity_cache, in the same words; a usage error here.
        return Err(Failure::with_code(weft_compute::RESUME_WITH_FORCE, 2));
    }
    let rep = Reporter::new(&a.common);
    let interrupt = Interrupt::install()?;
    let path = a.output.as_path();
    if path.is_dir() {
        return Err(Failure::new(format!(
            "{}: is a directory; name a cache file",
            path.display()
        )));
    }
    output::check_not_input(path, &[&a.emb])?;
    let exists = path.exists();
    if exists {
        CacheWriter::check_not_busy(path).map_err(Failure::compute)?;
    }
    if exists && !a.resume && !a.force {
        return Err(refuse_existing(path));
    }
    if !exists {
        output::check_writable(path)?;
        if a.resume {
            rep.note(&format!(
                "{}: no cache there yet; starting a new one",
                path.display()
            ));
        }
    }
    let mut emb = input::load(&a.emb, &rep)?;
    let view = emb.view()?;
    let (n, emb_path) = (view.rows.n(), view.path);
    if let Some(Err(e)) = a.shard.map(|s| s.check(n)) {
        return Err(Failure::with_code(format!("--shard: {e}"), 2));
    }
    // What the file is for: all n starts, or one shard's (named in the messages).
    let (total, what) = match a.shard {
        Some(s) => {
            let r = s.starts(n);
            let what = format!(
                "{} (the part for shard {s}, starts {}..{})",
                path.display(),
                r.start,
                r.end
            );
            (r.len(), what)
        }
        None => (n, path.display().to_string()),
    };
    let engine_error = |e: ComputeError| match e {
        ComputeError::BadRow { .. }
        | ComputeError::TooFewRows { .. }
        | ComputeError::TooManyRows { .. }
        | ComputeError::Shape { .. } => Failure::input(emb_path, e),
        ComputeError::CacheFormat { .. } | ComputeError::CacheRefused { .. } => {
            Failure::new(format!("{e}; --force replaces it with a new cache"))
        }
        other => Failure::compute(other),
    };
    if interrupt.received().is_some() {
        return Err(interrupted(&interrupt, 0, n, path, "nothing was written"));
    }
    let writer = if exists && a.resume {
        CacheWriter::resume_part(path, view.rows, a.shard).map_err(engine_error)?
    } else {
        // Under the path's write lock; a pending file of a killed run is cleared first.
        weft_core::files::remove_stale_temporaries(path);
        CacheWriter::create_part(path, view.rows, a.force, a.shard).map_err(engine_error)?
    };
    let mut writer = match a.budget {
        Some(b) => writer.budget(b),
        None => writer,
    };
    let done0 = writer.info().done;
    if writer.info().complete {
        rep.summary(&format!(
            "{what} is already complete: {} of {}",
            count(total, "ordering"),
            count(n, "item")
        ));
        return Ok(());
    }
    let mut phase = rep.phase("orderings", done0 as u64, total as u64);
    let result = fill(
        &mut writer,
        a.common.threads(),
        &mut |p| phase.set(p.done as u64),
        interrupt.flag(),
    );
    drop(phase);
    let result = match result {
        Ok(info) => Ok(info),
        Err(weft_lua::device::Failure::Input(e)) => Err(e),
        // A device failure (under --device gpu): say so, and what is saved.
        Err(weft_lua::device::Failure::Device(msg)) => {
            let done = Cache::open(path).map(|c| c.info().done).unwrap_or(done0);
            return Err(Failure::new(format!(
                "{msg}; {done} of {} are saved in {}; resume with: {}",
                count(total, "ordering"),
                path.display(),
                resume_command()
            )));
        }
    };
    let info = match result {
        Ok(info) => info,
        Err(e @ (ComputeError::CacheReplaced { .. } | ComputeError::Threads(_))) => {
            return Err(Failure::compute(e))
        }
        Err(e) => {
            let done = Cache::open(path).map(|c| c.info().done).unwrap_or(done0);
            return Err(Failure::new(format!(
                "{}; {done} of {} are saved in {}; resume with: {}",
                engine_error(e),
                count(total, "ordering"),
                path.display(),
                resume_command()
            )));
        }
    };
    if info.complete {
        rep.summary(&format!(
            "{what} is complete: {} of {} ({} computed now, {}{})",
            count(total, "ordering"),
            count(n, "item"),
            info.done - done0,
            cmd::secs(t0),
            writer.last_run().map(how_s_was_read).unwrap_or_default()
        ));
        return Ok(());
    }
    Err(interrupted(&interrupt, info.done, total, path, ""))
}

/// How the CPU engine used S, for the summary: the bytes of its rows the orderings read and
/// the rate (`weft bench` prints the machine's streaming rate to compare with), or that S
/// did not fit the budget.
fn how_s_was_read(r: &RunStats) -> String {
    if !r.in_memory {
        return "; S over --budget: every step computed from the embeddings".into();
    }
    let rate = r
        .s_gb_per_s()
        // Three decimals below 1 GB/s: S split by columns between MPI ranks reads a few
        // MB/s, each step waiting for a collective.
        .map(|g| match g {
            g if g >= 1.0 => format!(" = {g:.1} GB/s"),
            g => format!(" = {g:.3} GB/s"),
        })
        .unwrap_or_default();
    let tails = if r.followed > 0 {
        format!(
            "; {} took the rest of an earlier one",
            count(r.followed as usize, "ordering")
        )
    } else {
        String::new()
    };
    // Decimal units, as the rate's.
    let read = match r.s_bytes_read as f64 {
        b if b >= 1e9 => format!("{:.2} GB", b / 1e9),
        b => format!("{:.1} MB", b / 1e6),
    };
    format!(
        "; S built in {:.2} s, {read} of its rows read in {:.2} s{rate}{tails}",
        r.build.as_secs_f64(),
        r.compute.as_secs_f64(),
    )
}

/// The line and exit code of a run stopped by a signal (or, defensively, stopped early
/// for no reason the engine reported).
fn interrupted(interrupt: &Interrupt, done: usize, n: usize, path: &Path, extra: &str) -> Failure {
    let (name, code) = interrupt.received().unwrap_or(("an early stop", 1));
    let saved = if extra.is_empty() {
        format!(
            "{done} of {} are saved in {}",
            count(n, "ordering"),
            path.display()
        )
    } else {
        extra.to_string()
    };
    Failure::with_code(
        format!(
            "interrupted by {name}: {saved}; resume with: {}",
            resume_command()
        ),
        code,
    )
}

/// Why an existing file is not replaced without --resume or --force.
fn refuse_existing(path: &Path) -> Failure {
    let shown = path.display();
    // A part file of --shard K/M is named as such, with its shard's count.
    let kind = |c: &Cache| match c.info().shard {
        Some(s) => format!("cache part (shard {s})"),
        None => "cache".into(),
    };
    match Cache::open(path) {
        Ok(c) if c.info().complete => Failure::new(format!(
            "{shown} is a finished {} ({}); refusing to overwrite it (--force replaces it)",
            kind(&c),
            count(c.info().starts().len(), "ordering")
        )),
        Ok(c) => Failure::new(format!(
            "{shown} is an unfinished {} ({} of {}); continue it with --resume, or \
             replace it with --force",
            kind(&c),
            c.info().done,
            count(c.info().starts().len(), "ordering")
        )),
        Err(e) => Failure::new(format!(
            "{shown} already exists and is not a usable cache ({}); refusing to overwrite it \
             (--force replaces it)",
            e.to_string()
                .strip_prefix(&format!("{shown}: "))
                .unwrap_or(&e.to_string())
        )),
    }
}

/// The command line of this run with `--resume` instead of `--force`, shell-quoted.
fn resume_command() -> String {
    let mut args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .filter(|a| a != "--force")
        .collect();
    if !args.iter().any(|a| a == "--resume") {
        args.push("--resume".into());
    }
    args.iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./=:,+@%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
