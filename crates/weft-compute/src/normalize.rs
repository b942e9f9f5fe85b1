//! L2 normalisation of rows: the norm is computed in f64, the result stored as f32.

use crate::error::{ComputeError, RowProblem};
use crate::rows::Rows;

/// Returns a copy of `rows` with every row scaled to unit L2 norm.
///
/// The norm is accumulated in f64 and each value is divided in f64, then rounded to f32.
/// A row that is all zeros or contains NaN or ±Inf is an error naming the (0-based) row.
pub fn normalize(rows: Rows<'_>) -> Result<Vec<f32>, ComputeError> {
    let mut out = Vec::with_capacity(rows.data().len());
    for i in 0..rows.n() {
        let row = rows.row(i);
        let mut sum = 0.0f64;
        for &x in row {
            if x.is_nan() {
                return Err(bad(i, RowProblem::Nan));
            }
            if x.is_infinite() {
                return Err(bad(i, RowProblem::Inf));
            }
            sum += f64::from(x) * f64::from(x);
        }
        if sum == 0.0 {
            return Err(bad(i, RowProblem::Zero));
        }
        let norm = sum.sqrt();
        let start = out.len();
        out.extend(row.iter().map(|&x| (f64::from(x) / norm) as f32));
        if out[start..].iter().all(|&x| x == 0.0) {
            return Err(bad(i, RowProblem::Unnormalisable));
        }
    }
    Ok(out)
}

/// Rows scaled to unit length, owned together with their shape: what the kernels take.
pub struct Normalised {
    data: Vec<f32>,
    n: usize,
    d: usize,
}

impl Normalised {
    /// Normalise `rows` (see [`normalize`]).
    pub fn new(rows: Rows<'_>) -> Result<Normalised, ComputeError> {
        Ok(Normalised {
            data: normalize(rows)?,
            n: rows.n(),
            d: rows.d(),
        })
    }

    /// The normalised rows.
    pub fn rows(&self) -> Rows<'_> {
        Rows::new(&self.data, self.n, self.d).expect("normalising keeps a valid shape")
    }
}

fn bad(row: usize, problem: RowProblem) -> ComputeError {
    ComputeError::BadRow { row, problem }
}
