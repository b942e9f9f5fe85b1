//! The Python module `weft`: weft-compute's kernels with numpy arrays in and out.
//!
//! Ids, rows and starts are 0-based, as in weft-compute and in the files. Every call
//! releases the GIL for its computation (`Python::detach`), so Python threads calling weft
//! run in parallel. Embeddings that are a C-contiguous float32 array are read in place;
//! anything else is converted once with `numpy.ascontiguousarray(x, dtype=float32)`.
//! Errors carry weft-compute's one-line messages, prefixed with the function's name.

use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::exceptions::{
    PyIndexError, PyLookupError, PyMemoryError, PyOSError, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use weft_compute::{Budget, Cache, CacheInfo, CacheWriter, ComputeError, Normalised, Rows};

/// The embeddings argument of a call, as the C-contiguous float32 array the kernels read.
struct Embeddings<'py> {
    array: PyReadonlyArray2<'py, f32>,
    /// The caller's array when it was converted (to explain a value that overflowed f32).
    original: Option<Bound<'py, PyAny>>,
}

impl<'py> Embeddings<'py> {
    /// Takes `obj` as is when it is a C-contiguous float32 2-D array, else converts it once.
    fn new(py: Python<'py>, obj: &Bound<'py, PyAny>, what: &str) -> PyResult<Self> {
        if let Ok(a) = obj.cast::<PyArray2<f32>>() {
            if a.is_c_contiguous() {
                let array = a
                    .try_readonly()
                    .map_err(|e| PyValueError::new_err(format!("{what}: embeddings: {e}")))?;
                return Ok(Embeddings {
                    array,
                    original: None,
                });
            }
        }
        let np = py.import("numpy")?;
        let arr = np.call_method1("asarray", (obj,)).map_err(|e| {
            PyValueError::new_err(format!(
                "{what}: embeddings must be a 2-D array of floats (rows × dims): {}",
                e.value(py)
            ))
        })?;
        let ndim: usize = arr.getattr("ndim")?.extract()?;
        if ndim != 2 {
            let shape = arr.getattr("shape")?.str()?.to_string();
            return Err(PyValueError::new_err(format!(
                "{what}: embeddings must be a 2-D array (rows × dims), got shape {shape}"
            )));
        }
        let dtype = arr.getattr("dtype")?;
        let kind: String = dtype.getattr("kind")?.extract()?;
        if !matches!(kind.as_str(), "f" | "i" | "u") {
            return Err(PyTypeError::new_err(format!(
                "{what}: embeddings must be floats, got dtype {}",
                dtype.str()?
            )));
        }
        let kw = PyDict::new(py);
        kw.set_item("dtype", np.getattr("float32")?)?;
        let converted = np.call_method("ascontiguousarray", (&arr,), Some(&kw))?;
        let array = converted
            .cast::<PyArray2<f32>>()
            .map_err(PyErr::from)?
            .try_readonly()
            .map_err(|e| PyValueError::new_err(format!("{what}: embeddings: {e}")))?;
        Ok(Embeddings {
            array,
            original: Some(arr),
        })
    }

    /// (rows, dims).
    fn shape(&self) -> (usize, usize) {
        let s = self.array.shape();
        (s[0], s[1])
    }

    /// The values, row-major.
    fn data(&self) -> PyResult<&[f32]> {
        self.array
            .as_slice()
            .map_err(|e| PyValueError::new_err(format!("embeddings: {e}")))
    }

    /// A compute error as a Python exception; an Inf that conversion to float32 produced
    /// from a finite value is said to be an overflow.
    fn error(&self, py: Python<'py>, what: &str, e: ComputeError) -> PyErr {
        if let (
            ComputeError::BadRow {
                row,
                problem: weft_compute::RowProblem::Inf,
            },
            Some(orig),
        ) = (&e, &self.original)
        {
            let finite = (|| -> PyResult<bool> {
                let np = py.import("numpy")?;
                let r = orig.get_item(*row)?;
                np.call_method1("isfinite", (r,))?
                    .call_method0("all")?
                    .extract()
            })();
            if finite.unwrap_or(false) {
                return PyValueError::new_err(format!(
                    "{what}: embeddings: row {row}: a value overflows float32 (embeddings are \
                     converted to float32, whose largest value is {:e})",
                    f32::MAX
                ));
            }
        }
        to_py(what, e)
    }
}

/// A compute error as the Python exception a careful user expects: ValueError for bad
/// inputs, OSError for files, MemoryError over the memory budget.
fn to_py(what: &str, e: ComputeError) -> PyErr {
    match e {
        ComputeError::StartOutOfRange { start, n } => {
            PyValueError::new_err(format!("{what}: start {start} is out of range 0..{n}"))
        }
        ComputeError::KOutOfRange { k, n } => PyValueError::new_err(format!(
            "{what}: k must be an integer in 1..N-1 (N = {n}), got {k}"
        )),
        ComputeError::Io { ref source, .. } => {
            let msg = format!("{what}: {e}");
            match source.raw_os_error() {
                // OSError(errno, text) becomes the matching subclass (FileNotFoundError, …)
                Some(code) => PyOSError::new_err((code, msg)),
                None => PyOSError::new_err(msg),
            }
        }
        ComputeError::CacheFormat { .. }
        | ComputeError::CacheDamaged { .. }
        | ComputeError::CacheBusy { .. }
        | ComputeError::CacheReplaced { .. }
        | ComputeError::CacheRefused { .. } => PyOSError::new_err(format!("{what}: {e}")),
        ComputeError::CacheMissing { .. } => PyLookupError::new_err(format!("{what}: {e}")),
        ComputeError::OverBudget { .. } => PyMemoryError::new_err(format!("{what}: {e}")),
        other => PyValueError::new_err(format!("{what}: {other}")),
    }
}

/// `threads=`: None for every core, else a positive count.
fn threads_arg(threads: Option<i64>, what: &str) -> PyResult<Option<usize>> {
    match threads {
        None => Ok(None),
        Some(t) if t >= 1 => Ok(Some(t as usize)),
        Some(t) => Err(PyValueError::new_err(format!(
            "{what}: threads must be a positive integer or None, got {t}"
        ))),
    }
}

/// `topk`'s result: (ids, scores).
type Neighbours<'py> = (Bound<'py, PyArray2<u32>>, Bound<'py, PyArray2<f32>>);

/// A flat vector as a (rows, cols) numpy array, without copying it.
fn matrix<'py, T: numpy::Element>(
    py: Python<'py>,
    v: Vec<T>,
    rows: usize,
    cols: usize,
) -> PyResult<Bound<'py, PyArray2<T>>> {
    PyArray1::from_vec(py, v).reshape([rows, cols])
}

/// The cosine similarity matrix S = Ê·Êᵀ of the L2-normalised rows: an (N, N) float32
/// array, exactly symmetric, computed on `threads` cores (None: all of them) without the GIL.
///
/// `embeddings`: any 2-D array-like of floats (N rows). A C-contiguous float32 array is read
/// in place; anything else is converted to one once. A row that is all zeros or holds NaN
/// or Inf is a ValueError naming the (0-based) row.
///
/// Example:
///     >>> import numpy as np, weft
///     >>> E = np.array([[1, 0], [1, 1], [0, 1]], dtype=np.float32)
///     >>> weft.similarity(E).round(3)
///     array([[1.   , 0.707, 0.   ],
///            [0.707, 1.   , 0.707],
///            [0.   , 0.707, 1.   ]], dtype=float32)
#[pyfunction]
#[pyo3(signature = (embeddings, *, threads=None))]
fn similarity<'py>(
    py: Python<'py>,
    embeddings: &Bound<'py, PyAny>,
    threads: Option<i64>,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    const WHAT: &str = "weft.similarity";
    let threads = threads_arg(threads, WHAT)?;
    let emb = Embeddings::new(py, embeddings, WHAT)?;
    let (n, d) = emb.shape();
    let data = emb.data()?;
    let s = py
        .detach(|| {
            let unit = Normalised::new(Rows::new(data, n, d)?)?;
            weft_compute::similarity(unit.rows(), threads, Budget::default())
        })
        .map_err(|e| emb.error(py, WHAT, e))?;
    matrix(py, s, n, n)
}

/// The k nearest neighbours of every row by cosine similarity: `(ids, scores)`, both of
/// shape (N, k), best first — ids uint32 (0-based, never the row itself; equal scores go
/// to the lower id), scores float32. Memory O(N·k): S is never held whole. Runs on
/// `threads` cores (None: all of them) without the GIL.
///
/// `k` must be in 1..N-1 (ValueError otherwise). `embeddings` as for `similarity`.
///
/// Example:
///     >>> import numpy as np, weft
///     >>> E = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
///     >>> ids, scores = weft.topk(E, 1)
///     >>> ids.ravel().tolist()
///     [1, 0, 3, 2]
///     >>> scores.shape, scores.dtype
///     ((4, 1), dtype('float32'))
#[pyfunction]
#[pyo3(signature = (embeddings, k, *, threads=None))]
fn topk<'py>(
    py: Python<'py>,
    embeddings: &Bound<'py, PyAny>,
    k: i64,
    threads: Option<i64>,
) -> PyResult<Neighbours<'py>> {
    const WHAT: &str = "weft.topk";
    let threads = threads_arg(threads, WHAT)?;
    let emb = Embeddings::new(py, embeddings, WHAT)?;
    let (n, d) = emb.shape();
    if k < 1 || k as u64 >= n as u64 {
        return Err(PyValueError::new_err(format!(
            "{WHAT}: k must be an integer in 1..N-1 (N = {n}), got {k}"
        )));
    }
    let k = k as usize;
    let data = emb.data()?;
    let found = py
        .detach(|| {
            let unit = Normalised::new(Rows::new(data, n, d)?)?;
            weft_compute::topk(unit.rows(), k, threads)
        })
        .map_err(|e| emb.error(py, WHAT, e))?;
    Ok((
        matrix(py, found.ids, n, k)?,
        matrix(py, found.scores, n, k)?,
    ))
}

/// Diversity orderings: from each start, repeatedly the item least similar to the centroid
/// of those chosen so far (ties to the lowest id; docs/design.md's exact definition). Returns a
/// uint32 array of shape (len(starts), length or N), one ordering a row, 0-based ids; with
/// a single int as `starts`, one 1-D ordering. `length` keeps the first `length` items of
/// each ordering (much cheaper than whole orderings; clamped to N). Runs without the GIL.
///
/// A start outside 0..N-1 is a ValueError. `embeddings` as for `similarity`.
///
/// Example:
///     >>> import numpy as np, weft
///     >>> E = np.array([[1, 0], [0.9, 0.1], [0, 1], [-1, 0.1]], dtype=np.float32)
///     >>> weft.diversity(E, [0, 2]).tolist()
///     [[0, 3, 1, 2], [2, 0, 3, 1]]
///     >>> weft.diversity(E, 0, length=2).tolist()
///     [0, 3]
#[pyfunction]
#[pyo3(signature = (embeddings, starts, *, length=None, threads=None))]
fn diversity<'py>(
    py: Python<'py>,
    embeddings: &Bound<'py, PyAny>,
    starts: &Bound<'py, PyAny>,
    length: Option<i64>,
    threads: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
    const WHAT: &str = "weft.diversity";
    let threads = threads_arg(threads, WHAT)?;
    // one start (a 1-D result) or a sequence of them (one row each)
    let (list, single): (Vec<i64>, bool) = match starts.extract::<i64>() {
        Ok(s) => (vec![s], true),
        Err(_) => (
            starts.extract::<Vec<i64>>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "{WHAT}: starts must be an int or a sequence of ints, got {}",
                    starts
                        .get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                ))
            })?,
            false,
        ),
    };
    let emb = Embeddings::new(py, embeddings, WHAT)?;
    let (n, d) = emb.shape();
    let mut idx = Vec::with_capacity(list.len());
    for &s in &list {
        if s < 0 || s as u64 >= n as u64 {
            return Err(PyValueError::new_err(format!(
                "{WHAT}: start {s} is out of range 0..{n}"
            )));
        }
        idx.push(s as usize);
    }
    let len = match length {
        None => n,
        Some(l) if l >= 1 => (l as u64).min(n as u64) as usize,
        Some(l) => {
            return Err(PyValueError::new_err(format!(
                "{WHAT}: length must be a positive integer or None, got {l}"
            )))
        }
    };
    let data = emb.data()?;
    let seqs = py
        .detach(|| {
            let unit = Normalised::new(Rows::new(data, n, d)?)?;
            weft_compute::diversity_prefixes(
                unit.rows(),
                None,
                &idx,
                len,
                threads,
                Budget::default(),
            )
        })
        .map_err(|e| emb.error(py, WHAT, e))?;
    let rows = seqs.len();
    let len = seqs.first().map_or(len, |s| s.len());
    let flat = seqs.concat();
    if single {
        Ok(PyArray1::from_vec(py, flat).into_any())
    } else {
        Ok(matrix(py, flat, rows, len)?.into_any())
    }
}

/// A cache's header as a dict: n, d, done, complete, id_width, hash (64 hex digits).
fn info_dict<'py>(py: Python<'py>, info: &CacheInfo) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("n", info.n)?;
    dict.set_item("d", info.d)?;
    dict.set_item("done", info.done)?;
    dict.set_item("complete", info.complete)?;
    dict.set_item("id_width", info.id_width)?;
    dict.set_item("hash", info.hash_hex())?;
    Ok(dict)
}

/// How `diversity_cache` reports progress.
enum Report {
    None,
    /// A bar redrawn on sys.stderr (a terminal).
    Bar,
    /// The caller's function, called with (done, total).
    Call(Py<PyAny>),
}

/// Computes the diversity ordering from every start into the resumable cache file `path`
/// (docs/cache-format.md) and returns its info dict (n, d, done, complete, id_width, hash).
///
/// Orderings are committed in batches, so an interrupted run keeps what it saved:
/// Ctrl-C raises KeyboardInterrupt after the batch in flight, and `resume=True` continues
/// it (only for the same embeddings), finishing byte-identical to an uninterrupted run. An
/// existing file is refused (OSError) unless `resume` or `force` (replace it); not both.
/// `progress`: True draws a bar on stderr when it is a terminal; a function is called
/// with (done, total) after each batch (an exception it raises stops the run, resumable);
/// False is silent. Runs on `threads` cores without the GIL.
///
/// Example:
///     >>> info = weft.diversity_cache(E, "fortunes.cache")
///     >>> with weft.open_cache("fortunes.cache") as cache:
///     ...     first = cache[0]        # the ordering from item 0, uint32
#[pyfunction]
#[pyo3(
    signature = (embeddings, path, *, resume=false, force=false, threads=None, progress=None),
    text_signature = "(embeddings, path, *, resume=False, force=False, threads=None, progress=True)"
)]
#[allow(clippy::too_many_arguments)]
fn diversity_cache<'py>(
    py: Python<'py>,
    embeddings: &Bound<'py, PyAny>,
    path: PathBuf,
    resume: bool,
    force: bool,
    threads: Option<i64>,
    progress: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    const WHAT: &str = "weft.diversity_cache";
    if resume && force {
        return Err(PyValueError::new_err(format!(
            "{WHAT}: {}",
            weft_compute::RESUME_WITH_FORCE
        )));
    }
    let threads = threads_arg(threads, WHAT)?;
    let report = match progress {
        None => bar_if_terminal(py)?,
        Some(p) if p.is_callable() => Report::Call(p.clone().unbind()),
        Some(p) => match p.extract::<bool>() {
            Ok(true) => bar_if_terminal(py)?,
            Ok(false) => Report::None,
            Err(_) => {
                return Err(PyTypeError::new_err(format!(
                    "{WHAT}: progress must be True, False or a function (done, total)"
                )))
            }
        },
    };
    refuse_mapped_source(py, embeddings, &path, WHAT)?;
    let emb = Embeddings::new(py, embeddings, WHAT)?;
    let (n, d) = emb.shape();
    let data = emb.data()?;
    let mut drawn = false;
    let outcome = py.detach(|| -> Result<(CacheInfo, Option<PyErr>), ComputeError> {
        let rows = Rows::new(data, n, d)?;
        let p = path.as_path();
        let mut writer = if resume && p.exists() {
            CacheWriter::resume(p, rows)?
        } else {
            CacheWriter::create(p, rows, force)?
        };
        let cancel = AtomicBool::new(false);
        let mut stop = None;
        let info = writer.run(
            threads,
            &mut |pr| {
                // After each committed batch: report, then let Python run its signal
                // handlers (Ctrl-C) with the GIL taken back for a moment.
                Python::attach(|py| {
                    let reported = match &report {
                        Report::None => Ok(()),
                        Report::Bar => {
                            drawn = true;
                            draw_bar(py, pr.done, pr.total)
                        }
                        Report::Call(f) => f.call1(py, (pr.done, pr.total)).map(drop),
                    };
                    if let Err(e) = reported.and_then(|()| py.check_signals()) {
                        stop.get_or_insert(e);
                        cancel.store(true, Ordering::Relaxed);
                    }
                })
            },
            &cancel,
        )?;
        Ok((info, stop))
    });
    if drawn {
        let _ = py
            .import("sys")
            .and_then(|sys| sys.getattr("stderr")?.call_method1("write", ("\n",)));
    }
    let (info, stop) = outcome.map_err(|e| emb.error(py, WHAT, e))?;
    if let Some(e) = stop {
        return Err(e);
    }
    info_dict(py, &info)
}

/// Refuses to write the cache over the file the embeddings are memory-mapped from
/// (`np.load(..., mmap_mode=...)` or `np.memmap`): `force` would replace the user's .npy and
/// the mapping would survive it, so nothing would tell them until later.
fn refuse_mapped_source(
    py: Python<'_>,
    embeddings: &Bound<'_, PyAny>,
    path: &std::path::Path,
    what: &str,
) -> PyResult<()> {
    let Ok(source) = embeddings.getattr("filename") else {
        return Ok(());
    };
    if source.is_none() || !path.exists() {
        return Ok(());
    }
    let same: bool = py
        .import("os.path")?
        .call_method1("samefile", (&source, path))
        .and_then(|b| b.extract())
        .unwrap_or(false);
    if same {
        return Err(PyValueError::new_err(format!(
            "{what}: {} is the file the embeddings are mapped from; writing the cache there \
             would destroy them, so name another cache file",
            path.display()
        )));
    }
    Ok(())
}

/// A bar when sys.stderr is a terminal, else nothing.
fn bar_if_terminal(py: Python<'_>) -> PyResult<Report> {
    let stderr = py.import("sys")?.getattr("stderr")?;
    let tty = !stderr.is_none()
        && stderr
            .call_method0("isatty")
            .and_then(|t| t.extract::<bool>())
            .unwrap_or(false);
    Ok(if tty { Report::Bar } else { Report::None })
}

/// Redraws the progress line on sys.stderr.
fn draw_bar(py: Python<'_>, done: usize, total: usize) -> PyResult<()> {
    const WIDTH: usize = 30;
    let filled = (done * WIDTH).checked_div(total).unwrap_or(WIDTH);
    let line = format!(
        "\rdiversity cache [{}{}] {done}/{total} ({:.0}%)",
        "#".repeat(filled),
        " ".repeat(WIDTH - filled),
        (done as f64 * 100.0) / (total.max(1) as f64)
    );
    let stderr = py.import("sys")?.getattr("stderr")?;
    stderr.call_method1("write", (line,))?;
    stderr.call_method0("flush")?;
    Ok(())
}

/// A diversity cache opened for reading (`weft.open_cache`): `len(cache)` orderings,
/// `cache[start]` the ordering from `start` as uint32 ids (negative starts count from the
/// end), `cache.info()` the header dict. A context manager: leaving the `with` block
/// closes the file.
#[pyclass(name = "Cache", module = "weft", frozen)]
struct PyCache {
    inner: RwLock<Option<Arc<Cache>>>,
    path: PathBuf,
}

impl PyCache {
    /// The open cache, or ValueError once closed.
    fn open(&self, what: &str) -> PyResult<Arc<Cache>> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| {
                PyValueError::new_err(format!(
                    "{what}: {}: the cache is closed",
                    self.path.display()
                ))
            })
    }
}

#[pymethods]
impl PyCache {
    fn __len__(&self) -> PyResult<usize> {
        Ok(self.open("len(cache)")?.info().n)
    }

    fn __getitem__<'py>(&self, py: Python<'py>, start: i64) -> PyResult<Bound<'py, PyArray1<u32>>> {
        const WHAT: &str = "cache[start]";
        let cache = self.open(WHAT)?;
        let n = cache.info().n;
        let s = if start < 0 { start + n as i64 } else { start };
        if s < 0 || s as u64 >= n as u64 {
            return Err(PyIndexError::new_err(format!(
                "{WHAT}: start {start} is out of range 0..{n}"
            )));
        }
        let seq = py
            .detach(|| cache.get(s as usize))
            .map_err(|e| to_py(WHAT, e))?;
        Ok(PyArray1::from_vec(py, seq))
    }

    /// The cache's header: n, d, done, complete, id_width and hash (64 hex digits).
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        info_dict(py, self.open("cache.info()")?.info())
    }

    /// Whether the ordering from `start` is complete in the file.
    fn is_done(&self, start: usize) -> PyResult<bool> {
        Ok(self.open("cache.is_done()")?.is_done(start))
    }

    /// Closes the file (idempotent); the cache cannot be read afterwards.
    fn close(&self) {
        *self.inner.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Whether `close` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close();
        false
    }

    fn __repr__(&self) -> String {
        match self.open("") {
            Ok(c) => {
                let i = c.info();
                format!(
                    "<weft.Cache {:?}: {} of {} orderings, {} dims>",
                    self.path.display().to_string(),
                    i.done,
                    i.n,
                    i.d
                )
            }
            Err(_) => format!(
                "<weft.Cache {:?} (closed)>",
                self.path.display().to_string()
            ),
        }
    }
}

/// Opens a diversity cache file for reading (OSError when it is missing or not a valid
/// cache). Returns a `weft.Cache`: `len(cache)`, `cache[start]` → uint32 ordering,
/// `cache.info()` → dict; use it in a `with` block to close it.
///
/// Example:
///     >>> with weft.open_cache("fortunes.cache") as cache:
///     ...     print(len(cache), cache.info()["complete"], cache[0][:5])
#[pyfunction]
fn open_cache(py: Python<'_>, path: PathBuf) -> PyResult<PyCache> {
    let cache = py
        .detach(|| Cache::open(&path))
        .map_err(|e| to_py("weft.open_cache", e))?;
    Ok(PyCache {
        inner: RwLock::new(Some(Arc::new(cache))),
        path,
    })
}

/// weft: similarity, top-k and diversity orderings of embeddings, with numpy arrays in and
/// out, on every core and without the GIL (weft's Rust compute engine). Ids are 0-based.
/// Functions: similarity, topk, diversity, diversity_cache, open_cache.
#[pymodule]
fn weft(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(similarity, m)?)?;
    m.add_function(wrap_pyfunction!(topk, m)?)?;
    m.add_function(wrap_pyfunction!(diversity, m)?)?;
    m.add_function(wrap_pyfunction!(diversity_cache, m)?)?;
    m.add_function(wrap_pyfunction!(open_cache, m)?)?;
    m.add_class::<PyCache>()?;
    Ok(())
}
