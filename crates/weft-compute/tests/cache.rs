//! The diversity cache file: create, interrupted and resumed runs, refusals, force, get/info.

mod common;

use common::*;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use weft_compute::*;

const N: usize = 203;
const D: usize = 20;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weft-compute-cache-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    let _ = std::fs::remove_file(&p);
    p
}

/// Exact-arithmetic rows scaled by 3 (the cache normalises them back).
fn emb() -> Vec<f32> {
    exact_set(N, D, 11).iter().map(|x| x * 3.0).collect()
}

fn full_run(path: &PathBuf, data: &[f32]) -> Vec<u8> {
    let rows = Rows::new(data, N, D).unwrap();
    let mut w = CacheWriter::create(path, rows, false).unwrap();
    let info = w
        .run(Some(2), &mut |_| {}, &AtomicBool::new(false))
        .unwrap();
    assert!(info.complete && info.done == N);
    std::fs::read(path).unwrap()
}

#[test]
fn a_full_run_holds_every_ordering() {
    let data = emb();
    let path = tmp("full");
    let bytes = full_run(&path, &data);
    let cache = Cache::open(&path).unwrap();
    let info = cache.info().clone();
    assert_eq!((info.n, info.d, info.id_width, info.done), (N, D, 2, N));
    assert!(info.complete);
    assert_eq!(info.hash_hex().len(), 64);
    assert_eq!(
        bytes.len() as u64,
        128 + (N * N * 2) as u64 + N.div_ceil(8) as u64
    );
    let s64 = sim64(&normalize64(&data, N, D), N, D);
    for start in [0, 3, 9, 10, 100, N - 1] {
        assert_eq!(
            cache.get(start).unwrap(),
            ordering64(&s64, N, start),
            "start {start}"
        );
    }
    assert!(matches!(
        cache.get(N),
        Err(ComputeError::StartOutOfRange { start: N, n: N })
    ));
}

#[test]
fn interrupted_and_resumed_runs_end_byte_identical() {
    let data = emb();
    let rows = Rows::new(&data, N, D).unwrap();
    let want = full_run(&tmp("reference"), &data);
    let path = tmp("interrupted");
    CacheWriter::create(&path, rows, false).unwrap();
    let mut rounds = 0;
    loop {
        // What a killed run leaves: garbage in records not yet marked complete.
        let info = Cache::open(&path).unwrap().info().clone();
        if info.complete {
            break;
        }
        let mut bytes = std::fs::read(&path).unwrap();
        let next = info.done; // starts complete in order, so `done` is the first missing
        let off = 128 + next * N * 2;
        bytes[off..off + 100].fill(0xAB);
        std::fs::write(&path, &bytes).unwrap();

        let cancel = AtomicBool::new(false);
        let mut w = CacheWriter::resume(&path, rows).unwrap();
        let mut batches = 0;
        w.run(
            Some(2),
            &mut |p| {
                batches += 1;
                assert!(p.done <= p.total);
                if batches == 2 {
                    cancel.store(true, Ordering::Relaxed);
                }
            },
            &cancel,
        )
        .unwrap();
        rounds += 1;
        assert!(rounds < 100, "no progress");
    }
    assert!(rounds >= 3, "the run was interrupted {rounds} times");
    assert!(
        std::fs::read(&path).unwrap() == want,
        "resumed file differs"
    );
}

#[test]
fn the_slow_path_writes_the_same_file() {
    let data = emb();
    let want = full_run(&tmp("fast"), &data);
    let path = tmp("slow");
    let rows = Rows::new(&data, N, D).unwrap();
    let mut w = CacheWriter::create(&path, rows, false)
        .unwrap()
        .budget(Budget::bytes(1000));
    w.run(Some(1), &mut |_| {}, &AtomicBool::new(false))
        .unwrap();
    assert!(std::fs::read(&path).unwrap() == want);
}

#[test]
fn resume_refuses_what_is_not_its_cache() {
    let data = emb();
    let rows = Rows::new(&data, N, D).unwrap();
    let path = tmp("refuse");
    let good = full_run(&path, &data);

    let mut other = data.clone();
    other[5] += 0.25;
    let err = CacheWriter::resume(&path, Rows::new(&other, N, D).unwrap())
        .err()
        .unwrap();
    assert!(err.to_string().contains("other embeddings"), "{err}");

    let err = CacheWriter::resume(&path, Rows::new(&data[..(N - 1) * D], N - 1, D).unwrap())
        .err()
        .unwrap();
    assert!(err.to_string().contains("203×20"), "{err}");

    let garbage = tmp("garbage");
    std::fs::write(&garbage, b"hello, not a cache").unwrap();
    let err = CacheWriter::resume(&garbage, rows).err().unwrap();
    assert!(
        err.to_string().contains("not a weft diversity cache"),
        "{err}"
    );
    assert!(
        err.to_string().contains("garbage"),
        "the message names the file: {err}"
    );

    let truncated = tmp("truncated");
    std::fs::write(&truncated, &good[..good.len() - 300]).unwrap();
    let err = CacheWriter::resume(&truncated, rows).err().unwrap();
    assert!(err.to_string().contains("truncated"), "{err}");
    assert!(Cache::open(&truncated).is_err());

    let version = tmp("version");
    let mut v = good.clone();
    v[8] = 9;
    std::fs::write(&version, &v).unwrap();
    let err = CacheWriter::resume(&version, rows).err().unwrap();
    assert!(err.to_string().contains("version 9"), "{err}");

    let missing = tmp("missing");
    let err = CacheWriter::resume(&missing, rows).err().unwrap();
    assert!(matches!(err, ComputeError::Io { .. }), "{err}");
}

#[test]
fn create_never_overwrites_silently() {
    let data = emb();
    let rows = Rows::new(&data, N, D).unwrap();
    let path = tmp("force");
    let good = full_run(&path, &data);
    let err = CacheWriter::create(&path, rows, false).err().unwrap();
    assert!(err.to_string().contains("finished cache"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), good, "left untouched");

    let w = CacheWriter::create(&path, rows, true).unwrap();
    assert_eq!(w.info().done, 0);
    // While a writer holds the path, every other writer is refused, naming the holder.
    for err in [
        CacheWriter::create(&path, rows, false).err().unwrap(),
        CacheWriter::create(&path, rows, true).err().unwrap(),
        CacheWriter::resume(&path, rows).err().unwrap(),
    ] {
        assert!(matches!(err, ComputeError::CacheBusy { .. }), "{err}");
        let pid = format!("(pid {})", std::process::id());
        assert!(err.to_string().contains(&pid), "{err}");
    }
    drop(w);
    let err = CacheWriter::create(&path, rows, false).err().unwrap();
    assert!(err.to_string().contains("unfinished cache"), "{err}");
    let cache = Cache::open(&path).unwrap();
    assert!(cache.get(0).is_err(), "nothing is complete yet");

    let other = tmp("other-file");
    std::fs::write(&other, b"precious").unwrap();
    let err = CacheWriter::create(&other, rows, false).err().unwrap();
    assert!(err.to_string().contains("not a weft cache"), "{err}");
    assert_eq!(std::fs::read(&other).unwrap(), b"precious");
}

#[test]
fn bad_embeddings_are_refused_before_any_file_is_made() {
    let mut data = emb();
    data[7 * D..8 * D].fill(0.0);
    let path = tmp("bad-rows");
    let err = CacheWriter::create(&path, Rows::new(&data, N, D).unwrap(), false)
        .err()
        .unwrap();
    assert_eq!(err.to_string(), "embeddings: row 7 is all zeros");
    assert!(!path.exists());
}

/// A finished cache's bytes with `edit` applied, written to a fresh file.
fn damaged(name: &str, good: &[u8], edit: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let path = tmp(name);
    let mut bytes = good.to_vec();
    edit(&mut bytes);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn damaged_records_are_refused_by_get_naming_start_and_position() {
    let data = emb();
    let good = full_run(&tmp("damage-src"), &data);
    let record = |s: usize| 128 + s * N * 2;
    // An id out of range in record 7, position 3.
    let p = damaged("damage-range", &good, |b| {
        b[record(7) + 6..record(7) + 8].copy_from_slice(&9999u16.to_le_bytes())
    });
    let c = Cache::open(&p).unwrap();
    let err = c.get(7).unwrap_err();
    assert!(
        matches!(err, ComputeError::CacheDamaged { start: 7, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains(
            "the ordering from start 7 is damaged: position 3 holds id 9999, out of range 0..203"
        ),
        "{err}"
    );
    assert!(
        c.get(6).is_ok() && c.get(8).is_ok(),
        "other records are fine"
    );
    // An id twice (position 5 repeats position 4's id).
    let p = damaged("damage-dup", &good, |b| {
        let at = record(9) + 8;
        let prev = [b[at], b[at + 1]];
        b[at + 2..at + 4].copy_from_slice(&prev);
    });
    let err = Cache::open(&p).unwrap().get(9).unwrap_err();
    assert!(err.to_string().contains("position 5 holds id"), "{err}");
    assert!(err.to_string().contains("earlier position"), "{err}");
    // A record that does not begin with its start.
    let p = damaged("damage-start", &good, |b| {
        b[record(2)..record(2) + 2].fill(0)
    });
    let err = Cache::open(&p).unwrap().get(2).unwrap_err();
    assert!(
        err.to_string()
            .contains("position 0 holds id 0, expected the start 2"),
        "{err}"
    );
    // A clear bit is "not in the cache yet", a different error.
    let p = damaged("damage-bit", &good, |b| {
        let at = 128 + N * N * 2;
        b[at] &= !1;
    });
    let err = Cache::open(&p).unwrap().get(0).unwrap_err();
    assert!(
        matches!(err, ComputeError::CacheMissing { start: 0, .. }),
        "{err}"
    );
}

#[test]
fn damaged_headers_name_the_field_and_its_expected_value() {
    let data = emb();
    let good = full_run(&tmp("header-src"), &data);
    let bitmap_at = (128 + N * N * 2) as u64;
    let cases: Vec<(usize, Vec<u8>, String)> = vec![
        (72, (bitmap_at + 2).to_le_bytes().to_vec(), format!(
            "corrupt header: the bitmap offset (bytes 72..80) is {}, expected {bitmap_at} for N = 203 and 2-byte ids",
            bitmap_at + 2
        )),
        (64, 64u64.to_le_bytes().to_vec(),
            "corrupt header: the record offset (bytes 64..72) is 64, expected 128".into()),
        (12, 4u32.to_le_bytes().to_vec(),
            "corrupt header: the id width (bytes 12..16) is 4, expected 2 for N = 203".into()),
        (16, 0u64.to_le_bytes().to_vec(),
            "corrupt header: N (bytes 16..24) is 0, expected 1 to 4294967295".into()),
        (24, 0u64.to_le_bytes().to_vec(),
            "corrupt header: d (bytes 24..32) is 0, expected at least 1".into()),
        (100, vec![7], "corrupt header: byte 100 is 0x07, expected 0 (bytes 96..128 are reserved)".into()),
        // The shard (bytes 80..96): an index without a count, and a count above N.
        (88, vec![1], "corrupt header: the shard (bytes 80..96) is 1/0, expected K < M ≤ N = 203 or 0/0 for a full cache".into()),
        (80, 204u64.to_le_bytes().to_vec(), "corrupt header: the shard (bytes 80..96) is 0/204".into()),
        (bitmap_at as usize + 25, vec![0xff],
            "corrupt completion bitmap: its last byte".into()),
    ];
    for (at, value, want) in cases {
        let p = damaged("header", &good, |b| {
            b[at..at + value.len()].copy_from_slice(&value)
        });
        let err = Cache::open(&p).err().unwrap().to_string();
        assert!(err.contains(&want), "byte {at}: {err}\nwanted: {want}");
        assert!(err.starts_with(p.to_str().unwrap()), "{err}");
        let err = CacheWriter::resume(&p, Rows::new(&data, N, D).unwrap())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains(&want), "resume, byte {at}: {err}");
    }
    // A wrong length names both numbers, and they differ.
    let p = damaged("header-len", &good, |b| b.truncate(b.len() - 1));
    let err = Cache::open(&p).err().unwrap().to_string();
    assert!(
        err.contains(&format!(
            "the file has {} bytes, but a cache of 203 orderings of 2-byte ids has {}",
            good.len() - 1,
            good.len()
        )),
        "{err}"
    );
    let dir = tmp("a-dir");
    std::fs::create_dir_all(&dir).unwrap();
    let err = Cache::open(&dir).err().unwrap().to_string();
    assert!(err.contains("is a directory"), "{err}");
    let err = CacheWriter::create(&dir, Rows::new(&data, N, D).unwrap(), true)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("is a directory"), "{err}");
}

#[test]
fn a_symlinked_cache_path_writes_the_target_and_keeps_the_link() {
    let data = emb();
    let good = full_run(&tmp("link-ref"), &data);
    let target = tmp("link-target");
    let link = tmp("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let bytes = full_run(&link, &data);
    assert_eq!(bytes, good);
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read(&target).unwrap(), good);
}

#[test]
fn a_fifo_is_refused_as_a_cache_without_waiting_for_a_writer() {
    let fifo = tmp("a-fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: c is a valid NUL-terminated path.
    let made = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(made, 0, "mkfifo {fifo:?}");
    // Opened on another thread: before the fix, open(2) of a FIFO blocked forever, and a
    // hang must fail this test rather than the whole run.
    let (tx, rx) = std::sync::mpsc::channel();
    let path = fifo.clone();
    std::thread::spawn(move || {
        let _ = tx.send(Cache::open(&path).map(|_| ()).map_err(|e| e.to_string()));
    });
    let got = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("Cache::open of a FIFO did not return");
    let err = got.expect_err("a FIFO opened as a cache");
    assert!(err.contains("not a regular file"), "{err}");
    assert!(err.contains("a-fifo"), "{err}");
}

/// Batches: 32 orderings for small sets (what the tests above interrupt), 4 lockstep
/// groups of 16 per worker thread for large ones, never more than N/16.
#[test]
fn batches_grow_with_the_workers_for_large_sets_only() {
    let data = emb();
    let rows = Rows::new(&data, N, D).unwrap();
    let norm = normalize(rows).unwrap();
    let rows = Rows::new(&norm, N, D).unwrap();
    let two = Orderings::new(rows, Some(2), Budget::default()).unwrap();
    let one = Orderings::new(rows, Some(1), Budget::default()).unwrap();
    assert_eq!(two.batch(N), cache::BATCH);
    assert_eq!(two.batch(7_797), 128);
    assert_eq!(one.batch(7_797), 64);
    assert_eq!(two.batch(1_000), 62);
    assert_eq!(one.batch(600), 37);
    assert_eq!(one.batch(400), cache::BATCH);
}
