//! `--starts` lists: `0,5,17`, ranges `0-49` (inclusive) and `all`, mixed as in
//! `0-49,100,200-210`. Starts are 0-based item ids; the output has one row per listed start,
//! in the order given (repeats allowed).

use weft_compute::ComputeError;

/// A parsed `--starts` value, checked against N only when expanded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Starts {
    /// Every item, 0..N.
    All,
    /// Inclusive ranges, in order.
    Ranges(Vec<(u64, u64)>),
}

/// Parses a `--starts` value (clap value parser: errors are usage errors).
pub fn parse(s: &str) -> Result<Starts, String> {
    if s.trim() == "all" {
        return Ok(Starts::All);
    }
    let number = |t: &str| -> Result<u64, String> {
        let t = t.trim();
        t.parse::<u64>()
            .map_err(|_| format!("'{t}' is not a start (a 0-based item id)"))
    };
    let mut ranges = Vec::new();
    for item in s.split(',') {
        if item.trim().is_empty() {
            return Err(format!("empty item in '{s}' (write e.g. 0,5,17 or 0-49)"));
        }
        let (a, b) = match item.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None => {
                let a = number(item)?;
                (a, a)
            }
        };
        if b < a {
            return Err(format!("range '{}' runs backwards", item.trim()));
        }
        ranges.push((a, b));
    }
    Ok(Starts::Ranges(ranges))
}

impl Starts {
    /// The starts as ids, or the engine's out-of-range error for the first start ≥ `n`
    /// (checked before anything is allocated, so `0-4000000000` cannot exhaust memory).
    pub fn expand(&self, n: usize) -> Result<Vec<usize>, ComputeError> {
        match self {
            Starts::All => Ok((0..n).collect()),
            Starts::Ranges(ranges) => {
                for &(a, b) in ranges {
                    for s in [a, b] {
                        if s >= n as u64 {
                            let start = usize::try_from(s).unwrap_or(usize::MAX);
                            return Err(ComputeError::StartOutOfRange { start, n });
                        }
                    }
                }
                Ok(ranges
                    .iter()
                    .flat_map(|&(a, b)| a as usize..=b as usize)
                    .collect())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_ranges() {
        let s = parse("0-3, 7,5-5").unwrap();
        assert_eq!(s.expand(10).unwrap(), vec![0, 1, 2, 3, 7, 5]);
        assert_eq!(parse("all").unwrap().expand(3).unwrap(), vec![0, 1, 2]);
        assert!(matches!(
            parse("0-4000000000").unwrap().expand(10),
            Err(ComputeError::StartOutOfRange {
                start: 4000000000,
                n: 10
            })
        ));
        for bad in ["", "1,,2", "a", "5-2", "-1", "1-", "1.5"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
