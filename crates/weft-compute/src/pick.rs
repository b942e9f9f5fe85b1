//! The exact pick of a diversity step, for an engine outside this crate (weft-gpu) that finds
//! the shortlist its own way: the same state, the same f64 rule and the same error terms the
//! CPU engine uses, so its orderings are this crate's, bit for bit.
//!
//! The caller keeps approximate running sums a_j of the ordering's rows of S (on a GPU, in
//! integers), with a proven bound |a_j − c_t·e_j| ≤ [`step_bound`] after t picks. It passes
//! every unchosen j with a_j ≤ min a + 2·bound to [`Picker::choose`], which re-scores them with
//! the rule (docs/design.md, "Diversity ordering: the exact rule", gives the argument). When
//! the shortlist would not fit its buffer, [`Picker::choose_any`] scores every unchosen item.

use crate::error::ComputeError;
use crate::orderings::State;
use crate::rows::Rows;
use crate::rule::{entry_bound_f32, rule_slack};

/// One ordering in progress, picked by the exact rule.
///
/// ```
/// use weft_compute::pick::Picker;
/// use weft_compute::Rows;
///
/// // (1, 0), (0, 1), (-1, 0): from 0, item 2 is least similar; then 1 is left
/// let e = [1.0f32, 0.0, 0.0, 1.0, -1.0, 0.0];
/// let rows = Rows::new(&e, 3, 2)?;
/// let mut p = Picker::new(rows, 0)?;
/// // a shortlist of both unchosen items, with exact sums, so a zero bound
/// assert_eq!(p.choose(&[(0.0, 1), (-1.0, 2)], 0.0)?, 2);
/// assert_eq!(p.choose_any(), 1);
/// assert_eq!(p.into_seq(), [0, 2, 1]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Picker<'a> {
    st: State<'a>,
}

impl<'a> Picker<'a> {
    /// Starts the ordering from `start` over normalised rows `e` (rows and start validated
    /// as [`fn@crate::diversity`] does).
    pub fn new(e: Rows<'a>, start: usize) -> Result<Self, ComputeError> {
        crate::diversity::check(e, &[start])?;
        Ok(Picker {
            st: State::new(e, start),
        })
    }

    /// Items picked so far (t; the start counts).
    pub fn len(&self) -> usize {
        self.st.seq.len()
    }

    /// Always false: the start is picked on creation.
    pub fn is_empty(&self) -> bool {
        self.st.seq.is_empty()
    }

    /// The last item picked.
    pub fn last(&self) -> u32 {
        self.st.last() as u32
    }

    /// The start.
    pub fn first(&self) -> u32 {
        self.st.seq[0]
    }

    /// The ordering so far.
    pub fn into_seq(self) -> Vec<u32> {
        self.st.seq
    }

    /// Takes the rule's pick among `cands` — (approximate sum a_j, item j), each a_j within
    /// `bound` of the item's rule score, and the rule's pick among them (the caller's proof)
    /// — and returns it. An item out of range or already picked is refused (a broken
    /// producer), never trusted.
    pub fn choose(&mut self, cands: &[(f64, u32)], bound: f64) -> Result<u32, BadShortlist> {
        let n = self.st.e_n();
        let start = self.st.seq[0];
        let check = |&(a, j): &(f64, u32)| {
            if j as usize >= n || self.st.is_chosen(j as usize) || !a.is_finite() {
                return Err(BadShortlist(format!(
                    "ordering from {start}: the shortlist producer gave item {j} (sum {a}), \
                     which is out of range or already picked"
                )));
            }
            Ok((a, j, 0))
        };
        // The common case, a lone candidate, without allocating.
        if let [one] = cands {
            let mut full = [check(one)?];
            return Ok(self.st.choose(&mut full, bound).0 as u32);
        }
        let mut full = cands.iter().map(check).collect::<Result<Vec<_>, _>>()?;
        if full.is_empty() {
            return Err(BadShortlist(format!(
                "ordering from {start}: the shortlist producer gave no candidate"
            )));
        }
        Ok(self.st.choose(&mut full, bound).0 as u32)
    }

    /// Scores every unchosen item with the rule and takes the best: the pick without a
    /// shortlist (O(N·d)). At least one item must remain unpicked.
    pub fn choose_any(&mut self) -> u32 {
        self.st.pick_direct();
        self.last()
    }
}

/// A shortlist that cannot be the rule's: an item out of range, already picked, a sum that
/// is not finite, or no item at all. Its message names the ordering's start and the item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadShortlist(String);

/// Bound on |S32\[i,j\] − e_i·e_j| for an f32 dot product of two unit rows of width d, whatever
/// the order of its additions and whether products are fused: γ_d with unit roundoff 2⁻²³
/// (twice IEEE round-to-nearest, so round-toward-zero is covered too), plus (d + 2)·2⁻¹²⁵ for
/// subnormal results flushed to zero (GPUs may). See docs/gpu-orderings.md.
pub fn entry_bound_any_f32(d: usize) -> f64 {
    2.0 * entry_bound_f32(d) + (d as f64 + 2.0) * f64::powi(2.0, -125)
}

/// Bound on |S64\[i,j\] − e_i·e_j| for an f64 dot product of two unit f32 rows of width d
/// (every product exact), whatever the order of its additions, their rounding direction
/// (unit roundoff 2⁻⁵²) and whether products are fused.
pub fn entry_bound_any_f64(d: usize) -> f64 {
    2.0 * crate::tile64::entry_bound_f64(d)
}

/// Bound on |a_j − score(c_t, e_j)| after `t` picks when each of the t entries summed into a_j
/// is within `entry_err` of the exact e_i·e_j (sums themselves exact, e.g. integers): t
/// entries' errors plus the f64 rule's own rounding.
pub fn step_bound(t: usize, d: usize, entry_err: f64) -> f64 {
    t as f64 * entry_err + rule_slack(t, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_shortlist_is_refused() {
        let e = [1.0f32, 0.0, 0.0, 1.0, -1.0, 0.0];
        let rows = Rows::new(&e, 3, 2).unwrap();
        let mut p = Picker::new(rows, 0).unwrap();
        let err = p.choose(&[(0.0, 0)], 0.0).unwrap_err().to_string();
        assert!(
            err.contains("item 0") && err.contains("already picked"),
            "{err}"
        );
        assert!(p.choose(&[(0.0, 7)], 0.0).is_err());
        assert!(p.choose(&[], 0.0).is_err());
        assert!(Picker::new(rows, 3).is_err());
        assert!(entry_bound_any_f32(384) > entry_bound_f32(384));
        assert!(step_bound(10, 384, 1e-5) > 1e-4);
    }
}
