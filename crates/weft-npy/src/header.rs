//! The `.npy` header: the preamble (magic, version, header length) and the dict that
//! describes the data, read and checked against the file's length.

use crate::literal::{parse_header, quote, Lit};
use crate::read::read_up_to;
use crate::{io_error, NpyError, MAGIC};
use std::io::{self, Read, Seek};
use std::path::Path;
use weft_core::array::DType;

/// The byte order of this machine, which arrays in memory use.
const HOST_BIG_ENDIAN: bool = cfg!(target_endian = "big");

/// How elements are stored in the file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Source {
    /// Stored as the dtype itself (possibly in the other byte order).
    Plain(DType),
    /// IEEE half precision, loaded as f32.
    F16,
}

impl Source {
    /// Bytes per element in the file.
    pub(crate) fn size(self) -> usize {
        match self {
            Source::Plain(d) => d.size(),
            Source::F16 => 2,
        }
    }

    /// The dtype of the array it loads as.
    pub(crate) fn target(self) -> DType {
        match self {
            Source::Plain(d) => d,
            Source::F16 => DType::F32,
        }
    }
}

/// A validated header: everything needed to read the data.
#[derive(Debug)]
pub(crate) struct Header {
    /// The dtype as written, for messages.
    pub(crate) descr: String,
    pub(crate) source: Source,
    /// The file's bytes are big-endian (irrelevant for one-byte elements).
    pub(crate) big_endian: bool,
    pub(crate) fortran_order: bool,
    pub(crate) rows: usize,
    pub(crate) cols: Option<usize>,
    /// Where the data starts.
    pub(crate) data_offset: u64,
    /// How many bytes of data follow (checked against the file's length).
    pub(crate) data_bytes: u64,
}

impl Header {
    /// Whether the file's byte order differs from memory's.
    pub(crate) fn needs_swap(&self) -> bool {
        self.source.size() > 1 && self.big_endian != HOST_BIG_ENDIAN
    }

    /// Whether the file's element order differs from row-major.
    pub(crate) fn needs_transpose(&self) -> bool {
        self.fortran_order && matches!(self.cols, Some(c) if c > 1 && self.rows > 1)
    }
}

/// Read and check the preamble and header; leaves `file` at the start of the data.
/// Generic over the reader so the checks are tested on bytes in memory (and under Miri);
/// `path` only names the input in errors.
pub(crate) fn read_header(
    file: &mut (impl Read + Seek),
    path: &Path,
    file_len: u64,
) -> Result<Header, NpyError> {
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

#[cfg(test)]
mod tests {
    use super::*;

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

    /// A whole `.npy` file in memory: preamble of `version`, the dict padded with spaces to a
    /// multiple of 64 bytes and ended by a newline, then `data` bytes.
    fn npy(version: u8, dict: &[u8], data: usize) -> Vec<u8> {
        let pre = if version == 1 { 10 } else { 12 };
        let header_len = (pre + dict.len() + 1).div_ceil(64) * 64 - pre;
        let mut out = b"\x93NUMPY".to_vec();
        out.extend([version, 0]);
        if version == 1 {
            out.extend((header_len as u16).to_le_bytes());
        } else {
            out.extend((header_len as u32).to_le_bytes());
        }
        out.extend(dict);
        out.resize(pre + header_len - 1, b' ');
        out.push(b'\n');
        out.extend((0..data).map(|i| i as u8));
        out
    }

    /// `read_header` on bytes in memory; also returns where it left the reader.
    fn parse(bytes: &[u8]) -> Result<(Header, u64), NpyError> {
        let mut r = io::Cursor::new(bytes);
        let h = read_header(&mut r, Path::new("mem.npy"), bytes.len() as u64)?;
        Ok((h, r.position()))
    }

    const F4_3X2: &[u8] = b"{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }";

    #[test]
    fn headers_of_every_version_parse_from_bytes() {
        for version in [1, 2, 3] {
            let bytes = npy(version, F4_3X2, 24);
            let (h, at) = parse(&bytes).unwrap();
            assert_eq!((h.rows, h.cols), (3, Some(2)), "version {version}");
            assert_eq!(h.source, Source::Plain(DType::F32));
            assert!(!h.big_endian && !h.fortran_order);
            assert_eq!(h.data_offset, bytes.len() as u64 - 24);
            assert_eq!(h.data_bytes, 24);
            assert_eq!(at, h.data_offset, "the reader is left at the data");
        }
        let dict = b"{'descr': '>u4', 'fortran_order': True, 'shape': (2, 3), }";
        let (h, _) = parse(&npy(1, dict, 24)).unwrap();
        assert_eq!(h.source, Source::Plain(DType::U32));
        assert!(h.big_endian && h.fortran_order && h.needs_transpose());
        let (h, _) = parse(&npy(
            1,
            b"{'descr': '<f2', 'fortran_order': False, 'shape': (5,), }",
            10,
        ))
        .unwrap();
        assert_eq!((h.source, h.rows, h.cols), (Source::F16, 5, None));
    }

    #[test]
    fn every_truncation_of_the_preamble_and_header_is_refused() {
        for version in [1, 2] {
            let bytes = npy(version, F4_3X2, 24);
            let end = bytes.len() - 24;
            for cut in 0..end {
                let err = parse(&bytes[..cut]).expect_err("a truncated header");
                assert!(err.to_string().contains("mem.npy"), "cut {cut}: {err}");
            }
            // Header complete, data short: the header reader itself names the size.
            assert!(parse(&bytes[..end + 23]).is_err());
        }
    }

    #[test]
    fn bad_magic_version_and_encoding_are_refused() {
        let mut bytes = npy(1, F4_3X2, 24);
        bytes[1] = b'M';
        assert!(matches!(parse(&bytes), Err(NpyError::BadMagic { .. })));
        let mut bytes = npy(1, F4_3X2, 24);
        bytes[6] = 4;
        assert!(matches!(
            parse(&bytes),
            Err(NpyError::Version {
                major: 4,
                minor: 0,
                ..
            })
        ));
        // Version 3.0 headers must be UTF-8; 1.0 and 2.0 are latin-1.
        let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), } \u{e9}";
        let latin1: Vec<u8> = dict.chars().map(|c| c as u8).collect();
        let v3 = parse(&npy(3, &latin1, 24)).unwrap_err().to_string();
        assert!(v3.contains("must be UTF-8"), "{v3}");
        // Read as latin-1, the same bytes are text: refused for the stray character instead.
        let v2 = parse(&npy(2, &latin1, 24)).unwrap_err().to_string();
        assert!(!v2.contains("UTF-8") && v2.contains("mem.npy"), "{v2}");
        // A header length past the end of the bytes.
        let mut bytes = npy(2, F4_3X2, 0);
        bytes[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(parse(&bytes), Err(NpyError::HeaderPastEnd { .. })));
    }

    /// Property tests: proptest generates the headers; Miri would take too long on them.
    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// (descr as written, what it loads as, bytes per element, big-endian)
        const DESCRS: [(&str, Source, usize, bool); 8] = [
            ("<f4", Source::Plain(DType::F32), 4, false),
            (">f8", Source::Plain(DType::F64), 8, true),
            ("<i4", Source::Plain(DType::I32), 4, false),
            (">i8", Source::Plain(DType::I64), 8, true),
            ("|u1", Source::Plain(DType::U8), 1, false),
            ("<u2", Source::Plain(DType::U16), 2, false),
            (">u4", Source::Plain(DType::U32), 4, true),
            ("<f2", Source::F16, 2, false),
        ];

        fn dict(descr: &str, fortran: bool, shape: &str, order: u8, space: &str) -> String {
            let fo = if fortran { "True" } else { "False" };
            let items = [
                format!("'descr':{space}'{descr}'"),
                format!("'fortran_order':{space}{fo}"),
                format!("'shape':{space}{shape}"),
            ];
            let (a, b, c) = match order % 3 {
                0 => (0, 1, 2),
                1 => (2, 0, 1),
                _ => (1, 2, 0),
            };
            format!(
                "{{{},{space}{},{space}{},{space}}}",
                items[a], items[b], items[c]
            )
        }

        proptest! {
            /// Any dtype, order, shape, version, key order and spacing numpy may write reads
            /// back as exactly what was written, and the reader stops at the data.
            #[test]
            #[cfg_attr(miri, ignore = "hundreds of generated cases take too long under Miri")]
            fn written_headers_read_back(
                which in 0..DESCRS.len(),
                fortran: bool,
                rows in 0usize..300,
                cols in proptest::option::of(0usize..40),
                version in 1u8..=3,
                order: u8,
                space in "[ ]{0,2}",
            ) {
                let (descr, source, size, big) = DESCRS[which];
                let shape = match cols {
                    None => format!("({rows},)"),
                    Some(c) => format!("({rows},{space}{c})"),
                };
                let text = dict(descr, fortran, &shape, order, &space);
                let data = rows * cols.unwrap_or(1) * size;
                let bytes = npy(version, text.as_bytes(), data);
                let (h, at) = parse(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(h.source, source);
                prop_assert_eq!(h.big_endian, big);
                prop_assert_eq!(h.fortran_order, fortran);
                prop_assert_eq!((h.rows, h.cols), (rows, cols));
                prop_assert_eq!(h.data_bytes, data as u64);
                prop_assert_eq!(h.data_offset, (bytes.len() - data) as u64);
                prop_assert_eq!(at, h.data_offset);
            }

            /// Any bytes in the header or preamble: an error naming the input, or a header
            /// whose data fits in the bytes given; never a panic.
            #[test]
            #[cfg_attr(miri, ignore = "hundreds of generated cases take too long under Miri")]
            fn damaged_headers_fail_cleanly(
                edits in proptest::collection::vec((0usize..128, any::<u8>()), 1..6),
                cut in proptest::option::of(0usize..140),
            ) {
                let mut bytes = npy(1, F4_3X2, 24);
                for (at, b) in edits {
                    let at = at % bytes.len();
                    bytes[at] = b;
                }
                if let Some(cut) = cut {
                    bytes.truncate(cut);
                }
                match parse(&bytes) {
                    Ok((h, at)) => {
                        prop_assert!(h.data_offset + h.data_bytes <= bytes.len() as u64);
                        prop_assert_eq!(at, h.data_offset);
                    }
                    Err(e) => prop_assert!(e.to_string().contains("mem.npy"), "{}", e),
                }
            }
        }
    }
}
