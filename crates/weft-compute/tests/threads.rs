//! Thread pools stay bounded however many distinct thread counts calls ask for. Its own
//! test binary, so no other test's threads come and go while the count is taken.

use weft_compute::{topk, Rows};

/// Threads of this process (Linux).
fn process_threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn calls_with_many_thread_counts_leave_a_bounded_number_of_threads() {
    let (n, d) = (50, 8);
    let data: Vec<f32> = (0..n * d).map(|i| ((i * 37 % 101) as f32) - 50.0).collect();
    let rows = Rows::new(&data, n, d).unwrap();
    let reference = topk(rows, 3, Some(1)).unwrap();
    let before = process_threads();
    for t in 1..=64 {
        let got = topk(rows, 3, Some(t)).unwrap();
        assert_eq!(got.ids, reference.ids, "threads = {t}");
    }
    // Replaced pools end their threads asynchronously: poll (bounded) until they have.
    // At most the cores stay in the shared pool; bigger pools end with their call.
    let limit = before + std::thread::available_parallelism().map_or(1, |n| n.get()) + 4;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while process_threads() > limit && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let after = process_threads();
    assert!(
        after <= limit,
        "{after} threads after calls with 1..=64 threads (started with {before})"
    );
    let e = topk(rows, 3, Some(1_000_000)).unwrap_err().to_string();
    assert_eq!(
        e,
        "threads: threads = 1000000 is more than the limit of 1024"
    );
}
