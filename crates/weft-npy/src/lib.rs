//! weft-npy: numpy's `.npy` file format, for weft's off-heap [`Array`]s.
//!
//! Its role in the workspace: the one file format for arrays. It builds on weft-core
//! (the [`Array`] it reads into and writes from, and [`weft_core::files`] for how an
//! output path is written) and nothing else of weft; weft-core does not know it. The Lua
//! binding (`weft.load_npy`, `a:save_npy`), the CLI's inputs and outputs and the compute
//! engine's tests use it; the compute engine itself takes rows in memory and never reads
//! a file format.
//!
//! A `.npy` file is the magic string `\x93NUMPY`, a major and a minor version byte, the
//! header length (2 bytes little-endian in version 1.0, 4 bytes in 2.0 and 3.0), a header
//! that is a Python dict literal such as
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (100, 384), }` padded with spaces and
//! a newline, and then the elements, with nothing after them.
//!
//! # What is read
//! - [`load`] reads the whole file into a new owned array. Header versions 1.0, 2.0
//!   (latin-1 header) and 3.0 (utf-8 header); the dtypes `<f4 <f8 <i4 <i8 |u1 <u2 <u4`
//!   (weft's f32 f64 i32 i64 u8 u16 u32); 1-D and 2-D shapes, including empty ones.
//!   Some files are converted rather than refused, and [`Loaded::note`] says which:
//!   big-endian data (`>f4`, …) is byte-swapped, Fortran-order 2-D data is transposed
//!   into weft's row-major order, and float16 (`<f2`/`>f2`) is widened to f32 (exactly:
//!   every float16 value, subnormals, infinities and NaN included, is an f32 value).
//!   A 1-D array, or a 2-D one with a single row or column, has the same bytes in either
//!   order, so its `fortran_order: True` needs (and notes) no conversion.
//! - Everything else is refused with an error naming the file and the problem: other
//!   dtypes (int8, bool, 64-bit unsigned, complex, strings, objects, structured records)
//!   list what is supported; 0-D and 3-D+ shapes are named; a header whose shape and
//!   dtype imply more or fewer data bytes than the file holds is refused either way
//!   (numpy writes exactly the data, so any difference means a truncated file or a
//!   header that lies), and so are a header length that points past the end of the file
//!   and shapes whose byte count overflows. Sizes are checked against the file's length
//!   before anything is allocated, so a corrupt header cannot ask for a huge allocation.
//! - [`load_mmap`] maps the file read-only instead of reading it: the array's memory is
//!   the page cache, and `weft.memory()` counts it as mapped. Only files that need no
//!   conversion can be mapped (native byte order, C order or one-row/column, a supported
//!   dtype other than float16, data starting at a multiple of the element size); the
//!   others are refused with an error saying to load them without mmap. As with any
//!   file mapping, a file truncated by another process while mapped makes later reads
//!   fault (SIGBUS), and one rewritten changes elements that are read as immutable: so
//!   `load_mmap` is an `unsafe fn` whose contract is that nobody writes or truncates the
//!   file while the array lives.
//!
//! # What is written
//! [`save`] writes format 1.0 (2.0 only if the header would exceed 65,535 bytes, which
//! no 1-D or 2-D shape reaches), little-endian, C order, with numpy's header
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (N, M), }` padded with spaces and
//! a newline so the data starts on a 64-byte boundary, as numpy pads. The file is written
//! under a temporary name in the same folder, flushed to disk (`fsync`), renamed over
//! `path` and the folder flushed ([`weft_core::files::StagedFile`], weft's one routine for
//! this), so `path` never holds a partial file: on any error the temporary is removed
//! and whatever was at `path` before is untouched (a process killed mid-save leaves at
//! most a hidden `.NAME.weft-pending-…` file beside it). [`write_to`] writes the same
//! bytes to any writer, for callers that stage several files and put them in place
//! together. A symbolic link at `path` is followed:
//! its target is replaced that way and the link stays. A FIFO or a character device
//! (`/dev/null`) is opened and written in place, never renamed over; a directory, a block
//! device or a socket is refused (see [`weft_core::files`]). Elements are read with relaxed atomic loads, the
//! same as [`Array::get`], so saving an array that other threads are writing is defined
//! behaviour (the saved values are then whichever each element held when it was read).
//!
//! # The header parser
//! A small strict parser for the Python literals numpy writes, no `eval`: a dict whose
//! keys are exactly `descr`, `fortran_order` and `shape` (in any order, each once),
//! single- or double-quoted strings, `True`/`False`, non-negative integers (a Python 2
//! `L` suffix allowed), tuples (`()`, `(5,)`, `(5, 3)`), lists (for the structured
//! dtypes numpy describes as `[('x', '<f4'), …]`, parsed only to be refused by name),
//! trailing commas and any whitespace. Nesting is limited, so no input can exhaust the
//! stack; every error quotes the offending part of the header.
//!
//! No input makes these functions panic: the tests flip and truncate bytes of valid
//! files at random and check that each load returns `Ok` or `Err`.
//!
//! # Examples
//!
//! An off-heap array saved to a `.npy` file that [`load`] (a copy) and [`load_mmap`] (a
//! read-only mapping) read back:
//!
//! ```
//! use weft_core::array::{Array, DType, Scalar};
//!
//! let a = Array::zeros(DType::F32, 2, Some(3))?; // 2 rows × 3 columns, zero-filled
//! a.set(4, Scalar::Num(2.5))?; // row 1, column 1 (row-major, 0-based)
//! let path = std::env::temp_dir().join(format!("weft-npy-doc-{}.npy", std::process::id()));
//! weft_npy::save(&a, &path)?;
//! let loaded = weft_npy::load(&path)?;
//! assert_eq!(loaded.note, None); // nothing had to be converted
//! assert_eq!(loaded.array.get(4), Some(Scalar::Num(2.5)));
//! // SAFETY: nothing writes or truncates the file while `mapped` lives.
//! let mapped = unsafe { weft_npy::load_mmap(&path) }?;
//! assert_eq!((mapped.dtype(), mapped.shape()), (DType::F32, (2, Some(3))));
//! std::fs::remove_file(&path)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod header;
mod literal;
mod read;
mod write;

pub use read::{f16_to_f32, load, load_mmap};
pub use write::{save, write_to};

use std::io;
use std::path::{Path, PathBuf};
use weft_core::array::{Array, ArrayError};

/// The first six bytes of every `.npy` file.
pub const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// What the supported-dtype list says in errors.
const SUPPORTED: &str = "<f4 <f8 <i4 <i8 |u1 <u2 <u4 (weft's f32 f64 i32 i64 u8 u16 u32), \
     their big-endian forms, and <f2 which loads as f32";

/// An array read by [`load`], and what had to be converted to make it.
#[derive(Debug)]
pub struct Loaded {
    /// The elements, in a new owned, row-major array.
    pub array: Array,
    /// `None` when the file's bytes are the array's bytes; otherwise what was converted,
    /// e.g. `"converted from float16 to f32; converted from Fortran order"`.
    pub note: Option<String>,
}

/// Why a `.npy` file could not be read or written. Every message starts with the file.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    /// There is no file at the path.
    #[error("{}: no such file", path.display())]
    NotFound {
        /// The file.
        path: PathBuf,
    },
    /// The path names a directory or another non-regular file.
    #[error("{}: {what}, not a .npy file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// "a directory", "not a regular file".
        what: &'static str,
    },
    /// An operating-system error while opening, reading, mapping or writing.
    #[error("{}: cannot {action}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// "open", "read", "map", "write", …
        action: &'static str,
        /// What the system said.
        source: io::Error,
    },
    /// `save` to a path that is neither a regular file, a FIFO nor a character device.
    #[error(
        "{}: cannot write: {what}; weft writes regular files (replaced whole), FIFOs and \
         character devices",
        path.display()
    )]
    NotWritable {
        /// The path.
        path: PathBuf,
        /// What is there: "is a directory", "is a block device", "is a socket".
        what: &'static str,
    },
    /// `save` into a folder that does not exist.
    #[error("{}: cannot write: folder {} does not exist", path.display(), folder.display())]
    NoFolder {
        /// The file that was to be written.
        path: PathBuf,
        /// Its folder.
        folder: PathBuf,
    },
    /// The file does not start with `\x93NUMPY`.
    #[error("{}: not a .npy file (bad magic)", path.display())]
    BadMagic {
        /// The file.
        path: PathBuf,
    },
    /// The file ends inside the preamble or the header.
    #[error("{}: truncated header: {detail}", path.display())]
    TruncatedHeader {
        /// The file.
        path: PathBuf,
        /// Where it ends.
        detail: String,
    },
    /// The header length field is larger than what follows it.
    #[error(
        "{}: header length field says {header_len} bytes but only {available} bytes follow \
         the preamble (truncated file or corrupt header length)",
        path.display()
    )]
    HeaderPastEnd {
        /// The file.
        path: PathBuf,
        /// What the length field says.
        header_len: u64,
        /// Bytes after the preamble.
        available: u64,
    },
    /// A format version other than 1.0, 2.0 and 3.0.
    #[error(
        "{}: unsupported .npy format version {major}.{minor} (weft reads 1.0, 2.0 and 3.0)",
        path.display()
    )]
    Version {
        /// The file.
        path: PathBuf,
        /// Major version byte.
        major: u8,
        /// Minor version byte.
        minor: u8,
    },
    /// The header is not the dict numpy writes.
    #[error("{}: unparsable header: {detail}", path.display())]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong, quoting the offending part.
        detail: String,
    },
    /// A dtype weft has no array type for.
    #[error("{}: unsupported dtype '{descr}' (supported: {SUPPORTED})", path.display())]
    UnsupportedDType {
        /// The file.
        path: PathBuf,
        /// The `descr` as the header writes it.
        descr: String,
    },
    /// A shape other than 1-D or 2-D.
    #[error("{}: unsupported shape {shape}: {why}", path.display())]
    UnsupportedShape {
        /// The file.
        path: PathBuf,
        /// The shape, as Python prints it.
        shape: String,
        /// Why.
        why: String,
    },
    /// The shape's element or byte count does not fit in 64 bits (or this machine's
    /// address space).
    #[error(
        "{}: shape {shape} of {descr} is too large (its byte size overflows)",
        path.display()
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The shape, as Python prints it.
        shape: String,
        /// The dtype.
        descr: String,
    },
    /// The data after the header is not the size the header implies.
    #[error(
        "{}: header says shape {shape} of {descr} = {expected} bytes but the file holds \
         {actual} bytes of data",
        path.display()
    )]
    SizeMismatch {
        /// The file.
        path: PathBuf,
        /// The shape, as Python prints it.
        shape: String,
        /// The dtype.
        descr: String,
        /// Bytes the header implies.
        expected: u64,
        /// Bytes the file holds after the header.
        actual: u64,
    },
    /// `load_mmap` of a file whose bytes need converting.
    #[error("{}: cannot memory-map: {why}; load it without mmap to convert it", path.display())]
    NeedsConversion {
        /// The file.
        path: PathBuf,
        /// What would need converting.
        why: String,
    },
    /// `load_mmap` of a file whose data is not aligned for its elements.
    #[error(
        "{}: cannot memory-map: the data starts at byte {offset}, not a multiple of the \
         {size}-byte element size; load it without mmap",
        path.display()
    )]
    Misaligned {
        /// The file.
        path: PathBuf,
        /// Where the data starts.
        offset: u64,
        /// The element size.
        size: usize,
    },
    /// The array could not be allocated.
    #[error("{}: {source}", path.display())]
    Array {
        /// The file.
        path: PathBuf,
        /// Why.
        source: ArrayError,
    },
}

impl NpyError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            NpyError::NotFound { path }
            | NpyError::NotAFile { path, .. }
            | NpyError::Io { path, .. }
            | NpyError::NoFolder { path, .. }
            | NpyError::NotWritable { path, .. }
            | NpyError::BadMagic { path }
            | NpyError::TruncatedHeader { path, .. }
            | NpyError::HeaderPastEnd { path, .. }
            | NpyError::Version { path, .. }
            | NpyError::BadHeader { path, .. }
            | NpyError::UnsupportedDType { path, .. }
            | NpyError::UnsupportedShape { path, .. }
            | NpyError::TooLarge { path, .. }
            | NpyError::SizeMismatch { path, .. }
            | NpyError::NeedsConversion { path, .. }
            | NpyError::Misaligned { path, .. }
            | NpyError::Array { path, .. } => path,
        }
    }
}

/// Turn an I/O error into an [`NpyError::Io`] naming `path` and what was being done.
fn io_error<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(io::Error) -> NpyError + 'a {
    move |source| NpyError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}
