//! `mpirun -n P weft diversity-cache EMB -o CACHE`: the same command on every rank of an MPI
//! job (a build with the `mpi` feature). Rank 0 does everything a single process does —
//! the checks, the file, its lock, progress and the summary — and every rank computes
//! (weft_mpi::cache). The workers only read the embeddings and compute; they start once
//! rank 0 has the file open, and stop quietly when rank 0 stops before that (its line says
//! why). A rank that fails on its own ends the whole job (MPI_Abort) with its message.

use super::diversity_cache::{run_with, Args};
use crate::error::{Failure, Outcome};
use crate::input;
use crate::progress::Reporter;
use crate::signals::Interrupt;
use weft_compute::threads;
use weft_mpi::cache::{fill, Failed, Mode};
use weft_mpi::mpi::traits::*;
use weft_mpi::Mpi;

/// Runs the command as one rank of the job.
pub fn run(a: Args) -> Outcome {
    let mpi = weft_mpi::init().map_err(Failure::new)?;
    if a.shard.is_some() {
        // Every rank knows; only rank 0 says it.
        return match mpi.rank() {
            0 => Err(Failure::with_code(
                "--shard splits the work between separate runs; under mpirun the ranks \
                 share it already: drop --shard (or run the shards without mpirun)",
                2,
            )),
            _ => Ok(()),
        };
    }
    if a.device.get() == weft_lua::device::Device::Gpu {
        // The ranks compute on their CPUs; a GPU per rank is not built yet.
        return match mpi.rank() {
            0 => Err(Failure::with_code(
                "--device gpu: under mpirun the ranks compute on the CPU (a GPU per rank is \
                 not supported yet); drop --device gpu, or run without mpirun",
                2,
            )),
            _ => Ok(()),
        };
    }
    if mpi.rank() == 0 {
        leader(a, mpi)
    } else {
        worker(a, mpi)
    }
}

/// Tells the workers whether to start (1) or stop (0).
fn start(mpi: &Mpi, go: bool) {
    let mut flag = u8::from(go);
    mpi.world().process_at_rank(0).broadcast_into(&mut flag);
}

fn leader(a: Args, mpi: &Mpi) -> Outcome {
    let rep = Reporter::new(&a.common);
    let mut started = false;
    let result = run_with(a, &mut |writer, threads, progress, cancel| {
        started = true;
        start(mpi, true);
        let threads = threads::resolve(threads)?;
        let (raw, budget) = (writer.embeddings(), writer.budget_value());
        match fill(mpi, Some(writer), raw, threads, budget, progress, cancel) {
            Ok((mode, info)) => {
                rep.note(&mode_note(mpi, mode));
                Ok(info.expect("rank 0 has the file"))
            }
            Err(Failed::Together(e)) => Err(e.into()),
            Err(Failed::Alone(msg)) => weft_mpi::abort(1, &msg),
        }
    });
    if !started {
        start(mpi, false);
    }
    result
}

/// Rank 0's note on how the work was shared.
fn mode_note(mpi: &Mpi, mode: Mode) -> String {
    let how = match mode {
        Mode::Batches => "batches of starts handed out to whichever rank asked",
        Mode::Columns => "S split by columns, each group of starts walked by all ranks together",
    };
    format!("{} MPI ranks shared the work: {how}", mpi.size())
}

fn worker(a: Args, mpi: &Mpi) -> Outcome {
    let mut go = 0u8;
    mpi.world().process_at_rank(0).broadcast_into(&mut go);
    if go == 0 {
        return Ok(());
    }
    let fail = |f: Failure| -> ! { weft_mpi::abort(1, f.line().trim_start_matches("weft: ")) };
    let interrupt = Interrupt::install().unwrap_or_else(|f| fail(f));
    let mut emb = input::load(&a.emb, &Reporter::silent()).unwrap_or_else(|f| fail(f));
    let view = emb.view().unwrap_or_else(|f| fail(f));
    let threads =
        threads::resolve(a.common.threads()).unwrap_or_else(|e| fail(Failure::compute(e)));
    let budget = a.budget.unwrap_or_default();
    match fill(
        mpi,
        None,
        view.rows,
        threads,
        budget,
        &mut |_| {},
        interrupt.flag(),
    ) {
        Ok(_) => Ok(()),
        Err(Failed::Together(e)) => Err(Failure::compute(e)),
        Err(Failed::Alone(msg)) => weft_mpi::abort(1, &msg),
    }
}
