//! Writing `.npy` files: [`save`] writes numpy's header and the elements to a temporary
//! file beside the target, flushes it and renames it into place (or, for a FIFO or a
//! character device, writes them in place).

use crate::{io_error, NpyError, MAGIC};
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};
use weft_core::array::{Array, DType};
use weft_core::files::{folder_of, output_target, OutputTarget, StagedFile};

/// numpy pads headers so the data starts at a multiple of this.
const HEADER_ALIGN: usize = 64;

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

/// Write `array` to `path` as a `.npy` file (format 1.0, little-endian, C order). Errors
/// name `path`.
///
/// A regular file (or nothing) at `path` is replaced atomically: the file is written under
/// a temporary name in the same folder, synced and renamed into place, and the folder
/// synced, so `path` never holds a partial file. A symbolic link is followed and its target replaced that way (the
/// link stays). A FIFO or a character device (`/dev/null`) is opened and written in place,
/// never renamed over. A directory, block device or socket is refused.
pub fn save(array: &Array, path: &Path) -> Result<(), NpyError> {
    let target = output_target(path).map_err(io_error(path, "write"))?;
    match target {
        OutputTarget::Replace(end) => save_replacing(array, path, &end),
        OutputTarget::WriteThrough => {
            let mut file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(io_error(path, "write"))?;
            write_to(array, &mut file).map_err(io_error(path, "write"))
        }
        OutputTarget::Refuse(what) => Err(NpyError::NotWritable {
            path: path.to_path_buf(),
            what,
        }),
    }
}

/// Writes `array` as a whole `.npy` file (header, then the elements, in chunks) to `out`,
/// which should be positioned at its start; nothing is synced or renamed. [`save`] is this
/// plus the atomic replacement; a caller that puts several files in place together writes
/// each into a [`weft_core::files::StagedFile`] with this.
pub fn write_to(array: &Array, out: &mut impl Write) -> io::Result<()> {
    out.write_all(&header_bytes(array))?;
    let size = array.dtype().size();
    let per_chunk = (1 << 20) / size;
    let mut buf = Vec::with_capacity(per_chunk * size);
    let mut first = 0;
    while first < array.len() {
        let last = (first + per_chunk).min(array.len());
        buf.clear();
        append_le(array, first, last, &mut buf);
        out.write_all(&buf)?;
        first = last;
    }
    Ok(())
}

/// Writes a temporary file beside `end` (where `path` leads) and puts it in place over
/// `end` (weft-core's one atomic-replacement routine).
fn save_replacing(array: &Array, path: &Path, end: &Path) -> Result<(), NpyError> {
    let mut staged = StagedFile::create(end).map_err(|e| {
        let folder = folder_of(end);
        if e.kind() == io::ErrorKind::NotFound && !folder.is_dir() {
            NpyError::NoFolder {
                path: path.to_path_buf(),
                folder,
            }
        } else {
            io_error(path, "write")(e)
        }
    })?;
    write_to(array, staged.file()).map_err(io_error(path, "write"))?;
    staged.persist().map_err(io_error(path, "write"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
