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
//! - [`StagedFile`] is how every weft writer replaces a file whole (`.npy` saves, the CLI's
//!   outputs, the diversity cache): a new file under a hidden name beside the destination,
//!   written, flushed to disk (`fsync`), renamed (or, to never replace, linked) over the
//!   destination, and the folder flushed so the new name is durable too. Dropped before
//!   that, the temporary is removed; a process killed meanwhile leaves only the hidden
//!   `.NAME.weft-pending-PID-N`, which [`remove_stale_temporaries`] clears once PID is gone.
//!
//! What to write where is the caller's rule, checked before any work: [`output_target`]
//! (follow links, write FIFOs and devices in place, refuse directories and sockets) and,
//! where there are inputs, a comparison of [`FileId`]s so an output is never an input.

use std::fs::{File, Metadata, OpenOptions};
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

/// The marker in the name of a temporary beside its destination:
/// `.NAME.weft-pending-PID-N`.
const PENDING: &str = ".weft-pending-";

/// The folder holding `path` (`.` for a bare file name).
pub fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A new file written under a hidden temporary name beside `dest`, put in place whole by
/// [`StagedFile::persist`] (replacing `dest`) or [`StagedFile::persist_new`] (never
/// replacing). Dropped without either, the temporary is removed.
///
/// `dest` is where the file ends up, as [`OutputTarget::Replace`] names it (the end of any
/// chain of symbolic links): a rename replaces a link itself, not its target.
#[derive(Debug)]
pub struct StagedFile {
    /// `None` once placed (or being placed): nothing left for `drop` to remove.
    file: Option<File>,
    temp: PathBuf,
    dest: PathBuf,
}

impl StagedFile {
    /// Creates the temporary beside `dest`, open for reading and writing. A name already
    /// taken (a stale file of a reused pid) is skipped, not overwritten. Errors are the
    /// system's (`NotFound` when `dest`'s folder does not exist).
    pub fn create(dest: &Path) -> io::Result<StagedFile> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = dest
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
        let mut attempt = 0;
        loop {
            let mut tmp = std::ffi::OsString::from(".");
            tmp.push(name);
            tmp.push(format!(
                "{PENDING}{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let temp = dest.with_file_name(tmp);
            let opened = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&temp);
            match opened {
                Ok(file) => {
                    return Ok(StagedFile {
                        file: Some(file),
                        temp,
                        dest: dest.to_path_buf(),
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 16 => attempt += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// The open temporary, to write the contents into.
    pub fn file(&mut self) -> &mut File {
        self.file
            .as_mut()
            .expect("a StagedFile holds its file until placed")
    }

    /// Where the file goes.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Flushes the contents to disk (`fsync`), so that a later [`StagedFile::persist`] of
    /// several staged files in a row can no longer fail for want of space.
    pub fn sync(&mut self) -> io::Result<()> {
        self.file().sync_all()
    }

    /// Flushes the contents, renames the temporary over the destination (whatever regular
    /// file was there is replaced in one step) and flushes the folder. Returns the file,
    /// still open.
    pub fn persist(self) -> io::Result<File> {
        self.place(|temp, dest| std::fs::rename(temp, dest))
    }

    /// As [`StagedFile::persist`], but never replaces anything: the temporary is linked
    /// to the destination (`link(2)` fails with `AlreadyExists` if a name is there, even
    /// one that appeared a moment ago), then its own name removed.
    pub fn persist_new(self) -> io::Result<File> {
        self.place(|temp, dest| {
            std::fs::hard_link(temp, dest)?;
            // The data now has its real name; a leftover hidden name would only waste a
            // directory entry, so failing to remove it is not the caller's error.
            let _ = std::fs::remove_file(temp);
            Ok(())
        })
    }

    fn place(mut self, put: impl FnOnce(&Path, &Path) -> io::Result<()>) -> io::Result<File> {
        let file = self
            .file
            .take()
            .expect("a StagedFile holds its file until placed");
        // From here `drop` sees no file: a failure removes the temporary by hand.
        if let Err(e) = file.sync_all().and_then(|()| put(&self.temp, &self.dest)) {
            let _ = std::fs::remove_file(&self.temp);
            return Err(e);
        }
        // The new name is durable only once the folder is flushed. Best effort: the file
        // is in place and complete either way, and some file systems refuse to fsync a
        // directory (EINVAL) although they keep renames; so no error to report here.
        if let Ok(dir) = File::open(folder_of(&self.dest)) {
            let _ = dir.sync_all();
        }
        Ok(file)
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Removes the temporaries of `dest` left by weft processes that were killed (their pid
/// no longer runs); best effort, Linux (`/proc`) only.
pub fn remove_stale_temporaries(dest: &Path) {
    let Some(name) = dest.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    let prefix = format!(".{name}{PENDING}");
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(folder_of(dest)) else {
        return;
    };
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = file.strip_prefix(&prefix) else {
            continue;
        };
        // `PID-N`, or `PID` alone as weft named them before.
        let pid = rest.split('-').next().unwrap_or_default();
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_file(e.path());
        }
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

    /// The names in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn staged_files_replace_whole_or_leave_nothing() {
        let dir = std::env::temp_dir().join(format!("weft-staged-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let dest = dir.join("out");
        std::fs::write(&dest, b"old").unwrap();

        // Written but dropped: the destination is untouched, the temporary gone.
        let mut s = StagedFile::create(&dest).unwrap();
        io::Write::write_all(s.file(), b"half").unwrap();
        assert_eq!(
            names(&dir).len(),
            2,
            "the temporary sits beside: {:?}",
            names(&dir)
        );
        drop(s);
        assert_eq!(names(&dir), ["out"]);
        assert_eq!(std::fs::read(&dest).unwrap(), b"old");

        // persist replaces; the returned file is the new one, still open.
        let mut s = StagedFile::create(&dest).unwrap();
        io::Write::write_all(s.file(), b"new").unwrap();
        let f = s.persist().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
        assert_eq!(FileId::of_file(&f).ok(), FileId::of_path(&dest));
        assert_eq!(names(&dir), ["out"]);

        // persist_new never replaces, and cleans up after itself.
        let mut s = StagedFile::create(&dest).unwrap();
        io::Write::write_all(s.file(), b"other").unwrap();
        let e = s.persist_new().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
        assert_eq!(names(&dir), ["out"]);
        let fresh = dir.join("fresh");
        StagedFile::create(&fresh).unwrap().persist_new().unwrap();
        assert_eq!(names(&dir), ["fresh", "out"]);

        // A missing folder is the system's NotFound; a path with no file name is refused.
        let e = StagedFile::create(&dir.join("no/such/out")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(StagedFile::create(Path::new("/")).is_err());

        // Temporaries of dead processes go; a live one's (ours) and other files stay.
        let dead = dir.join(".out.weft-pending-4294967-0");
        let old_style = dir.join(".out.weft-pending-4294966");
        let live = dir.join(format!(".out.weft-pending-{}-9", std::process::id()));
        for p in [&dead, &old_style, &live] {
            std::fs::write(p, b"x").unwrap();
        }
        remove_stale_temporaries(&dest);
        assert!(!dead.exists() && !old_style.exists() && live.exists());
        assert_eq!(names(&dir).len(), 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
