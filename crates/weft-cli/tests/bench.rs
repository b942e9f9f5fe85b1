//! `weft bench --quick`: the table, the machine and the date, on small data.

mod common;
use common::*;

#[test]
fn bench_quick_prints_the_markdown_table() {
    let dir = TempDir::new("bench");
    let (n, d) = (300, 32);
    write_f32(&dir.join("emb.npy"), &random_set(n, d, 8), n, d);
    let out = weft(&[
        "bench",
        "--quick",
        "--emb",
        &dir.path("emb.npy"),
        "--threads",
        "2",
    ]);
    ok(&out);
    let table = text(&out.stdout);
    println!("{table}");
    assert!(table.starts_with("## weft bench — measured 20"), "{table}");
    assert!(table.contains("- machine: ") && table.contains("CPUs available"));
    assert!(table.contains(&format!("emb.npy ({n} × {d})")));
    assert!(table.contains("| job | threads | median | range | rate | speed-up vs 1 thread |"));
    for job in [
        "| normalize | 1 |",
        "| similarity, N×N f32 | 1 |",
        "| similarity, N×N f32 | 2 |",
        "| top-10 of every item | 2 |",
        "| one diversity ordering, S built | 1 |",
        "| all 300 orderings, projected from 16 starts computed in full | 2 |",
    ] {
        assert!(table.contains(job), "no {job:?} in {table}");
    }
    assert!(table.contains("GFLOP/s") && table.contains("GB/s as full i16 rows"));
    // The all-orderings rows give the bytes of S really read and the streaming bandwidth
    // measured beside them; the machine line gives the instruction set and cache sizes.
    for th in [1, 2] {
        let row = table
            .lines()
            .find(|l| {
                l.starts_with(&format!(
                    "| all 300 orderings, projected from 16 starts computed in full | {th} |"
                ))
            })
            .expect("an all-orderings row");
        assert!(row.contains("S read ") && row.contains(" GB = "), "{row}");
        assert!(row.contains("; streaming "), "{row}");
    }
    let machine = table
        .lines()
        .find(|l| l.starts_with("- machine: "))
        .unwrap();
    assert!(
        machine.contains("caches (per core / shared): "),
        "{machine}"
    );
    assert!(
        table.contains("numpy/OpenBLAS `E @ E.T` 0.28 s"),
        "the anchors are printed"
    );
}

#[test]
fn bench_reports_bad_data_in_one_line() {
    let dir = TempDir::new("bench-bad");
    fails(
        &weft(&["bench", "--quick", "--emb", &dir.path("none.npy")]),
        &["none.npy: no such file"],
    );
}
