//! The batch commands' outputs against a float64 reference written here: exactly equal on
//! exact-arithmetic data, within the engine's stated tolerance on the shipped real data.

mod common;
use common::*;

/// n×d exact set, written as f32.
fn exact_file(dir: &TempDir, n: usize, d: usize) -> (String, Vec<f32>) {
    let data = exact_set(n, d, 7);
    let path = dir.join("exact.npy");
    write_f32(&path, &data, n, d);
    (path.to_str().unwrap().to_string(), data)
}

#[test]
fn on_exact_data_every_output_equals_the_f64_reference() {
    let dir = TempDir::new("exact");
    let (n, d) = (200, 16);
    let (emb, data) = exact_file(&dir, n, d);
    let e = normalize64(&data, n, d);
    let s = sim64(&e, n, d);

    ok(&weft(&[
        "similarity",
        &emb,
        "-o",
        &dir.path("sim.npy"),
        "--threads",
        "2",
    ]));
    let (r, c, sim) = read_f32(&dir.join("sim.npy"));
    assert_eq!((r, c), (n, n));
    for (i, (&got, &want)) in sim.iter().zip(&s).enumerate() {
        assert_eq!(f64::from(got), want, "S[{}, {}]", i / n, i % n);
    }

    let k = 7;
    ok(&weft(&[
        "topk",
        &emb,
        "-k",
        "7",
        "--ids",
        &dir.path("ids.npy"),
        "--scores",
        &dir.path("scores.npy"),
        "--threads",
        "2",
    ]));
    let (_, kc, ids) = read_u32(&dir.join("ids.npy"));
    let (_, _, scores) = read_f32(&dir.join("scores.npy"));
    assert_eq!(kc, k);
    for q in 0..n {
        let want = topk64(&s[q * n..(q + 1) * n], q, k);
        assert_eq!(&ids[q * k..(q + 1) * k], &want[..], "top-k of item {q}");
        for p in 0..k {
            assert_eq!(f64::from(scores[q * k + p]), s[q * n + want[p] as usize]);
        }
    }

    // Several starts (one shared compact S), and one start alone (the f32 S path); 3 is
    // the start whose second pick makes the centroid zero.
    let starts = [0usize, 3, 9, 199];
    ok(&weft(&[
        "diversity",
        &emb,
        "--starts",
        "0,3,9,199",
        "-o",
        &dir.path("seqs.npy"),
    ]));
    let (sr, sc, seqs) = read_u32(&dir.join("seqs.npy"));
    assert_eq!((sr, sc), (starts.len(), n));
    for (r, &st) in starts.iter().enumerate() {
        assert_eq!(
            &seqs[r * n..(r + 1) * n],
            &ordering64(&s, n, st)[..],
            "from {st}"
        );
    }
    ok(&weft(&[
        "diversity",
        &emb,
        "--starts",
        "3",
        "-o",
        &dir.path("one.npy"),
    ]));
    assert_eq!(read_u32(&dir.join("one.npy")).2, ordering64(&s, n, 3));

    // The cache holds every ordering, and export gives them back in the order asked.
    let cache = dir.path("all.cache");
    ok(&weft(&[
        "diversity-cache",
        &emb,
        "-o",
        &cache,
        "--threads",
        "2",
    ]));
    ok(&weft(&[
        "cache",
        "export",
        &cache,
        "--starts",
        "all",
        "-o",
        &dir.path("all.npy"),
    ]));
    let (ar, _, all) = read_u32(&dir.join("all.npy"));
    assert_eq!(ar, n);
    for st in 0..n {
        assert_eq!(
            &all[st * n..(st + 1) * n],
            &ordering64(&s, n, st)[..],
            "from {st}"
        );
    }
    ok(&weft(&[
        "cache",
        "export",
        &cache,
        "--starts",
        "199,0-2",
        "-o",
        &dir.path("part.npy"),
    ]));
    let (_, _, part) = read_u32(&dir.join("part.npy"));
    for (r, st) in [199usize, 0, 1, 2].into_iter().enumerate() {
        assert_eq!(&part[r * n..(r + 1) * n], &all[st * n..(st + 1) * n]);
    }
}

#[test]
fn one_thread_and_two_write_the_same_bytes() {
    let dir = TempDir::new("threads");
    let (n, d) = (300, 24);
    let emb = dir.path("rand.npy");
    write_f32(&dir.join("rand.npy"), &random_set(n, d, 3), n, d);
    for t in ["1", "2"] {
        ok(&weft(&[
            "similarity",
            &emb,
            "-o",
            &dir.path(&format!("sim{t}.npy")),
            "--threads",
            t,
        ]));
        ok(&weft(&[
            "topk",
            &emb,
            "-k",
            "5",
            "--ids",
            &dir.path(&format!("ids{t}.npy")),
            "--threads",
            t,
        ]));
        ok(&weft(&[
            "diversity",
            &emb,
            "--starts",
            "0-9",
            "-o",
            &dir.path(&format!("seq{t}.npy")),
            "--threads",
            t,
        ]));
    }
    for f in ["sim", "ids", "seq"] {
        let a = std::fs::read(dir.join(&format!("{f}1.npy"))).unwrap();
        let b = std::fs::read(dir.join(&format!("{f}2.npy"))).unwrap();
        assert!(a == b, "{f}: 1 and 2 threads differ");
    }
}

#[test]
fn float64_and_float16_inputs_give_the_same_outputs_with_a_note() {
    let dir = TempDir::new("convert");
    let (n, d) = (40, 8);
    let data = exact_set(n, d, 11);
    write_f32(&dir.join("e32.npy"), &data, n, d);
    write_f64(&dir.join("e64.npy"), &data, n, d);
    write_f16(&dir.join("e16.npy"), &data, n, d);
    let mut outputs = Vec::new();
    for (name, note) in [
        ("e32", None),
        ("e64", Some("float64")),
        ("e16", Some("float16")),
    ] {
        let out = dir.path(&format!("{name}.sim.npy"));
        let emb = dir.path(&format!("{name}.npy"));
        let err = ok(&weft(&["similarity", &emb, "-o", &out]));
        let notes: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with("weft: note:"))
            .collect();
        match note {
            None => assert!(notes.is_empty(), "{err}"),
            Some(what) => {
                assert_eq!(notes.len(), 1, "{err}");
                assert!(notes[0].contains(&format!("{name}.npy: converted from {what} to f32")));
                // --quiet: nothing at all on stderr
                let quiet = weft(&["similarity", &emb, "-o", &out, "--quiet"]);
                assert_eq!(ok(&quiet), "");
            }
        }
        outputs.push(std::fs::read(&out).unwrap());
    }
    assert!(outputs[0] == outputs[1] && outputs[0] == outputs[2]);
}

#[test]
fn n_equal_1_has_a_similarity_and_an_ordering() {
    let dir = TempDir::new("one-row");
    write_f32(&dir.join("one.npy"), &[3.0, 4.0], 1, 2);
    let emb = dir.path("one.npy");
    ok(&weft(&["similarity", &emb, "-o", &dir.path("s.npy")]));
    assert_eq!(read_f32(&dir.join("s.npy")), (1, 1, vec![1.0]));
    ok(&weft(&[
        "diversity",
        &emb,
        "--starts",
        "0",
        "-o",
        &dir.path("q.npy"),
    ]));
    assert_eq!(read_u32(&dir.join("q.npy")), (1, 1, vec![0]));
}

#[test]
fn on_the_example_data_topk_matches_the_f64_reference_up_to_near_ties() {
    let dir = TempDir::new("example-topk");
    let emb = example_emb();
    let (n, d, data) = read_f32(&emb);
    let k = 10;
    let emb = emb.to_str().unwrap();
    ok(&weft(&[
        "topk",
        emb,
        "-k",
        "10",
        "--ids",
        &dir.path("ids.npy"),
        "--scores",
        &dir.path("scores.npy"),
    ]));
    ok(&weft(&["similarity", emb, "-o", &dir.path("sim.npy")]));
    let (_, _, ids) = read_u32(&dir.join("ids.npy"));
    let (_, _, scores) = read_f32(&dir.join("scores.npy"));
    let (_, _, sim) = read_f32(&dir.join("sim.npy"));
    let e = normalize64(&data, n, d);
    let (mut swaps, mut worst_s) = (0, 0.0f64);
    for q in (0..n).step_by(7) {
        let row = sim_row64(&e, n, d, q);
        let want = topk64(&row, q, k);
        let got = &ids[q * k..(q + 1) * k];
        for p in 0..k {
            let (g, w) = (got[p] as usize, want[p] as usize);
            if g != w {
                // Only neighbours whose f64 scores are within 1e-6 may trade places.
                assert!(
                    (row[g] - row[w]).abs() < 1e-6,
                    "item {q}, place {p}: got {g} ({}), want {w} ({})",
                    row[g],
                    row[w]
                );
                swaps += 1;
            }
            assert!((f64::from(scores[q * k + p]) - row[g]).abs() < 1e-6);
        }
        for j in 0..n {
            worst_s = worst_s.max((f64::from(sim[q * n + j]) - row[j]).abs());
            assert_eq!(
                sim[q * n + j].to_bits(),
                sim[j * n + q].to_bits(),
                "symmetric"
            );
        }
    }
    println!("{swaps} near-tie swaps; worst |S - S64| = {worst_s:.2e}");
    assert!(worst_s < 2e-6, "{worst_s}");
}

#[test]
fn on_the_example_data_every_pick_of_an_ordering_is_within_1e_7_of_the_f64_minimum() {
    // The first 400 rows, so the f64 replay stays quick in a debug build.
    let dir = TempDir::new("example-div");
    let (_, d, data) = read_f32(&example_emb());
    let n = 400;
    let sub = &data[..n * d];
    write_f32(&dir.join("sub.npy"), sub, n, d);
    let s = sim64(&normalize64(sub, n, d), n, d);
    let emb = dir.path("sub.npy");
    for (spec, starts) in [("0,57,399", vec![0usize, 57, 399]), ("123", vec![123])] {
        ok(&weft(&[
            "diversity",
            &emb,
            "--starts",
            spec,
            "-o",
            &dir.path("seqs.npy"),
        ]));
        let (r, _, seqs) = read_u32(&dir.join("seqs.npy"));
        assert_eq!(r, starts.len());
        for (i, &st) in starts.iter().enumerate() {
            let seq = &seqs[i * n..(i + 1) * n];
            assert_eq!(seq[0] as usize, st);
            let excess = replay_excess(&s, n, seq);
            assert!(
                excess <= 1e-7,
                "from {st}: a pick {excess:.2e} above the minimum"
            );
        }
    }
}
