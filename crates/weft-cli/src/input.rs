//! Reading embeddings: a 2-D float `.npy` file as the engine's [`Rows`].
//!
//! f32 files are used in place; float64 is converted to f32 here and float16 by
//! `weft_npy::load`, each with one note on stderr. Everything else is refused with a
//! line naming the file and the problem; rows are checked (all zeros, NaN, Inf) by the
//! engine's normalisation, whose errors name the 0-based row.

use crate::error::Failure;
use crate::progress::Reporter;
use std::path::{Path, PathBuf};
use weft_compute::Rows;
use weft_core::{Array, DType};
use weft_npy::{self as npy, NpyError};

/// Embeddings read from a file: N rows of d f32 values.
pub struct Embeddings {
    path: PathBuf,
    data: Data,
    n: usize,
    d: usize,
}

enum Data {
    /// The loaded array, read in place.
    F32(Array),
    /// Converted from float64.
    Converted(Vec<f32>),
}

/// The file and its rows, borrowed together.
#[derive(Clone, Copy)]
pub struct View<'a> {
    /// The file the rows came from (for error messages).
    pub path: &'a Path,
    /// The raw (not yet normalised) rows.
    pub rows: Rows<'a>,
}

/// Loads `path` as embeddings, printing a note when its dtype was converted.
pub fn load(path: &Path, reporter: &Reporter) -> Result<Embeddings, Failure> {
    let loaded = npy::load(path).map_err(|e| match e {
        NpyError::UnsupportedDType { path, descr } => Failure::new(format!(
            "{}: dtype '{descr}' cannot hold embeddings; need float32 (float64 and float16 \
             are converted)",
            path.display()
        )),
        other => Failure::npy(other),
    })?;
    let array = loaded.array;
    let shown = path.display();
    let (n, d) = match array.shape() {
        (n, Some(d)) => (n, d),
        (n, None) => {
            return Err(Failure::new(format!(
                "{shown}: a 1-D array of shape ({n},); embeddings must be 2-D (rows × dims)"
            )))
        }
    };
    let mut notes: Vec<String> = loaded.note.into_iter().collect();
    let data = match array.dtype() {
        DType::F32 => Data::F32(array),
        DType::F64 => {
            notes.push("converted from float64 to f32".into());
            let mut array = array;
            let bytes = array
                .bytes_mut()
                .ok_or_else(|| Failure::new(format!("{shown}: internal: array is shared")))?;
            let values: &[f64] = bytemuck::try_cast_slice(bytes)
                .map_err(|e| Failure::new(format!("{shown}: internal: {e}")))?;
            // A finite value beyond f32's range would become Inf: say so, naming it.
            if let Some(i) = values
                .iter()
                .position(|&x| x.is_finite() && (x as f32).is_infinite())
            {
                return Err(Failure::new(format!(
                    "{shown}: row {}: value {:e} overflows f32 (float64 input is converted to \
                     f32, whose largest value is {:e})",
                    i / d.max(1),
                    values[i],
                    f32::MAX
                )));
            }
            Data::Converted(values.iter().map(|&x| x as f32).collect())
        }
        other => {
            return Err(Failure::new(format!(
                "{shown}: dtype {} cannot hold embeddings; need float32 (float64 and float16 \
                 are converted)",
                numpy_name(other)
            )))
        }
    };
    if !notes.is_empty() {
        reporter.note(&format!("{shown}: {}", notes.join("; ")));
    }
    Ok(Embeddings {
        path: path.to_path_buf(),
        data,
        n,
        d,
    })
}

/// numpy's name of a dtype, for messages to numpy users.
fn numpy_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "float32",
        DType::F64 => "float64",
        DType::I32 => "int32",
        DType::I64 => "int64",
        DType::U8 => "uint8",
        DType::U16 => "uint16",
        DType::U32 => "uint32",
    }
}

impl Embeddings {
    /// The file and its rows. Fails on shapes the engine cannot take (e.g. 0 columns).
    pub fn view(&mut self) -> Result<View<'_>, Failure> {
        let Embeddings { path, data, n, d } = self;
        let values: &[f32] = match data {
            Data::F32(array) => {
                let bytes = array.bytes_mut().ok_or_else(|| {
                    Failure::new(format!("{}: internal: array is shared", path.display()))
                })?;
                bytemuck::try_cast_slice(bytes)
                    .map_err(|e| Failure::new(format!("{}: internal: {e}", path.display())))?
            }
            Data::Converted(v) => v,
        };
        let rows = Rows::new(values, *n, *d).map_err(|e| Failure::input(path, e))?;
        Ok(View { path, rows })
    }
}

impl View<'_> {
    /// The rows scaled to unit length (norms in f64); an error names a zero, NaN or Inf
    /// row (0-based) or too few rows (`need`).
    pub fn normalised(&self, need: usize) -> Result<weft_compute::Normalised, Failure> {
        if self.rows.n() < need {
            return Err(Failure::input(
                self.path,
                weft_compute::ComputeError::TooFewRows {
                    n: self.rows.n(),
                    need,
                },
            ));
        }
        weft_compute::Normalised::new(self.rows).map_err(|e| Failure::input(self.path, e))
    }
}
