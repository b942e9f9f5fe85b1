//! `CacheWriter::run_with`: a cache filled by another producer of the orderings (here the
//! CPU engine behind the `Producer` trait with another batch size, as weft-gpu plugs in its
//! own) has the bytes of one filled by `run`, with progress after each of its batches, and
//! stops between batches on cancel.

use std::sync::atomic::{AtomicBool, Ordering};
use weft_compute::{Budget, CacheWriter, ComputeError, Orderings, Producer, Rows};

mod common;

/// The CPU engine in batches of 7, over its own copy of the rows (a producer owns what it
/// needs, as the GPU's owns its device buffers).
struct Sevens {
    rows: Vec<f32>,
    n: usize,
    d: usize,
}

impl Producer for Sevens {
    type Error = ComputeError;
    fn batch(&self) -> usize {
        7
    }
    fn run_cancellable(
        &self,
        starts: &[usize],
        cancel: &AtomicBool,
    ) -> Result<Vec<Option<Vec<u32>>>, ComputeError> {
        let rows = Rows::new(&self.rows, self.n, self.d)?;
        Orderings::new(rows, Some(1), Budget::default())?.run_cancellable(starts, cancel)
    }
}

fn sevens(r: Rows<'_>) -> Result<Sevens, ComputeError> {
    Ok(Sevens {
        rows: r.data().to_vec(),
        n: r.n(),
        d: r.d(),
    })
}

#[test]
fn another_producer_writes_the_same_file() {
    let (n, d) = (40, 12);
    let raw = common::random_set(n, d, 3);
    let emb = Rows::new(&raw, n, d).unwrap();
    let dir = std::env::temp_dir();
    let pid = std::process::id();
    let (a, b) = (
        dir.join(format!("weft-producer-{pid}-a.cache")),
        dir.join(format!("weft-producer-{pid}-b.cache")),
    );
    let never = AtomicBool::new(false);
    let mut w = CacheWriter::create(&a, emb, true).unwrap();
    w.run(Some(1), &mut |_| {}, &never).unwrap();
    drop(w);
    // Stopped after the first batch of 7, then resumed to the end.
    let cancel = AtomicBool::new(false);
    let mut w = CacheWriter::create(&b, emb, true).unwrap();
    let mut stop = |p: weft_compute::Progress| {
        assert_eq!(p.done, 7);
        cancel.store(true, Ordering::Relaxed);
    };
    let info = w.run_with(sevens, &mut stop, &cancel).unwrap();
    assert_eq!((info.done, info.complete), (7, false));
    drop(w);
    let mut w = CacheWriter::resume(&b, emb).unwrap();
    let mut seen = Vec::new();
    let info = w
        .run_with(sevens, &mut |p| seen.push(p.done), &never)
        .unwrap();
    assert!(info.complete);
    assert_eq!(seen, [14, 21, 28, 35, 40]);
    // A finished cache: the producer is not even built.
    let info = w
        .run_with(
            |_| -> Result<Sevens, ComputeError> { panic!("built") },
            &mut |_| {},
            &never,
        )
        .unwrap();
    assert!(info.complete);
    drop(w);
    assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap());
    std::fs::remove_file(&a).unwrap();
    std::fs::remove_file(&b).unwrap();
}
