//! Writing `.npy` outputs so that a failed or interrupted run never leaves one that looks
//! complete.
//!
//! Each output is written by `weft_npy::write_to` into a
//! [`StagedFile`](weft_core::files::StagedFile) (a hidden temporary beside its target) and
//! flushed to disk; only when every output of the command is written are they renamed into
//! place, together (one rename each, and the folder flushed). A symbolic link is followed (its target is
//! replaced, the link stays); a FIFO or character device (`/dev/null`) is written in place
//! at commit, never renamed over. Targets are checked before the work starts
//! ([`check_writable`], [`check_not_input`]), so a missing folder, a directory or an
//! output that is one of the inputs fails in a second, not after an hour.

use crate::error::Failure;
use bytemuck::Pod;
use std::path::{Path, PathBuf};
use weft_core::files::{self, output_target, FileId, OutputTarget, StagedFile};
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
    let folder = files::folder_of(&end);
    if !folder.is_dir() {
        return Err(Failure::npy(NpyError::NoFolder {
            path: path.to_path_buf(),
            folder,
        }));
    }
    files::remove_stale_temporaries(&end);
    // A probe: the temporary an output would be written to, removed when dropped.
    match StagedFile::create(&end) {
        Ok(_probe) => Ok(()),
        Err(source) => Err(Failure::npy(NpyError::Io {
            path: path.to_path_buf(),
            action: "write",
            source,
        })),
    }
}

/// Outputs written to temporaries, renamed into place by [`Outputs::commit`]; dropped
/// without a commit, the temporaries are removed. Outputs that are FIFOs or character
/// devices are written in place at commit.
#[derive(Default)]
pub struct Outputs {
    /// (the written temporary, the path the user gave).
    staged: Vec<(StagedFile, PathBuf)>,
    /// Arrays to write in place, and where.
    through: Vec<(Array, PathBuf)>,
}

impl Outputs {
    /// No outputs yet.
    pub fn new() -> Outputs {
        Outputs::default()
    }

    /// Writes `array` for `target` to a synced temporary (beside the end of any symbolic
    /// link), or keeps it to be written in place at commit.
    pub fn stage(&mut self, array: &Array, target: &Path) -> Result<(), Failure> {
        let end = match target_of(target)? {
            OutputTarget::Replace(end) => end,
            _ => {
                self.through.push((array.clone(), target.to_path_buf()));
                return Ok(());
            }
        };
        let cannot = |e: std::io::Error| {
            Failure::npy(NpyError::Io {
                path: target.to_path_buf(),
                action: "write",
                source: e,
            })
        };
        let mut staged = StagedFile::create(&end).map_err(cannot)?;
        npy::write_to(array, staged.file()).map_err(cannot)?;
        staged.sync().map_err(cannot)?;
        self.staged.push((staged, target.to_path_buf()));
        Ok(())
    }

    /// Writes the in-place outputs, then renames every staged output into place.
    pub fn commit(mut self) -> Result<(), Failure> {
        for (array, target) in std::mem::take(&mut self.through) {
            npy::save(&array, &target).map_err(Failure::npy)?;
        }
        // On a failure the outputs not yet in place are dropped, which removes them.
        for (staged, target) in std::mem::take(&mut self.staged) {
            staged
                .persist()
                .map_err(|e| Failure::new(format!("{}: cannot write: {e}", target.display())))?;
        }
        Ok(())
    }
}
