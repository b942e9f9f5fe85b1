//! The diversity cache on many ranks: `mpirun -n P weft diversity-cache EMB -o CACHE`.
//!
//! Rank 0 holds the [`CacheWriter`] and is the only writer of the file (records, then
//! their completion bits, with the writer's own durability rule); every rank, rank 0
//! included, computes orderings. Two ways to share the work, chosen by rank 0:
//!
//! - **Batches** (S fits one rank's budget, or no rank holds S at all): every rank builds
//!   its own engine over all N items, and batches of [`BATCH`] missing starts are handed
//!   out one at a time to whichever rank asks (a fast rank takes more). A worker sends a
//!   finished batch's orderings to rank 0 and gets its next batch in reply; rank 0 takes
//!   batches from the same list between serving them, on a thread of its own that polls
//!   for messages.
//! - **Columns** (S does not fit one rank's budget, but a block of its columns does):
//!   every rank keeps the block of S of the items it owns ([`ColumnBlock`]); the ranks walk
//!   each group of 256 starts together, one collective per step proposing every rank's best
//!   item and taking the minimum by (score, item) — the rule's choice over all items.
//!
//! Either way the orderings are the ones one process computes, so the file is byte-
//! identical to a single-process run for every P, and resumable with any P.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use mpi::collective::{SystemOperation, UserOperation};
use mpi::datatype::{DynBuffer, DynBufferMut, UserDatatype};
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use weft_compute::cache::BATCH;
use weft_compute::columns::{ColumnBlock, ColumnWalks};
use weft_compute::{
    normalize, Budget, CacheInfo, CacheWriter, ComputeError, Orderings, Progress, Rows, RunStats,
};

use crate::Mpi;

/// How the ranks share the work (rank 0 decides, every rank follows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Batches of starts handed out dynamically; every rank holds all of S (or none).
    Batches,
    /// S split by columns; every group of starts is walked by all ranks in lock-step.
    Columns,
}

/// Why a run on many ranks stopped.
#[derive(Debug)]
pub enum Failed {
    /// Rank 0's error writing the file: the other ranks were stopped cleanly (they return
    /// `Ok`), the file keeps what was committed.
    Together(ComputeError),
    /// This rank's own error (its embeddings differ from rank 0's, its engine failed):
    /// the others may be waiting for it, so the caller must end the job with
    /// [`crate::abort`].
    Alone(String),
}

/// Worker → rank 0: a finished batch (or, empty, a request for the first one).
const TAG_DONE: i32 = 1;
/// Rank 0 → worker: the starts of the next batch (empty: no more).
const TAG_WORK: i32 = 2;

/// Fills the cache on every rank of `mpi`'s world. Rank 0 passes the writer (created or
/// resumed under the path's lock), the others `None`; every rank passes the same raw
/// embeddings, `threads` and `budget`. `progress` and `cancel` are read on rank 0 (a
/// cancelled run stops handing out batches, commits what is in flight, and returns).
/// Returns the file's state on rank 0, `None` on the others.
pub fn fill(
    mpi: &Mpi,
    writer: Option<&mut CacheWriter<'_>>,
    raw: Rows<'_>,
    threads: usize,
    budget: Budget,
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<(Mode, Option<CacheInfo>), Failed> {
    let world = mpi.world();
    let root = world.process_at_rank(0);
    let alone = |e: ComputeError| Failed::Alone(e.to_string());
    // Every rank must have read the same embeddings (a shared file system, or copies).
    let mut head = [0u8; 32 + 16 + 1];
    if let Some(w) = &writer {
        let info = w.info();
        head[..32].copy_from_slice(&info.hash);
        head[32..40].copy_from_slice(&(info.n as u64).to_le_bytes());
        head[40..48].copy_from_slice(&(info.d as u64).to_le_bytes());
        let n = info.n;
        let fits = |bytes: u64| budget.fits(bytes);
        let columns = mpi.size() > 1
            && !fits(Orderings::s_bytes(n))
            && fits(ColumnBlock::bytes(n, n.div_ceil(mpi.size() as usize)));
        head[48] = u8::from(columns);
    }
    root.broadcast_into(&mut head[..]);
    let hash = weft_compute::cache::hash(raw);
    if head[..32] != hash || head[32..48] != shape(raw) {
        return Err(Failed::Alone(format!(
            "the embeddings this rank read differ from rank 0's ({}×{} rows here, hash \
             differs or shape differs); every rank must read the same file",
            raw.n(),
            raw.d()
        )));
    }
    let mode = if head[48] == 1 {
        Mode::Columns
    } else {
        Mode::Batches
    };
    let e = normalize(raw).map_err(alone)?;
    let e = Rows::new(&e, raw.n(), raw.d()).map_err(alone)?;
    let info = match mode {
        Mode::Batches => batches(&world, writer, e, threads, budget, progress, cancel)?,
        Mode::Columns => columns(&world, writer, e, threads, progress, cancel)?,
    };
    Ok((mode, info))
}

fn shape(e: Rows<'_>) -> [u8; 16] {
    let mut s = [0u8; 16];
    s[..8].copy_from_slice(&(e.n() as u64).to_le_bytes());
    s[8..].copy_from_slice(&(e.d() as u64).to_le_bytes());
    s
}

/// The missing starts, from rank 0 to every rank.
fn missing_everywhere(world: &SimpleCommunicator, writer: Option<&CacheWriter<'_>>) -> Vec<usize> {
    let root = world.process_at_rank(0);
    let mut list: Vec<u64> = writer
        .map(|w| w.missing().into_iter().map(|s| s as u64).collect())
        .unwrap_or_default();
    let mut len = list.len() as u64;
    root.broadcast_into(&mut len);
    list.resize(len as usize, 0);
    if len > 0 {
        root.broadcast_into(&mut list[..]);
    }
    list.into_iter().map(|s| s as usize).collect()
}

/// Batches in order, handed out to whoever asks, until none is left, the run is
/// cancelled, or rank 0 failed.
struct Handout {
    batches: Vec<Vec<usize>>,
    next: usize,
}

impl Handout {
    fn take(&mut self, stop: &AtomicBool) -> Option<Vec<usize>> {
        if stop.load(Ordering::Relaxed) || self.next >= self.batches.len() {
            return None;
        }
        self.next += 1;
        Some(self.batches[self.next - 1].clone())
    }
}

/// A finished batch: its starts and their orderings (`None`: not computed).
type Done = (Vec<usize>, Vec<Option<Vec<u32>>>);

/// A finished batch on the wire: [k, k starts, then per start: 1 and its n ids, or 0 and
/// n zeros when it was not computed (cancelled)].
fn encode(starts: &[usize], seqs: &[Option<Vec<u32>>], n: usize) -> Vec<u32> {
    let mut m = Vec::with_capacity(1 + starts.len() * (n + 2));
    m.push(starts.len() as u32);
    m.extend(starts.iter().map(|&s| s as u32));
    for seq in seqs {
        match seq {
            Some(seq) => {
                m.push(1);
                m.extend_from_slice(seq);
            }
            None => {
                m.push(0);
                m.extend(std::iter::repeat_n(0, n));
            }
        }
    }
    m
}

fn decode(m: &[u32], n: usize) -> Option<Done> {
    let k = *m.first()? as usize;
    let starts: Vec<usize> = m.get(1..1 + k)?.iter().map(|&s| s as usize).collect();
    let body = m.get(1 + k..)?;
    if body.len() != k * (n + 1) {
        return None;
    }
    let seqs = body
        .chunks_exact(n + 1)
        .map(|c| (c[0] == 1).then(|| c[1..].to_vec()))
        .collect();
    Some((starts, seqs))
}

fn batches(
    world: &SimpleCommunicator,
    writer: Option<&mut CacheWriter<'_>>,
    e: Rows<'_>,
    threads: usize,
    budget: Budget,
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<Option<CacheInfo>, Failed> {
    let n = e.n();
    let missing = missing_everywhere(world, writer.as_deref());
    if missing.is_empty() {
        return Ok(writer.map(|w| w.info().clone()));
    }
    let built = Instant::now();
    let engine = Orderings::new(e, Some(threads), budget).map_err(|e| Failed::Alone(e.to_string()));
    let build = built.elapsed();
    let Some(writer) = writer else {
        // A worker: ask, compute, send back (which asks for the next), until told to stop.
        let engine = engine?;
        let root = world.process_at_rank(0);
        root.send_with_tag(&[0u32; 0][..], TAG_DONE);
        loop {
            let (starts, _) = root.receive_vec_with_tag::<u64>(TAG_WORK);
            if starts.is_empty() {
                root.reduce_into(&engine_figures(&engine)[..], SystemOperation::sum());
                return Ok(None);
            }
            let starts: Vec<usize> = starts.into_iter().map(|s| s as usize).collect();
            let seqs = engine
                .run_cancellable(&starts, cancel)
                .map_err(|e| Failed::Alone(e.to_string()))?;
            root.send_with_tag(&encode(&starts, &seqs, n)[..], TAG_DONE);
        }
    };
    let engine = engine?;
    let done0 = writer.info().done;
    let computing = Instant::now();
    let handout = Mutex::new(Handout {
        batches: missing.chunks(BATCH).map(<[usize]>::to_vec).collect(),
        next: 0,
    });
    // Set on cancel or on rank 0's failure: no more batches for anyone.
    let stop = AtomicBool::new(false);
    let stop_now = || stop.load(Ordering::Relaxed) || cancel.load(Ordering::Relaxed);
    let take = || {
        if stop_now() {
            stop.store(true, Ordering::Relaxed);
        }
        handout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(&stop)
    };
    let (tx, rx) = mpsc::channel::<Done>();
    let workers = world.size() as usize - 1;
    let mut failure: Option<ComputeError> = None;
    let mut commit = |(starts, seqs): Done, failure: &mut Option<ComputeError>| {
        if failure.is_some() {
            return;
        }
        match writer.commit(&starts, &seqs) {
            Ok(()) => progress(Progress {
                done: writer.info().done,
                total: writer.info().starts().len(),
            }),
            Err(e) => {
                *failure = Some(e);
                stop.store(true, Ordering::Relaxed);
            }
        }
    };
    std::thread::scope(|scope| {
        // The server: answers every worker's message with its next batch, passes finished
        // batches to this thread (the writer's), and ends once every worker was told to
        // stop. It polls: a blocking receive would spin a core in Open MPI.
        let (take, stop) = (&take, &stop);
        let server = scope.spawn(move || {
            let world = SimpleCommunicator::world();
            let mut stopped = 0;
            while stopped < workers {
                let Some(probed) = world
                    .any_process()
                    .immediate_matched_probe_with_tag(TAG_DONE)
                else {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                };
                let (m, status) = probed.matched_receive_vec::<u32>();
                if !m.is_empty() {
                    match decode(&m, n) {
                        Some(done) => {
                            let _ = tx.send(done);
                        }
                        None => crate::abort(
                            1,
                            &format!(
                                "internal: rank {} sent a malformed batch ({} words)",
                                status.source_rank(),
                                m.len()
                            ),
                        ),
                    }
                }
                let next: Vec<u64> = take()
                    .map(|b| b.into_iter().map(|s| s as u64).collect())
                    .unwrap_or_default();
                if next.is_empty() {
                    stopped += 1;
                }
                world
                    .process_at_rank(status.source_rank())
                    .send_with_tag(&next[..], TAG_WORK);
            }
            drop(tx);
        });
        // Rank 0's own share, committing the workers' batches in between.
        while let Some(starts) = take() {
            while let Ok(done) = rx.try_recv() {
                commit(done, &mut failure);
            }
            match engine.run_cancellable(&starts, cancel) {
                Ok(seqs) => commit((starts, seqs), &mut failure),
                Err(e) => {
                    failure = Some(e);
                    stop.store(true, Ordering::Relaxed);
                }
            }
        }
        for done in rx {
            commit(done, &mut failure);
        }
        let _ = server.join();
    });
    // Every worker was told to stop, so every worker is in this reduction, failure or not.
    let mut total = [0u64; 3];
    world.process_at_rank(0).reduce_into_root(
        &engine_figures(&engine)[..],
        &mut total[..],
        SystemOperation::sum(),
    );
    writer.record_run(RunStats {
        orderings: writer.info().done - done0,
        build,
        compute: computing.elapsed(),
        s_bytes_read: total[0],
        in_memory: engine.in_memory(),
        followed: total[1],
        picks_saved: total[2],
    });
    if let Some(f) = failure {
        return Err(Failed::Together(f));
    }
    writer.finish().map(Some).map_err(Failed::Together)
}

/// What one rank's engine measured, summed over the ranks at the end of a batches run:
/// bytes of S read, orderings that took an earlier one's rest, the picks they saved. The
/// summary's rate divides the sum by rank 0's time for the whole run, commits included.
fn engine_figures(engine: &Orderings<'_>) -> [u64; 3] {
    let (followed, picks_saved) = engine.followed();
    [engine.s_bytes_read(), followed, picks_saved]
}

/// Orderings the ranks walk together over column blocks: one collective per step serves
/// all of them, so many orderings per walk divide its latency (at N = 10⁶ on many nodes,
/// latency, not arithmetic, would bound walks of 32); a proposal is 16 bytes.
const WALK: usize = 8 * BATCH;

/// A step's proposal on the wire: (score, item as f64, exact below 2⁵³).
#[derive(Clone, Copy, Default)]
#[repr(C)]
struct Proposal {
    score: f64,
    item: f64,
}

// SAFETY: `Proposal` is two f64 in C layout, exactly MPI's contiguous type of 2 doubles.
unsafe impl Equivalence for Proposal {
    type Out = UserDatatype;
    fn equivalent_datatype() -> Self::Out {
        UserDatatype::contiguous(2, &f64::equivalent_datatype())
    }
}

/// The smaller proposal by score, then item: the rule's order.
fn least(a: Proposal, b: Proposal) -> Proposal {
    if a.score < b.score || (a.score == b.score && a.item < b.item) {
        a
    } else {
        b
    }
}

fn columns(
    world: &SimpleCommunicator,
    mut writer: Option<&mut CacheWriter<'_>>,
    e: Rows<'_>,
    threads: usize,
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<Option<CacheInfo>, Failed> {
    let missing = missing_everywhere(world, writer.as_deref());
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    let built = Instant::now();
    let block = ColumnBlock::new(e, ColumnBlock::owned(e.n(), rank, size), threads)
        .map_err(|e| Failed::Alone(e.to_string()))?;
    let build = built.elapsed();
    let done0 = writer.as_deref().map_or(0, |w| w.info().done);
    let computing = Instant::now();
    let mut bytes_read = 0u64;
    // MPI_MINLOC over (score, item) pairs, which rsmpi does not name: a user operation on
    // whole pairs (MPI never splits an element of a datatype between calls).
    let min = UserOperation::commutative(|x: DynBuffer, mut y: DynBufferMut| {
        let len = x.len().min(y.len());
        // SAFETY: this operation is used only below, with buffers of `Proposal`, whose
        // datatype is MPI's; `len` elements of it are valid in both buffers.
        let (x, y) = unsafe {
            (
                std::slice::from_raw_parts(x.as_ptr().cast::<Proposal>(), len),
                std::slice::from_raw_parts_mut(y.as_mut_ptr().cast::<Proposal>(), len),
            )
        };
        for (a, b) in x.iter().zip(y.iter_mut()) {
            *b = least(*a, *b);
        }
    });
    let root = world.process_at_rank(0);
    let mut failure = None;
    for starts in missing.chunks(WALK) {
        // Rank 0 says whether to go on (not cancelled, no failure), for everyone at once.
        let mut go = u8::from(failure.is_none() && !cancel.load(Ordering::Relaxed));
        root.broadcast_into(&mut go);
        if go == 0 {
            break;
        }
        let mut walks: ColumnWalks = block.walks(starts);
        let mut all = vec![Proposal::default(); starts.len()];
        while !walks.finished() {
            let mine: Vec<Proposal> = walks
                .propose()
                .into_iter()
                .map(|(score, item)| Proposal {
                    score,
                    item: f64::from(item),
                })
                .collect();
            world.all_reduce_into(&mine[..], &mut all[..], &min);
            let picks: Vec<u32> = all.iter().map(|p| p.item as u32).collect();
            walks.take(&picks);
        }
        bytes_read += walks.bytes_read();
        if let Some(w) = writer.as_deref_mut() {
            let seqs: Vec<Option<Vec<u32>>> =
                walks.into_orderings().into_iter().map(Some).collect();
            // Committed in the file's batches, each synced before its bits are set.
            for (starts, seqs) in starts.chunks(BATCH).zip(seqs.chunks(BATCH)) {
                if let Err(e) = w.commit(starts, seqs) {
                    failure = Some(e);
                    break;
                }
            }
            progress(Progress {
                done: w.info().done,
                total: w.info().starts().len(),
            });
        }
    }
    // Rank 0's broadcast ended the loop at the same group on every rank, so every rank is
    // in this reduction: the bytes of S all blocks read, for the summary.
    let mut total = 0u64;
    if let Some(w) = writer.as_deref_mut() {
        root.reduce_into_root(&bytes_read, &mut total, SystemOperation::sum());
        w.record_run(RunStats {
            orderings: w.info().done - done0,
            build,
            compute: computing.elapsed(),
            s_bytes_read: total,
            in_memory: true,
            followed: 0,
            picks_saved: 0,
        });
    } else {
        root.reduce_into(&bytes_read, SystemOperation::sum());
    }
    match (failure, writer) {
        (Some(f), _) => Err(Failed::Together(f)),
        (None, Some(w)) => w.finish().map(Some).map_err(Failed::Together),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_travel_whole() {
        let n = 5;
        let seqs = vec![Some(vec![3, 0, 1, 2, 4]), None, Some(vec![4, 3, 2, 1, 0])];
        let m = encode(&[3, 1, 4], &seqs, n);
        assert_eq!(decode(&m, n), Some((vec![3, 1, 4], seqs)));
        assert_eq!(decode(&m[..m.len() - 1], n), None);
        assert_eq!(decode(&[], n), None);
    }

    #[test]
    fn least_is_the_rules_order() {
        let p = |score, item| Proposal { score, item };
        assert_eq!(least(p(0.5, 9.0), p(0.7, 1.0)).item, 9.0);
        assert_eq!(least(p(0.5, 9.0), p(0.5, 2.0)).item, 2.0);
        assert_eq!(least(p(f64::INFINITY, 4e9), p(3.0, 7.0)).item, 7.0);
    }
}
