//! Bad input and bad output paths: each is exit code 1 with exactly one line on stderr
//! naming the file and the problem, no panic, and no output left behind (not even a hidden
//! temporary). Usage errors are exit code 2.

mod common;
use common::*;
use std::process::Command;

/// Inputs in one folder, outputs in another (which must stay empty after a failure).
struct Case {
    input: TempDir,
    out: TempDir,
}

impl Case {
    fn new(tag: &str) -> Case {
        Case {
            input: TempDir::new(&format!("{tag}-in")),
            out: TempDir::new(&format!("{tag}-out")),
        }
    }

    fn write(&self, name: &str, bytes: &[u8]) -> String {
        std::fs::write(self.input.join(name), bytes).unwrap();
        self.input.path(name)
    }

    fn emb(&self, name: &str, data: &[f32], n: usize, d: usize) -> String {
        write_f32(&self.input.join(name), data, n, d);
        self.input.path(name)
    }

    /// Runs every batch command that reads embeddings on `emb` and expects each to fail
    /// with `fragments`, leaving the output folder empty.
    #[track_caller]
    fn every_command_fails(&self, emb: &str, fragments: &[&str]) {
        let o = |name: &str| self.out.path(name);
        let runs: Vec<Vec<String>> = vec![
            vec!["similarity".into(), emb.into(), "-o".into(), o("s.npy")],
            vec![
                "topk".into(),
                emb.into(),
                "-k".into(),
                "1".into(),
                "--ids".into(),
                o("i.npy"),
            ],
            vec![
                "diversity".into(),
                emb.into(),
                "--starts".into(),
                "0".into(),
                "-o".into(),
                o("q.npy"),
            ],
            vec![
                "diversity-cache".into(),
                emb.into(),
                "-o".into(),
                o("c.cache"),
            ],
        ];
        for args in runs {
            let line = fails(&weft(&args), fragments);
            assert!(
                self.out.entries().is_empty(),
                "{args:?} left {:?} ({line})",
                self.out.entries()
            );
        }
    }
}

fn file_name(p: &str) -> &str {
    p.rsplit('/').next().unwrap()
}

#[test]
fn a_missing_file() {
    let c = Case::new("missing");
    c.every_command_fails(&c.input.path("nope.npy"), &["nope.npy: no such file"]);
}

#[test]
fn a_file_that_is_not_npy() {
    let c = Case::new("not-npy");
    let p = c.write("emb.npy", b"id,text\n1,hello\n");
    c.every_command_fails(&p, &["emb.npy: not a .npy file"]);
    let dir = c.input.path("");
    c.every_command_fails(dir.trim_end_matches('/'), &["a directory, not a .npy file"]);
}

#[test]
fn a_truncated_npy() {
    let c = Case::new("truncated");
    let whole = std::fs::read(example_emb()).unwrap();
    for (cut, what) in [
        (5, "truncated header"),
        (60, "truncated"),
        (128 + 1000, "holds"),
    ] {
        let p = c.write("emb.npy", &whole[..cut]);
        c.every_command_fails(&p, &["emb.npy: ", what]);
    }
}

#[test]
fn a_header_that_lies_about_the_shape() {
    let c = Case::new("lies");
    let data: Vec<u8> = random_set(6, 4, 1)
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    for shape in ["(7, 4)", "(5, 4)", "(6, 5)"] {
        let p = c.write("emb.npy", &npy_bytes(&header("<f4", shape), &data));
        c.every_command_fails(&p, &["emb.npy: header says shape", "file holds 96 bytes"]);
    }
}

#[test]
fn integer_and_string_dtypes() {
    let c = Case::new("dtype");
    for (descr, size, name) in [
        ("<i4", 4, "int32"),
        ("<i8", 8, "int64"),
        ("|u1", 1, "uint8"),
    ] {
        let p = c.write(
            "emb.npy",
            &npy_bytes(&header(descr, "(3, 2)"), &vec![1u8; 6 * size]),
        );
        c.every_command_fails(&p, &["emb.npy: dtype", name, "need float32"]);
    }
    let p = c.write("emb.npy", &npy_bytes(&header("<U5", "(3, 2)"), &[0u8; 120]));
    c.every_command_fails(&p, &["emb.npy: dtype '<U5'", "need float32"]);
}

#[test]
fn one_and_three_dimensional_arrays() {
    let c = Case::new("dims");
    let p = c.write("emb.npy", &npy_bytes(&header("<f4", "(5,)"), &[0u8; 20]));
    c.every_command_fails(&p, &["emb.npy: a 1-D array of shape (5,)", "must be 2-D"]);
    let p = c.write(
        "emb.npy",
        &npy_bytes(&header("<f4", "(2, 3, 4)"), &[0u8; 96]),
    );
    c.every_command_fails(&p, &["emb.npy: ", "(2, 3, 4)"]);
}

#[test]
fn no_rows_and_no_columns() {
    let c = Case::new("empty");
    let p = c.write("emb.npy", &npy_bytes(&header("<f4", "(0, 4)"), &[]));
    c.every_command_fails(&p, &["emb.npy: need at least 1 row, got 0"]);
    let p = c.write("emb.npy", &npy_bytes(&header("<f4", "(5, 0)"), &[]));
    c.every_command_fails(&p, &["emb.npy: ", "5×0", "d must be ≥ 1"]);
}

#[test]
fn one_row_has_no_neighbours() {
    let c = Case::new("one-row");
    let p = c.emb("emb.npy", &[1.0, 0.0], 1, 2);
    let out = weft(&["topk", &p, "-k", "1", "--ids", &c.out.path("i.npy")]);
    fails(&out, &["emb.npy: need at least 2 rows, got 1"]);
    assert!(c.out.entries().is_empty());
}

#[test]
fn a_row_of_zeros_nan_or_inf_is_named() {
    let c = Case::new("rows");
    let (n, d) = (30, 8);
    for (row, value, problem) in [
        (17, 0.0, "row 17 is all zeros"),
        (0, f32::NAN, "row 0 contains NaN"),
        (29, f32::INFINITY, "row 29 contains Inf"),
        (5, f32::NEG_INFINITY, "row 5 contains Inf"),
    ] {
        let mut data = random_set(n, d, 2);
        if value == 0.0 {
            data[row * d..(row + 1) * d].fill(0.0);
        } else {
            data[row * d + 3] = value;
        }
        let p = c.emb("emb.npy", &data, n, d);
        c.every_command_fails(&p, &[&format!("emb.npy: {problem}")]);
    }
}

#[test]
fn k_out_of_range() {
    let c = Case::new("k");
    let p = c.emb("emb.npy", &random_set(20, 4, 3), 20, 4);
    for k in ["0", "20", "21", "1000000"] {
        let out = weft(&["topk", &p, "-k", k, "--ids", &c.out.path("i.npy")]);
        fails(
            &out,
            &[
                "emb.npy: ",
                &format!("k must be in 1..N-1 (N = 20), got {k}"),
            ],
        );
        assert!(c.out.entries().is_empty());
    }
}

#[test]
fn a_start_out_of_range() {
    let c = Case::new("start");
    let p = c.emb("emb.npy", &random_set(20, 4, 3), 20, 4);
    for spec in ["20", "0,5,20", "3-25", "99999999999"] {
        let out = weft(&[
            "diversity",
            &p,
            "--starts",
            spec,
            "-o",
            &c.out.path("q.npy"),
        ]);
        fails(&out, &["emb.npy: ", "is out of range 0..20"]);
        assert!(c.out.entries().is_empty());
    }
}

#[test]
fn an_output_in_a_missing_folder_unwritable_or_a_directory() {
    let c = Case::new("outpath");
    let p = c.emb("emb.npy", &random_set(20, 4, 3), 20, 4);
    let missing = c.out.path("no/such/folder/s.npy");
    fails(
        &weft(&["similarity", &p, "-o", &missing]),
        &["s.npy: cannot write: folder", "does not exist"],
    );
    let missing_cache = c.out.path("no/c.cache");
    fails(
        &weft(&["diversity-cache", &p, "-o", &missing_cache]),
        &["c.cache: cannot write: folder"],
    );
    fails(
        &weft(&[
            "topk",
            &p,
            "-k",
            "3",
            "--ids",
            &c.out.path("i.npy"),
            "--scores",
            &missing,
        ]),
        &["cannot write: folder"],
    );
    assert!(
        c.out.entries().is_empty(),
        "the good output of the pair was not written either"
    );
    fails(
        &weft(&["similarity", &p, "-o", &c.out.path("")]),
        &["is a directory"],
    );

    // Without write permission. Root writes into a 0555 folder anyway; sysfs refuses new
    // files even to root.
    let unwritable = if is_root() {
        "/sys/weft-cli-test.npy".to_string()
    } else {
        use std::os::unix::fs::PermissionsExt;
        let ro = c.out.join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        c.out.path("ro/s.npy")
    };
    fails(
        &weft(&["similarity", &p, "-o", &unwritable]),
        &["s.npy: cannot write", "denied"]
            .map(|f| {
                if is_root() {
                    f.replace("s.npy", "weft-cli-test.npy")
                } else {
                    f.to_string()
                }
            })
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    fails(
        &weft(&["diversity", &p, "--starts", "1", "-o", &unwritable]),
        &["cannot write"],
    );
    assert!(!std::path::Path::new(&unwritable).exists());
}

#[test]
fn ids_and_scores_in_one_file() {
    let c = Case::new("same");
    let p = c.emb("emb.npy", &random_set(20, 4, 3), 20, 4);
    let o = c.out.path("x.npy");
    fails(
        &weft(&["topk", &p, "-k", "3", "--ids", &o, "--scores", &o]),
        &["x.npy: --ids and --scores name the same file"],
    );
}

/// Runs `weft ARGS` under `sh -c WRAPPER`; None when the wrapper says it cannot (exit 97).
fn under(wrapper: &str, args: &[&str]) -> Option<std::process::Output> {
    let out = Command::new("sh")
        .args(["-c", wrapper, "sh", WEFT])
        .args(args)
        .output()
        .unwrap();
    (out.status.code() != Some(97)).then_some(out)
}

#[test]
fn past_the_file_size_limit() {
    // RLIMIT_FSIZE (ulimit -f: 128 blocks of 512 bytes) with SIGXFSZ ignored: writes past
    // 64 KiB fail with EFBIG, as writes to a full disk fail with ENOSPC.
    let c = Case::new("fsize");
    let (n, d) = (600, 8);
    let p = c.emb("emb.npy", &random_set(n, d, 4), n, d);
    let limit = r#"trap '' XFSZ; ulimit -f 128 || exit 97; exec "$@""#;
    let out = under(limit, &["similarity", &p, "-o", &c.out.path("s.npy")]).unwrap();
    fails(&out, &["s.npy: cannot write: File too large"]);
    let out = under(
        limit,
        &["diversity-cache", &p, "-o", &c.out.path("c.cache")],
    )
    .unwrap();
    fails(&out, &["c.cache: File too large"]);
    assert!(c.out.entries().is_empty(), "left {:?}", c.out.entries());
}

#[test]
fn on_a_full_disk() {
    // A real ENOSPC: a 256 KiB tmpfs over the output folder in a private mount namespace
    // (needs root or user namespaces; skipped where neither works). Everything runs inside
    // the namespace, so the script lists the folder and reads the cache there.
    let c = Case::new("tmpfs");
    let (n, d) = (600, 8);
    let p = c.emb("emb.npy", &random_set(n, d, 5), n, d);
    let dir = c.out.path("");
    let dir = dir.trim_end_matches('/');
    let script = format!(
        r#"mount -t tmpfs -o size=256k weft-cli-test {dir} || exit 97
"$0" similarity {p} -o {dir}/s.npy; echo "similarity exit $?"; ls -A {dir}; echo "listed"
"$0" diversity-cache {p} -o {dir}/c.cache --threads 2; echo "cache exit $?"
"$0" cache info {dir}/c.cache"#
    );
    let unshare = if is_root() {
        "unshare -m"
    } else {
        "unshare -rm"
    };
    let wrapper = format!(
        r#"exec {unshare} sh -c '{}' "$1" || exit 97"#,
        script.replace('\'', r"'\''")
    );
    let Some(out) = under(&wrapper, &[]) else {
        skip("on_a_full_disk", "cannot mount a tmpfs here");
        return;
    };
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    if stderr.contains("unshare:") || stdout.is_empty() {
        skip("on_a_full_disk", stderr.trim());
        return;
    }
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "one line per failed command: {stderr}");
    assert!(
        lines[0].contains("s.npy: cannot write: No space left on device"),
        "{stderr}"
    );
    assert!(
        stdout.starts_with("similarity exit 1\nlisted\n"),
        "nothing left: {stdout}"
    );
    // The cache fills the disk part-way: what was committed stays, and the line says how to
    // resume once there is room.
    assert!(
        lines[1].contains("c.cache: No space left on device"),
        "{stderr}"
    );
    assert!(
        lines[1].contains(&format!("of {n} orderings are saved in")),
        "{stderr}"
    );
    assert!(
        lines[1].contains("resume with: ") && lines[1].ends_with("--resume"),
        "{stderr}"
    );
    assert!(stdout.contains("cache exit 1\n"), "{stdout}");
    let info = stdout.lines().last().unwrap();
    assert!(
        info.contains(&format!("\"n\":{n}")) && info.contains("\"complete\":false"),
        "{info}"
    );
    assert!(c.out.entries().is_empty(), "the tmpfs held the files");
    let _ = file_name;
}

#[test]
fn usage_errors_exit_2() {
    let c = Case::new("usage");
    let p = c.emb("emb.npy", &random_set(20, 4, 3), 20, 4);
    let o = c.out.path("x.npy");
    for args in [
        vec!["similarity", &p],
        vec!["similarity", &p, "-o", &o, "--threads", "0"],
        // Above weft_compute::threads::MAX_THREADS (1024).
        vec!["similarity", &p, "-o", &o, "--threads", "1025"],
        vec!["topk", &p, "-k", "3", "--ids", &o, "--threads", "4096"],
        vec!["similarity", &p, "-o", &o, "--budget", "lots"],
        vec!["similarity", &p, "-o", &o, "--progress", "fancy"],
        vec!["topk", &p, "-k", "3"],
        vec!["topk", &p, "-k", "-3", "--ids", &o],
        vec!["diversity", &p, "-o", &o],
        vec!["diversity", &p, "-o", &o, "--starts", "1,,2"],
        vec!["diversity", &p, "-o", &o, "--starts", "9-3"],
        vec!["diversity-cache", &p, "-o", &o, "--resume", "--force"],
        vec!["cache", "export", &o, "--starts", "x", "-o", &o],
        vec!["cache"],
        vec!["bench", "--starts", "0"],
    ] {
        let out = weft(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    assert!(c.out.entries().is_empty());
}

#[test]
fn every_command_has_help_with_an_example() {
    for cmd in [
        &["similarity"][..],
        &["topk"],
        &["diversity"],
        &["diversity-cache"],
        &["cache"],
        &["cache", "info"],
        &["cache", "export"],
        &["bench"],
        &["devices"],
    ] {
        let mut args = cmd.to_vec();
        args.push("--help");
        let out = weft(&args);
        assert!(out.status.success(), "{cmd:?}");
        let help = text(&out.stdout);
        assert!(help.contains("Example"), "{cmd:?}: {help}");
        assert!(
            help.contains(&format!("$ weft {}", cmd.join(" "))),
            "{cmd:?}: {help}"
        );
    }
}

#[test]
fn an_internal_error_is_one_line_and_exit_1() {
    let c = Case::new("panic");
    let p = c.emb("emb.npy", &random_set(20, 4, 3), 20, 4);
    let out = Command::new(WEFT)
        .args(["similarity", &p, "-o", &c.out.path("s.npy")])
        .env("WEFT_CLI_TEST_PANIC", "1")
        .output()
        .unwrap();
    let line = fails(&out, &["weft: internal error: test panic", "please report"]);
    assert!(!line.contains("RUST_BACKTRACE"), "{line}");
}
