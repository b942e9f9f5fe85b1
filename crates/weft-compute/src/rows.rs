//! The borrowed input type: a row-major, contiguous `n × d` matrix of f32.

use crate::error::ComputeError;

/// A borrowed, row-major, contiguous `n × d` f32 matrix (one embedding per row).
#[derive(Debug, Clone, Copy)]
pub struct Rows<'a> {
    data: &'a [f32],
    n: usize,
    d: usize,
}

impl<'a> Rows<'a> {
    /// Wraps `data` as `n` rows of `d` values; fails unless `data.len() == n * d` and `d ≥ 1`.
    pub fn new(data: &'a [f32], n: usize, d: usize) -> Result<Self, ComputeError> {
        if d == 0 || n.checked_mul(d) != Some(data.len()) {
            return Err(ComputeError::Shape {
                len: data.len(),
                n,
                d,
            });
        }
        Ok(Rows { data, n, d })
    }

    /// Number of rows.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Values per row.
    pub fn d(&self) -> usize {
        self.d
    }

    /// All values, row-major.
    pub fn data(&self) -> &'a [f32] {
        self.data
    }

    /// Row `i` (panics if `i ≥ n`; callers index only validated rows).
    pub fn row(&self, i: usize) -> &'a [f32] {
        &self.data[i * self.d..(i + 1) * self.d]
    }

    /// Fails unless there are at least `need` rows (public for the GPU kernels, which
    /// make the CPU engine's input checks).
    pub fn require(&self, need: usize) -> Result<(), ComputeError> {
        if self.n < need {
            return Err(ComputeError::TooFewRows { n: self.n, need });
        }
        Ok(())
    }

    /// Fails with the first row holding NaN or ±Inf, as the kernels do.
    pub fn check_finite(&self) -> Result<(), ComputeError> {
        crate::tiles::check_finite(*self)
    }
}
