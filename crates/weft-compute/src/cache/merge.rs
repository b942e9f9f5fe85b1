//! Joining the part files of a sharded run (`weft diversity-cache … --shard K/M`) into the
//! full cache, byte-identical to the file one unsharded run writes.
//!
//! Every check runs before anything is written, and the result is laid out under a hidden
//! name and put in place whole ([`StagedFile`]), so a refused or failed merge leaves the
//! output path as it was.

use super::{
    bitmap_offset, cache_path, check_ordering, decode_ids, file_len, header, record_offset, Cache,
    CacheInfo, CacheLock, Progress,
};
use crate::error::ComputeError;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use weft_core::files::{FileId, StagedFile};

/// Records copied per read and write (bounded memory whatever N is).
const CHUNK_BYTES: usize = 8 << 20;

/// Merges the complete parts `parts` into a new full cache at `out`.
///
/// Refuses, naming the file and the problem, before writing anything: a file that is not
/// a cache, a full cache (not a part), a part given twice, a part of other embeddings
/// (N, d, id width or hash differ from the first part's), an unfinished part, two parts
/// whose starts overlap, and starts no part holds. Parts of different shard counts are
/// accepted when together they hold every start exactly once. An existing file at `out`
/// is replaced only with `force`, and never when it is one of the parts. Each record is
/// checked to be an ordering from its start while it is copied; `progress` is called with
/// the orderings copied so far.
pub fn merge(
    parts: &[PathBuf],
    out: &Path,
    force: bool,
    progress: &mut dyn FnMut(Progress),
) -> Result<CacheInfo, ComputeError> {
    let refuse = |path: &Path, reason: String| ComputeError::CacheRefused {
        path: path.to_path_buf(),
        reason,
    };
    if parts.is_empty() {
        return Err(refuse(out, "no part files to merge".into()));
    }
    let end = cache_path(out)?;
    let out_id = FileId::of_path(&end);
    let _lock = CacheLock::acquire(&end, out)?;
    let mut opened: Vec<(Cache, FileId)> = Vec::with_capacity(parts.len());
    for path in parts {
        let cache = Cache::open(path)?;
        let fid = FileId::of_file(&cache.file).map_err(|e| ComputeError::io(path, e))?;
        if out_id == Some(fid) {
            return Err(refuse(
                out,
                format!(
                    "is the part {} too; name another output file",
                    path.display()
                ),
            ));
        }
        if let Some((earlier, _)) = opened.iter().find(|(_, f)| *f == fid) {
            return Err(refuse(
                path,
                format!(
                    "is given twice (also as {}); name each part once",
                    earlier.path.display()
                ),
            ));
        }
        check_part(&cache, opened.first().map(|(c, _)| c))?;
        opened.push((cache, fid));
    }
    let first = opened[0].0.info().clone();
    let mut order: Vec<&Cache> = opened.iter().map(|(c, _)| c).collect();
    order.sort_by_key(|c| c.info().starts().start);
    check_coverage(&order, first.n, out)?;
    if !force && std::fs::symlink_metadata(&end).is_ok() {
        return Err(refuse(
            out,
            "already exists; refusing to overwrite it (--force replaces it)".into(),
        ));
    }
    write(&order, &first, &end, out, force, progress)
}

/// A part must be a finished part (not a full cache) of the same embeddings as `first`.
fn check_part(part: &Cache, first: Option<&Cache>) -> Result<(), ComputeError> {
    let refuse = |reason: String| ComputeError::CacheRefused {
        path: part.path.clone(),
        reason,
    };
    let i = part.info();
    let Some(shard) = i.shard else {
        return Err(refuse(
            "is a full cache, not a part of a sharded run (made with --shard K/M); merge \
             joins parts only"
                .into(),
        ));
    };
    if let Some(f) = first {
        let fi = f.info();
        let what = if (i.n, i.d) != (fi.n, fi.d) {
            Some(format!(
                "it is for {}×{} embeddings, {} for {}×{}",
                i.n,
                i.d,
                f.path.display(),
                fi.n,
                fi.d
            ))
        } else if i.hash != fi.hash {
            Some(format!(
                "it was written for other embeddings than {} (hash {} vs {})",
                f.path.display(),
                &i.hash_hex()[..12],
                &fi.hash_hex()[..12]
            ))
        } else {
            None
        };
        if let Some(what) = what {
            return Err(refuse(format!("is a part of another cache: {what}")));
        }
    }
    if !i.complete {
        let r = i.starts();
        return Err(refuse(format!(
            "is unfinished: shard {shard} (starts {}..{}) has {} of {} done; finish it with \
             `weft diversity-cache EMB.npy -o {} --shard {shard} --resume`",
            r.start,
            r.end,
            i.done,
            crate::count(r.len(), "ordering"),
            part.path.display()
        )));
    }
    Ok(())
}

/// The parts, sorted by first start, must hold every start of 0..n exactly once.
fn check_coverage(order: &[&Cache], n: usize, out: &Path) -> Result<(), ComputeError> {
    let mut next = 0;
    let mut prev: Option<&Cache> = None;
    for c in order {
        let r = c.info().starts();
        let shard = c.info().shard.map(|s| s.to_string()).unwrap_or_default();
        if r.start < next {
            let p = prev.expect("an overlap needs an earlier part");
            return Err(ComputeError::CacheRefused {
                path: c.path.clone(),
                reason: format!(
                    "overlaps {}: shard {shard} holds starts {}..{}, and starts {}..{} are \
                     in both; give each start's part once",
                    p.path.display(),
                    r.start,
                    r.end,
                    r.start,
                    next.min(r.end)
                ),
            });
        }
        if r.start > next {
            return Err(missing(next, r.start, order, out));
        }
        next = r.end;
        prev = Some(c);
    }
    if next < n {
        return Err(missing(next, n, order, out));
    }
    Ok(())
}

/// No part holds starts `lo..hi`: names the shard that would, when all parts share M.
fn missing(lo: usize, hi: usize, order: &[&Cache], out: &Path) -> ComputeError {
    let counts: Vec<usize> = order
        .iter()
        .filter_map(|c| c.info().shard.map(|s| s.count()))
        .collect();
    let n = order[0].info().n;
    let hint = match counts.first() {
        Some(&m) if counts.iter().all(|&c| c == m) => (0..m)
            .filter_map(|k| super::Shard::new(k, m).ok())
            .filter(|s| {
                let r = s.starts(n);
                r.start < hi && lo < r.end
            })
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        _ => String::new(),
    };
    let hint = if hint.is_empty() {
        String::new()
    } else {
        format!(" (the part for shard {hint} is missing)")
    };
    ComputeError::CacheRefused {
        path: out.to_path_buf(),
        reason: format!("cannot merge: no part holds starts {lo}..{hi}{hint}; nothing was written"),
    }
}

/// Lays out the full cache under a hidden name and puts it in place.
fn write(
    order: &[&Cache],
    first: &CacheInfo,
    end: &Path,
    out: &Path,
    force: bool,
    progress: &mut dyn FnMut(Progress),
) -> Result<CacheInfo, ComputeError> {
    let (n, w) = (first.n, first.id_width);
    let mut copied = 0;
    let info = CacheInfo {
        done: n,
        complete: true,
        shard: None,
        ..first.clone()
    };
    let io = |e| ComputeError::io(out, e);
    let mut staged = StagedFile::create(end).map_err(io)?;
    let file = staged.file();
    file.set_len(file_len(n, w)).map_err(io)?;
    file.write_all_at(&header(&info), 0).map_err(io)?;
    let per_chunk = (CHUNK_BYTES / (n * w)).max(1);
    let mut buf = Vec::new();
    for part in order {
        let starts: Vec<usize> = part.info().starts().collect();
        for chunk in starts.chunks(per_chunk) {
            let at = record_offset(n, w, chunk[0]);
            buf.resize(chunk.len() * n * w, 0);
            part.file
                .read_exact_at(&mut buf, at)
                .map_err(|e| ComputeError::io(&part.path, e))?;
            for (i, &s) in chunk.iter().enumerate() {
                let ids = decode_ids(&buf[i * n * w..(i + 1) * n * w], w);
                check_ordering(&ids, s).map_err(|reason| ComputeError::CacheDamaged {
                    path: part.path.clone(),
                    start: s,
                    reason,
                })?;
            }
            file.write_all_at(&buf, at).map_err(io)?;
            copied += chunk.len();
            progress(Progress {
                done: copied,
                total: n,
            });
        }
    }
    // Every bit of 0..n set; the unused bits of the last byte stay zero, as a run leaves them.
    let mut bitmap = vec![0xffu8; n.div_ceil(8)];
    if n % 8 != 0 {
        bitmap[n / 8] = (1u8 << (n % 8)) - 1;
    }
    file.write_all_at(&bitmap, bitmap_offset(n, w))
        .map_err(io)?;
    let placed = if force {
        staged.persist()
    } else {
        staged.persist_new()
    };
    placed.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            ComputeError::CacheRefused {
                path: out.to_path_buf(),
                reason: "appeared while merging; refusing to overwrite it (--force replaces it)"
                    .into(),
            }
        } else {
            io(e)
        }
    })?;
    Ok(info)
}
