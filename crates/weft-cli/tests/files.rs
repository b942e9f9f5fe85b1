//! Outputs never destroy what the user did not ask to replace: symbolic links are followed,
//! FIFOs and character devices are written in place, an output that is an input is refused
//! before any work, two writers of one cache cannot both write it, and damaged caches are
//! refused naming what is damaged. Also the messages of issue 13 that live in the CLI.
//!
//! No test here writes to /dev/null or any other shared device: character devices are made
//! with `mknod` inside a temporary folder (skipped where that is not allowed).

mod common;

use common::*;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn small_emb(dir: &TempDir, name: &str, n: usize, d: usize) -> String {
    write_f32(&dir.join(name), &random_set(n, d, 7), n, d);
    dir.path(name)
}

fn is_fifo(p: &Path) -> bool {
    std::fs::symlink_metadata(p)
        .map(|m| m.file_type().is_fifo())
        .unwrap_or(false)
}

#[test]
fn a_symlinked_output_writes_its_target_and_keeps_the_link() {
    let dir = TempDir::new("link-out");
    let emb = small_emb(&dir, "emb.npy", 20, 4);
    ok(&weft(&[
        "similarity",
        &emb,
        "-o",
        &dir.path("want.npy"),
        "-q",
    ]));
    let want = std::fs::read(dir.join("want.npy")).unwrap();
    std::fs::create_dir(dir.join("real")).unwrap();
    std::fs::write(dir.join("real/sim.npy"), b"old").unwrap();
    std::os::unix::fs::symlink("real/sim.npy", dir.join("link.npy")).unwrap();
    ok(&weft(&[
        "similarity",
        &emb,
        "-o",
        &dir.path("link.npy"),
        "-q",
    ]));
    let link = std::fs::symlink_metadata(dir.join("link.npy")).unwrap();
    assert!(link.file_type().is_symlink(), "the link stays a link");
    assert_eq!(std::fs::read(dir.join("real/sim.npy")).unwrap(), want);
    assert_eq!(std::fs::read_dir(dir.join("real")).unwrap().count(), 1);
}

#[test]
fn a_fifo_output_is_written_through_not_replaced() {
    let dir = TempDir::new("fifo-out");
    let emb = small_emb(&dir, "emb.npy", 20, 4);
    ok(&weft(&[
        "topk",
        &emb,
        "-k",
        "3",
        "--ids",
        &dir.path("want.npy"),
        "-q",
    ]));
    let want = std::fs::read(dir.join("want.npy")).unwrap();
    let fifo = dir.join("ids.npy");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let child = Command::new(WEFT)
        .args([
            "topk",
            &emb,
            "-k",
            "3",
            "--ids",
            fifo.to_str().unwrap(),
            "-q",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Opening for reading waits for weft to open the FIFO for writing.
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(&fifo).unwrap())
    };
    let out = child.wait_with_output().unwrap();
    ok(&out);
    // Checked before joining: a FIFO renamed over would leave the reader waiting forever.
    assert!(is_fifo(&fifo), "the FIFO is still a FIFO");
    assert_eq!(reader.join().unwrap(), want);
}

#[test]
fn a_character_device_output_is_written_through_not_replaced() {
    let dir = TempDir::new("chardev-out");
    let emb = small_emb(&dir, "emb.npy", 20, 4);
    // A private null device (major 1, minor 3), never the system's /dev/null.
    let dev = dir.join("null");
    let made = Command::new("mknod")
        .arg(&dev)
        .args(["c", "1", "3"])
        .stderr(Stdio::null())
        .status();
    if !made.is_ok_and(|s| s.success()) {
        skip(
            "a_character_device_output_is_written_through_not_replaced",
            "mknod is not allowed here",
        );
        return;
    }
    let scores = dir.path("scores.npy");
    ok(&weft(&[
        "topk",
        &emb,
        "-k",
        "3",
        "--ids",
        dev.to_str().unwrap(),
        "--scores",
        &scores,
        "-q",
    ]));
    let m = std::fs::symlink_metadata(&dev).unwrap();
    assert!(m.file_type().is_char_device(), "still a character device");
    read_f32(Path::new(&scores));
    assert_eq!(dir.entries(), ["emb.npy", "null", "scores.npy"]);
}

#[test]
fn a_socket_or_directory_output_is_refused() {
    let dir = TempDir::new("socket-out");
    let emb = small_emb(&dir, "emb.npy", 20, 4);
    let sock = dir.join("s.npy");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    fails(
        &weft(&["similarity", &emb, "-o", sock.to_str().unwrap()]),
        &["s.npy: cannot write: is a socket"],
    );
    fails(
        &weft(&["similarity", &emb, "-o", &dir.path("")]),
        &["is a directory"],
    );
}

#[test]
fn an_output_that_is_an_input_is_refused_before_any_work() {
    let dir = TempDir::new("same");
    let emb = small_emb(&dir, "emb.npy", 30, 4);
    let before = std::fs::read(&emb).unwrap();
    std::fs::hard_link(&emb, dir.join("hard.npy")).unwrap();
    std::os::unix::fs::symlink("emb.npy", dir.join("soft.npy")).unwrap();
    let (hard, soft) = (dir.path("hard.npy"), dir.path("soft.npy"));
    for out in [&emb, &hard, &soft] {
        for args in [
            vec!["similarity", &emb, "-o", out],
            vec!["diversity", &emb, "--starts", "0,1", "-o", out],
            vec!["topk", &emb, "-k", "2", "--scores", out],
            vec!["topk", &emb, "-k", "2", "--ids", out],
            vec!["diversity-cache", &emb, "-o", out, "--force"],
            vec!["diversity-cache", &emb, "-o", out, "--resume"],
        ] {
            let line = fails(&weft(&args), &["is the input", "name another output file"]);
            assert!(line.starts_with(&format!("weft: {out}: ")), "{line}");
        }
    }
    assert_eq!(std::fs::read(&emb).unwrap(), before, "the input is intact");
    // --ids and --scores that are the same file by another name.
    let ids = dir.path("ids.npy");
    std::fs::write(&ids, b"x").unwrap();
    std::fs::hard_link(&ids, dir.join("ids2.npy")).unwrap();
    fails(
        &weft(&[
            "topk",
            &emb,
            "-k",
            "2",
            "--ids",
            &ids,
            "--scores",
            &dir.path("ids2.npy"),
        ]),
        &["--ids and --scores name the same file"],
    );
    // A finished cache exported over itself.
    let cache = dir.path("c.cache");
    ok(&weft(&["diversity-cache", &emb, "-o", &cache, "-q"]));
    let finished = std::fs::read(&cache).unwrap();
    std::os::unix::fs::symlink("c.cache", dir.join("c-link")).unwrap();
    for out in [cache.clone(), dir.path("c-link")] {
        fails(
            &weft(&["cache", "export", &cache, "--starts", "0-3", "-o", &out]),
            &["is the input", "c.cache"],
        );
    }
    assert_eq!(std::fs::read(&cache).unwrap(), finished);
}

/// A spawned `weft` that is resumed and killed if the test ends early, so no stopped
/// process is ever left behind.
struct Run(Child);

impl Drop for Run {
    fn drop(&mut self) {
        signal("CONT", self.0.id());
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(name: &str, pid: u32) {
    let _ = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status();
}

/// Starts `weft diversity-cache EMB -o CACHE --threads 1` and, once it holds the cache's
/// lock (its pid is in the lock file), stops it with SIGSTOP.
fn start_and_stop_a_writer(emb: &str, dir: &TempDir, name: &str) -> Run {
    let child = Command::new(WEFT)
        .args([
            "diversity-cache",
            emb,
            "-o",
            &dir.path(name),
            "--threads",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut run = Run(child);
    let pid = run.0.id();
    let lock = dir.join(&format!(".{name}.weft-lock"));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(
            run.0.try_wait().unwrap().is_none(),
            "the first writer ended before it could be stopped: make the input larger"
        );
        if std::fs::read_to_string(&lock).is_ok_and(|s| s.trim() == pid.to_string())
            && dir.join(name).exists()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the first writer never took the lock"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    signal("STOP", pid);
    assert!(
        run.0.try_wait().unwrap().is_none(),
        "finished before the stop"
    );
    run
}

#[test]
fn a_second_writer_of_a_cache_is_refused_naming_the_first() {
    let dir = TempDir::new("two-writers");
    let (n, d) = (1500, 32);
    let emb = small_emb(&dir, "emb.npy", n, d);
    let reference = dir.path("ref.cache");
    ok(&weft(&[
        "diversity-cache",
        &emb,
        "-o",
        &reference,
        "--threads",
        "2",
        "-q",
    ]));
    let run = start_and_stop_a_writer(&emb, &dir, "c.cache");
    let pid = run.0.id();
    let cache = dir.path("c.cache");
    let busy = format!("c.cache: another process (pid {pid}) is writing this cache");
    for extra in [None, Some("--force"), Some("--resume")] {
        let mut args = vec!["diversity-cache", &emb, "-o", &cache, "-q"];
        args.extend(extra);
        fails(&weft(&args), &[&busy]);
    }
    signal("CONT", pid);
    let mut run = run;
    let child = std::mem::replace(&mut run.0, Command::new("true").spawn().unwrap());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        std::fs::read(&cache).unwrap() == std::fs::read(&reference).unwrap(),
        "the first writer's cache is complete and byte-identical to the reference"
    );
    assert!(
        !dir.join(".c.cache.weft-lock").exists(),
        "the lock file goes with the lock"
    );
}

#[test]
fn a_run_whose_cache_was_replaced_under_it_does_not_report_complete() {
    let dir = TempDir::new("replaced");
    let emb = small_emb(&dir, "emb.npy", 1500, 32);
    let run = start_and_stop_a_writer(&emb, &dir, "r.cache");
    std::fs::write(dir.join("other"), b"someone else's file").unwrap();
    std::fs::rename(dir.join("other"), dir.join("r.cache")).unwrap();
    signal("CONT", run.0.id());
    let mut run = run;
    let child = std::mem::replace(&mut run.0, Command::new("true").spawn().unwrap());
    let out = child.wait_with_output().unwrap();
    fails(
        &out,
        &["r.cache: the file was replaced or removed while this run wrote it"],
    );
    assert_eq!(
        std::fs::read(dir.join("r.cache")).unwrap(),
        b"someone else's file"
    );
}

#[test]
fn damaged_caches_are_refused_naming_the_damage() {
    let dir = TempDir::new("damaged");
    let (n, d) = (40, 4);
    let emb = small_emb(&dir, "emb.npy", n, d);
    let cache = dir.path("c.cache");
    ok(&weft(&["diversity-cache", &emb, "-o", &cache, "-q"]));
    let good = std::fs::read(&cache).unwrap();
    // Record 5, position 2: an id out of range.
    let mut bytes = good.clone();
    let at = 128 + 5 * n * 2 + 2 * 2;
    bytes[at..at + 2].copy_from_slice(&999u16.to_le_bytes());
    std::fs::write(&cache, &bytes).unwrap();
    let out = dir.path("seqs.npy");
    fails(
        &weft(&["cache", "export", &cache, "--starts", "all", "-o", &out]),
        &["c.cache: the ordering from start 5 is damaged: position 2 holds id 999, out of range 0..40"],
    );
    assert!(!Path::new(&out).exists());
    ok(&weft(&[
        "cache", "export", &cache, "--starts", "0-4,6-39", "-o", &out, "-q",
    ]));
    // A damaged bitmap offset names the field and the value it should have.
    let mut bytes = good.clone();
    bytes[72] ^= 1;
    std::fs::write(&cache, &bytes).unwrap();
    let want = 128 + n * n * 2;
    fails(
        &weft(&["cache", "info", &cache]),
        &[&format!(
            "corrupt header: the bitmap offset (bytes 72..80) is {}, expected {want}",
            want ^ 1
        )],
    );
    // Reserved bytes must be zero.
    let mut bytes = good.clone();
    bytes[100] = 1;
    std::fs::write(&cache, &bytes).unwrap();
    fails(
        &weft(&["cache", "info", &cache]),
        &["byte 100 is 0x01, expected 0 (bytes 96..128 are reserved)"],
    );
    fails(
        &weft(&["diversity-cache", &emb, "-o", &cache, "--resume"]),
        &["byte 100 is 0x01"],
    );
    // A directory is a directory, not "bad magic".
    std::fs::create_dir(dir.join("folder")).unwrap();
    let folder = dir.path("folder");
    for args in [
        vec!["diversity-cache", &emb, "-o", &folder],
        vec!["diversity-cache", &emb, "-o", &folder, "--resume"],
        vec!["diversity-cache", &emb, "-o", &folder, "--force"],
        vec!["cache", "info", &folder],
        vec!["cache", "export", &folder, "--starts", "0", "-o", &out],
    ] {
        let line = fails(&weft(&args), &["is a directory"]);
        assert!(!line.contains("magic"), "{line}");
    }
}

#[test]
fn counts_of_one_are_singular() {
    let dir = TempDir::new("singular");
    let emb = small_emb(&dir, "emb.npy", 10, 4);
    let err = ok(&weft(&[
        "diversity",
        &emb,
        "--starts",
        "3",
        "-o",
        &dir.path("s.npy"),
    ]));
    assert!(err.contains("1 ordering of 10 items"), "{err}");
    let cache = dir.path("c.cache");
    ok(&weft(&["diversity-cache", &emb, "-o", &cache, "-q"]));
    let err = ok(&weft(&[
        "cache",
        "export",
        &cache,
        "--starts",
        "2",
        "-o",
        &dir.path("e.npy"),
    ]));
    assert!(err.contains("1 ordering of 10 items"), "{err}");
    assert!(!err.contains("1 orderings"), "{err}");
}

#[test]
fn float64_values_too_large_for_f32_are_named() {
    let dir = TempDir::new("overflow");
    let (n, d) = (4, 3);
    let mut values = vec![0.5f64; n * d];
    values[2 * d + 1] = 1e300;
    let bytes: Vec<u8> = values.iter().flat_map(|x| x.to_le_bytes()).collect();
    let p = dir.join("big.npy");
    std::fs::write(&p, npy_bytes(&header("<f8", "(4, 3)"), &bytes)).unwrap();
    fails(
        &weft(&["similarity", p.to_str().unwrap(), "-o", &dir.path("s.npy")]),
        &["big.npy: row 2: value 1e300 overflows f32"],
    );
}

#[test]
fn resume_with_force_is_refused_in_the_words_lua_uses() {
    let dir = TempDir::new("resume-force");
    let emb = small_emb(&dir, "emb.npy", 10, 4);
    let out = weft(&[
        "diversity-cache",
        &emb,
        "-o",
        &dir.path("c"),
        "--resume",
        "--force",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr).trim_end(),
        "weft: resume and force cannot be used together: resume continues an unfinished \
         cache, force replaces it with a new one"
    );
}
