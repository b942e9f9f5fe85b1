//! Writing `.npy` outputs so that a failed or interrupted run never leaves one that looks
//! complete.
//!
//! Each output is saved by `weft_npy::save` (temporary file, fsync, rename) under a
//! hidden pending name beside its target; only when every output of the command is saved
//! are they renamed into place, together. A symbolic link is followed (its target is
//! replaced, the link stays); a FIFO or character device (`/dev/null`) is written in place
//! at commit, never renamed over. Targets are checked before the work starts
//! ([`check_writable`], [`check_not_input`]), so a missing folder, a directory or an
//! output that is one of the inputs fails in a second, not after an hour.

use crate::error::Failure;
use bytemuck::Pod;
use std::path::{Path, PathBuf};
use weft_core::files::{output_target, FileId, OutputTarget};
use weft_core::{Array, DType};
use weft_npy::{self as npy, NpyError};

/// A new `rows × cols` array of `dtype` whose elements `fill` writes (as `T`).
pub fn matrix<T: Pod>(
    dtype: DType,
    rows: usize,
    cols: usize,
    fill: impl FnOnce(&mut [T]) -> Result<(), Failure>,
) -> Result<Array, Failure> {
    let mut a = Array::zeros(dtype, rows, Some(cols))
        .map_err(|e| Failure::new(format!("cannot allocate the output: {e}")))?;
    let bytes = a
        .bytes_mut()
        .ok_or_else(|| Failure::new("internal: a fresh array is not writable"))?;
    let values = bytemuck::try_cast_slice_mut(bytes)
        .map_err(|e| Failure::new(format!("internal: output array: {e}")))?;
    fill(values)?;
    Ok(a)
}

/// The folder holding `path` (`.` for a bare file name).
pub fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The hidden name an output is staged under until the command commits.
pub fn pending_name(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_string_lossy();
    Some(folder_of(path).join(format!(".{name}.weft-pending-{}", std::process::id())))
}

/// Removes pending files of `path` left by weft processes that were killed (their pid no
/// longer runs); best effort, Linux (`/proc`) only.
pub fn remove_stale_pending(path: &Path) {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    let prefix = format!(".{name}.weft-pending-");
    let Ok(entries) = std::fs::read_dir(folder_of(path)) else {
        return;
    };
    if !Path::new("/proc/self").exists() {
        return;
    }
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = file.strip_prefix(&prefix) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Where `path` is written, or a failure naming it.
fn target_of(path: &Path) -> Result<OutputTarget, Failure> {
    match output_target(path) {
        Ok(OutputTarget::Refuse("is a directory")) => Err(Failure::new(format!(
            "{}: is a directory; name an output file",
            path.display()
        ))),
        Ok(OutputTarget::Refuse(what)) => Err(Failure::npy(NpyError::NotWritable {
            path: path.to_path_buf(),
            what,
        })),
        Ok(t) => Ok(t),
        Err(source) => Err(Failure::npy(NpyError::Io {
            path: path.to_path_buf(),
            action: "write",
            source,
        })),
    }
}

/// Fails when the output `out` is one of `inputs` — the same file by device and inode,
/// however it is named (symbolic or hard links) — since writing it would destroy the input.
/// Only regular files count: writing `/dev/null` or a FIFO destroys nothing.
pub fn check_not_input(out: &Path, inputs: &[&Path]) -> Result<(), Failure> {
    let Ok(meta) = std::fs::metadata(out) else {
        return Ok(());
    };
    if !meta.is_file() {
        return Ok(());
    }
    let id = FileId::of_meta(&meta);
    for input in inputs {
        if FileId::of_path(input) == Some(id) {
            let same = if out == *input {
                String::new()
            } else {
                format!(" {}", input.display())
            };
            return Err(Failure::new(format!(
                "{}: is the input{same} too; writing it would destroy the input, so name \
                 another output file",
                out.display()
            )));
        }
    }
    Ok(())
}

/// Fails unless `path` can be written: a FIFO or character device is written in place; a
/// regular file (or nothing, after symbolic links) needs a folder that exists and is
/// writable (a probe file is created and removed beside it); anything else is refused.
pub fn check_writable(path: &Path) -> Result<(), Failure> {
    let end = match target_of(path)? {
        OutputTarget::Replace(end) => end,
        _ => return Ok(()),
    };
    let folder = folder_of(&end);
    if !folder.is_dir() {
        return Err(Failure::npy(NpyError::NoFolder {
            path: path.to_path_buf(),
            folder,
        }));
    }
    let probe = pending_name(&end)
        .ok_or_else(|| Failure::new(format!("{}: names no file", path.display())))?;
    remove_stale_pending(&end);
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe);
    match created {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(source) => Err(Failure::npy(NpyError::Io {
            path: path.to_path_buf(),
            action: "write",
            source,
        })),
    }
}

/// Outputs saved under pending names, renamed into place by [`Outputs::commit`]; dropped
/// without a commit, the pending files are removed. Outputs that are FIFOs or character
/// devices are written in place at commit.
#[derive(Default)]
pub struct Outputs {
    /// (pending file, where it is renamed to, the path the user gave).
    staged: Vec<(PathBuf, PathBuf, PathBuf)>,
    /// Arrays to write in place, and where.
    through: Vec<(Array, PathBuf)>,
}

impl Outputs {
    /// No outputs yet.
    pub fn new() -> Outputs {
        Outputs::default()
    }

    /// Saves `array` for `target` under its pending name (beside the end of any symbolic
    /// link), or keeps it to be written in place at commit.
    pub fn stage(&mut self, array: &Array, target: &Path) -> Result<(), Failure> {
        let end = match target_of(target)? {
            OutputTarget::Replace(end) => end,
            _ => {
                self.through.push((array.clone(), target.to_path_buf()));
                return Ok(());
            }
        };
        let pending = pending_name(&end)
            .ok_or_else(|| Failure::new(format!("{}: names no file", target.display())))?;
        npy::save(array, &pending).map_err(|e| {
            // save names the file it wrote, the pending one: name the target instead.
            let text = e.to_string();
            let shown = pending.display().to_string();
            Failure::new(text.replace(&shown, &target.display().to_string()))
        })?;
        self.staged.push((pending, end, target.to_path_buf()));
        Ok(())
    }

    /// Writes the in-place outputs, then renames every staged output into place.
    pub fn commit(mut self) -> Result<(), Failure> {
        for (array, target) in std::mem::take(&mut self.through) {
            npy::save(&array, &target).map_err(Failure::npy)?;
        }
        let staged = std::mem::take(&mut self.staged);
        for (i, (pending, end, target)) in staged.iter().enumerate() {
            if let Err(e) = std::fs::rename(pending, end) {
                for (left, _, _) in &staged[i..] {
                    let _ = std::fs::remove_file(left);
                }
                return Err(Failure::new(format!(
                    "{}: cannot write: {e}",
                    target.display()
                )));
            }
            if let Ok(dir) = std::fs::File::open(folder_of(end)) {
                let _ = dir.sync_all();
            }
        }
        Ok(())
    }
}

impl Drop for Outputs {
    fn drop(&mut self) {
        for (pending, _, _) in &self.staged {
            let _ = std::fs::remove_file(pending);
        }
    }
}
