//! `weft diversity-cache` under a real `mpirun` (a build with `--features mpi`; `make
//! mpi-test`): the cache of P = 1, 2, 3 ranks byte for byte the single-process one; a
//! worker, then the writer (rank 0), killed with SIGKILL mid-run ends the whole job, and
//! `--resume` with another P finishes the same bytes; the column split of S (forced by a small --budget) gives the same
//! bytes; rank 0's refusal stops every rank; commands without MPI and --shard refuse to run
//! as several ranks.
#![cfg(feature = "mpi")]

mod common;
use common::*;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `mpirun -n P weft ARGS` (as root too, more ranks than cores allowed).
fn mpirun(p: usize, args: &[&str]) -> Command {
    let mut c = Command::new("mpirun");
    c.args([
        "--allow-run-as-root",
        "--oversubscribe",
        "-n",
        &p.to_string(),
        WEFT,
    ])
    .args(args)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    c
}

/// Waits for a job, killing it after `limit` (a hang must fail the test, not stall it);
/// returns its output and whether it ended by itself.
fn wait(mut child: Child, limit: Duration) -> (Output, bool) {
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() && t0.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(20));
    }
    let by_itself = child.try_wait().unwrap().is_some();
    let _ = child.kill();
    (child.wait_with_output().unwrap(), by_itself)
}

fn run(p: usize, args: &[&str]) -> Output {
    let (out, by_itself) = wait(mpirun(p, args).spawn().unwrap(), Duration::from_secs(300));
    assert!(
        by_itself,
        "mpirun -n {p} {args:?} hung: {}",
        text(&out.stderr)
    );
    out
}

/// The first `n` rows of the shipped embeddings (real data: the engine's speed on it is
/// the one users see), at `dir/name`.
fn first_rows(dir: &TempDir, name: &str, n: usize) -> String {
    let (_, d, all) = read_f32(&example_emb());
    write_f32(&dir.join(name), &all[..n * d], n, d);
    dir.path(name)
}

/// The cache one process writes.
fn reference(emb: &str, out: &str) -> Vec<u8> {
    ok(&weft(&["diversity-cache", emb, "-o", out, "--quiet"]));
    std::fs::read(out).unwrap()
}

#[test]
fn one_two_and_three_ranks_write_the_single_process_bytes() {
    let dir = TempDir::new("mpi-p");
    let emb = first_rows(&dir, "emb.npy", 400);
    let want = reference(&emb, &dir.path("one.cache"));
    for p in [1, 2, 3] {
        let out = dir.path(&format!("p{p}.cache"));
        let err = ok(&run(
            p,
            &["diversity-cache", &emb, "-o", &out, "--threads", "1"],
        ));
        assert!(
            std::fs::read(&out).unwrap() == want,
            "P = {p}: the bytes differ"
        );
        if p > 1 {
            assert!(
                err.contains(&format!("{p} MPI ranks shared the work: batches")),
                "{err}"
            );
        }
        // Progress and the summary come from rank 0 alone.
        assert_eq!(err.matches("is complete").count(), 1, "{err}");
        // The summary gives the bytes of S all ranks read together (at most one row per
        // step of each ordering: 400 orderings × 400 steps × a row of 2-byte entries,
        // padded to a multiple of 64), and the rate.
        let read = if err.contains(" GB of its rows read") {
            number_before(&err, " GB of its rows read") * 1e9
        } else {
            number_before(&err, " MB of its rows read") * 1e6
        };
        assert!(read > 0.0 && read <= 400.0 * 400.0 * 448.0 * 2.0, "{err}");
        assert!(number_before(&err, " GB/s") > 0.0, "{err}");
    }
}

#[test]
fn the_column_split_of_s_writes_the_same_bytes() {
    let dir = TempDir::new("mpi-col");
    let emb = first_rows(&dir, "emb.npy", 300);
    let want = reference(&emb, &dir.path("one.cache"));
    // S takes 300·320·2 = 192,000 bytes: over the budget. A block of columns takes
    // 2·300·150 = 90,000 on each of 2 ranks, 60,000 on each of 3: within it.
    for p in [2, 3] {
        let out = dir.path(&format!("p{p}.cache"));
        let args = ["diversity-cache", &emb, "-o", &out, "--budget", "100K"];
        let err = ok(&run(p, &args));
        assert!(err.contains("S split by columns"), "{err}");
        // Each of the 300 orderings' 300 picks read one row of every rank's block: 2 bytes
        // for each of the 300 columns, 54.0 MB over all the ranks, whatever P.
        assert_eq!(number_before(&err, " MB of its rows read"), 54.0, "{err}");
        assert!(number_before(&err, " GB/s") > 0.0, "{err}");
        assert!(
            std::fs::read(&out).unwrap() == want,
            "P = {p}: the bytes differ"
        );
    }
    // Begun split by columns, resumed by three ranks sharing batches: the same file.
    let out = dir.path("mixed.cache");
    let part = std::fs::read(dir.path("p2.cache")).unwrap();
    let n = 300;
    let bitmap = 128 + n * n * 2;
    // Keep the first 64 orderings (bits 0..63) and clear the rest, as a killed run would.
    let mut mixed = part.clone();
    mixed[128 + 64 * n * 2..bitmap].fill(0);
    mixed[bitmap + 8..].fill(0);
    std::fs::write(&out, &mixed).unwrap();
    let err = ok(&run(3, &["diversity-cache", &emb, "-o", &out, "--resume"]));
    assert!(err.contains("236 computed now"), "{err}");
    assert!(err.contains("shared the work: batches"), "{err}");
    assert!(
        std::fs::read(&out).unwrap() == want,
        "the resumed bytes differ"
    );
}

/// The pid of rank `rank` of the job writing `out`, from /proc.
fn rank_pid(out: &str, rank: usize) -> Option<u32> {
    let want = format!("OMPI_COMM_WORLD_RANK={rank}");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        let env = std::fs::read(e.path().join("environ")).ok()?;
        let has =
            |hay: &[u8], needle: &str| hay.split(|&b| b == 0).any(|part| part == needle.as_bytes());
        (cmd.split(|&b| b == 0).next()? == WEFT.as_bytes() && has(&cmd, out) && has(&env, &want))
            .then_some(pid)
    })
}

/// Orderings complete in the file, read from its bitmap (n < 65,536: 2-byte ids).
fn done(path: &str, n: usize) -> usize {
    let Ok(bytes) = std::fs::read(path) else {
        return 0;
    };
    let bitmap = 128 + n * n * 2;
    bytes
        .get(bitmap..)
        .map_or(0, |b| b.iter().map(|x| x.count_ones() as usize).sum())
}

#[test]
fn a_killed_rank_ends_the_job_and_another_p_resumes_to_the_same_bytes() {
    let dir = TempDir::new("mpi-kill");
    let n = 2000;
    let emb = example_emb().to_string_lossy().into_owned();
    let want = reference(&emb, &dir.path("one.cache"));
    let out = dir.path("killed.cache");
    let child = mpirun(
        2,
        &[
            "diversity-cache",
            &emb,
            "-o",
            &out,
            "--threads",
            "1",
            "--quiet",
        ],
    )
    .spawn()
    .unwrap();
    // Once the first batch is committed, SIGKILL the worker (rank 1), a real process.
    let t0 = Instant::now();
    while done(&out, n) == 0 && t0.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let victim = rank_pid(&out, 1).expect("rank 1 of the job");
    let before = done(&out, n);
    assert!(
        before > 0 && before < n,
        "{before} of {n} done when killing"
    );
    Command::new("kill")
        .args(["-9", &victim.to_string()])
        .status()
        .unwrap();
    // The job ends by itself (no rank left waiting), not by the test's limit.
    let (ended, by_itself) = wait(child, Duration::from_secs(60));
    assert!(by_itself, "the job hung after rank 1 was killed");
    assert!(!ended.status.success());
    let err = text(&ended.stderr);
    assert!(
        err.contains("signal 9"),
        "Open MPI names the killed rank: {err}"
    );
    // Whatever was committed holds. Three ranks resume; this time rank 0, the writer, is
    // killed once more is committed; then two ranks finish the rest.
    let first = done(&out, n);
    assert!(first < n);
    let args = [
        "diversity-cache",
        &emb,
        "-o",
        &out,
        "--resume",
        "--threads",
        "1",
        "--quiet",
    ];
    let child = mpirun(3, &args).spawn().unwrap();
    let t0 = Instant::now();
    while done(&out, n) == first && t0.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let writer = rank_pid(&out, 0).expect("rank 0 of the second job");
    assert!(done(&out, n) < n, "the second job finished before the kill");
    Command::new("kill")
        .args(["-9", &writer.to_string()])
        .status()
        .unwrap();
    let (ended, by_itself) = wait(child, Duration::from_secs(60));
    assert!(by_itself, "the job hung after rank 0 was killed");
    assert!(
        text(&ended.stderr).contains("signal 9"),
        "{}",
        text(&ended.stderr)
    );
    ok(&run(2, &args));
    assert!(
        std::fs::read(&out).unwrap() == want,
        "the resumed bytes differ"
    );
}

#[test]
fn rank_zeros_refusal_stops_every_rank_with_one_line() {
    let dir = TempDir::new("mpi-refuse");
    write_f32(&dir.join("emb.npy"), &random_set(50, 8, 7), 50, 8);
    let (emb, out) = (dir.path("emb.npy"), dir.path("c.cache"));
    reference(&emb, &out);
    // An existing cache without --resume: rank 0 refuses, the workers stop quietly.
    let res = run(3, &["diversity-cache", &emb, "-o", &out]);
    let err = text(&res.stderr);
    assert_eq!(res.status.code(), Some(1), "{err}");
    assert_eq!(err.matches("refusing to overwrite").count(), 1, "{err}");
    // --shard is for separate runs.
    let res = run(
        2,
        &[
            "diversity-cache",
            &emb,
            "-o",
            &dir.path("s.cache"),
            "--shard",
            "0/2",
        ],
    );
    assert_eq!(res.status.code(), Some(2));
    assert_eq!(text(&res.stderr).matches("drop --shard").count(), 1);
    // The ranks compute on their CPUs: asking for the GPU is refused, not ignored.
    let gpu = dir.path("g.cache");
    let res = run(2, &["diversity-cache", &emb, "-o", &gpu, "--device", "gpu"]);
    assert_eq!(res.status.code(), Some(2));
    assert_eq!(
        text(&res.stderr)
            .matches("--device gpu: under mpirun")
            .count(),
        1
    );
    assert!(!std::path::Path::new(&gpu).exists());
    // A command that does not use MPI refuses on each rank.
    let res = run(2, &["similarity", &emb, "-o", &dir.path("s.npy")]);
    assert_eq!(res.status.code(), Some(1));
    assert!(text(&res.stderr)
        .contains("only `weft diversity-cache` and `weft run` run as several MPI ranks"));
    assert_eq!(dir.entries(), vec!["c.cache", "emb.npy"]);
}
