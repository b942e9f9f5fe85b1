//! Reading `.npy` files: [`load`] (read and convert: byte-swap, transpose, widen
//! float16) and [`load_mmap`] (map files that need no conversion).

use crate::header::{read_header, Header, Source};
use crate::{io_error, Loaded, NpyError};
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use weft_core::array::Array;

/// Open `path` for reading and return it with its length.
pub(crate) fn open(path: &Path) -> Result<(File, u64), NpyError> {
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
pub(crate) fn read_up_to(file: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
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

/// Read a whole `.npy` file into a new owned array, converting big-endian, Fortran-order
/// and float16 data (see the crate documentation).
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
        let (src, dst) = (fresh_bytes(&mut disk), fresh_bytes(&mut out));
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

/// The bytes of an array that was just allocated by [`Array::zeros`] and not yet cloned
/// or sliced: its storage is owned (writable) and this is its only view.
fn fresh_bytes(array: &mut Array) -> &mut [u8] {
    array
        .bytes_mut()
        .expect("a fresh Array::zeros array is uniquely owned and writable")
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
    let bytes = fresh_bytes(out);
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
///
/// # Safety
/// The array's elements are the file's pages. No process (this one included, through
/// another handle) may write to or truncate the file while the returned array or any view
/// of it is alive: a write changes elements that safe code (and kernels holding
/// [`Array::as_slice`]) read as immutable, a truncation makes reads fault (SIGBUS). weft's
/// own writers refuse to replace a file an array is mapped from ([`Array::mapped_file`]);
/// other programs are the caller's to rule out, as for [`memmap2::Mmap::map`].
pub unsafe fn load_mmap(path: &Path) -> Result<Array, NpyError> {
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
    // SAFETY: the mapping is read-only and weft never writes through it; the caller
    // promises (this function's contract) that nobody else writes or truncates the file
    // while the array lives.
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
    let source = weft_core::files::FileId::of_file(&file).ok();
    Array::from_file_mapping(
        map,
        path.display().to_string(),
        source,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float16_widening_is_exact() {
        assert_eq!(f16_to_f32(0x0000).to_bits(), 0);
        assert_eq!(f16_to_f32(0x8000).to_bits(), 0x8000_0000);
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        // Powers of two from their bits: `powi`'s precision is unspecified (Miri varies it).
        let (two_m24, two_m14) = (f32::from_bits(0x3380_0000), f32::from_bits(0x3880_0000));
        assert_eq!(f16_to_f32(0x0001), two_m24);
        assert_eq!(f16_to_f32(0x03ff), 1023.0 * two_m24);
        assert_eq!(f16_to_f32(0x0400), two_m14);
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
}
