//! File identity and where an output goes, so that writing a file never destroys what the
//! user did not ask to replace.
//!
//! - [`FileId`] is a file's (device, inode): two paths (through symbolic or hard links)
//!   name the same file exactly when their ids are equal. Commands compare an output's id
//!   with their inputs' ids and refuse before any work when they match.
//! - [`output_target`] says how an output path is written: a regular file (or nothing) is
//!   replaced atomically — a temporary file beside it, renamed over it — and a symbolic
//!   link is followed first, so the link stays and its target gets the new contents; a FIFO
//!   or a character device (`/dev/null`, a terminal, a pipe named by `/dev/stdout`) is
//!   opened and written in place, never renamed over; a directory, a block device or a
//!   socket is refused.

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// A file's identity: the device it lives on and its inode number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
}

impl FileId {
    /// The identity in `meta`.
    pub fn of_meta(meta: &Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    /// The identity of the file `path` names, following symbolic links; `None` when
    /// nothing is there (or it cannot be examined).
    pub fn of_path(path: &Path) -> Option<FileId> {
        std::fs::metadata(path).ok().map(|m| FileId::of_meta(&m))
    }

    /// The identity of an open file.
    pub fn of_file(file: &File) -> io::Result<FileId> {
        file.metadata().map(|m| FileId::of_meta(&m))
    }
}

/// How an output path is to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputTarget {
    /// Nothing or a regular file is there: write a temporary file beside this path (the
    /// end of any chain of symbolic links) and rename it over this path.
    Replace(PathBuf),
    /// A FIFO or a character device: open the path and write in place (no rename).
    WriteThrough,
    /// Something weft does not write to: the words say what it is ("is a directory").
    Refuse(&'static str),
}

/// Symbolic links followed before giving up (as Linux's `ELOOP` limit).
const MAX_LINKS: usize = 40;

/// `path` with symbolic links in its last component followed to the end of the chain
/// (which need not exist: a dangling link names the file to create).
pub fn final_path(path: &Path) -> io::Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&p)?;
                p = if target.is_absolute() {
                    target
                } else {
                    match p.parent() {
                        Some(dir) => dir.join(target),
                        None => target,
                    }
                };
            }
            _ => return Ok(p),
        }
    }
    Err(io::Error::other("too many levels of symbolic links"))
}

/// What is at `path` and therefore how to write it (see the module documentation).
pub fn output_target(path: &Path) -> io::Result<OutputTarget> {
    match std::fs::metadata(path) {
        Ok(meta) => {
            let t = meta.file_type();
            if t.is_file() {
                let end = final_path(path)?;
                // A "magic" link (/proc/self/fd/N) may not lead to a name of the file:
                // then the file can only be written in place.
                if FileId::of_path(&end) == Some(FileId::of_meta(&meta)) {
                    Ok(OutputTarget::Replace(end))
                } else {
                    Ok(OutputTarget::WriteThrough)
                }
            } else if t.is_fifo() || t.is_char_device() {
                Ok(OutputTarget::WriteThrough)
            } else if t.is_dir() {
                Ok(OutputTarget::Refuse("is a directory"))
            } else if t.is_block_device() {
                Ok(OutputTarget::Refuse("is a block device"))
            } else if t.is_socket() {
                Ok(OutputTarget::Refuse("is a socket"))
            } else {
                Ok(OutputTarget::Refuse("is not a regular file"))
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Ok(OutputTarget::Replace(final_path(path)?))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_followed_and_kinds_told_apart() {
        let dir = std::env::temp_dir().join(format!("weft-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("f");
        std::fs::write(&file, b"x").unwrap();
        std::os::unix::fs::symlink("f", dir.join("l1")).unwrap();
        std::os::unix::fs::symlink(dir.join("l1"), dir.join("l2")).unwrap();
        std::os::unix::fs::symlink("missing", dir.join("dangling")).unwrap();
        std::fs::hard_link(&file, dir.join("h")).unwrap();
        assert_eq!(
            output_target(&dir.join("l2")).unwrap(),
            OutputTarget::Replace(dir.join("f"))
        );
        assert_eq!(
            output_target(&dir.join("dangling")).unwrap(),
            OutputTarget::Replace(dir.join("missing"))
        );
        assert_eq!(
            output_target(&dir).unwrap(),
            OutputTarget::Refuse("is a directory")
        );
        assert_eq!(
            FileId::of_path(&dir.join("h")),
            FileId::of_path(&dir.join("l2"))
        );
        assert_ne!(FileId::of_path(&dir.join("h")), FileId::of_path(&dir));
        std::os::unix::fs::symlink("loop", dir.join("loop")).unwrap();
        assert!(output_target(&dir.join("loop")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
