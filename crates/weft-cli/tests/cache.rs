//! `weft diversity-cache` and `weft cache info|export` as a user meets them: killed with
//! SIGKILL at random moments and resumed until done (byte-identical to an uninterrupted
//! run), stopped with SIGINT/SIGTERM (exit code, message, resumable), refusals of other
//! runs' and damaged files, progress lines.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Synthetic embeddings big enough that an uninterrupted cache run takes ~2 s in this
/// build (debug or release), and that run's file: (embeddings, n, file bytes, seconds).
/// Built once per test binary, in cargo's scratch folder for integration tests.
fn reference() -> &'static (PathBuf, usize, Vec<u8>, f64) {
    static REF: OnceLock<(PathBuf, usize, Vec<u8>, f64)> = OnceLock::new();
    REF.get_or_init(|| {
        let scratch = Path::new(env!("CARGO_TARGET_TMPDIR"));
        // Folders of earlier runs whose process is gone are removed.
        for e in std::fs::read_dir(scratch).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("weft-cli-ref-") {
                if !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = scratch.join(format!("weft-cli-ref-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut n = if cfg!(debug_assertions) { 600 } else { 1500 };
        loop {
            let d = 32;
            let emb = dir.join(format!("emb{n}.npy"));
            write_f32(&emb, &random_set(n, d, 99), n, d);
            let cache = dir.join("ref.cache");
            let t = Instant::now();
            ok(&weft(&[
                "diversity-cache".as_ref(),
                emb.as_os_str(),
                "-o".as_ref(),
                cache.as_os_str(),
                "--force".as_ref(),
                "--threads".as_ref(),
                "2".as_ref(),
            ]));
            let secs = t.elapsed().as_secs_f64();
            if secs >= 1.5 || n >= 4000 {
                let bytes = std::fs::read(&cache).unwrap();
                return (emb, n, bytes, secs);
            }
            n = ((n as f64) * (2.0 / secs).cbrt().min(2.5)) as usize + 1;
        }
    })
}

fn spawn(args: &[&str], stderr: Stdio) -> Child {
    Command::new(WEFT)
        .args(args)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// `cache info` as JSON, or None when there is no readable cache at `path`.
fn info(path: &str) -> Option<serde_json::Value> {
    let out = weft(&["cache", "info", path]);
    out.status.success().then(|| {
        let line = text(&out.stdout);
        assert_eq!(line.lines().count(), 1, "one line: {line}");
        serde_json::from_str(&line).unwrap()
    })
}

fn done(path: &str) -> Option<u64> {
    info(path).map(|v| v["done"].as_u64().unwrap())
}

/// Polls `cache info` until `done` exceeds `after` (true), or the child exits (false).
fn wait_for_commit(child: &mut Child, path: &str, after: u64) -> bool {
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if done(path).is_some_and(|d| d > after) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    t | 1
}

#[test]
fn killed_at_random_moments_and_resumed_it_ends_byte_identical() {
    let (emb, n, want, secs) = reference();
    let (emb, n) = (emb.to_str().unwrap(), *n as u64);
    let dir = TempDir::new("kill");
    let cache = dir.path("k.cache");
    let s = seed();
    println!("seed {s}, uninterrupted run {secs:.2} s, n = {n}");
    let mut rng = Rng(s);
    let args = [
        "diversity-cache",
        emb,
        "-o",
        &cache,
        "--resume",
        "--threads",
        "2",
    ];
    let (mut kills, mut partial, mut after_commit) = (0, 0, 0);
    for round in 0..10 {
        let before = done(&cache).unwrap_or(0);
        let mut child = spawn(&args, Stdio::null());
        let killed_after_commit = if round % 3 == 1 {
            // Right after a batch commit: as soon as `done` moves.
            wait_for_commit(&mut child, &cache, before)
        } else {
            // Anywhere: during start-up, S's build, a batch, a commit's syncs.
            let ms = (rng.below(1000) as f64 * secs * 0.35) as u64;
            std::thread::sleep(Duration::from_millis(ms));
            false
        };
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
            after_commit += killed_after_commit as usize;
        }
        let status = child.wait().unwrap();
        let now = done(&cache);
        println!("round {round}: {status}, done {before} -> {now:?}");
        if let Some(d) = now {
            assert!(d >= before, "committed orderings were lost");
            partial += (d > 0 && d < n) as usize;
            if d == n {
                break;
            }
        }
    }
    assert!(
        kills >= 3,
        "only {kills} runs were killed: the input is too small"
    );
    assert!(after_commit >= 1 && partial >= 1);
    ok(&weft(&args));
    let got = std::fs::read(&cache).unwrap();
    assert!(
        got == *want,
        "the resumed file differs from the uninterrupted one"
    );
    assert_eq!(dir.entries(), vec!["k.cache"], "no pending files left");
}

/// Stops a run with `signal` once it has committed something; checks the exit code and
/// the line, then runs the command the line gives and compares with the reference.
fn stopped_by(signal: &str, code: i32) {
    let (emb, n, want, _) = reference();
    let (emb, n) = (emb.to_str().unwrap(), *n);
    let dir = TempDir::new(signal);
    let cache = dir.path("s.cache");
    let mut child = spawn(
        &["diversity-cache", emb, "-o", &cache, "--threads", "2"],
        Stdio::piped(),
    );
    assert!(
        wait_for_commit(&mut child, &cache, 0),
        "finished before the signal"
    );
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert_eq!(err.lines().count(), 1, "{err:?}");
    let saved = done(&cache).unwrap() as usize;
    assert!(saved > 0 && saved < n, "{saved}");
    let prefix = format!(
        "weft: interrupted by SIG{signal}: {saved} of {n} orderings are saved in {cache}; resume with: "
    );
    assert!(err.starts_with(&prefix), "{err}");
    let resume = err.trim_end().strip_prefix(&prefix).unwrap();
    assert!(resume.ends_with(" --resume"), "{resume}");
    let out = Command::new("sh").args(["-c", resume]).output().unwrap();
    ok(&out);
    assert!(std::fs::read(&cache).unwrap() == *want);
}

#[test]
fn ctrl_c_saves_the_work_says_how_to_resume_and_exits_130() {
    stopped_by("INT", 130);
}

#[test]
fn sigterm_saves_the_work_and_exits_143() {
    stopped_by("TERM", 143);
}

/// A finished cache of a small exact set: (folder, embeddings, cache, n).
fn small() -> (TempDir, String, String, usize) {
    let dir = TempDir::new("small");
    let (n, d) = (100, 8);
    write_f32(&dir.join("emb.npy"), &exact_set(n, d, 5), n, d);
    let (emb, cache) = (dir.path("emb.npy"), dir.path("c.cache"));
    ok(&weft(&[
        "diversity-cache",
        &emb,
        "-o",
        &cache,
        "--threads",
        "2",
        "--quiet",
    ]));
    (dir, emb, cache, n)
}

/// The cache with the completion bits of starts `from..` cleared (as if interrupted).
fn unfinish(cache: &str, n: usize, from: usize) {
    let mut bytes = std::fs::read(cache).unwrap();
    let bitmap = 128 + n * n * 2;
    for s in from..n {
        bytes[bitmap + s / 8] &= !(1 << (s % 8));
    }
    std::fs::write(cache, bytes).unwrap();
}

#[test]
fn info_is_one_json_object() {
    let (_dir, _, cache, n) = small();
    let v = info(&cache).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 7, "{v}");
    assert_eq!(
        v["shard"],
        serde_json::Value::Null,
        "a full cache is no part"
    );
    assert_eq!(v["n"], n);
    assert_eq!(v["d"], 8);
    assert_eq!(v["done"], n);
    assert_eq!(v["complete"], true);
    assert_eq!(v["id_width"], 2);
    assert_eq!(v["hash"].as_str().unwrap().len(), 64);
    unfinish(&cache, n, 60);
    let v = info(&cache).unwrap();
    assert_eq!(
        (v["done"].as_u64(), v["complete"].as_bool()),
        (Some(60), Some(false))
    );
    fails(
        &weft(&["cache", "info", "/nonexistent/c.cache"]),
        &["/nonexistent/c.cache: No such file"],
    );
}

#[test]
fn a_finished_cache_is_never_overwritten_silently() {
    let (_dir, emb, cache, n) = small();
    let before = std::fs::read(&cache).unwrap();
    let line = fails(
        &weft(&["diversity-cache", &emb, "-o", &cache]),
        &["c.cache is a finished cache"],
    );
    assert!(line.contains(&format!(
        "({n} orderings); refusing to overwrite it (--force replaces it)"
    )));
    assert!(std::fs::read(&cache).unwrap() == before);
    let err = ok(&weft(&["diversity-cache", &emb, "-o", &cache, "--resume"]));
    assert!(err.contains("is already complete"), "{err}");
    ok(&weft(&["diversity-cache", &emb, "-o", &cache, "--force"]));
    assert!(std::fs::read(&cache).unwrap() == before, "deterministic");
}

#[test]
fn an_unfinished_cache_needs_resume_and_resumes_to_the_same_bytes() {
    let (_dir, emb, cache, n) = small();
    let want = std::fs::read(&cache).unwrap();
    unfinish(&cache, n, 37);
    fails(
        &weft(&["diversity-cache", &emb, "-o", &cache]),
        &["c.cache is an unfinished cache (37 of 100 orderings); continue it with --resume, or replace it with --force"],
    );
    ok(&weft(&[
        "diversity-cache",
        &emb,
        "-o",
        &cache,
        "--resume",
        "--threads",
        "1",
    ]));
    assert!(std::fs::read(&cache).unwrap() == want);
}

#[test]
fn export_refuses_orderings_not_in_the_cache_and_starts_out_of_range() {
    let (dir, _, cache, n) = small();
    unfinish(&cache, n, 60);
    let out = dir.path("seqs.npy");
    fails(
        &weft(&["cache", "export", &cache, "--starts", "50-69,99", "-o", &out]),
        &["c.cache: 11 of the 21 requested orderings are not in the cache yet (the first: start 60; 60 of 100 are done)", "--resume"],
    );
    fails(
        &weft(&["cache", "export", &cache, "--starts", "0,100", "-o", &out]),
        &["c.cache: ", "start 100 is out of range 0..100"],
    );
    assert!(!Path::new(&out).exists());
    ok(&weft(&[
        "cache", "export", &cache, "--starts", "0-59", "-o", &out,
    ]));
    assert_eq!(read_u32(Path::new(&out)).0, 60);
}

#[test]
fn a_cache_of_other_embeddings_or_another_n_is_refused() {
    let (dir, _, cache, n) = small();
    unfinish(&cache, n, 10);
    let before = std::fs::read(&cache).unwrap();
    let other = dir.path("other.npy");
    write_f32(Path::new(&other), &exact_set(n, 8, 6), n, 8);
    fails(
        &weft(&["diversity-cache", &other, "-o", &cache, "--resume"]),
        &["c.cache: the cache was written for other embeddings (hash differs); --force replaces it"],
    );
    write_f32(Path::new(&other), &exact_set(90, 8, 5), 90, 8);
    fails(
        &weft(&["diversity-cache", &other, "-o", &cache, "--resume"]),
        &["c.cache: the cache is for 100×8 embeddings, these are 90×8"],
    );
    assert!(
        std::fs::read(&cache).unwrap() == before,
        "refusals leave the file alone"
    );
}

#[test]
fn files_of_another_format_or_damaged_are_refused_by_every_command() {
    let (dir, emb, cache, n) = small();
    let whole = std::fs::read(&cache).unwrap();
    let seqs = dir.path("seqs.npy");
    let check = |bytes: &[u8], fragments: &[&str]| {
        std::fs::write(&cache, bytes).unwrap();
        fails(&weft(&["cache", "info", &cache]), fragments);
        fails(
            &weft(&["cache", "export", &cache, "--starts", "0", "-o", &seqs]),
            fragments,
        );
        let line = fails(
            &weft(&["diversity-cache", &emb, "-o", &cache, "--resume"]),
            fragments,
        );
        assert!(line.contains("--force replaces it"), "{line}");
        let line = fails(&weft(&["diversity-cache", &emb, "-o", &cache]), fragments);
        assert!(
            line.contains("refusing to overwrite it (--force replaces it)"),
            "{line}"
        );
        assert!(std::fs::read(&cache).unwrap() == bytes, "left alone");
        assert!(!Path::new(&seqs).exists());
    };
    // Truncated mid-record, and one byte short of the bitmap's end.
    let mid = 128 + n * 2 * 40 + 77;
    check(
        &whole[..mid],
        &[
            &format!(
                "{mid} bytes, but a cache of {n} orderings of 2-byte ids has {}",
                whole.len()
            ),
            "truncated or damaged",
        ],
    );
    check(&whole[..whole.len() - 1], &["truncated or damaged"]);
    // Another format: a .npy file, a text file, an empty file.
    let npy = std::fs::read(&emb).unwrap();
    check(&npy, &["not a weft diversity cache"]);
    check(b"hello", &["not a weft diversity cache"]);
    check(b"", &["not a weft diversity cache"]);
    // A future format version.
    let mut v2 = whole.clone();
    v2[8] = 2;
    check(&v2, &["cache format version 2; this build reads version 1"]);
    // --force replaces any of them.
    ok(&weft(&["diversity-cache", &emb, "-o", &cache, "--force"]));
    assert!(std::fs::read(&cache).unwrap() == whole);
}

#[test]
fn progress_json_is_one_object_per_line() {
    let (dir, emb, _, n) = small();
    let cache = dir.path("p.cache");
    let out = weft(&[
        "diversity-cache",
        &emb,
        "-o",
        &cache,
        "--progress",
        "json",
        "--threads",
        "2",
    ]);
    let err = ok(&out);
    let mut last = 0;
    let lines: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert!(lines.len() >= 2, "{err}");
    for v in &lines {
        assert_eq!(v["phase"], "orderings");
        assert_eq!(v["total"], n);
        let d = v["done"].as_u64().unwrap();
        assert!(d >= last);
        last = d;
        for key in ["elapsed_s", "rate", "eta_s"] {
            assert!(v.get(key).is_some(), "{v}");
        }
    }
    assert_eq!(last, n as u64);
    assert!(lines.last().unwrap()["rate"].as_f64().unwrap() > 0.0);
    // Not a terminal: the default bar prints nothing; the summary is one line.
    let err = ok(&weft(&["diversity-cache", &emb, "-o", &cache, "--force"]));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("weft: ") && err.contains("is complete"),
        "{err}"
    );
    assert_eq!(
        ok(&weft(&[
            "diversity-cache",
            &emb,
            "-o",
            &cache,
            "--force",
            "--quiet"
        ])),
        ""
    );
}

#[test]
fn each_run_reports_the_bytes_of_s_it_read_and_the_rate() {
    let dir = TempDir::new("s_read");
    let (n, d) = (160, 16);
    write_f32(&dir.join("emb.npy"), &exact_set(n, d, 9), n, d);
    let (emb, cache) = (dir.path("emb.npy"), dir.path("c.cache"));
    let summary = ok(&weft(&["diversity-cache", &emb, "-o", &cache]));
    // "…; S built in B s, X MB of its rows read in T s = R GB/s[; K orderings took …])"
    let mb = number_before(&summary, " MB of its rows read");
    // Each ordering reads at most one row of S (2n bytes) per step: 2n³ bytes in all.
    assert!(
        mb > 0.0 && mb * 1e6 <= (2 * n * n * n) as f64,
        "{mb} MB: {summary}"
    );
    assert!(number_before(&summary, " GB/s") > 0.0, "{summary}");
    if summary.contains("took the rest") {
        let followed = number_before(&summary, " orderings took the rest");
        assert!(followed >= 1.0 && followed < n as f64, "{summary}");
    }
    // A run whose S does not fit its budget reads none, and says why.
    let summary = ok(&weft(&[
        "diversity-cache",
        &emb,
        "-o",
        &cache,
        "--force",
        "--budget",
        "1K",
    ]));
    assert!(
        summary.contains("; S over --budget: every step computed from the embeddings)"),
        "{summary}"
    );
    // Nothing computed, nothing measured.
    let summary = ok(&weft(&["diversity-cache", &emb, "-o", &cache, "--resume"]));
    assert!(
        summary.contains("already complete") && !summary.contains("GB/s"),
        "{summary}"
    );
}

#[test]
fn on_a_terminal_the_default_is_a_bar() {
    // util-linux `script` runs the command on a pseudo-terminal; skipped without it.
    let (dir, emb, _, _) = small();
    let cache = dir.path("t.cache");
    let cmd = format!("{WEFT} diversity-cache {emb} -o {cache} --threads 1");
    let Ok(out) = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
    else {
        skip("on_a_terminal_the_default_is_a_bar", "no `script` command");
        return;
    };
    let shown = text(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("orderings ["), "a bar: {shown:?}");
    assert!(shown.contains("/100 ("), "position and rate: {shown:?}");
    assert!(shown.contains("t.cache is complete"), "{shown:?}");
}

#[test]
fn pending_files_of_killed_runs_are_cleaned_up() {
    let (dir, emb, _, _) = small();
    let dead = dir.join(".n.cache.weft-pending-4294967");
    let live = dir.join(&format!(".n.cache.weft-pending-{}", std::process::id()));
    std::fs::write(&dead, b"left by a killed run").unwrap();
    std::fs::write(&live, b"another run's, still going").unwrap();
    ok(&weft(&[
        "diversity-cache",
        &emb,
        "-o",
        &dir.path("n.cache"),
        "--quiet",
    ]));
    assert!(!dead.exists() && live.exists());
}
