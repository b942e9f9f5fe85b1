//! Sharded runs for batch systems: `weft diversity-cache … --shard K/M` parts joined by
//! `weft cache merge` into the file one run writes (also after a part was killed and
//! resumed), merge's refusals (nothing written, an existing output untouched), bad shard
//! specs, and the refusal to run as several MPI ranks in a build without MPI.

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

/// `n` × 8 random embeddings at `dir/name` (a path string).
fn emb(dir: &TempDir, name: &str, n: usize, seed: u64) -> String {
    write_f32(&dir.join(name), &random_set(n, 8, seed), n, 8);
    dir.path(name)
}

/// The cache of one unsharded run.
fn one_run(emb: &str, out: &str) -> Vec<u8> {
    ok(&weft(&["diversity-cache", emb, "-o", out, "--quiet"]));
    std::fs::read(out).unwrap()
}

/// Writes the part for `spec` at `out`.
fn part(emb: &str, out: &str, spec: &str) {
    ok(&weft(&[
        "diversity-cache",
        emb,
        "-o",
        out,
        "--shard",
        spec,
        "--quiet",
    ]));
}

fn info(path: &str) -> serde_json::Value {
    let out = weft(&["cache", "info", path]);
    ok(&out);
    serde_json::from_str(&text(&out.stdout)).unwrap()
}

#[test]
fn shards_merged_are_byte_identical_to_one_run() {
    // 37 and 100: M = 2, 3, 7 do not all divide N; M = 1 is a single part.
    for n in [37usize, 100] {
        let dir = TempDir::new("shards");
        let e = emb(&dir, "emb.npy", n, n as u64);
        let want = one_run(&e, &dir.path("one.cache"));
        for m in [1usize, 2, 3, 7] {
            let mut parts = Vec::new();
            let mut held = 0;
            // Listed in reverse: merge must not depend on the order of its arguments.
            for k in (0..m).rev() {
                let p = dir.path(&format!("p{k}of{m}.cache"));
                part(&e, &p, &format!("{k}/{m}"));
                let i = info(&p);
                assert_eq!(i["shard"], format!("{k}/{m}"));
                assert_eq!(i["complete"], true);
                // Shard K holds ⌊K·N/M⌋..⌊(K+1)·N/M⌋.
                assert_eq!(
                    i["done"].as_u64().unwrap() as usize,
                    (k + 1) * n / m - k * n / m
                );
                held += i["done"].as_u64().unwrap() as usize;
                parts.push(p);
            }
            assert_eq!(held, n);
            let out = dir.path(&format!("merged{m}.cache"));
            let mut args = vec!["cache".to_string(), "merge".into()];
            args.extend(parts.iter().cloned());
            args.extend(["-o".into(), out.clone()]);
            ok(&weft(&args));
            assert!(
                std::fs::read(&out).unwrap() == want,
                "n {n}, m {m}: merged file differs from one run"
            );
            assert_eq!(info(&out)["shard"], serde_json::Value::Null);
        }
    }
}

#[test]
fn parts_of_different_shard_counts_that_cover_every_start_once_merge() {
    let dir = TempDir::new("mixed");
    let e = emb(&dir, "emb.npy", 50, 3);
    let want = one_run(&e, &dir.path("one.cache"));
    let (a, b, c) = (dir.path("a"), dir.path("b"), dir.path("c"));
    part(&e, &a, "0/2"); // 0..25
    part(&e, &b, "2/4"); // 25..37
    part(&e, &c, "3/4"); // 37..50
    let out = dir.path("m.cache");
    let err = ok(&weft(&[
        "cache",
        "merge",
        &c,
        &a,
        &b,
        "-o",
        &out,
        "--progress",
        "json",
    ]));
    assert!(std::fs::read(&out).unwrap() == want);
    // Progress counts the orderings copied, ending at N.
    let last = err.lines().rfind(|l| l.starts_with('{')).unwrap();
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(
        (v["phase"].as_str(), v["done"].as_u64(), v["total"].as_u64()),
        (Some("merge"), Some(50), Some(50))
    );
}

/// Polls `cache info` until the part at `path` has some but not all of its `total`
/// orderings, then kills the run; false when the run finished first.
fn kill_mid_run(args: &[&str], path: &str, total: u64) -> bool {
    let mut child = Command::new(WEFT)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        let out = weft(&["cache", "info", path]);
        if out.status.success() {
            let v: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap();
            let done = v["done"].as_u64().unwrap();
            if done > 0 && done < total {
                child.kill().unwrap();
                child.wait().unwrap();
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_part_killed_mid_run_and_resumed_merges_byte_identical() {
    let dir = TempDir::new("killpart");
    // Shard 0/2 of 500 holds 250 starts: 8 batches of 32, one thread.
    let n = 500;
    let e = emb(&dir, "emb.npy", n, 11);
    let want = one_run(&e, &dir.path("one.cache"));
    let p0 = dir.path("p0.cache");
    let args = [
        "diversity-cache",
        &e,
        "-o",
        &p0,
        "--shard",
        "0/2",
        "--threads",
        "1",
        "--force",
    ];
    // A run that finishes before the poll sees a partial file is tried again, from scratch.
    assert!(
        (0..5).any(|_| kill_mid_run(&args, &p0, 250)),
        "the part run always finished before it could be killed: the input is too small"
    );
    let before = info(&p0);
    assert_eq!(before["complete"], false);
    assert_eq!(before["shard"], "0/2");
    // Without --resume the part is refused, named as the unfinished part it is.
    fails(
        &weft(&["diversity-cache", &e, "-o", &p0, "--shard", "0/2"]),
        &[
            "unfinished cache part (shard 0/2)",
            "of 250 orderings",
            "--resume",
        ],
    );
    // Resuming under another shard, or as a full cache, is refused and changes nothing.
    let saved = std::fs::read(&p0).unwrap();
    for other in [&["--shard", "1/2"][..], &["--shard", "0/3"], &[]] {
        let mut a = vec!["diversity-cache", &e, "-o", &p0, "--resume"];
        a.extend_from_slice(other);
        let line = fails(&weft(&a), &["the part for shard 0/2", "--shard 0/2"]);
        assert!(line.contains(&p0), "{line}");
        assert!(std::fs::read(&p0).unwrap() == saved);
    }
    let out = weft(&[
        "diversity-cache",
        &e,
        "-o",
        &p0,
        "--shard",
        "0/2",
        "--resume",
    ]);
    let err = ok(&out);
    assert!(err.contains("shard 0/2"), "{err}");
    assert_eq!(info(&p0)["complete"], true);
    let p1 = dir.path("p1.cache");
    part(&e, &p1, "1/2");
    let merged = dir.path("m.cache");
    ok(&weft(&["cache", "merge", &p0, &p1, "-o", &merged]));
    assert!(std::fs::read(&merged).unwrap() == want);
}

#[test]
fn merge_refuses_bad_parts_and_writes_nothing() {
    let dir = TempDir::new("refuse");
    let n = 40;
    let e = emb(&dir, "emb.npy", n, 5);
    let other = emb(&dir, "other.npy", n, 6);
    let smaller = emb(&dir, "smaller.npy", n - 1, 5);
    let full = dir.path("full.cache");
    one_run(&e, &full);
    let p: Vec<String> = (0..3).map(|k| dir.path(&format!("p{k}"))).collect();
    for (k, path) in p.iter().enumerate() {
        part(&e, path, &format!("{k}/3"));
    }
    let foreign = dir.path("foreign");
    part(&other, &foreign, "1/3");
    let short = dir.path("short");
    part(&smaller, &short, "1/3");
    let p02 = dir.path("p0of2");
    part(&e, &p02, "0/2"); // starts 0..20, overlapping p0 (0..13) and p1 (13..26)
                           // An unfinished part: one completion bit cleared, as a killed run leaves it.
    let unfinished = dir.path("unfinished");
    let mut bytes = std::fs::read(&p[1]).unwrap();
    let bitmap = 128 + n * n * 2;
    bytes[bitmap + 13 / 8] &= !(1 << (13 % 8));
    std::fs::write(&unfinished, &bytes).unwrap();
    // A finished part whose record for start 14 does not begin with 14.
    let damaged = dir.path("damaged");
    let mut bytes = std::fs::read(&p[1]).unwrap();
    let record = 128 + 14 * n * 2;
    bytes[record..record + 2].copy_from_slice(&0u16.to_le_bytes());
    std::fs::write(&damaged, &bytes).unwrap();
    let junk = dir.path("junk");
    std::fs::write(&junk, b"not a cache").unwrap();
    let linked = dir.path("p0-linked");
    std::fs::hard_link(&p[0], &linked).unwrap();

    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec![&p[0], &p[2]],
            vec!["no part holds starts 13..26", "shard 1/3"],
        ),
        (
            vec![&p[0], &p[1]],
            vec!["no part holds starts 26..40", "shard 2/3"],
        ),
        (vec![&p[0], &p[1], &p[2], &p02], vec![&p02, "overlaps"]),
        (
            vec![&p[0], &foreign, &p[2]],
            vec![&foreign, "other embeddings"],
        ),
        (vec![&p[0], &short, &p[2]], vec![&short, "39×8"]),
        (
            vec![&p[0], &unfinished, &p[2]],
            vec![&unfinished, "unfinished", "12 of 13"],
        ),
        (vec![&p[0], &p[1], &p[2], &full], vec![&full, "full cache"]),
        (vec![&p[0], &p[1], &p[2], &p[1]], vec![&p[1], "given twice"]),
        (
            vec![&p[0], &p[1], &p[2], &linked],
            vec![&linked, "given twice"],
        ),
        (
            vec![&p[0], &junk, &p[1], &p[2]],
            vec![&junk, "not a weft diversity cache"],
        ),
    ];
    let kept = dir.path("kept.cache");
    std::fs::write(&kept, b"an existing file").unwrap();
    let before = dir.entries();
    for (parts, fragments) in &cases {
        let fresh = dir.path("new.cache");
        for (out, force) in [(&fresh, false), (&kept, false), (&kept, true)] {
            let mut args = vec!["cache", "merge"];
            args.extend(parts.iter().copied());
            args.extend(["-o", out]);
            if force {
                args.push("--force");
            }
            let line = fails(&weft(&args), fragments);
            if out == &kept && !force {
                // The parts are checked before the output, so the part's problem is named.
                assert!(!line.contains("already exists"), "{line}");
            }
            assert_eq!(dir.entries(), before, "{args:?} left something behind");
            assert_eq!(std::fs::read(&kept).unwrap(), b"an existing file");
        }
    }
    // Records are checked while they are copied (after the output's own checks): a
    // damaged one stops the merge with nothing placed, even with --force.
    let fresh = dir.path("new.cache");
    for (out, force) in [(&fresh, false), (&kept, true)] {
        let mut args = vec!["cache", "merge", &p[0], &damaged, &p[2], "-o", out];
        if force {
            args.push("--force");
        }
        fails(&weft(&args), &[&damaged, "start 14 is damaged"]);
        assert_eq!(dir.entries(), before, "{args:?} left something behind");
        assert_eq!(std::fs::read(&kept).unwrap(), b"an existing file");
    }
    // Good parts: an existing output needs --force, and the output may not be a part.
    fails(
        &weft(&["cache", "merge", &p[0], &p[1], &p[2], "-o", &kept]),
        &[&kept, "already exists", "--force"],
    );
    assert_eq!(std::fs::read(&kept).unwrap(), b"an existing file");
    fails(
        &weft(&[
            "cache", "merge", &p[0], &p[1], &p[2], "-o", &p[1], "--force",
        ]),
        &[&p[1], "is the part"],
    );
    // A link to a part is the part; a cache must be a regular file.
    let link = dir.path("link-to-p2");
    std::os::unix::fs::symlink(&p[2], &link).unwrap();
    fails(
        &weft(&[
            "cache", "merge", &p[0], &p[1], &p[2], "-o", &link, "--force",
        ]),
        &[&link, "is the part"],
    );
    std::fs::remove_file(&link).unwrap();
    let folder = dir.path("folder");
    std::fs::create_dir(&folder).unwrap();
    fails(
        &weft(&["cache", "merge", &p[0], &p[1], &p[2], "-o", &folder]),
        &[&folder, "is a directory"],
    );
    std::fs::remove_dir(&folder).unwrap();
    fails(
        &weft(&[
            "cache",
            "merge",
            &p[0],
            &p[1],
            &p[2],
            "-o",
            "/dev/null",
            "--force",
        ]),
        &["/dev/null", "not a regular file"],
    );
    assert_eq!(dir.entries(), before);
    ok(&weft(&[
        "cache", "merge", &p[0], &p[1], &p[2], "-o", &kept, "--force",
    ]));
    assert!(std::fs::read(&kept).unwrap() == std::fs::read(&full).unwrap());
}

#[test]
fn bad_shard_specs_are_usage_errors_naming_the_flag() {
    let dir = TempDir::new("specs");
    let e = emb(&dir, "emb.npy", 5, 1);
    let out = dir.path("p.cache");
    for spec in ["3/2", "0/0", "x", "1", "-1/2", "6/6"] {
        let flag = format!("--shard={spec}");
        let r = weft(&["diversity-cache", &e, "-o", &out, &flag]);
        let err = text(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{spec}: {err}");
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.contains("--shard") && first.contains(spec),
            "{spec}: {err}"
        );
    }
    // M > N is known once the embeddings are read: still a usage error, in one line.
    let r = weft(&["diversity-cache", &e, "-o", &out, "--shard", "0/6"]);
    let err = text(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("--shard") && err.contains("at most N = 5"),
        "{err}"
    );
    assert_eq!(dir.entries(), vec!["emb.npy"]);
}

#[test]
#[cfg(not(feature = "mpi"))]
fn under_mpirun_with_several_ranks_a_build_without_mpi_stops_before_anything() {
    let dir = TempDir::new("mpi");
    let e = emb(&dir, "emb.npy", 20, 2);
    let out = dir.path("c.cache");
    let run = |vars: &[(&str, &str)]| {
        let mut c = Command::new(WEFT);
        c.args(["diversity-cache", &e, "-o", &out, "--quiet"]);
        for v in [
            "OMPI_COMM_WORLD_SIZE",
            "OMPI_COMM_WORLD_RANK",
            "PMI_SIZE",
            "PMI_RANK",
        ] {
            c.env_remove(v);
        }
        for v in ["PMIX_RANK", "PMIX_NAMESPACE", "SLURM_STEP_NUM_TASKS"] {
            c.env_remove(v);
        }
        c.envs(vars.iter().copied());
        c.output().unwrap()
    };
    // What Open MPI 4's mpirun, MPICH's Hydra and srun --mpi=pmix give a rank of several.
    for vars in [
        &[
            ("OMPI_COMM_WORLD_SIZE", "2"),
            ("OMPI_COMM_WORLD_RANK", "0"),
            ("PMIX_RANK", "0"),
        ][..],
        &[("OMPI_COMM_WORLD_SIZE", "4"), ("OMPI_COMM_WORLD_RANK", "3")],
        &[("PMI_SIZE", "3"), ("PMI_RANK", "1")],
        &[("PMIX_RANK", "0"), ("SLURM_STEP_NUM_TASKS", "16")],
        &[("PMIX_RANK", "5")],
    ] {
        let line = fails(&run(vars), &["no MPI support", "several MPI ranks"]);
        assert!(vars.iter().any(|(k, _)| line.contains(k)), "{line}");
        assert_eq!(dir.entries(), vec!["emb.npy"], "{vars:?} wrote something");
    }
    // A single rank runs as without mpirun.
    ok(&run(&[
        ("OMPI_COMM_WORLD_SIZE", "1"),
        ("OMPI_COMM_WORLD_RANK", "0"),
        ("PMIX_RANK", "0"),
    ]));
    std::fs::remove_file(&out).unwrap();
    ok(&run(&[("PMI_SIZE", "1"), ("PMI_RANK", "0")]));
    assert_eq!(info(&out)["complete"], true);
}

/// The same refusal under a real `mpirun -n 2`: each rank says it once and the job fails.
#[test]
#[cfg(not(feature = "mpi"))]
fn under_a_real_mpirun_a_build_without_mpi_refuses_on_every_rank() {
    let dir = TempDir::new("mpirun");
    let e = emb(&dir, "emb.npy", 20, 3);
    let out = Command::new("mpirun")
        .args(["--allow-run-as-root", "--oversubscribe", "-n", "2", WEFT])
        .args(["diversity-cache", &e, "-o", &dir.path("c.cache")])
        .stdin(Stdio::null())
        .output()
        .expect("mpirun (Open MPI: apt-get install openmpi-bin; make deps) could not start");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert_eq!(
        err.matches("this build of weft has no MPI support").count(),
        2,
        "{err}"
    );
    assert_eq!(dir.entries(), vec!["emb.npy"]);
}
