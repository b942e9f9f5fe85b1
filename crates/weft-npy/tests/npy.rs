//! .npy reading and writing against files numpy wrote (tests/data, made by
//! tests/data/make_fixtures.py), numpy reading what weft wrote (when a python3 with numpy
//! is installed), the shared embeddings file, and every kind of bad input.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use weft_core::array::{Array, DType, Scalar};
use weft_npy::{self as npy, NpyError};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Element `k` (row-major) of the fixture of dtype `code`: the formulas make_fixtures.py
/// documents.
fn expected(code: &str, k: usize) -> Scalar {
    let (kf, ki) = (k as f64, k as i64);
    match code {
        "f2" | "f4" => Scalar::Num((kf * 0.5 - 3.0) as f32 as f64),
        "f8" => Scalar::Num(kf * 0.1 - 2.5),
        "i4" => Scalar::Int(ki * 7 - 20),
        "i8" => Scalar::Int(ki * 3_000_000_007 - 10_000_000_000),
        "u1" => Scalar::Int(250 - ki * 13),
        "u2" => Scalar::Int(60_000 - ki * 999),
        "u4" => Scalar::Int(4_000_000_000 - ki * 12_345),
        _ => panic!("no formula for {code}"),
    }
}

fn dtype_of(code: &str) -> DType {
    match code {
        "f2" | "f4" => DType::F32,
        "f8" => DType::F64,
        "i4" => DType::I32,
        "i8" => DType::I64,
        "u1" => DType::U8,
        "u2" => DType::U16,
        "u4" => DType::U32,
        _ => panic!("no dtype for {code}"),
    }
}

const CODES: [&str; 7] = ["f4", "f8", "i4", "i8", "u1", "u2", "u4"];

fn check_values(array: &Array, code: &str, shape: (usize, Option<usize>), what: &str) {
    assert_eq!(array.dtype(), dtype_of(code), "{what}: dtype");
    assert_eq!(array.shape(), shape, "{what}: shape");
    for k in 0..array.len() {
        assert_eq!(array.get(k), Some(expected(code, k)), "{what}: element {k}");
    }
}

fn load_ok(name: &str) -> npy::Loaded {
    npy::load(&data(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// `npy::load_mmap` of a file only this test uses.
fn map_npy(path: &Path) -> Result<Array, npy::NpyError> {
    // SAFETY: the test files are written before they are mapped and not changed while
    // any array of them is alive.
    unsafe { npy::load_mmap(path) }
}

fn mmap_ok(name: &str) -> Array {
    map_npy(&data(name)).unwrap_or_else(|e| panic!("{name} (mmap): {e}"))
}

/// Assert an error message names the file and contains every needle.
fn assert_err(result: Result<impl std::fmt::Debug, NpyError>, path: &Path, needles: &[&str]) {
    let err = result.expect_err("expected an error");
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "message does not name {}: {msg}",
        path.display()
    );
    assert_eq!(err.path(), path);
    for needle in needles {
        assert!(msg.contains(needle), "message lacks {needle:?}: {msg}");
    }
}

/// A fresh folder under the system temporary folder, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "weft-npy-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A .npy file with `header` (padded to 64 bytes like numpy) and `data`, version 1.0.
fn craft(header: &str, data: &[u8]) -> Vec<u8> {
    let mut h = header.as_bytes().to_vec();
    let padding = (64 - (10 + h.len() + 1) % 64) % 64;
    h.resize(h.len() + padding, b' ');
    h.push(b'\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(data(name)).unwrap()
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// A python3 that can import numpy, if this machine has one.
fn python_with_numpy() -> Option<String> {
    let mut candidates = vec![];
    if let Ok(p) = std::env::var("WEFT_PYTHON") {
        candidates.push(p);
    }
    candidates.extend(["python3", "/usr/bin/python3", "python"].map(String::from));
    candidates.into_iter().find(|py| {
        Command::new(py)
            .args(["-c", "import numpy"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    })
}

/// Fill an array with the fixture formula of `code`.
fn filled(code: &str, rows: usize, cols: Option<usize>) -> Array {
    let a = Array::zeros(dtype_of(code), rows, cols).unwrap();
    for k in 0..a.len() {
        a.set(k, expected(code, k)).unwrap();
    }
    a
}

// ---------------------------------------------------------------------------------------
// Files numpy wrote
// ---------------------------------------------------------------------------------------

#[test]
fn every_dtype_1d_and_2d_by_load_and_mmap() {
    for code in CODES {
        for (suffix, shape) in [("1d", (7, None)), ("2d", (3, Some(4)))] {
            let name = format!("{code}_{suffix}.npy");
            let loaded = load_ok(&name);
            assert_eq!(loaded.note, None, "{name}");
            assert_eq!(loaded.array.read_only_origin(), None);
            check_values(&loaded.array, code, shape, &name);
            let mapped = mmap_ok(&name);
            assert!(mapped.read_only_origin().unwrap().ends_with(&name));
            check_values(&mapped, code, shape, &format!("{name} (mmap)"));
            assert!(
                mapped.set(0, Scalar::Int(1)).is_err(),
                "mapped is read-only"
            );
        }
    }
}

#[test]
fn header_versions_2_and_3() {
    for (name, code, shape) in [
        ("f4_2d_v2.npy", "f4", (3, Some(4))),
        ("i8_1d_v3.npy", "i8", (7, None)),
    ] {
        let bytes = fixture_bytes(name);
        assert_eq!(bytes[6], if name.contains("v2") { 2 } else { 3 });
        let loaded = load_ok(name);
        assert_eq!(loaded.note, None);
        check_values(&loaded.array, code, shape, name);
        check_values(&mmap_ok(name), code, shape, name);
    }
}

#[test]
fn empty_arrays() {
    for (name, code, shape) in [
        ("f4_empty_1d.npy", "f4", (0, None)),
        ("f4_empty_rows.npy", "f4", (0, Some(5))),
        ("u2_empty_cols.npy", "u2", (3, Some(0))),
    ] {
        let loaded = load_ok(name);
        assert_eq!(loaded.array.shape(), shape, "{name}");
        assert_eq!(loaded.array.dtype(), dtype_of(code));
        assert!(loaded.array.is_empty());
        assert_eq!(mmap_ok(name).shape(), shape);
    }
}

#[test]
fn fortran_order_is_transposed_and_refused_by_mmap() {
    for (name, code, shape) in [
        ("f4_2d_fortran.npy", "f4", (3, Some(4))),
        ("i8_2d_fortran.npy", "i8", (3, Some(4))),
        ("u1_2d_fortran.npy", "u1", (3, Some(4))),
        ("u2_5x2_fortran.npy", "u2", (5, Some(2))),
    ] {
        assert!(String::from_utf8_lossy(&fixture_bytes(name)).contains("'fortran_order': True"));
        let loaded = load_ok(name);
        assert_eq!(loaded.note.as_deref(), Some("converted from Fortran order"));
        check_values(&loaded.array, code, shape, name);
        assert_err(
            map_npy(&data(name)),
            &data(name),
            &["cannot memory-map", "Fortran", "load it without mmap"],
        );
    }
}

#[test]
fn big_endian_is_swapped_and_refused_by_mmap() {
    for code in ["f4", "f8", "i4", "i8", "u2", "u4"] {
        let name = format!("{code}_2d_be.npy");
        let loaded = load_ok(&name);
        assert_eq!(loaded.note.as_deref(), Some("converted from big-endian"));
        check_values(&loaded.array, code, (3, Some(4)), &name);
        assert_err(
            map_npy(&data(&name)),
            &data(&name),
            &[
                "cannot memory-map",
                "big-endian",
                &format!("'>{code}'"),
                "without mmap",
            ],
        );
    }
    let loaded = load_ok("u4_1d_be.npy");
    check_values(&loaded.array, "u4", (7, None), "u4_1d_be");
    let both = load_ok("f8_2d_fortran_be.npy");
    assert_eq!(
        both.note.as_deref(),
        Some("converted from big-endian; converted from Fortran order")
    );
    check_values(&both.array, "f8", (3, Some(4)), "f8_2d_fortran_be");
}

#[test]
fn float16_is_widened_to_f32() {
    for (name, shape) in [
        ("f2_1d.npy", (7, None)),
        ("f2_2d.npy", (3, Some(4))),
        ("f2_2d_fortran_be.npy", (3, Some(4))),
    ] {
        let loaded = load_ok(name);
        let note = loaded.note.unwrap();
        assert!(note.contains("converted from float16 to f32"), "{note}");
        assert_eq!(
            note.contains("big-endian") && note.contains("Fortran"),
            name.contains("fortran_be"),
            "{note}"
        );
        check_values(&loaded.array, "f2", shape, name);
        assert_err(
            map_npy(&data(name)),
            &data(name),
            &["cannot memory-map", "float16", "without mmap"],
        );
    }
    let special = load_ok("f2_special.npy").array;
    // SAFETY: nobody writes `special`.
    let v = unsafe { special.as_slice::<f32>() }.unwrap();
    let tiny = 2f32.powi(-24);
    assert_eq!(v[0].to_bits(), 0f32.to_bits());
    assert_eq!(v[1].to_bits(), (-0f32).to_bits());
    assert_eq!(
        &v[2..8],
        &[
            tiny,
            -tiny,
            2f32.powi(-14),
            65504.0,
            f32::INFINITY,
            f32::NEG_INFINITY
        ]
    );
    assert!(v[8].is_nan());
    // 1/3 rounded to float16 (0x3555), widened exactly.
    assert_eq!(v[9], (1.0 + 341.0 / 1024.0) * 0.25);
}

#[test]
fn shapes_other_than_1d_and_2d_are_refused_by_name() {
    for f in [
        npy::load(&data("f4_3d.npy")).map(|l| l.array),
        map_npy(&data("f4_3d.npy")),
    ] {
        assert_err(
            f,
            &data("f4_3d.npy"),
            &["unsupported shape (2, 3, 4)", "3 dimensions", "1-D or 2-D"],
        );
    }
    for f in [
        npy::load(&data("f4_0d.npy")).map(|l| l.array),
        map_npy(&data("f4_0d.npy")),
    ] {
        assert_err(
            f,
            &data("f4_0d.npy"),
            &["unsupported shape ()", "0-D", "1-D or 2-D"],
        );
    }
}

#[test]
fn other_dtypes_are_refused_by_name() {
    for (name, descr) in [
        ("i1_1d.npy", "'|i1'"),
        ("b1_1d.npy", "'|b1'"),
        ("u8_1d.npy", "'<u8'"),
        ("c8_1d.npy", "'<c8'"),
        ("str_1d.npy", "'<U3'"),
        ("bytes_1d.npy", "'|S3'"),
        ("object_1d.npy", "'|O'"),
        (
            "structured_v3.npy",
            "'[('\u{e9}t\u{e9}', '<f4'), ('n', '<i4')]'",
        ),
    ] {
        let needles = [
            &format!("unsupported dtype {descr}")[..],
            "supported: <f4 <f8 <i4 <i8 |u1 <u2 <u4",
        ];
        assert_err(npy::load(&data(name)), &data(name), &needles);
        assert_err(map_npy(&data(name)), &data(name), &needles);
    }
}

// ---------------------------------------------------------------------------------------
// The shipped embeddings (examples/data)
// ---------------------------------------------------------------------------------------

#[test]
fn shipped_embeddings_by_load_and_mmap_agree() {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/data/emb.npy"
    ));
    let loaded = npy::load(path).unwrap();
    assert_eq!(loaded.note, None);
    let owned = loaded.array;
    let mapped = map_npy(path).unwrap();
    for a in [&owned, &mapped] {
        assert_eq!(a.dtype(), DType::F32);
        assert_eq!(a.shape(), (2000, Some(384)));
    }
    assert!(mapped.read_only_origin().is_some());
    assert_eq!(mapped.as_ptr() as usize % 4, 0);
    // SAFETY: nobody writes either array.
    let (x, y) = unsafe {
        (
            owned.as_slice::<f32>().unwrap(),
            mapped.as_slice::<f32>().unwrap(),
        )
    };
    assert_eq!(x.len(), 2000 * 384);
    assert!(x.iter().zip(y).all(|(a, b)| a.to_bits() == b.to_bits()));
    assert!(x.iter().all(|v| v.is_finite()));
    assert!(x.iter().any(|&v| v != 0.0));
}

// ---------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------

fn data_offset(bytes: &[u8]) -> usize {
    match bytes[6] {
        1 => 10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize,
        _ => 12 + u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
    }
}

#[test]
fn save_then_load_round_trips_every_dtype() {
    let dir = TempDir::new("roundtrip");
    for code in CODES {
        for (rows, cols) in [
            (7, None),
            (3, Some(4)),
            (0, None),
            (0, Some(3)),
            (2, Some(0)),
        ] {
            let a = filled(code, rows, cols);
            let path = dir.join(&format!("{code}_{rows}_{cols:?}.npy"));
            npy::save(&a, &path).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
            assert_eq!(data_offset(&bytes) % 64, 0, "data starts on 64 bytes");
            assert_eq!(bytes.len(), data_offset(&bytes) + a.byte_len());
            let loaded = npy::load(&path).unwrap();
            assert_eq!(loaded.note, None);
            check_values(
                &loaded.array,
                code,
                (rows, cols),
                &path.display().to_string(),
            );
            check_values(&map_npy(&path).unwrap(), code, (rows, cols), "mmap");
        }
        // Numpy's own file and weft's hold the same data bytes.
        let numpy_file = fixture_bytes(&format!("{code}_2d.npy"));
        let path = dir.join("again.npy");
        npy::save(&filled(code, 3, Some(4)), &path).unwrap();
        let ours = std::fs::read(&path).unwrap();
        assert_eq!(
            ours[data_offset(&ours)..],
            numpy_file[data_offset(&numpy_file)..],
            "{code}"
        );
        let header = String::from_utf8_lossy(&ours[10..data_offset(&ours)]).into_owned();
        let descr = if code == "u1" {
            "|u1".to_string()
        } else {
            format!("<{code}")
        };
        assert_eq!(
            header.trim_end(),
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (3, 4), }}")
        );
        assert!(header.ends_with('\n'));
    }
    // Only the saved files are left: no temporaries.
    assert!(dir
        .entries()
        .iter()
        .all(|n| n.ends_with(".npy") && !n.starts_with('.')));
}

#[test]
fn save_of_a_view_a_big_array_and_over_an_existing_file() {
    let dir = TempDir::new("views");
    let a = Array::zeros(DType::U16, 257, Some(129)).unwrap();
    for k in 0..a.len() {
        a.set(k, Scalar::Int((k * 7 % 65_536) as i64)).unwrap();
    }
    let path = dir.join("big.npy");
    npy::save(&a, &path).unwrap();
    let back = npy::load(&path).unwrap().array;
    assert_eq!(back.shape(), (257, Some(129)));
    assert!((0..a.len()).all(|k| back.get(k) == a.get(k)));

    // A slice of rows (a view at an offset) and one row saved as 1-D.
    let view = a.slice_rows(100, 103).unwrap();
    npy::save(&view, &path).unwrap(); // replaces big.npy
    let back = npy::load(&path).unwrap().array;
    assert_eq!(back.shape(), (3, Some(129)));
    assert!((0..view.len()).all(|k| back.get(k) == a.get(100 * 129 + k)));
    let row = a.row(5).unwrap();
    npy::save(&row, &path).unwrap();
    let back = npy::load(&path).unwrap().array;
    assert_eq!(back.shape(), (129, None));
    assert!((0..129).all(|k| back.get(k) == a.get(5 * 129 + k)));
    // A read-only mapped array saves too.
    let mapped = map_npy(&data("f8_2d.npy")).unwrap();
    npy::save(&mapped, &path).unwrap();
    check_values(
        &npy::load(&path).unwrap().array,
        "f8",
        (3, Some(4)),
        "resaved",
    );
    assert_eq!(dir.entries(), vec!["big.npy".to_string()]);
}

/// A test that cannot run on this machine (a missing tool or privilege): prints one
/// `SKIPPED` line and lets it pass — except under CI (the `CI` variable set and not `0` or
/// `false`, as `.ci/run` and CI services set it), where a skip hides a gap, so it fails.
fn skip(test: &str, why: &str) {
    let ci = std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
    assert!(
        !ci,
        "{test} cannot run here ({why}); under CI every test must run"
    );
    println!("SKIPPED {test}: {why} (under CI this fails)");
}

#[test]
fn numpy_reads_what_weft_saves() {
    let Some(python) = python_with_numpy() else {
        skip(
            "numpy_reads_what_weft_saves",
            "no python3 with numpy on this machine",
        );
        return;
    };
    let dir = TempDir::new("numpy");
    for code in CODES {
        npy::save(&filled(code, 7, None), &dir.join(&format!("{code}_1d.npy"))).unwrap();
        npy::save(
            &filled(code, 3, Some(4)),
            &dir.join(&format!("{code}_2d.npy")),
        )
        .unwrap();
    }
    let script = r#"
import os, sys
import numpy as np
d = sys.argv[1]
F = {
    "f4": lambda k: k * 0.5 - 3, "f8": lambda k: k * 0.1 - 2.5, "i4": lambda k: k * 7 - 20,
    "i8": lambda k: k * 3000000007 - 10**10, "u1": lambda k: 250 - k * 13,
    "u2": lambda k: 60000 - k * 999, "u4": lambda k: 4000000000 - k * 12345,
}
for code, f in F.items():
    for suffix, shape in [("1d", (7,)), ("2d", (3, 4))]:
        a = np.load(os.path.join(d, f"{code}_{suffix}.npy"))
        descr = ("|" if code == "u1" else "<") + code
        k = np.arange(int(np.prod(shape)))
        if code[0] == "f":
            want = F[code](k.astype(np.float64)).astype(descr).reshape(shape)
        else:
            want = np.array([F[code](int(i)) for i in k], dtype=np.int64).astype(descr).reshape(shape)
        assert a.dtype.str == descr, (code, a.dtype.str)
        assert a.shape == shape, (code, a.shape)
        assert a.flags["C_CONTIGUOUS"]
        assert np.array_equal(a, want), (code, a, want)
        m = np.load(os.path.join(d, f"{code}_{suffix}.npy"), mmap_mode="r")
        assert np.array_equal(m, want)
        print("ok", code, suffix)
# Every float16 bit pattern and numpy's float32 of it, for weft's widening.
h = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16)
np.save(os.path.join(d, "f16_all.npy"), h)
np.save(os.path.join(d, "f16_all_as_f32.npy"), h.astype(np.float32))
print("done")
"#;
    let out = Command::new(&python)
        .args(["-c", script])
        .arg(&dir.0)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{python}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().filter(|l| l.starts_with("ok ")).count(), 14);
    assert!(stdout.contains("done"));

    let halves = npy::load(&dir.join("f16_all.npy")).unwrap();
    assert!(halves.note.unwrap().contains("float16"));
    let singles = npy::load(&dir.join("f16_all_as_f32.npy")).unwrap();
    assert_eq!(singles.note, None);
    // SAFETY: nobody writes these arrays.
    let (ours, theirs) = unsafe {
        (
            halves.array.as_slice::<f32>().unwrap(),
            singles.array.as_slice::<f32>().unwrap(),
        )
    };
    assert_eq!(ours.len(), 65536);
    for (bits, (a, b)) in ours.iter().zip(theirs).enumerate() {
        if b.is_nan() {
            assert!(a.is_nan(), "{bits:#06x}");
        } else {
            assert_eq!(a.to_bits(), b.to_bits(), "{bits:#06x}: {a} vs numpy {b}");
        }
    }
}

#[test]
fn save_into_a_missing_folder_names_the_path_and_leaves_nothing() {
    let dir = TempDir::new("missing");
    let path = dir.join("no/such/folder/out.npy");
    let a = filled("f4", 3, Some(4));
    assert_err(
        npy::save(&a, &path),
        &path,
        &["cannot write", "does not exist"],
    );
    assert!(!path.exists());
    assert!(dir.entries().is_empty());
}

#[test]
fn save_into_a_read_only_folder_names_the_path_and_leaves_nothing() {
    let a = filled("f4", 3, Some(4));
    if is_root() {
        // Root writes into a 0555 folder anyway; sysfs refuses new files even to root.
        let path = PathBuf::from("/sys/weft-npy-test.npy");
        assert_err(npy::save(&a, &path), &path, &["cannot write"]);
        assert!(!path.exists());
        println!(
            "running as root: used {} as the unwritable folder",
            path.display()
        );
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("readonly");
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o555)).unwrap();
    let path = dir.join("out.npy");
    let result = npy::save(&a, &path);
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_err(result, &path, &["cannot write", "ermission denied"]);
    assert!(dir.entries().is_empty());
}

#[test]
fn save_onto_a_directory_or_a_path_without_a_file_name() {
    let dir = TempDir::new("ontodir");
    std::fs::create_dir(dir.join("taken.npy")).unwrap();
    let a = filled("u1", 7, None);
    let path = dir.join("taken.npy");
    assert_err(npy::save(&a, &path), &path, &["cannot write"]);
    assert!(path.is_dir());
    assert_eq!(
        dir.entries(),
        vec!["taken.npy".to_string()],
        "temporary removed"
    );
    let root = Path::new("/");
    assert_err(
        npy::save(&a, root),
        root,
        &["cannot write", "is a directory"],
    );
}

#[test]
fn save_through_a_symlink_writes_its_target_and_keeps_the_link() {
    let dir = TempDir::new("symlink");
    let target = dir.join("target.npy");
    std::fs::write(&target, b"old").unwrap();
    let link = dir.join("link.npy");
    std::os::unix::fs::symlink("target.npy", &link).unwrap();
    let a = filled("f4", 3, Some(2));
    npy::save(&a, &link).unwrap();
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    check_values(
        &npy::load(&target).unwrap().array,
        "f4",
        (3, Some(2)),
        "target",
    );
    // A dangling link names the file to create.
    let dangling = dir.join("dangling.npy");
    std::os::unix::fs::symlink("made.npy", &dangling).unwrap();
    npy::save(&a, &dangling).unwrap();
    assert!(std::fs::symlink_metadata(&dangling)
        .unwrap()
        .file_type()
        .is_symlink());
    check_values(
        &npy::load(&dir.join("made.npy")).unwrap().array,
        "f4",
        (3, Some(2)),
        "made",
    );
    assert_eq!(
        dir.entries(),
        ["dangling.npy", "link.npy", "made.npy", "target.npy"]
    );
}

#[test]
fn save_to_a_fifo_writes_through_it() {
    use std::io::Read;
    use std::os::unix::fs::FileTypeExt;
    let dir = TempDir::new("fifo");
    let fifo = dir.join("out.npy");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    // The reader blocks in open until the writer opens the FIFO.
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            std::fs::File::open(&fifo)
                .unwrap()
                .read_to_end(&mut bytes)
                .unwrap();
            bytes
        })
    };
    let a = filled("u2", 4, Some(3));
    npy::save(&a, &fifo).unwrap();
    // Checked before joining: a FIFO renamed over would leave the reader blocked forever.
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
    let bytes = reader.join().unwrap();
    let copy = dir.join("copy.npy");
    std::fs::write(&copy, bytes).unwrap();
    check_values(
        &npy::load(&copy).unwrap().array,
        "u2",
        (4, Some(3)),
        "read from the FIFO",
    );
}

#[test]
fn save_over_the_file_an_array_is_mapped_from_keeps_the_mapping_valid() {
    let dir = TempDir::new("mapped");
    let path = dir.join("m.npy");
    npy::save(&filled("f4", 4, Some(2)), &path).unwrap();
    let mapped = map_npy(&path).unwrap();
    assert_eq!(
        mapped.mapped_file(),
        weft_core::files::FileId::of_path(&path)
    );
    // Saving a slice over its own source replaces the file by rename: the mapping keeps
    // the old contents, the file gets the new ones.
    let first = mapped.slice_rows(0, 1).unwrap();
    npy::save(&first, &path).unwrap();
    check_values(&mapped, "f4", (4, Some(2)), "the mapping after the save");
    check_values(
        &npy::load(&path).unwrap().array,
        "f4",
        (1, Some(2)),
        "the file",
    );
}

/// Run `disk_full_child` in a child process under `wrapper` (a shell script that limits
/// the disk and execs its arguments); its output, or None if the wrapper could not run.
fn run_disk_full_child(wrapper: &str, dir: &Path, expect: &str) -> Option<String> {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("sh")
        .args(["-c", wrapper, "sh"])
        .arg(&exe)
        .args([
            "disk_full_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("WEFT_NPY_CHILD_DIR", dir)
        .env("WEFT_NPY_CHILD_EXPECT", expect)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.code() == Some(97) {
        return None;
    }
    assert!(out.status.success(), "child failed: {text}");
    assert!(text.contains("CHILD-OK"), "child did not run: {text}");
    Some(text)
}

/// The child side of the disk-full tests: does nothing unless a parent set the variables.
#[test]
fn disk_full_child() {
    let (Ok(dir), Ok(expect)) = (
        std::env::var("WEFT_NPY_CHILD_DIR"),
        std::env::var("WEFT_NPY_CHILD_EXPECT"),
    ) else {
        return;
    };
    let dir = PathBuf::from(dir);
    // A small file fits under the limit.
    let small = dir.join("small.npy");
    npy::save(&filled("f4", 3, Some(4)), &small).unwrap();
    // 4 MB does not.
    let path = dir.join("big.npy");
    let a = Array::zeros(DType::F32, 1024, Some(1024)).unwrap();
    assert_err(npy::save(&a, &path), &path, &["cannot write", &expect]);
    assert!(!path.exists());
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from("small.npy")],
        "temporary removed"
    );
    check_values(
        &npy::load(&small).unwrap().array,
        "f4",
        (3, Some(4)),
        "small",
    );
    println!("CHILD-OK {}", npy::save(&a, &path).unwrap_err());
}

#[test]
fn save_past_the_file_size_limit_fails_cleanly() {
    // RLIMIT_FSIZE (ulimit -f, in 512-byte blocks in dash) with SIGXFSZ ignored: a write
    // past 64 KiB fails with EFBIG, as a full disk fails with ENOSPC.
    let dir = TempDir::new("fsize");
    let text = run_disk_full_child(
        r#"trap '' XFSZ; ulimit -f 128 || exit 97; exec "$@""#,
        &dir.0,
        "File too large",
    )
    .expect("ulimit -f works in sh");
    println!("{text}");
}

#[test]
fn save_onto_a_full_disk_fails_cleanly() {
    // A real ENOSPC: a 256 KiB tmpfs mounted in a private mount namespace. Needs root (or
    // user namespaces) and util-linux's unshare; skipped where neither works.
    let dir = TempDir::new("tmpfs");
    let wrapper = r#"exec unshare -m sh -c 'mount -t tmpfs -o size=256k weft-npy-test "$WEFT_NPY_CHILD_DIR" || exit 97; exec "$@"' sh "$@" || exit 97"#;
    let wrapper = if is_root() {
        wrapper.to_string()
    } else {
        wrapper.replace("unshare -m", "unshare -rm")
    };
    match run_disk_full_child(&wrapper, &dir.0, "No space left on device") {
        Some(text) => println!("{text}"),
        None => skip(
            "save_onto_a_full_disk_fails_cleanly",
            "cannot mount a tmpfs here",
        ),
    }
    assert!(
        dir.entries().is_empty(),
        "the tmpfs held the files, not the folder"
    );
}

// ---------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------

fn write_file(dir: &TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Both loaders fail with a message naming the file and holding every needle.
fn both_fail(path: &Path, needles: &[&str]) {
    assert_err(npy::load(path), path, needles);
    assert_err(map_npy(path), path, needles);
}

#[test]
fn missing_file_directory_and_bad_magic() {
    let dir = TempDir::new("magic");
    both_fail(&dir.join("nope.npy"), &["no such file"]);
    both_fail(&dir.0, &["a directory, not a .npy file"]);
    both_fail(
        &write_file(&dir, "empty.npy", b""),
        &["not a .npy file (bad magic)"],
    );
    both_fail(
        &write_file(&dir, "text.npy", b"hello, world: not numpy at all"),
        &["not a .npy file (bad magic)"],
    );
    both_fail(
        &write_file(&dir, "npz.npy", b"PK\x03\x04\x14\x00\x00\x00"),
        &["bad magic"],
    );
    let mut lower = fixture_bytes("f4_1d.npy");
    lower[1] = b'n';
    both_fail(&write_file(&dir, "lower.npy", &lower), &["bad magic"]);
}

#[test]
fn truncated_preamble_and_header() {
    let dir = TempDir::new("trunc");
    let good = fixture_bytes("f4_2d.npy");
    both_fail(
        &write_file(&dir, "t4.npy", &good[..4]),
        &["truncated header", "ends after 4 bytes"],
    );
    both_fail(
        &write_file(&dir, "t9.npy", &good[..9]),
        &[
            "truncated header",
            "ends after 9 bytes",
            "10-byte preamble",
            "version 1.0",
        ],
    );
    let v2 = fixture_bytes("f4_2d_v2.npy");
    both_fail(
        &write_file(&dir, "v2t11.npy", &v2[..11]),
        &["truncated header", "12-byte preamble", "version 2.0"],
    );
    // The file ends inside the header: the length field points past the end.
    both_fail(
        &write_file(&dir, "t40.npy", &good[..40]),
        &["header length field says 118 bytes but only 30 bytes follow the preamble"],
    );
}

#[test]
fn header_length_past_the_end_of_the_file() {
    let dir = TempDir::new("hlen");
    let mut v1 = fixture_bytes("f4_2d.npy");
    v1[8] = 0xff;
    v1[9] = 0xff;
    both_fail(
        &write_file(&dir, "v1.npy", &v1),
        &[
            "header length field says 65535 bytes",
            "only 166 bytes follow",
        ],
    );
    let mut v2 = fixture_bytes("f4_2d_v2.npy");
    v2[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    both_fail(
        &write_file(&dir, "v2.npy", &v2),
        &["header length field says 4294967295 bytes"],
    );
}

#[test]
fn unsupported_versions() {
    let dir = TempDir::new("version");
    for (major, minor) in [(4u8, 0u8), (1, 1), (0, 0)] {
        let mut bytes = fixture_bytes("f4_2d.npy");
        bytes[6] = major;
        bytes[7] = minor;
        both_fail(
            &write_file(&dir, "v.npy", &bytes),
            &[
                &format!("unsupported .npy format version {major}.{minor}"),
                "1.0, 2.0 and 3.0",
            ],
        );
    }
}

#[test]
fn unparsable_headers_quote_the_offending_part() {
    let dir = TempDir::new("parse");
    let f4 = |n: usize| vec![0u8; n * 4];
    for (header, needles) in [
        (
            "{'descr': '<f4', 'fortran_order': Flase, 'shape': (3,), }",
            vec![
                "unparsable header",
                "unexpected name 'Flase'",
                "\"Flase, 'shape'",
            ],
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': [3], }",
            vec!["'shape' must be a tuple", "\"[3]\""],
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3), }",
            vec!["'shape' must be a tuple", "\"(3)\""],
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 3), }",
            vec!["non-negative", "\"(-1, 3)\""],
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': ('3',), }",
            vec!["'shape' must hold integers", "\"('3',)\""],
        ),
        (
            "{'descr': '<f4', 'fortran_order': 0, 'shape': (3,), }",
            vec!["'fortran_order' must be True or False", "\"0\""],
        ),
        (
            "{'descr': 4, 'fortran_order': False, 'shape': (3,), }",
            vec!["'descr' must be a string", "\"4\""],
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, }",
            vec!["missing key 'shape'"],
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'x': 1}",
            vec!["unexpected key 'x'"],
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3,) }}",
            vec!["unexpected text after the header dict", "\"}\""],
        ),
        ("['descr', '<f4']", vec!["expected the header to be a dict"]),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), ",
            vec!["expected a value at the end of the header"],
        ),
    ] {
        let path = write_file(&dir, "h.npy", &craft(header, &f4(3)));
        both_fail(&path, &needles);
    }
    // A version 3.0 header that is not UTF-8.
    let mut v3 = fixture_bytes("i8_1d_v3.npy");
    let at = v3.iter().position(|&b| b == b'<').unwrap();
    v3[at] = 0xff;
    both_fail(&write_file(&dir, "v3.npy", &v3), &["must be UTF-8"]);
    // The same byte in a 1.0 (latin-1) header is just an odd dtype name.
    let mut v1 = fixture_bytes("i8_1d.npy");
    let at = v1.iter().position(|&b| b == b'<').unwrap();
    v1[at] = 0xff;
    both_fail(
        &write_file(&dir, "v1.npy", &v1),
        &["unsupported dtype '\u{ff}i8'"],
    );
}

#[test]
fn data_size_must_match_the_header_exactly() {
    let dir = TempDir::new("size");
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (100, 384), }";
    both_fail(
        &write_file(&dir, "short.npy", &craft(header, &[0u8; 1000])),
        &["header says shape (100, 384) of <f4 = 153600 bytes but the file holds 1000 bytes of data"],
    );
    let good = fixture_bytes("f4_2d.npy");
    both_fail(
        &write_file(&dir, "cut.npy", &good[..good.len() - 8]),
        &["header says shape (3, 4) of <f4 = 48 bytes but the file holds 40 bytes of data"],
    );
    both_fail(
        &write_file(&dir, "nodata.npy", &good[..128]),
        &["= 48 bytes but the file holds 0 bytes of data"],
    );
    let mut long = good.clone();
    long.extend_from_slice(&[1, 2, 3, 4]);
    both_fail(
        &write_file(&dir, "long.npy", &long),
        &["header says shape (3, 4) of <f4 = 48 bytes but the file holds 52 bytes of data"],
    );
    let f2 = "{'descr': '<f2', 'fortran_order': False, 'shape': (5,), }";
    both_fail(
        &write_file(&dir, "f2.npy", &craft(f2, &[0u8; 12])),
        &["shape (5,) of <f2 = 10 bytes but the file holds 12 bytes"],
    );
}

#[test]
fn shapes_whose_size_overflows() {
    let dir = TempDir::new("overflow");
    for shape in [
        "(4611686018427387904, 4611686018427387904)",
        "(18446744073709551615,)",
        "(9223372036854775808, 0)",
        "(4611686018427387904,)",
    ] {
        let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
        let path = write_file(&dir, "o.npy", &craft(&header, &[0u8; 16]));
        both_fail(&path, &[&format!("shape {shape} of <f4 is too large")]);
    }
    let header =
        "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999999,), }";
    both_fail(
        &write_file(&dir, "o2.npy", &craft(header, &[])),
        &["non-negative integers that fit in 64 bits"],
    );
    // A zero dimension makes an empty array, however large the other one.
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4611686018427387904), }";
    let path = write_file(&dir, "zero.npy", &craft(header, &[]));
    assert_eq!(
        npy::load(&path).unwrap().array.shape(),
        (0, Some(4611686018427387904))
    );
}

#[test]
fn mmap_refuses_misaligned_data_that_load_reads() {
    let dir = TempDir::new("align");
    // A hand-made file whose data starts at byte 75: fine to read, not to map as f4.
    let mut header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (7,), }".to_vec();
    header.resize(64, b' ');
    header.push(b'\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(&header);
    assert_eq!(bytes.len(), 75);
    for k in 0..7 {
        bytes.extend_from_slice(&((k as f32) * 0.5 - 3.0).to_le_bytes());
    }
    let path = write_file(&dir, "odd.npy", &bytes);
    check_values(&npy::load(&path).unwrap().array, "f4", (7, None), "odd");
    assert_err(
        map_npy(&path),
        &path,
        &[
            "cannot memory-map",
            "starts at byte 75",
            "4-byte element",
            "without mmap",
        ],
    );
    // One-byte elements map at any offset.
    let header = b"{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }\n";
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[250, 237, 224]);
    let path = write_file(&dir, "u1.npy", &bytes);
    check_values(&map_npy(&path).unwrap(), "u1", (3, None), "u1 mmap");
    // A 1-D array, or a single row, in Fortran order is the same bytes: no conversion.
    let header = "{'descr': '<u2', 'fortran_order': True, 'shape': (1, 3), }";
    let data: Vec<u8> = [60_000u16, 59_001, 58_002]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let path = write_file(&dir, "row.npy", &craft(header, &data));
    let loaded = npy::load(&path).unwrap();
    assert_eq!(loaded.note, None);
    check_values(&loaded.array, "u2", (1, Some(3)), "row");
    check_values(&map_npy(&path).unwrap(), "u2", (1, Some(3)), "row mmap");
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_corruption_never_panics() {
    let dir = TempDir::new("fuzz");
    // A fixed seed by default (the same files every run); WEFT_SEED explores others and
    // replays a failure, which names the seed.
    let seed = match std::env::var("WEFT_SEED") {
        Ok(s) => s
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("WEFT_SEED must be an unsigned integer, got {s:?}")),
        Err(_) => 0x9e37_79b9_7f4a_7c15,
    };
    println!("random corruption: seed {seed} (replay with WEFT_SEED={seed})");
    let mut rng = Rng(seed | 1);
    let (mut ok, mut err) = (0, 0);
    for name in [
        "f4_2d.npy",
        "f2_2d_fortran_be.npy",
        "i8_1d_v3.npy",
        "f4_2d_v2.npy",
        "u2_5x2_fortran.npy",
        "structured_v3.npy",
    ] {
        let good = fixture_bytes(name);
        for round in 0..400 {
            let mut bytes = good.clone();
            match rng.below(4) {
                0 => bytes.truncate(rng.below(good.len() + 1)),
                1 => bytes.extend((0..1 + rng.below(16)).map(|_| rng.next() as u8)),
                _ => {
                    for _ in 0..1 + rng.below(4) {
                        // Mostly the preamble and header, where the parsing is.
                        let at = if rng.below(4) == 0 {
                            rng.below(bytes.len())
                        } else {
                            rng.below(data_offset(&good).min(bytes.len()))
                        };
                        bytes[at] = match rng.below(3) {
                            0 => bytes[at] ^ (1 << rng.below(8)),
                            1 => b"'\"(),:{}[] 0123456789-LTrueFals<>|fiu"[rng.below(37)],
                            _ => rng.next() as u8,
                        };
                    }
                }
            }
            let path = write_file(&dir, "fuzz.npy", &bytes);
            let results = [npy::load(&path).map(|l| l.array), map_npy(&path)];
            for result in results {
                match result {
                    Ok(a) => {
                        assert!(
                            a.byte_len() <= bytes.len() * 2,
                            "{name} round {round}, WEFT_SEED={seed}"
                        );
                        ok += 1;
                    }
                    Err(e) => {
                        assert!(e.to_string().contains("fuzz.npy"), "{e} (WEFT_SEED={seed})");
                        err += 1;
                    }
                }
            }
        }
    }
    println!("random corruption: {ok} loaded, {err} refused");
    assert!(ok > 0 && err > 0);
}
