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
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// The 8 bytes a cache file starts with.
pub const MAGIC: &[u8; 8] = b"WEFTDIVC";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;
/// Bytes before the first record.
pub const HEADER_LEN: u64 = 128;
/// Orderings computed and committed (synced, then marked) together.
const BATCH: usize = 32;

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
    /// Whether all n are.
    pub complete: bool,
    /// SHA-256 of the raw embeddings (see docs/cache-format.md).
    pub hash: [u8; 32],
}

impl CacheInfo {
    /// The hash as 64 lowercase hex digits.
    pub fn hash_hex(&self) -> String {
        self.hash.iter().map(|b| format!("{b:02x}")).collect()
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

/// A cache file opened for reading.
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
        let file = File::open(&path).map_err(|e| ComputeError::io(&path, e))?;
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
            return Err(ComputeError::CacheFormat {
                path: self.path.clone(),
                reason: format!("the ordering from start {start} is not in the cache yet"),
            });
        }
        let w = self.info.id_width;
        let mut buf = vec![0u8; n * w];
        self.file
            .read_exact_at(&mut buf, record_offset(n, w, start))
            .map_err(|e| ComputeError::io(&self.path, e))?;
        Ok(decode_ids(&buf, w))
    }
}

/// A cache file being filled.
pub struct CacheWriter<'a> {
    file: File,
    path: PathBuf,
    info: CacheInfo,
    bitmap: Vec<u8>,
    normalised: Vec<f32>,
    raw: Rows<'a>,
    budget: Budget,
}

impl<'a> CacheWriter<'a> {
    /// Creates a new cache for the raw embeddings `emb` (normalised here). An existing file
    /// is an error unless `force`, which replaces it.
    pub fn create(
        path: impl AsRef<Path>,
        emb: Rows<'a>,
        force: bool,
    ) -> Result<Self, ComputeError> {
        let path = path.as_ref().to_path_buf();
        let normalised = prepare(emb)?;
        if !force && path.exists() {
            let reason = match File::open(&path)
                .ok()
                .and_then(|f| read_layout(&f, &path).ok())
            {
                Some((i, _)) if i.complete => {
                    "is a finished cache; refusing to overwrite it (force to replace)".to_string()
                }
                Some((i, _)) => format!(
                    "is an unfinished cache ({} of {} orderings); resume it or force to replace",
                    i.done, i.n
                ),
                None => "already exists and is not a weft cache; refusing to overwrite it".into(),
            };
            return Err(ComputeError::CacheRefused { path, reason });
        }
        let (n, d) = (emb.n(), emb.d());
        let info = CacheInfo {
            n,
            d,
            id_width: if n <= 65_535 { 2 } else { 4 },
            done: 0,
            complete: false,
            hash: hash(emb),
        };
        // Laid out under a hidden name and renamed into place, so a run killed while
        // creating the file never leaves something at `path` that is not a cache.
        let name = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = path.with_file_name(format!(".{name}.weft-creating-{}", std::process::id()));
        let io = |e| ComputeError::io(&path, e);
        let laid_out = (|| {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&temp)?;
            file.set_len(file_len(n, info.id_width))?;
            file.write_all_at(&header(&info), 0)?;
            file.sync_all()?;
            std::fs::rename(&temp, &path)?;
            Ok(file)
        })();
        let file = laid_out.map_err(|e| {
            let _ = std::fs::remove_file(&temp);
            io(e)
        })?;
        sync_dir(&path);
        Ok(CacheWriter {
            file,
            path,
            bitmap: vec![0; n.div_ceil(8)],
            info,
            normalised,
            raw: emb,
            budget: Budget::default(),
        })
    }

    /// Reopens an unfinished (or finished) cache to fill in what is missing. Refuses a file
    /// that is not a cache, has another format version or size, or was written for other
    /// embeddings.
    pub fn resume(path: impl AsRef<Path>, emb: Rows<'a>) -> Result<Self, ComputeError> {
        let path = path.as_ref().to_path_buf();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| ComputeError::io(&path, e))?;
        let (info, bitmap) = read_layout(&file, &path)?;
        let refuse = |reason: String| ComputeError::CacheRefused {
            path: path.clone(),
            reason,
        };
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
            info,
            bitmap,
            normalised,
            raw: emb,
            budget: Budget::default(),
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
        let missing: Vec<usize> = (0..self.info.n)
            .filter(|&s| !bit(&self.bitmap, s))
            .collect();
        if missing.is_empty() || cancel.load(Ordering::Relaxed) {
            return Ok(self.info.clone());
        }
        let normalised = std::mem::take(&mut self.normalised);
        let result = self.fill(&normalised, &missing, t, progress, cancel);
        self.normalised = normalised;
        result?;
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
        let n = self.info.n;
        let rows = Rows::new(normalised, n, self.info.d)?;
        let engine = Orderings::new(rows, Some(threads), self.budget)?;
        for batch in missing.chunks(BATCH) {
            if cancel.load(Ordering::Relaxed) {
                break;
            }
            let seqs = engine.run_cancellable(batch, cancel)?;
            self.commit(batch, &seqs)?;
            progress(Progress {
                done: self.info.done,
                total: n,
            });
        }
        Ok(())
    }

    /// Writes the finished orderings of a batch, syncs them, then sets and syncs their bits.
    fn commit(&mut self, batch: &[usize], seqs: &[Option<Vec<u32>>]) -> Result<(), ComputeError> {
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
        self.info.complete = self.info.done == n;
        Ok(())
    }

    /// The raw embeddings this cache is for.
    pub fn embeddings(&self) -> Rows<'a> {
        self.raw
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
    h
}

/// Reads and checks the header, the file size and the bitmap.
fn read_layout(file: &File, path: &Path) -> Result<(CacheInfo, Vec<u8>), ComputeError> {
    let bad = |reason: String| ComputeError::CacheFormat {
        path: path.to_path_buf(),
        reason,
    };
    let len = file
        .metadata()
        .map_err(|e| ComputeError::io(path, e))?
        .len();
    let mut h = [0u8; HEADER_LEN as usize];
    if len < HEADER_LEN || file.read_exact_at(&mut h, 0).is_err() || &h[0..8] != MAGIC {
        return Err(bad(
            "not a weft diversity cache (bad magic or too short)".into()
        ));
    }
    let u32_at = |o: usize| u32::from_le_bytes(h[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |o: usize| u64::from_le_bytes(h[o..o + 8].try_into().expect("8 bytes"));
    let version = u32_at(8);
    if version != VERSION {
        return Err(bad(format!(
            "cache format version {version}; this build reads version {VERSION}"
        )));
    }
    let (w, n, d) = (u32_at(12) as usize, u64_at(16), u64_at(24));
    let n_ok = n >= 1 && n <= u32::MAX as u64;
    let want_w = if n <= 65_535 { 2 } else { 4 };
    if !n_ok || w != want_w || d == 0 || u64_at(64) != HEADER_LEN {
        return Err(bad(format!(
            "corrupt header (n = {n}, d = {d}, id width = {w})"
        )));
    }
    let n = n as usize;
    let expected = n
        .checked_mul(n)
        .and_then(|nn| nn.checked_mul(w))
        .map(|b| HEADER_LEN + b as u64 + n.div_ceil(8) as u64);
    if expected != Some(len) || u64_at(72) != bitmap_offset(n, w) {
        return Err(bad(format!(
            "{len} bytes, but a cache of {n} orderings of {w}-byte ids has {} (truncated or damaged)",
            expected.map_or("more".into(), |e| e.to_string())
        )));
    }
    let mut bitmap = vec![0u8; n.div_ceil(8)];
    file.read_exact_at(&mut bitmap, bitmap_offset(n, w))
        .map_err(|e| ComputeError::io(path, e))?;
    let done = (0..n).filter(|&s| bit(&bitmap, s)).count();
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&h[32..64]);
    let info = CacheInfo {
        n,
        d: d as usize,
        id_width: w,
        done,
        complete: done == n,
        hash,
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

/// Syncs the directory holding `path` so a new file's name is durable (best effort).
fn sync_dir(path: &Path) {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}
