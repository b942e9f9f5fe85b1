//! The diversity cache file: every ordering of a set of embeddings, resumable, with a
//! completion bitmap written only after the orderings it covers are synced to disk. The byte
//! layout is in docs/cache-format.md; the final file does not depend on how often a run was
//! interrupted and resumed.

use crate::budget::Budget;
use crate::diversity::Orderings;
use crate::error::ComputeError;
use crate::normalize::normalize;
use crate::rows::Rows;
use crate::threads;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use weft_core::files::StagedFile;

mod merge;
mod shard;
mod stats;
pub use merge::merge;
pub use shard::Shard;
pub use stats::RunStats;

/// The 8 bytes a cache file starts with.
pub const MAGIC: &[u8; 8] = b"WEFTDIVC";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;
/// Bytes before the first record.
pub const HEADER_LEN: u64 = 128;
/// Orderings computed and committed (synced, then marked) together.
pub const BATCH: usize = 32;

/// What a cache's header and bitmap say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheInfo {
    /// Items (and orderings).
    pub n: usize,
    /// Embedding width.
    pub d: usize,
    /// Bytes per id: 2 when n ≤ 65,535, else 4.
    pub id_width: usize,
    /// Orderings complete on disk.
    pub done: usize,
    /// Whether every ordering the file is for is: all n, or all of its shard's starts.
    pub complete: bool,
    /// SHA-256 of the raw embeddings (see docs/cache-format.md).
    pub hash: [u8; 32],
    /// `Some` for a part file that holds only one shard's starts (`--shard K/M`).
    pub shard: Option<Shard>,
}

impl CacheInfo {
    /// The hash as 64 lowercase hex digits.
    pub fn hash_hex(&self) -> String {
        self.hash.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The starts this file is for: all n, or its shard's.
    pub fn starts(&self) -> std::ops::Range<usize> {
        self.shard.map_or(0..self.n, |s| s.starts(self.n))
    }
}

/// Progress of [`CacheWriter::run`], passed to its callback after every committed batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Orderings complete on disk.
    pub done: usize,
    /// n.
    pub total: usize,
}

/// Computes orderings for [`CacheWriter::run_with`]: the CPU engine ([`Orderings`]) or another
/// (weft-gpu's), which must give exactly the CPU engine's orderings.
pub trait Producer {
    /// The producer's error; a cache's own failures (I/O, a replaced file) convert into it.
    type Error: From<ComputeError>;

    /// Orderings computed and committed together: a batch is written, synced and marked
    /// complete before the next begins, so an interrupted run loses at most one batch.
    fn batch(&self) -> usize;

    /// The full orderings from `starts` (valid, distinct); an entry is `None` when `cancel`
    /// was set before it finished.
    fn run_cancellable(
        &self,
        starts: &[usize],
        cancel: &AtomicBool,
    ) -> Result<Vec<Option<Vec<u32>>>, Self::Error>;

    /// Bytes of a copy of S the orderings run so far read, for the run's summary; `None`
    /// when the producer holds no S (or does not count).
    fn s_bytes_read(&self) -> Option<u64> {
        None
    }
}

impl Producer for Orderings<'_> {
    type Error = ComputeError;

    fn batch(&self) -> usize {
        self.batch(self.rows().n())
    }

    fn run_cancellable(
        &self,
        starts: &[usize],
        cancel: &AtomicBool,
    ) -> Result<Vec<Option<Vec<u32>>>, ComputeError> {
        Orderings::run_cancellable(self, starts, cancel)
    }
}

/// A cache file opened for reading.
///
/// Writing every ordering with [`CacheWriter`] and reading one back:
///
/// ```
/// use std::sync::atomic::AtomicBool;
/// use weft_compute::{diversity, normalize, Budget, Cache, CacheWriter, Rows};
///
/// let raw = [1.0f32, 0.0, 0.0, 1.0, -1.0, 0.0, 0.6, 0.8]; // four items, d = 2
/// let emb = Rows::new(&raw, 4, 2)?;
/// let path = std::env::temp_dir().join(format!("weft-doc-{}.cache", std::process::id()));
/// let mut writer = CacheWriter::create(&path, emb, false)?;
/// let info = writer.run(None, &mut |_progress| {}, &AtomicBool::new(false))?;
/// assert!(info.complete && info.done == 4);
/// drop(writer); // releases the path's write lock
///
/// let cache = Cache::open(&path)?;
/// assert_eq!(cache.info().n, 4);
/// let e = normalize(emb)?;
/// let from_2 = diversity(Rows::new(&e, 4, 2)?, None, 2, None, Budget::default())?;
/// assert_eq!(cache.get(2)?, from_2);
/// // an existing file is never replaced without `force`
/// assert!(CacheWriter::create(&path, emb, false).is_err());
/// # drop(cache);
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Cache {
    file: File,
    path: PathBuf,
    info: CacheInfo,
    bitmap: Vec<u8>,
}

impl Cache {
    /// Opens and validates a cache file (magic, version, size).
    pub fn open(path: impl AsRef<Path>) -> Result<Cache, ComputeError> {
        let path = path.as_ref().to_path_buf();
        // Non-blocking, so that opening a FIFO returns and `read_layout` refuses it by type
        // instead of waiting for a writer forever; reads of a regular file ignore the flag.
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| ComputeError::io(&path, e))?;
        let (info, bitmap) = read_layout(&file, &path)?;
        Ok(Cache {
            file,
            path,
            info,
            bitmap,
        })
    }

    /// n, done, complete, id width and hash.
    pub fn info(&self) -> &CacheInfo {
        &self.info
    }

    /// Whether the ordering from `start` (0-based) is complete in the file.
    pub fn is_done(&self, start: usize) -> bool {
        start < self.info.n && bit(&self.bitmap, start)
    }

    /// The ordering from `start` (0-based ids); an error if `start` is out of range or its
    /// ordering is not complete in the file.
    pub fn get(&self, start: usize) -> Result<Vec<u32>, ComputeError> {
        let n = self.info.n;
        if start >= n {
            return Err(ComputeError::StartOutOfRange { start, n });
        }
        if !bit(&self.bitmap, start) {
            return Err(ComputeError::CacheMissing {
                path: self.path.clone(),
                start,
            });
        }
        let w = self.info.id_width;
        let mut buf = vec![0u8; n * w];
        self.file
            .read_exact_at(&mut buf, record_offset(n, w, start))
            .map_err(|e| ComputeError::io(&self.path, e))?;
        let ids = decode_ids(&buf, w);
        check_ordering(&ids, start).map_err(|reason| ComputeError::CacheDamaged {
            path: self.path.clone(),
            start,
            reason,
        })?;
        Ok(ids)
    }
}

/// Checks that a record marked complete is an ordering from `start`: it begins with the
/// start and holds every id in 0..n exactly once (O(n), next to reading n ids). The reason
/// names the first position that breaks it.
fn check_ordering(ids: &[u32], start: usize) -> Result<(), String> {
    let n = ids.len();
    if ids.first().map(|&i| i as usize) != Some(start) {
        return Err(format!(
            "position 0 holds id {}, expected the start {start}",
            ids.first().copied().unwrap_or_default()
        ));
    }
    let mut seen = vec![false; n];
    for (pos, &id) in ids.iter().enumerate() {
        let Some(slot) = seen.get_mut(id as usize) else {
            return Err(format!("position {pos} holds id {id}, out of range 0..{n}"));
        };
        if *slot {
            return Err(format!(
                "position {pos} holds id {id}, which an earlier position holds too"
            ));
        }
        *slot = true;
    }
    Ok(())
}

/// The write lock of a cache path: `flock` on a hidden `.NAME.weft-lock` file beside the
/// cache (after symbolic links), holding the holder's pid. It locks the path, not the
/// cache's inode, so a `force` run that replaces the file is refused too. The lock file is
/// removed when the lock is released; a killed holder's stale file is taken over.
struct CacheLock {
    file: File,
    lock_path: PathBuf,
}

impl CacheLock {
    /// Takes the lock for the cache at `end` (reported as `path`), or says who holds it.
    fn acquire(end: &Path, path: &Path) -> Result<CacheLock, ComputeError> {
        let name = end
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let lock_path = end.with_file_name(format!(".{name}.weft-lock"));
        let io = |e| ComputeError::io(path, e);
        // A holder removes the file while still holding the lock: whoever locked the old
        // inode then sees that the path names another file, and tries again.
        for _ in 0..100 {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&lock_path)
                .map_err(io)?;
            // SAFETY: flock on a descriptor this function owns; no memory is passed.
            let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if locked != 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::WouldBlock {
                    return Err(io(e));
                }
                let holder = std::fs::read_to_string(&lock_path)
                    .ok()
                    .and_then(|s| s.trim().parse().ok());
                return Err(ComputeError::CacheBusy {
                    path: path.to_path_buf(),
                    holder,
                });
            }
            let same = weft_file_id(&file) == std::fs::metadata(&lock_path).ok().map(|m| id(&m));
            if !same {
                continue;
            }
            file.set_len(0).map_err(io)?;
            file.write_all(format!("{}\n", std::process::id()).as_bytes())
                .map_err(io)?;
            return Ok(CacheLock { file, lock_path });
        }
        Err(io(std::io::Error::other(
            "its lock file keeps being replaced",
        )))
    }
}

impl Drop for CacheLock {
    fn drop(&mut self) {
        // Removed while still locked (see `acquire`); the lock goes with the descriptor.
        let _ = std::fs::remove_file(&self.lock_path);
        let _ = &self.file;
    }
}

fn id(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

fn weft_file_id(f: &File) -> Option<(u64, u64)> {
    f.metadata().ok().map(|m| id(&m))
}

/// `path` after symbolic links (to the file to create when they dangle), refusing a path
/// that is not a regular file: a cache is read and written at random offsets.
fn cache_path(path: &Path) -> Result<PathBuf, ComputeError> {
    let refuse = |reason: &str| ComputeError::CacheRefused {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let end = weft_core::files::final_path(path).map_err(|e| ComputeError::io(path, e))?;
    match std::fs::metadata(&end) {
        Ok(m) if m.is_dir() => Err(refuse("is a directory; name a cache file")),
        Ok(m) if !m.is_file() => Err(refuse(
            "is not a regular file (a device, FIFO or socket); a cache must be a regular file",
        )),
        _ => Ok(end),
    }
}

/// A cache file being filled. It holds the cache path's write lock from creation (or
/// resumption) until it is dropped, so a second writer of the same path is refused with
/// [`ComputeError::CacheBusy`].
pub struct CacheWriter<'a> {
    file: File,
    path: PathBuf,
    /// `path` after symbolic links: the name the file must still have when the run ends.
    end: PathBuf,
    info: CacheInfo,
    bitmap: Vec<u8>,
    normalised: Vec<f32>,
    raw: Rows<'a>,
    budget: Budget,
    /// What the last [`run`](Self::run) that computed orderings measured.
    last_run: Option<RunStats>,
    /// Dropped last: the file is closed before the lock is released.
    _lock: CacheLock,
}

impl<'a> CacheWriter<'a> {
    /// Creates a new cache for the raw embeddings `emb` (normalised here). An existing file
    /// is an error unless `force`, which replaces it (a regular file only: a directory,
    /// device or FIFO is refused). A symbolic link is followed and its target written. The
    /// file is laid out under a hidden name and then linked into place — without `force`
    /// with `link`, which fails if a file appeared at the path meanwhile, so two creators
    /// can never both succeed — all under the path's write lock.
    pub fn create(
        path: impl AsRef<Path>,
        emb: Rows<'a>,
        force: bool,
    ) -> Result<Self, ComputeError> {
        Self::create_part(path, emb, force, None)
    }

    /// [`create`](Self::create) for a part file that holds only the starts of `shard`
    /// (`None`: a full cache). The shard count must be at most N.
    pub fn create_part(
        path: impl AsRef<Path>,
        emb: Rows<'a>,
        force: bool,
        shard: Option<Shard>,
    ) -> Result<Self, ComputeError> {
        let path = path.as_ref().to_path_buf();
        if let Some(Err(reason)) = shard.map(|s| s.check(emb.n())) {
            return Err(ComputeError::CacheRefused { path, reason });
        }
        let end = cache_path(&path)?;
        let lock = CacheLock::acquire(&end, &path)?;
        let normalised = prepare(emb)?;
        let refuse_existing = || {
            let reason = match File::open(&end)
                .ok()
                .and_then(|f| read_layout(&f, &end).ok())
            {
                Some((i, _)) if i.complete => {
                    "is a finished cache; refusing to overwrite it (force to replace)".to_string()
                }
                Some((i, _)) => format!(
                    "is an unfinished cache ({} of {}); resume it or force to replace",
                    i.done,
                    crate::count(i.n, "ordering")
                ),
                None => "already exists and is not a weft cache; refusing to overwrite it".into(),
            };
            ComputeError::CacheRefused {
                path: path.clone(),
                reason,
            }
        };
        if !force && std::fs::symlink_metadata(&end).is_ok() {
            return Err(refuse_existing());
        }
        let (n, d) = (emb.n(), emb.d());
        let info = CacheInfo {
            n,
            d,
            id_width: if n <= 65_535 { 2 } else { 4 },
            done: 0,
            complete: false,
            hash: hash(emb),
            shard,
        };
        // Laid out under a hidden name and put in place in one step (weft-core's one
        // routine for this), so a run killed while creating the file never leaves
        // something at `path` that is not a cache.
        let io = |e| ComputeError::io(&path, e);
        let mut staged = StagedFile::create(&end).map_err(io)?;
        let file = staged.file();
        file.set_len(file_len(n, info.id_width)).map_err(io)?;
        file.write_all_at(&header(&info), 0).map_err(io)?;
        let placed = if force {
            staged.persist()
        } else {
            // link(2) never replaces: it fails if the name exists.
            staged.persist_new()
        };
        let file = placed.map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                refuse_existing()
            } else {
                io(e)
            }
        })?;
        Ok(CacheWriter {
            file,
            path,
            end,
            bitmap: vec![0; n.div_ceil(8)],
            info,
            normalised,
            raw: emb,
            budget: Budget::default(),
            last_run: None,
            _lock: lock,
        })
    }

    /// Reopens an unfinished (or finished) cache to fill in what is missing, under the
    /// path's write lock. Refuses a file that is not a cache, has another format version or
    /// size, or was written for other embeddings.
    pub fn resume(path: impl AsRef<Path>, emb: Rows<'a>) -> Result<Self, ComputeError> {
        Self::resume_part(path, emb, None)
    }

    /// [`resume`](Self::resume) of a part file: `shard` must be the shard the file was
    /// created for (`None`: the file must be a full cache), or the file is refused.
    pub fn resume_part(
        path: impl AsRef<Path>,
        emb: Rows<'a>,
        shard: Option<Shard>,
    ) -> Result<Self, ComputeError> {
        let path = path.as_ref().to_path_buf();
        let end = cache_path(&path)?;
        let lock = CacheLock::acquire(&end, &path)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&end)
            .map_err(|e| ComputeError::io(&path, e))?;
        let (info, bitmap) = read_layout(&file, &path)?;
        let refuse = |reason: String| ComputeError::CacheRefused {
            path: path.clone(),
            reason,
        };
        if info.shard != shard {
            return Err(refuse(shard_mismatch(info.shard, shard)));
        }
        if (info.n, info.d) != (emb.n(), emb.d()) {
            return Err(refuse(format!(
                "the cache is for {}×{} embeddings, these are {}×{}",
                info.n,
                info.d,
                emb.n(),
                emb.d()
            )));
        }
        let normalised = prepare(emb)?;
        if hash(emb) != info.hash {
            return Err(refuse(
                "the cache was written for other embeddings (hash differs)".into(),
            ));
        }
        Ok(CacheWriter {
            file,
            path,
            end,
            info,
            bitmap,
            normalised,
            raw: emb,
            budget: Budget::default(),
            last_run: None,
            _lock: lock,
        })
    }

    /// Fails with [`ComputeError::CacheBusy`] when another writer holds `path`'s write lock
    /// now (a quick check before the work; creating or resuming takes the lock for real).
    pub fn check_not_busy(path: impl AsRef<Path>) -> Result<(), ComputeError> {
        let path = path.as_ref();
        let end = weft_core::files::final_path(path).map_err(|e| ComputeError::io(path, e))?;
        match CacheLock::acquire(&end, path) {
            Err(e @ ComputeError::CacheBusy { .. }) => Err(e),
            _ => Ok(()),
        }
    }

    /// Fails unless the file this writer fills is still the file at its path: a run whose
    /// file was replaced or removed meanwhile (by something that ignores the lock) must not
    /// report the cache complete.
    fn check_still_in_place(&self) -> Result<(), ComputeError> {
        let here = std::fs::metadata(&self.end).ok().map(|m| id(&m));
        if here.is_some() && here == weft_file_id(&self.file) {
            return Ok(());
        }
        Err(ComputeError::CacheReplaced {
            path: self.path.clone(),
        })
    }

    /// Sets the memory budget for the compact copy of S (default: half of physical memory).
    pub fn budget(mut self, budget: Budget) -> Self {
        self.budget = budget;
        self
    }

    /// The state of the file.
    pub fn info(&self) -> &CacheInfo {
        &self.info
    }

    /// Computes the missing orderings in batches, each written, synced and only then marked
    /// complete; `progress` is called after each batch. Stops early (between orderings) once
    /// `cancel` is set; what was committed stays. Returns the state reached.
    pub fn run(
        &mut self,
        threads: Option<usize>,
        progress: &mut dyn FnMut(Progress),
        cancel: &AtomicBool,
    ) -> Result<CacheInfo, ComputeError> {
        let t = threads::resolve(threads)?;
        let missing = self.missing();
        if missing.is_empty() || cancel.load(Ordering::Relaxed) {
            self.check_still_in_place()?;
            return Ok(self.info.clone());
        }
        let normalised = std::mem::take(&mut self.normalised);
        let result = self.fill(&normalised, &missing, t, progress, cancel);
        self.normalised = normalised;
        result?;
        self.check_still_in_place()?;
        Ok(self.info.clone())
    }

    fn fill(
        &mut self,
        normalised: &[f32],
        missing: &[usize],
        threads: usize,
        progress: &mut dyn FnMut(Progress),
        cancel: &AtomicBool,
    ) -> Result<(), ComputeError> {
        let rows = Rows::new(normalised, self.info.n, self.info.d)?;
        let t0 = Instant::now();
        let engine = Orderings::new(rows, Some(threads), self.budget)?;
        let build = t0.elapsed();
        let done0 = self.info.done;
        // Recorded even when the run stops early: what it did compute was measured.
        let result = self.fill_with(&engine, missing, progress, cancel);
        let (followed, picks_saved) = engine.followed();
        self.last_run = Some(RunStats {
            orderings: self.info.done - done0,
            build,
            compute: result.as_ref().map_or(Duration::ZERO, |t| *t),
            s_bytes_read: engine.s_bytes_read(),
            in_memory: engine.in_memory(),
            followed,
            picks_saved,
        });
        result.map(|_| ())
    }

    /// What the last run that computed orderings measured: a [`run`](Self::run) on the CPU,
    /// or a [`run_with`](Self::run_with) whose producer holds S (the GPU's; `None` before
    /// either, and after a producer that reports no reads of S).
    pub fn last_run(&self) -> Option<&RunStats> {
        self.last_run.as_ref()
    }

    /// Records what a run of CPU engines outside [`run`](Self::run) measured (the MPI ranks
    /// together: `weft_mpi::cache`), for [`last_run`](Self::last_run).
    pub fn record_run(&mut self, stats: RunStats) {
        self.last_run = Some(stats);
    }

    /// [`run`](Self::run) with another producer of the orderings (the GPU): `make` builds it
    /// from the normalised rows, and is called only when some ordering is missing. The
    /// producer must give the CPU engine's orderings exactly (the file does not say who
    /// wrote a record), so a cache it started can be resumed on the CPU and the reverse.
    pub fn run_with<P: Producer>(
        &mut self,
        make: impl FnOnce(Rows<'_>) -> Result<P, P::Error>,
        progress: &mut dyn FnMut(Progress),
        cancel: &AtomicBool,
    ) -> Result<CacheInfo, P::Error> {
        let missing: Vec<usize> = self
            .info
            .starts()
            .filter(|&s| !bit(&self.bitmap, s))
            .collect();
        if !missing.is_empty() && !cancel.load(Ordering::Relaxed) {
            let normalised = std::mem::take(&mut self.normalised);
            let done0 = self.info.done;
            let result = Rows::new(&normalised, self.info.n, self.info.d)
                .map_err(P::Error::from)
                .and_then(|rows| {
                    let t0 = Instant::now();
                    make(rows).map(|p| (p, t0.elapsed()))
                })
                .and_then(|(p, build)| {
                    let compute = self.fill_with(&p, &missing, progress, cancel)?;
                    // A producer that holds S says what it read, for the summary.
                    Ok(p.s_bytes_read().map(|s_bytes_read| RunStats {
                        orderings: self.info.done - done0,
                        build,
                        compute,
                        s_bytes_read,
                        in_memory: true,
                        followed: 0,
                        picks_saved: 0,
                    }))
                });
            self.normalised = normalised;
            if let Some(stats) = result? {
                self.last_run = Some(stats);
            }
        }
        self.check_still_in_place()?;
        Ok(self.info.clone())
    }

    /// Runs `missing` through `producer` in its batches, committing each. Returns the time
    /// spent in the producer (the commits' writes and syncs not counted).
    fn fill_with<P: Producer>(
        &mut self,
        producer: &P,
        missing: &[usize],
        progress: &mut dyn FnMut(Progress),
        cancel: &AtomicBool,
    ) -> Result<Duration, P::Error> {
        let n = self.info.n;
        let mut computing = Duration::ZERO;
        for batch in missing.chunks(producer.batch().max(1)) {
            if cancel.load(Ordering::Relaxed) {
                break;
            }
            let t0 = Instant::now();
            let seqs = producer.run_cancellable(batch, cancel)?;
            computing += t0.elapsed();
            // Checked (each an ordering from its start): the producer may be the GPU.
            self.commit(batch, &seqs)?;
            progress(Progress {
                done: self.info.done,
                total: n,
            });
        }
        Ok(computing)
    }

    /// Writes the finished orderings of a batch, syncs them, then sets and syncs their bits.
    fn commit_batch(
        &mut self,
        batch: &[usize],
        seqs: &[Option<Vec<u32>>],
    ) -> Result<(), ComputeError> {
        let (n, w) = (self.info.n, self.info.id_width);
        let io = |e| ComputeError::io(&self.path, e);
        let mut wrote = Vec::new();
        for (&s, seq) in batch.iter().zip(seqs) {
            if let Some(seq) = seq {
                self.file
                    .write_all_at(&encode_ids(seq, w), record_offset(n, w, s))
                    .map_err(io)?;
                wrote.push(s);
            }
        }
        if wrote.is_empty() {
            return Ok(());
        }
        self.file.sync_data().map_err(io)?;
        for &s in &wrote {
            self.bitmap[s / 8] |= 1 << (s % 8);
        }
        let (lo, hi) = (wrote[0] / 8, wrote[wrote.len() - 1] / 8 + 1);
        self.file
            .write_all_at(&self.bitmap[lo..hi], bitmap_offset(n, w) + lo as u64)
            .map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.info.done += wrote.len();
        self.info.complete = self.info.done == self.info.starts().len();
        Ok(())
    }

    /// The raw embeddings this cache is for.
    pub fn embeddings(&self) -> Rows<'a> {
        self.raw
    }

    /// The normalised embeddings the orderings are computed from (for drivers that compute
    /// them elsewhere, such as the MPI one, and [`commit`](Self::commit) them here).
    pub fn normalised(&self) -> Rows<'_> {
        Rows::new(&self.normalised, self.info.n, self.info.d).expect("checked when opened")
    }

    /// The memory budget set with [`budget`](Self::budget).
    pub fn budget_value(&self) -> Budget {
        self.budget
    }

    /// The starts of this file whose orderings are not complete yet, in order.
    pub fn missing(&self) -> Vec<usize> {
        self.info
            .starts()
            .filter(|&s| !bit(&self.bitmap, s))
            .collect()
    }

    /// Commits orderings computed elsewhere, with the rule of [`run`](Self::run): the
    /// records of `batch` (those whose `seqs` entry is `Some`) are written and synced, and
    /// only then their bits set and synced. Each must be an ordering from its start, of
    /// this file's starts (refused otherwise: nothing of the batch is written).
    pub fn commit(
        &mut self,
        batch: &[usize],
        seqs: &[Option<Vec<u32>>],
    ) -> Result<(), ComputeError> {
        let n = self.info.n;
        let starts = self.info.starts();
        if batch.len() != seqs.len() {
            return Err(ComputeError::io(
                &self.path,
                std::io::Error::other("internal: a batch and its orderings differ in length"),
            ));
        }
        for (&s, seq) in batch.iter().zip(seqs) {
            let bad = |reason: String| ComputeError::CacheDamaged {
                path: self.path.clone(),
                start: s,
                reason: format!("a computed ordering was refused: {reason}"),
            };
            if !starts.contains(&s) {
                return Err(bad(format!("start {s} is not among {starts:?}")));
            }
            if let Some(seq) = seq {
                if seq.len() != n {
                    return Err(bad(format!("{} ids, expected {n}", seq.len())));
                }
                check_ordering(seq, s).map_err(bad)?;
            }
        }
        self.commit_batch(batch, seqs)
    }

    /// The state reached, once the work is over: fails unless the file filled is still
    /// the file at the path (as [`run`](Self::run) does at its end).
    pub fn finish(&self) -> Result<CacheInfo, ComputeError> {
        self.check_still_in_place()?;
        Ok(self.info.clone())
    }
}

/// Why a file of one shard (or none) is not resumed as another.
fn shard_mismatch(file: Option<Shard>, asked: Option<Shard>) -> String {
    match (file, asked) {
        (Some(f), Some(a)) => format!(
            "the file is the part for shard {f}, not {a}; resume it with --shard {f}, or \
             name another file for shard {a}"
        ),
        (Some(f), None) => format!(
            "the file is the part for shard {f}, not a full cache; resume it with --shard {f}"
        ),
        (None, Some(a)) => {
            format!("the file is a full cache, not a part for shard {a}; resume it without --shard")
        }
        (None, None) => "internal: no shard mismatch".into(),
    }
}

/// Validates and normalises the raw embeddings.
fn prepare(emb: Rows<'_>) -> Result<Vec<f32>, ComputeError> {
    crate::diversity::check(emb, &[])?;
    normalize(emb)
}

/// SHA-256 of n and d (u64 little-endian) followed by the raw f32 values (little-endian).
pub fn hash(emb: Rows<'_>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((emb.n() as u64).to_le_bytes());
    h.update((emb.d() as u64).to_le_bytes());
    let mut buf = Vec::with_capacity(4096);
    for chunk in emb.data().chunks(1024) {
        buf.clear();
        buf.extend(chunk.iter().flat_map(|x| x.to_le_bytes()));
        h.update(&buf);
    }
    h.finalize().into()
}

fn record_offset(n: usize, w: usize, start: usize) -> u64 {
    HEADER_LEN + (start as u64) * (n as u64) * (w as u64)
}

fn bitmap_offset(n: usize, w: usize) -> u64 {
    record_offset(n, w, n)
}

fn file_len(n: usize, w: usize) -> u64 {
    bitmap_offset(n, w) + n.div_ceil(8) as u64
}

fn bit(bitmap: &[u8], s: usize) -> bool {
    bitmap[s / 8] & (1 << (s % 8)) != 0
}

fn header(info: &CacheInfo) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[0..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&(info.id_width as u32).to_le_bytes());
    h[16..24].copy_from_slice(&(info.n as u64).to_le_bytes());
    h[24..32].copy_from_slice(&(info.d as u64).to_le_bytes());
    h[32..64].copy_from_slice(&info.hash);
    h[64..72].copy_from_slice(&HEADER_LEN.to_le_bytes());
    h[72..80].copy_from_slice(&bitmap_offset(info.n, info.id_width).to_le_bytes());
    // A part says which shard it holds (a full cache leaves these zero, as in every
    // earlier file; readers that predate shards refuse a part for its non-zero bytes).
    if let Some(s) = info.shard {
        h[80..88].copy_from_slice(&(s.count() as u64).to_le_bytes());
        h[88..96].copy_from_slice(&(s.index() as u64).to_le_bytes());
    }
    h
}

/// Reads and checks the header, the file size and the bitmap. Each refusal names the
/// field that is wrong and the value it should have.
fn read_layout(file: &File, path: &Path) -> Result<(CacheInfo, Vec<u8>), ComputeError> {
    let bad = |reason: String| ComputeError::CacheFormat {
        path: path.to_path_buf(),
        reason,
    };
    let meta = file.metadata().map_err(|e| ComputeError::io(path, e))?;
    if meta.is_dir() {
        return Err(bad("is a directory, not a cache file".into()));
    }
    if !meta.is_file() {
        return Err(bad("is not a regular file, so not a cache file".into()));
    }
    let len = meta.len();
    let mut h = [0u8; HEADER_LEN as usize];
    if len < HEADER_LEN || file.read_exact_at(&mut h, 0).is_err() {
        return Err(bad(format!(
            "not a weft diversity cache ({len} bytes, shorter than the {HEADER_LEN}-byte header)"
        )));
    }
    if &h[0..8] != MAGIC {
        return Err(bad("not a weft diversity cache (bad magic)".into()));
    }
    let u32_at = |o: usize| u32::from_le_bytes(h[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |o: usize| u64::from_le_bytes(h[o..o + 8].try_into().expect("8 bytes"));
    let version = u32_at(8);
    if version != VERSION {
        return Err(bad(format!(
            "cache format version {version}; this build reads version {VERSION}"
        )));
    }
    let field = |name: &str, at: &str, got: String, want: String| {
        bad(format!(
            "corrupt header: {name} (bytes {at}) is {got}, expected {want}"
        ))
    };
    let (w, n, d) = (u32_at(12) as usize, u64_at(16), u64_at(24));
    if n == 0 || n > u64::from(u32::MAX) {
        return Err(field(
            "N",
            "16..24",
            n.to_string(),
            format!("1 to {}", u32::MAX),
        ));
    }
    let want_w = if n <= 65_535 { 2 } else { 4 };
    if w != want_w {
        return Err(field(
            "the id width",
            "12..16",
            w.to_string(),
            format!("{want_w} for N = {n}"),
        ));
    }
    if d == 0 {
        return Err(field("d", "24..32", "0".into(), "at least 1".into()));
    }
    if u64_at(64) != HEADER_LEN {
        return Err(field(
            "the record offset",
            "64..72",
            u64_at(64).to_string(),
            HEADER_LEN.to_string(),
        ));
    }
    let n = n as usize;
    let expected = n
        .checked_mul(n)
        .and_then(|nn| nn.checked_mul(w))
        .map(|b| HEADER_LEN + b as u64 + n.div_ceil(8) as u64);
    let Some(expected) = expected else {
        return Err(field(
            "N",
            "16..24",
            n.to_string(),
            "a count whose N·N records fit in a file".into(),
        ));
    };
    if u64_at(72) != bitmap_offset(n, w) {
        return Err(field(
            "the bitmap offset",
            "72..80",
            u64_at(72).to_string(),
            format!("{} for N = {n} and {w}-byte ids", bitmap_offset(n, w)),
        ));
    }
    let shard = match (u64_at(80), u64_at(88)) {
        (0, 0) => None,
        (m, k) if m <= n as u64 && k < m => Some(Shard::new(k as usize, m as usize).map_err(bad)?),
        (m, k) => {
            return Err(bad(format!(
                "corrupt header: the shard (bytes 80..96) is {k}/{m}, expected K < M ≤ N = {n} \
                 or 0/0 for a full cache"
            )))
        }
    };
    if let Some(i) = (96..HEADER_LEN as usize).find(|&i| h[i] != 0) {
        return Err(bad(format!(
            "corrupt header: byte {i} is {:#04x}, expected 0 (bytes 96..128 are reserved)",
            h[i]
        )));
    }
    if expected != len {
        return Err(bad(format!(
            "the file has {len} bytes, but a cache of {} of {w}-byte ids has {expected} \
             (truncated or damaged)",
            crate::count(n, "ordering")
        )));
    }
    let mut bitmap = vec![0u8; n.div_ceil(8)];
    file.read_exact_at(&mut bitmap, bitmap_offset(n, w))
        .map_err(|e| ComputeError::io(path, e))?;
    let used_bits = n % 8;
    if used_bits > 0 && bitmap[n / 8] >> used_bits != 0 {
        return Err(bad(format!(
            "corrupt completion bitmap: its last byte (byte {}) has bits set past N = {n}",
            bitmap_offset(n, w) + (n / 8) as u64
        )));
    }
    let starts = shard.map_or(0..n, |s| s.starts(n));
    if let Some(s) = (0..n).find(|&s| bit(&bitmap, s) && !starts.contains(&s)) {
        return Err(bad(format!(
            "corrupt completion bitmap: start {s} is marked complete, but the file is the \
             part for shard {} (starts {}..{})",
            shard.map(|s| s.to_string()).unwrap_or_default(),
            starts.start,
            starts.end
        )));
    }
    let done = (0..n).filter(|&s| bit(&bitmap, s)).count();
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&h[32..64]);
    let info = CacheInfo {
        n,
        d: d as usize,
        id_width: w,
        done,
        complete: done == starts.len(),
        hash,
        shard,
    };
    Ok((info, bitmap))
}

fn encode_ids(seq: &[u32], w: usize) -> Vec<u8> {
    if w == 2 {
        seq.iter().flat_map(|&x| (x as u16).to_le_bytes()).collect()
    } else {
        seq.iter().flat_map(|&x| x.to_le_bytes()).collect()
    }
}

fn decode_ids(buf: &[u8], w: usize) -> Vec<u32> {
    if w == 2 {
        buf.chunks_exact(2)
            .map(|c| u32::from(u16::from_le_bytes([c[0], c[1]])))
            .collect()
    } else {
        buf.chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }
}
