//! numpy's `.npy` file format, for weft's off-heap [`Array`]s.
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
//!   fault (SIGBUS): map files that are not being rewritten.
//!
//! # What is written
//! [`save`] writes format 1.0 (2.0 only if the header would exceed 65,535 bytes, which
//! no 1-D or 2-D shape reaches), little-endian, C order, with numpy's header
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (N, M), }` padded with spaces and
//! a newline so the data starts on a 64-byte boundary, as numpy pads. The file is written
//! under a temporary name in the same folder, flushed to disk (`fsync`) and renamed over
//! `path`, so `path` never holds a partial file: on any error the temporary is removed
//! and whatever was at `path` before is untouched (a process killed mid-save leaves at
//! most a hidden `.NAME.weft-tmp-…` file beside it). (Renaming replaces a symlink at `path`
//! rather than the file it points to.) Elements are read with relaxed atomic loads, the
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

use crate::array::{Array, ArrayError, DType};
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};

/// The first six bytes of every `.npy` file.
pub const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// numpy pads headers so the data starts at a multiple of this.
const HEADER_ALIGN: usize = 64;

/// What the supported-dtype list says in errors.
const SUPPORTED: &str = "<f4 <f8 <i4 <i8 |u1 <u2 <u4 (weft's f32 f64 i32 i64 u8 u16 u32), \
     their big-endian forms, and <f2 which loads as f32";

/// The byte order of this machine, which arrays in memory use.
const HOST_BIG_ENDIAN: bool = cfg!(target_endian = "big");

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

fn io_error<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(io::Error) -> NpyError + 'a {
    move |source| NpyError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

// ---------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------

/// How elements are stored in the file.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Source {
    /// Stored as the dtype itself (possibly in the other byte order).
    Plain(DType),
    /// IEEE half precision, loaded as f32.
    F16,
}

impl Source {
    fn size(self) -> usize {
        match self {
            Source::Plain(d) => d.size(),
            Source::F16 => 2,
        }
    }

    fn target(self) -> DType {
        match self {
            Source::Plain(d) => d,
            Source::F16 => DType::F32,
        }
    }
}

/// A validated header: everything needed to read the data.
#[derive(Debug)]
struct Header {
    /// The dtype as written, for messages.
    descr: String,
    source: Source,
    /// The file's bytes are big-endian (irrelevant for one-byte elements).
    big_endian: bool,
    fortran_order: bool,
    rows: usize,
    cols: Option<usize>,
    /// Where the data starts.
    data_offset: u64,
    /// How many bytes of data follow (checked against the file's length).
    data_bytes: u64,
}

impl Header {
    /// Whether the file's byte order differs from memory's.
    fn needs_swap(&self) -> bool {
        self.source.size() > 1 && self.big_endian != HOST_BIG_ENDIAN
    }

    /// Whether the file's element order differs from row-major.
    fn needs_transpose(&self) -> bool {
        self.fortran_order && matches!(self.cols, Some(c) if c > 1 && self.rows > 1)
    }
}

/// Open `path` for reading and return it with its length.
fn open(path: &Path) -> Result<(File, u64), NpyError> {
    let file = File::open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            NpyError::NotFound {
                path: path.to_path_buf(),
            }
        } else {
            io_error(path, "open")(e)
        }
    })?;
    let meta = file.metadata().map_err(io_error(path, "read"))?;
    if meta.is_dir() {
        return Err(NpyError::NotAFile {
            path: path.to_path_buf(),
            what: "a directory",
        });
    }
    if !meta.is_file() {
        return Err(NpyError::NotAFile {
            path: path.to_path_buf(),
            what: "not a regular file",
        });
    }
    Ok((file, meta.len()))
}

/// Read into `buf` until it is full or the file ends; the count read.
fn read_up_to(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Read and check the preamble and header; leaves `file` at the start of the data.
fn read_header(file: &mut File, path: &Path, file_len: u64) -> Result<Header, NpyError> {
    let mut pre = [0u8; 12];
    let got = read_up_to(file, &mut pre).map_err(io_error(path, "read"))?;
    let magic_part = got.min(MAGIC.len());
    if got == 0 || pre[..magic_part] != MAGIC[..magic_part] {
        return Err(NpyError::BadMagic {
            path: path.to_path_buf(),
        });
    }
    if got < 8 {
        return Err(NpyError::TruncatedHeader {
            path: path.to_path_buf(),
            detail: format!("the file ends after {got} bytes, before the format version"),
        });
    }
    let (major, minor) = (pre[6], pre[7]);
    let len_bytes = match (major, minor) {
        (1, 0) => 2,
        (2, 0) | (3, 0) => 4,
        _ => {
            return Err(NpyError::Version {
                path: path.to_path_buf(),
                major,
                minor,
            })
        }
    };
    let preamble = 8 + len_bytes;
    if got < preamble {
        return Err(NpyError::TruncatedHeader {
            path: path.to_path_buf(),
            detail: format!(
                "the file ends after {got} bytes, inside the {preamble}-byte preamble of a \
                 version {major}.{minor} file"
            ),
        });
    }
    let header_len = if len_bytes == 2 {
        u64::from(u16::from_le_bytes([pre[8], pre[9]]))
    } else {
        u64::from(u32::from_le_bytes([pre[8], pre[9], pre[10], pre[11]]))
    };
    let available = file_len.max(got as u64) - preamble as u64;
    if header_len > available {
        return Err(NpyError::HeaderPastEnd {
            path: path.to_path_buf(),
            header_len,
            available,
        });
    }
    // Bytes read past the preamble (a version 1.0 file's first two header bytes).
    let mut raw = pre[preamble..got].to_vec();
    raw.truncate(header_len as usize);
    let already = raw.len();
    // header_len ≤ the file's length, so this allocation is bounded by the file.
    raw.resize(header_len as usize, 0);
    let filled = read_up_to(file, &mut raw[already..]).map_err(io_error(path, "read"))?;
    if already + filled < raw.len() {
        return Err(NpyError::TruncatedHeader {
            path: path.to_path_buf(),
            detail: format!(
                "the header should be {header_len} bytes but the file ends after {} of them \
                 (did it shrink while being read?)",
                already + filled
            ),
        });
    }
    // Put the file at the data: the preamble read may have run past a tiny header.
    let data_offset = preamble as u64 + header_len;
    file.seek(io::SeekFrom::Start(data_offset))
        .map_err(io_error(path, "read"))?;

    let text: String = if major >= 3 {
        String::from_utf8(raw).map_err(|e| NpyError::BadHeader {
            path: path.to_path_buf(),
            detail: format!(
                "a version 3.0 header must be UTF-8, but byte {} is not",
                e.utf8_error().valid_up_to()
            ),
        })?
    } else {
        // Versions 1.0 and 2.0 are latin-1: every byte is the code point of the same value.
        raw.iter().map(|&b| char::from(b)).collect()
    };
    let bad = |detail: String| NpyError::BadHeader {
        path: path.to_path_buf(),
        detail,
    };

    let fields = parse_header(&text).map_err(|e| bad(e.describe(&text)))?;

    let (descr, source, big_endian) = match &fields.descr.lit {
        Lit::Str(descr) => match parse_descr(descr) {
            Some((source, big_endian)) => (descr.clone(), source, big_endian),
            None => {
                return Err(NpyError::UnsupportedDType {
                    path: path.to_path_buf(),
                    descr: descr.clone(),
                })
            }
        },
        // A structured dtype, described as a list of fields.
        Lit::List(_) => {
            return Err(NpyError::UnsupportedDType {
                path: path.to_path_buf(),
                descr: fields.descr.text(&text).to_string(),
            })
        }
        _ => {
            return Err(bad(format!(
                "'descr' must be a string, got {}",
                quote(fields.descr.text(&text))
            )))
        }
    };
    let fortran_order = match fields.fortran_order.lit {
        Lit::Bool(b) => b,
        _ => {
            return Err(bad(format!(
                "'fortran_order' must be True or False, got {}",
                quote(fields.fortran_order.text(&text))
            )))
        }
    };
    let dims: Vec<u64> = match &fields.shape.lit {
        Lit::Tuple(items) => items
            .iter()
            .map(|item| match item.lit {
                Lit::Int(n) => u64::try_from(n).map_err(|_| {
                    bad(format!(
                        "'shape' must hold non-negative integers that fit in 64 bits, got {}",
                        quote(fields.shape.text(&text))
                    ))
                }),
                _ => Err(bad(format!(
                    "'shape' must hold integers, got {}",
                    quote(fields.shape.text(&text))
                ))),
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(bad(format!(
                "'shape' must be a tuple such as (5,) or (5, 3), got {}",
                quote(fields.shape.text(&text))
            )))
        }
    };
    let shape = python_shape(&dims);
    if dims.is_empty() || dims.len() > 2 {
        let why = if dims.is_empty() {
            "a 0-D scalar; weft arrays are 1-D or 2-D".to_string()
        } else {
            format!("{} dimensions; weft arrays are 1-D or 2-D", dims.len())
        };
        return Err(NpyError::UnsupportedShape {
            path: path.to_path_buf(),
            shape,
            why,
        });
    }
    let too_large = || NpyError::TooLarge {
        path: path.to_path_buf(),
        shape: shape.clone(),
        descr: descr.clone(),
    };
    // numpy's dimensions are signed 64-bit (npy_intp); larger ones are never real.
    if dims.iter().any(|&d| d > i64::MAX as u64) {
        return Err(too_large());
    }
    let expected = dims
        .iter()
        .try_fold(source.size() as u64, |acc, &d| acc.checked_mul(d))
        .filter(|&b| usize::try_from(b).is_ok())
        .ok_or_else(too_large)?;
    // Each dimension is at most the byte count, which fits in usize (checked above);
    // a zero dimension makes any other dimension allowed, so convert them one by one.
    let rows = usize::try_from(dims[0]).map_err(|_| too_large())?;
    let cols = match dims.get(1) {
        Some(&c) => Some(usize::try_from(c).map_err(|_| too_large())?),
        None => None,
    };
    let actual = file_len.saturating_sub(data_offset);
    if actual != expected {
        return Err(NpyError::SizeMismatch {
            path: path.to_path_buf(),
            shape,
            descr,
            expected,
            actual,
        });
    }
    Ok(Header {
        descr,
        source,
        big_endian,
        fortran_order,
        rows,
        cols,
        data_offset,
        data_bytes: expected,
    })
}

/// The element encoding and byte order (`true` = big-endian) a `descr` names.
fn parse_descr(descr: &str) -> Option<(Source, bool)> {
    let mut chars = descr.chars();
    let order = chars.next()?;
    let code = chars.as_str();
    let source = match code {
        "f2" => Source::F16,
        "f4" => Source::Plain(DType::F32),
        "f8" => Source::Plain(DType::F64),
        "i4" => Source::Plain(DType::I32),
        "i8" => Source::Plain(DType::I64),
        "u1" => Source::Plain(DType::U8),
        "u2" => Source::Plain(DType::U16),
        "u4" => Source::Plain(DType::U32),
        _ => return None,
    };
    // numpy writes '|' (not applicable) for one-byte types and '<' or '>' for the others;
    // '=' (native order of an unknown writer) is not something it writes to files.
    let big = match (order, source.size()) {
        ('<', _) => false,
        ('>', _) => true,
        ('|', 1) => false,
        _ => return None,
    };
    Some((source, big))
}

/// A shape as Python prints it: `()`, `(5,)`, `(5, 3)`.
fn python_shape(dims: &[u64]) -> String {
    match dims {
        [] => "()".to_string(),
        [d] => format!("({d},)"),
        _ => {
            let parts: Vec<String> = dims.iter().map(u64::to_string).collect();
            format!("({})", parts.join(", "))
        }
    }
}

/// Read a whole `.npy` file into a new owned array, converting big-endian, Fortran-order
/// and float16 data (see the module documentation).
pub fn load(path: &Path) -> Result<Loaded, NpyError> {
    let (mut file, file_len) = open(path)?;
    let header = read_header(&mut file, path, file_len)?;
    let alloc = |source| NpyError::Array {
        path: path.to_path_buf(),
        source,
    };
    let target = header.source.target();
    let transpose = header.needs_transpose();
    // The file holds a row-major (cols × rows) array when it is in Fortran order.
    let (disk_rows, disk_cols) = if transpose {
        (header.cols.unwrap_or(1), Some(header.rows))
    } else {
        (header.rows, header.cols)
    };
    let mut disk = Array::zeros(target, disk_rows, disk_cols).map_err(alloc)?;
    read_data(&mut file, path, &header, &mut disk)?;

    let mut notes = Vec::new();
    if header.source == Source::F16 {
        notes.push("converted from float16 to f32".to_string());
    }
    if header.needs_swap() {
        let from = if header.big_endian { "big" } else { "little" };
        notes.push(format!("converted from {from}-endian"));
    }
    let array = if transpose {
        let mut out = Array::zeros(target, header.rows, header.cols).map_err(alloc)?;
        let rows = header.rows;
        let cols = header.cols.unwrap_or(1);
        // SAFETY: `disk` and `out` were just created by Array::zeros and are not shared.
        let (src, dst) = unsafe { (fresh_bytes(&mut disk), fresh_bytes(&mut out)) };
        match target.size() {
            1 => transpose_into::<1>(src, dst, rows, cols),
            2 => transpose_into::<2>(src, dst, rows, cols),
            4 => transpose_into::<4>(src, dst, rows, cols),
            _ => transpose_into::<8>(src, dst, rows, cols),
        }
        notes.push("converted from Fortran order".to_string());
        out
    } else {
        disk
    };
    let note = (!notes.is_empty()).then(|| notes.join("; "));
    Ok(Loaded { array, note })
}

/// The bytes of an array that was just allocated.
///
/// # Safety
/// `array` was created by [`Array::zeros`] and no clone or view of it exists, so nothing
/// else reads or writes its memory while the slice is alive.
unsafe fn fresh_bytes(array: &mut Array) -> &mut [u8] {
    // SAFETY: an owned array's storage is writable, holds byte_len() bytes from as_ptr(),
    // and the caller guarantees exclusive access; the `&mut` borrow keeps it exclusive.
    unsafe { std::slice::from_raw_parts_mut(array.as_ptr() as *mut u8, array.byte_len()) }
}

/// Fill `out` (row-major, the file's element order) from the data at `file`'s position.
fn read_data(
    file: &mut File,
    path: &Path,
    header: &Header,
    out: &mut Array,
) -> Result<(), NpyError> {
    let short = |got: usize, want: usize| NpyError::Io {
        path: path.to_path_buf(),
        action: "read",
        source: io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the file ended after {got} of {want} data bytes (did it shrink?)"),
        ),
    };
    // SAFETY: `out` was just created by the caller with Array::zeros and is not shared.
    let bytes = unsafe { fresh_bytes(out) };
    match header.source {
        Source::Plain(dtype) => {
            let got = read_up_to(file, bytes).map_err(io_error(path, "read"))?;
            if got < bytes.len() {
                return Err(short(got, bytes.len()));
            }
            if header.needs_swap() {
                for element in bytes.chunks_exact_mut(dtype.size()) {
                    element.reverse();
                }
            }
        }
        Source::F16 => {
            let want = bytes.len() / 2;
            let mut buf = vec![0u8; 1 << 16];
            let mut done = 0; // f32 elements written
            for out_chunk in bytes.chunks_mut(buf.len() * 2) {
                let n = out_chunk.len() / 4;
                let got = read_up_to(file, &mut buf[..n * 2]).map_err(io_error(path, "read"))?;
                if got < n * 2 {
                    return Err(short(done * 2 + got, want));
                }
                for (half, single) in buf[..n * 2]
                    .chunks_exact(2)
                    .zip(out_chunk.chunks_exact_mut(4))
                {
                    let bits = if header.big_endian {
                        u16::from_be_bytes([half[0], half[1]])
                    } else {
                        u16::from_le_bytes([half[0], half[1]])
                    };
                    single.copy_from_slice(&f16_to_f32(bits).to_ne_bytes());
                }
                done += n;
            }
        }
    }
    Ok(())
}

/// Widen an IEEE 754 half-precision value to f32 (exact for every input; NaN payloads are
/// kept in the high mantissa bits).
pub fn f16_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits >> 15) << 31;
    let exponent = u32::from((bits >> 10) & 0x1f);
    let mantissa = u32::from(bits & 0x3ff);
    let magnitude = match (exponent, mantissa) {
        (0, 0) => 0,
        // Subnormal: mantissa × 2⁻²⁴, a normal f32 (the product is exact).
        (0, m) => (m as f32 * f32::from_bits(0x3380_0000)).to_bits(),
        (0x1f, m) => 0x7f80_0000 | (m << 13),
        (e, m) => ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(sign | magnitude)
}

/// `dst[i][j] = src[j][i]`: `src` is a row-major `cols × rows` array of `S`-byte elements
/// (a Fortran-order `rows × cols` one), `dst` the row-major `rows × cols` result.
fn transpose_into<const S: usize>(src: &[u8], dst: &mut [u8], rows: usize, cols: usize) {
    const TILE: usize = 32;
    for i0 in (0..rows).step_by(TILE) {
        for j0 in (0..cols).step_by(TILE) {
            for i in i0..(i0 + TILE).min(rows) {
                for j in j0..(j0 + TILE).min(cols) {
                    let s = (j * rows + i) * S;
                    let d = (i * cols + j) * S;
                    dst[d..d + S].copy_from_slice(&src[s..s + S]);
                }
            }
        }
    }
}

/// Map a `.npy` file read-only without reading its data. Only files whose bytes are
/// already the array's bytes can be mapped; the others are refused with an error saying
/// to load them without mmap.
pub fn load_mmap(path: &Path) -> Result<Array, NpyError> {
    let (mut file, file_len) = open(path)?;
    let header = read_header(&mut file, path, file_len)?;
    let refuse = |why: String| NpyError::NeedsConversion {
        path: path.to_path_buf(),
        why,
    };
    if header.source == Source::F16 {
        return Err(refuse(format!(
            "the file holds float16 ('{}'), which weft converts to f32",
            header.descr
        )));
    }
    if header.needs_swap() {
        let order = if header.big_endian { "big" } else { "little" };
        return Err(refuse(format!(
            "the file is {order}-endian ('{}')",
            header.descr
        )));
    }
    if header.needs_transpose() {
        return Err(refuse(
            "the file is in Fortran (column-major) order".to_string(),
        ));
    }
    let dtype = header.source.target();
    if header.data_offset % dtype.size() as u64 != 0 {
        return Err(NpyError::Misaligned {
            path: path.to_path_buf(),
            offset: header.data_offset,
            size: dtype.size(),
        });
    }
    // SAFETY: the mapping is read-only and weft never writes through it. Another process
    // truncating or rewriting the file while it is mapped would change or fault the
    // elements; the module documentation tells users to map only files at rest.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_error(path, "map"))?;
    let expected_len = header.data_offset + header.data_bytes;
    if map.len() as u64 != expected_len {
        return Err(NpyError::Io {
            path: path.to_path_buf(),
            action: "map",
            source: io::Error::other(format!(
                "the file changed size while being opened ({} bytes, expected {expected_len})",
                map.len()
            )),
        });
    }
    // data_offset ≤ map.len(), which is a usize.
    let offset = header.data_offset as usize;
    Array::from_mapping(
        map,
        path.display().to_string(),
        offset,
        dtype,
        header.rows,
        header.cols,
    )
    .map_err(|source| NpyError::Array {
        path: path.to_path_buf(),
        source,
    })
}

// ---------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------

/// numpy's name for a dtype, little-endian.
fn descr_of(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "<f4",
        DType::F64 => "<f8",
        DType::I32 => "<i4",
        DType::I64 => "<i8",
        DType::U8 => "|u1",
        DType::U16 => "<u2",
        DType::U32 => "<u4",
    }
}

/// The preamble and padded header numpy would write for this array.
fn header_bytes(array: &Array) -> Vec<u8> {
    let shape = match array.shape() {
        (rows, None) => format!("({rows},)"),
        (rows, Some(cols)) => format!("({rows}, {cols})"),
    };
    let dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}",
        descr_of(array.dtype())
    );
    for (major, len_bytes, limit) in [
        (1u8, 2usize, u64::from(u16::MAX)),
        (2, 4, u64::from(u32::MAX)),
    ] {
        let preamble = 8 + len_bytes;
        // Spaces, then a newline, so preamble + header is a multiple of HEADER_ALIGN.
        let unpadded = preamble + dict.len() + 1;
        let padding = (HEADER_ALIGN - unpadded % HEADER_ALIGN) % HEADER_ALIGN;
        let header_len = dict.len() + padding + 1;
        if header_len as u64 > limit {
            continue;
        }
        let mut out = Vec::with_capacity(preamble + header_len);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[major, 0]);
        if len_bytes == 2 {
            out.extend_from_slice(&(header_len as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&(header_len as u32).to_le_bytes());
        }
        out.extend_from_slice(dict.as_bytes());
        out.resize(out.len() + padding, b' ');
        out.push(b'\n');
        return out;
    }
    unreachable!("a 1-D or 2-D shape's header is far below 4 GiB")
}

/// Append elements `first..last` of `array` to `out` as little-endian bytes, reading each
/// with a relaxed atomic load (concurrent writers are defined behaviour, as for Array::get).
fn append_le(array: &Array, first: usize, last: usize, out: &mut Vec<u8>) {
    let size = array.dtype().size();
    let base = array.as_ptr();
    out.reserve((last - first) * size);
    for i in first..last {
        // SAFETY: i < array.len(), so the element lies inside the array's storage; every
        // view is aligned for its element size (owned storage is 64-byte aligned, rows
        // start at multiples of the element size, mappings are checked); the storage
        // outlives `array`, which we borrow. Atomic loads make racing writers defined.
        unsafe {
            let p = base.add(i * size);
            match size {
                1 => out.push((*(p as *const AtomicU8)).load(Ordering::Relaxed)),
                2 => out.extend_from_slice(
                    &(*(p as *const AtomicU16))
                        .load(Ordering::Relaxed)
                        .to_le_bytes(),
                ),
                4 => out.extend_from_slice(
                    &(*(p as *const AtomicU32))
                        .load(Ordering::Relaxed)
                        .to_le_bytes(),
                ),
                _ => out.extend_from_slice(
                    &(*(p as *const AtomicU64))
                        .load(Ordering::Relaxed)
                        .to_le_bytes(),
                ),
            }
        }
    }
}

/// A name for the temporary file beside `path`, unique within this process.
fn temporary_name(path: &Path, attempt: u32) -> Option<PathBuf> {
    use std::sync::atomic::AtomicU64 as Counter;
    static NEXT: Counter = Counter::new(0);
    let name = path.file_name()?;
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    let mut suffix = String::new();
    let _ = write!(
        suffix,
        ".weft-tmp-{}-{}-{attempt}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    tmp.push(suffix);
    Some(path.with_file_name(tmp))
}

/// Write `array` to `path` as a `.npy` file (format 1.0, little-endian, C order), through
/// a temporary file in the same folder renamed into place, so `path` never holds a
/// partial file. Errors name `path`.
pub fn save(array: &Array, path: &Path) -> Result<(), NpyError> {
    let write_error = io_error(path, "write");
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let header = header_bytes(array);

    // Create the temporary (a fresh name if a stale one is in the way).
    let mut attempt = 0;
    let (tmp, mut file) = loop {
        let tmp = temporary_name(path, attempt).ok_or_else(|| NpyError::Io {
            path: path.to_path_buf(),
            action: "write",
            source: io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"),
        })?;
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(file) => break (tmp, file),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 16 => attempt += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !folder.is_dir() => {
                return Err(NpyError::NoFolder {
                    path: path.to_path_buf(),
                    folder,
                })
            }
            Err(e) => return Err(write_error(e)),
        }
    };

    let written = (|| -> io::Result<()> {
        file.write_all(&header)?;
        let size = array.dtype().size();
        let per_chunk = (1 << 20) / size;
        let mut buf = Vec::with_capacity(per_chunk * size);
        let mut first = 0;
        while first < array.len() {
            let last = (first + per_chunk).min(array.len());
            buf.clear();
            append_le(array, first, last, &mut buf);
            file.write_all(&buf)?;
            first = last;
        }
        file.sync_all()
    })();
    drop(file);
    let renamed = written.and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = renamed {
        let _ = std::fs::remove_file(&tmp);
        return Err(write_error(e));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The header parser
// ---------------------------------------------------------------------------------------

/// A Python literal.
#[derive(Debug, PartialEq)]
enum Lit {
    Str(String),
    Int(i128),
    Bool(bool),
    None,
    Tuple(Vec<Node>),
    List(Vec<Node>),
    Dict(Vec<(Node, Node)>),
}

/// A literal and where it is in the header text (byte offsets).
#[derive(Debug, PartialEq)]
struct Node {
    lit: Lit,
    start: usize,
    end: usize,
}

impl Node {
    fn text<'a>(&self, header: &'a str) -> &'a str {
        &header[self.start..self.end]
    }
}

/// The three entries of a header dict.
struct Fields {
    descr: Node,
    fortran_order: Node,
    shape: Node,
}

/// A parse failure at a byte offset.
#[derive(Debug)]
struct ParseError {
    message: String,
    at: usize,
}

impl ParseError {
    /// The message with the header text at the failure quoted.
    fn describe(&self, header: &str) -> String {
        let at = self.at.min(header.len());
        // Up to 24 characters from the failure, without the header's padding.
        let tail = header[at..].trim_end();
        let rest: String = tail.chars().take(24).collect();
        let more = if tail.chars().nth(24).is_some() {
            "…"
        } else {
            ""
        };
        if rest.is_empty() {
            format!("{} at the end of the header", self.message)
        } else {
            format!("{} at {:?}{more}", self.message, rest)
        }
    }
}

/// Quote a piece of header text for a message.
fn quote(text: &str) -> String {
    if text.chars().count() > 60 {
        let head: String = text.chars().take(60).collect();
        format!("{head:?}…")
    } else {
        format!("{text:?}")
    }
}

const MAX_DEPTH: usize = 16;

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn fail<T>(&self, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            message: message.into(),
            at: self.pos,
        })
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    fn value(&mut self) -> Result<Node, ParseError> {
        self.skip_ws();
        let start = self.pos;
        let lit = match self.peek() {
            None => return self.fail("expected a value"),
            Some('\'') | Some('"') => Lit::Str(self.string()?),
            Some('(') => return self.nested(start, '(', ')'),
            Some('[') => return self.nested(start, '[', ']'),
            Some('{') => return self.nested(start, '{', '}'),
            Some(c) if c.is_ascii_digit() || c == '-' || c == '+' => Lit::Int(self.int()?),
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let word_len = self.text[self.pos..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(self.text.len() - self.pos);
                let word = &self.text[self.pos..self.pos + word_len];
                let lit = match word {
                    "True" => Lit::Bool(true),
                    "False" => Lit::Bool(false),
                    "None" => Lit::None,
                    _ => return self.fail(format!("unexpected name '{word}'")),
                };
                self.pos += word_len;
                lit
            }
            Some(_) => return self.fail("expected a value"),
        };
        Ok(Node {
            lit,
            start,
            end: self.pos,
        })
    }

    fn string(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        let quote = self.peek().unwrap_or('\'');
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                self.pos = start;
                return self.fail("unterminated string");
            };
            self.pos += c.len_utf8();
            match c {
                c if c == quote => return Ok(out),
                '\n' | '\r' => {
                    self.pos = start;
                    return self.fail("unterminated string");
                }
                '\\' => {
                    let escaped = match self.peek() {
                        Some('\\') => '\\',
                        Some('\'') => '\'',
                        Some('"') => '"',
                        Some('n') => '\n',
                        Some('t') => '\t',
                        Some('r') => '\r',
                        _ => {
                            self.pos -= 1;
                            return self.fail("unsupported escape in a string");
                        }
                    };
                    self.pos += 1;
                    out.push(escaped);
                }
                c => out.push(c),
            }
        }
    }

    fn int(&mut self) -> Result<i128, ParseError> {
        let start = self.pos;
        let negative = match self.peek() {
            Some('-') => {
                self.pos += 1;
                true
            }
            Some('+') => {
                self.pos += 1;
                false
            }
            _ => false,
        };
        let digits_start = self.pos;
        let mut value: i128 = 0;
        while let Some(c) = self.peek().filter(char::is_ascii_digit) {
            let digit = i128::from(c as u8 - b'0');
            value = match value.checked_mul(10).and_then(|v| v.checked_add(digit)) {
                Some(v) => v,
                None => {
                    self.pos = start;
                    return self.fail("integer too large");
                }
            };
            self.pos += 1;
        }
        if self.pos == digits_start {
            return self.fail("expected digits");
        }
        // Python 2's long suffix, as numpy under Python 2 wrote shapes: (3L, 4L).
        if matches!(self.peek(), Some('L') | Some('l')) {
            self.pos += 1;
        }
        if matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == '.' || c == '_') {
            return self.fail("expected an integer");
        }
        Ok(if negative { -value } else { value })
    }

    /// A tuple, list or dict; `(x)` without a comma is `x` in parentheses, as in Python.
    fn nested(&mut self, start: usize, open: char, close: char) -> Result<Node, ParseError> {
        if self.depth >= MAX_DEPTH {
            return self.fail("nested too deeply");
        }
        self.depth += 1;
        self.pos += 1; // the opening bracket
        let mut items = Vec::new();
        let mut pairs = Vec::new();
        let mut saw_comma = false;
        loop {
            self.skip_ws();
            if self.peek() == Some(close) {
                self.pos += 1;
                break;
            }
            if open == '{' {
                let key = self.value()?;
                self.skip_ws();
                if self.peek() != Some(':') {
                    return self.fail(format!(
                        "expected ':' after the key {}",
                        quote(key.text(self.text))
                    ));
                }
                self.pos += 1;
                let value = self.value()?;
                pairs.push((key, value));
            } else {
                items.push(self.value()?);
            }
            self.skip_ws();
            match self.peek() {
                Some(',') => {
                    self.pos += 1;
                    saw_comma = true;
                }
                Some(c) if c == close => {}
                _ => return self.fail(format!("expected ',' or '{close}'")),
            }
        }
        self.depth -= 1;
        let lit = match open {
            '(' if items.len() == 1 && !saw_comma => {
                let inner = items.pop().expect("one item");
                return Ok(Node {
                    lit: inner.lit,
                    start,
                    end: self.pos,
                });
            }
            '(' => Lit::Tuple(items),
            '[' => Lit::List(items),
            _ => Lit::Dict(pairs),
        };
        Ok(Node {
            lit,
            start,
            end: self.pos,
        })
    }
}

/// Parse a header into its three fields, refusing anything but numpy's dict.
fn parse_header(text: &str) -> Result<Fields, ParseError> {
    let mut p = Parser {
        text,
        pos: 0,
        depth: 0,
    };
    p.skip_ws();
    if p.peek() != Some('{') {
        return p.fail("expected the header to be a dict starting with '{'");
    }
    let dict = p.value()?;
    p.skip_ws();
    if p.pos < text.len() {
        return p.fail("unexpected text after the header dict");
    }
    let Lit::Dict(pairs) = dict.lit else {
        unreachable!("a '{{' starts a dict")
    };
    let (mut descr, mut fortran_order, mut shape) = (None, None, None);
    for (key, value) in pairs {
        let at = key.start;
        let fail = |message: String| Err(ParseError { message, at });
        let Lit::Str(name) = &key.lit else {
            return fail(format!("key {} is not a string", quote(key.text(text))));
        };
        let slot = match name.as_str() {
            "descr" => &mut descr,
            "fortran_order" => &mut fortran_order,
            "shape" => &mut shape,
            _ => {
                return fail(format!(
                    "unexpected key '{name}' (numpy writes only 'descr', 'fortran_order' \
                     and 'shape')"
                ))
            }
        };
        if slot.is_some() {
            return fail(format!("duplicate key '{name}'"));
        }
        *slot = Some(value);
    }
    let missing = |name: &str| ParseError {
        message: format!("missing key '{name}'"),
        at: 0,
    };
    Ok(Fields {
        descr: descr.ok_or_else(|| missing("descr"))?,
        fortran_order: fortran_order.ok_or_else(|| missing("fortran_order"))?,
        shape: shape.ok_or_else(|| missing("shape"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> Result<(String, bool, Vec<i128>), String> {
        let f = parse_header(text).map_err(|e| e.describe(text))?;
        let Lit::Str(d) = f.descr.lit else {
            return Err("descr".into());
        };
        let Lit::Bool(fo) = f.fortran_order.lit else {
            return Err("fortran".into());
        };
        let Lit::Tuple(items) = f.shape.lit else {
            return Err("shape".into());
        };
        let dims = items
            .into_iter()
            .map(|n| match n.lit {
                Lit::Int(i) => i,
                _ => -999,
            })
            .collect();
        Ok((d, fo, dims))
    }

    #[test]
    fn parses_what_numpy_writes_and_reasonable_variants() {
        let want = ("<f4".to_string(), false, vec![100, 384]);
        for text in [
            "{'descr': '<f4', 'fortran_order': False, 'shape': (100, 384), }          \n",
            "{'shape': (100, 384), 'fortran_order': False, 'descr': '<f4'}",
            "{\"descr\":\"<f4\",\"fortran_order\":False,\"shape\":(100,384,),}",
            " { 'descr' : '<f4' ,\n\t'fortran_order' : False , 'shape' : ( 100 , 384 ) , } ",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (100L, 384L), }",
        ] {
            assert_eq!(fields(text).unwrap(), want, "{text:?}");
        }
        assert_eq!(
            fields("{'descr': '|u1', 'fortran_order': True, 'shape': (5,), }").unwrap(),
            ("|u1".to_string(), true, vec![5])
        );
        assert_eq!(
            fields("{'descr': '<f8', 'fortran_order': False, 'shape': (), }").unwrap(),
            ("<f8".to_string(), false, vec![])
        );
        // `(5)` is the integer 5, not a tuple, so the shape check refuses it.
        assert_eq!(
            fields("{'descr': '<f8', 'fortran_order': False, 'shape': (5)}"),
            Err("shape".to_string())
        );
    }

    #[test]
    fn refuses_what_numpy_does_not_write() {
        for (text, needle) in [
            ("", "expected the header to be a dict"),
            (
                "{'descr': '<f4', 'fortran_order': False}",
                "missing key 'shape'",
            ),
            (
                "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': ()}",
                "duplicate key 'descr'",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (), 'extra': 1}",
                "unexpected key 'extra'",
            ),
            ("{'descr' '<f4'}", "expected ':' after the key \"'descr'\""),
            ("{'descr': '<f4}", "unterminated string"),
            (
                "{'descr': '<f4', 'fortran_order': false}",
                "unexpected name 'false'",
            ),
            ("{'descr': '<f4', 'shape': (3.5,)}", "expected an integer"),
            (
                "{'descr': '<f4', 'shape': (99999999999999999999999999999999999999999,)}",
                "integer too large",
            ),
            ("{'descr': '<f4', 'shape': (3 4)}", "expected ',' or ')'"),
            (
                "{'descr': '<f4'} trailing",
                "unexpected text after the header dict",
            ),
            ("{1: 2}", "key \"1\" is not a string"),
            (
                "{'descr': ((((((((((((((((((((1))))))))))))))))))))}",
                "nested too deeply",
            ),
            ("{'descr': '\\x41'}", "unsupported escape"),
        ] {
            let err = fields(text).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn descrs() {
        assert_eq!(parse_descr("<f4"), Some((Source::Plain(DType::F32), false)));
        assert_eq!(parse_descr(">u4"), Some((Source::Plain(DType::U32), true)));
        assert_eq!(parse_descr("|u1"), Some((Source::Plain(DType::U8), false)));
        assert_eq!(parse_descr(">f2"), Some((Source::F16, true)));
        for bad in [
            "", "<", "|f4", "=f4", "<i1", "|i1", "<u8", "|b1", "<U5", "|O", "<f4 ",
        ] {
            assert_eq!(parse_descr(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn float16_widening_is_exact() {
        assert_eq!(f16_to_f32(0x0000).to_bits(), 0);
        assert_eq!(f16_to_f32(0x8000).to_bits(), 0x8000_0000);
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x03ff), 1023.0 * 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x0400), 2f32.powi(-14));
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert_eq!(f16_to_f32(0xfc00), f32::NEG_INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        // Every value round-trips through an f32 → f16 narrowing by truncation of the
        // low 13 mantissa bits (normals) — a consistency check over all 65,536 inputs.
        for bits in 0..=u16::MAX {
            let f = f16_to_f32(bits);
            let exponent = (bits >> 10) & 0x1f;
            if exponent != 0 && exponent != 0x1f {
                let b = f.to_bits();
                assert_eq!(b & 0x1fff, 0);
                let back = ((b >> 16) & 0x8000) as u16
                    | ((((b >> 23) & 0xff) - 112) << 10) as u16
                    | ((b >> 13) & 0x3ff) as u16;
                assert_eq!(back, bits);
            }
        }
    }

    #[test]
    fn saved_header_is_padded_to_64_bytes() {
        for (rows, cols) in [(0, None), (7, None), (3, Some(4)), (1000, Some(1000))] {
            let a = Array::zeros(DType::U8, rows, cols).unwrap();
            let h = header_bytes(&a);
            assert_eq!(h.len() % 64, 0);
            assert_eq!(&h[..8], b"\x93NUMPY\x01\x00");
            assert_eq!(*h.last().unwrap(), b'\n');
            let len = u16::from_le_bytes([h[8], h[9]]) as usize;
            assert_eq!(len + 10, h.len());
        }
    }
}
