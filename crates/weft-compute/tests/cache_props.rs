//! Property tests of the diversity cache format (docs/cache-format.md): what a writer
//! stores reads back as the engine's orderings, and a file damaged anywhere is refused with
//! an error naming it, or still yields only true orderings — never a panic.

use proptest::prelude::*;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::OnceLock;
use weft_compute::*;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weft-cache-props-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    let _ = std::fs::remove_file(&p);
    p
}

/// Runs a whole cache for `rows` into a fresh file; its path.
fn write_cache(name: &str, rows: Rows<'_>) -> PathBuf {
    let path = tmp(name);
    let mut w = CacheWriter::create(&path, rows, false).unwrap();
    let info = w
        .run(Some(1), &mut |_| {}, &AtomicBool::new(false))
        .unwrap();
    assert!(info.complete && info.done == rows.n());
    path
}

/// Rows with no zero row: magnitudes in [0.05, 1), random signs.
fn embeddings() -> impl Strategy<Value = (Vec<f32>, usize, usize)> {
    (2usize..40, 1usize..6).prop_flat_map(|(n, d)| {
        proptest::collection::vec((0.05f32..1.0, any::<bool>()), n * d).prop_map(move |v| {
            let data = v
                .into_iter()
                .map(|(m, neg)| if neg { -m } else { m })
                .collect();
            (data, n, d)
        })
    })
}

/// A complete cache of 30 fixed rows, written once, as bytes.
fn good_cache() -> &'static (Vec<u8>, usize) {
    static GOOD: OnceLock<(Vec<u8>, usize)> = OnceLock::new();
    GOOD.get_or_init(|| {
        let (n, d) = (30, 4);
        let data: Vec<f32> = (0..n * d)
            .map(|i| ((i * 7919 % 997) as f32 / 997.0) - 0.45)
            .collect();
        let path = write_cache("good", Rows::new(&data, n, d).unwrap());
        (std::fs::read(path).unwrap(), n)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Every ordering a writer stores reads back as the one `diversity` computes on the same
    /// rows normalised.
    #[test]
    fn written_orderings_read_back((data, n, d) in embeddings()) {
        let rows = Rows::new(&data, n, d).unwrap();
        let path = write_cache("roundtrip", rows);
        let cache = Cache::open(&path).unwrap();
        let info = cache.info();
        prop_assert_eq!((info.n, info.d, info.done, info.complete), (n, d, n, true));
        // The cache normalises its rows; `diversity` takes normalised ones.
        let unit = Normalised::new(rows).unwrap();
        for start in 0..n {
            let want = diversity(unit.rows(), None, start, Some(1), Budget::default()).unwrap();
            prop_assert_eq!(cache.get(start).unwrap(), want, "start {}", start);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A few bytes changed anywhere, perhaps cut short: opening fails naming the file, or
    /// every start reads back as a true ordering from that start or an error naming the
    /// file.
    #[test]
    fn damaged_files_fail_cleanly(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..5),
        cut in proptest::option::weighted(0.2, any::<prop::sample::Index>()),
    ) {
        let (good, n) = good_cache();
        let mut bytes = good.clone();
        for (at, b) in edits {
            let at = at.index(bytes.len());
            bytes[at] = b;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len()));
        }
        let path = tmp("damaged");
        std::fs::write(&path, &bytes).unwrap();
        let name = path.display().to_string();
        match Cache::open(&path) {
            Err(e) => prop_assert!(e.to_string().contains(&name), "{}", e),
            Ok(cache) => {
                for start in 0..*n {
                    match cache.get(start) {
                        Ok(ids) => {
                            let mut sorted = ids.clone();
                            sorted.sort_unstable();
                            prop_assert_eq!(ids[0] as usize, start);
                            prop_assert!(sorted.iter().enumerate().all(|(i, &x)| x as usize == i));
                        }
                        Err(e) => prop_assert!(e.to_string().contains(&name), "{}", e),
                    }
                }
            }
        }
    }
}
