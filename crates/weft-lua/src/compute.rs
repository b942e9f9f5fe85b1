//! `weft.similarity`, `weft.topk`, `weft.diversity`, `weft.diversity_cache` and
//! `weft.open_cache`: the compute engine (weft-compute) on weft arrays.
//!
//! Embeddings are a 2-D f32 array (f64 is converted); the kernels read its memory in
//! place. Ids and starts are 1-based here and 0-based in weft-compute and in files; this
//! module converts both ways, including inside error messages. Options tables take
//! `threads = n` (default: every core) and `budget = bytes` (the memory the engine may use
//! for the similarity matrix; beyond it top-k and orderings compute S on the fly) and
//! `device = "cpu" | "gpu" | "auto"` (where it runs: `device.rs`).

use crate::arrays::LuaArray;
use crate::device::{self, Device, Failure};
use crate::rawud::{self, arg, guard, set_fn, RawType};
use mlua::ffi;
use std::ffi::{c_int, CStr};
use std::sync::atomic::{AtomicBool, Ordering};
use weft_compute::{Budget, Cache, CacheWriter, ComputeError, Normalised, Rows};
use weft_core::array::ReadLease;
use weft_core::{Array, DType, Handle};

/// Options every compute call takes.
struct Options {
    threads: Option<usize>,
    budget: Budget,
    /// `device = "cpu" | "gpu" | "auto"` (default auto; see `device.rs`).
    device: Device,
}

/// The f32 values of an embeddings argument: borrowed from the array (under a lease that
/// refuses writes through weft's API until the call returns), or converted from f64.
enum Embeddings {
    Borrowed(Array, #[allow(dead_code)] ReadLease),
    Converted(Vec<f32>, usize, usize),
}

impl Embeddings {
    fn rows(&self) -> Result<Rows<'_>, ComputeError> {
        match self {
            Embeddings::Borrowed(a, _) => {
                let (n, d) = (a.rows(), a.row_len());
                // SAFETY: the lease held with the array refuses writes through weft's API
                // (a[i] = v, a:set, a:ptr()) while the call reads; raw pointers taken before
                // the call are the user's duty not to write through (README, "Compute").
                let data = unsafe { a.as_slice::<f32>() }.expect("checked to be f32");
                Rows::new(data, n, d)
            }
            Embeddings::Converted(v, n, d) => Rows::new(v, *n, *d),
        }
    }
}

unsafe fn embeddings(
    state: *mut ffi::lua_State,
    idx: c_int,
    what: &'static str,
) -> Result<Embeddings, String> {
    // SAFETY: forwarded reads of a valid index.
    let a = unsafe { arg::<LuaArray>(state, idx, what) }?.0.clone();
    let Some(d) = a.shape().1 else {
        return Err(format!(
            "{what}: embeddings must be a 2-D array (rows × dims), got a 1-D one"
        ));
    };
    match a.dtype() {
        DType::F32 => {
            let lease = a.lease(what);
            Ok(Embeddings::Borrowed(a, lease))
        }
        DType::F64 => {
            let _lease = a.lease(what);
            // SAFETY: as in `rows`, under the lease just taken.
            let values = unsafe { a.as_slice::<f64>() }.expect("f64");
            // A finite value beyond f32's range would become Inf: say so, naming it.
            if let Some(i) = values
                .iter()
                .position(|&x| x.is_finite() && (x as f32).is_infinite())
            {
                return Err(format!(
                    "{what}: embeddings row {}: value {:e} overflows f32 (f64 embeddings are \
                     converted to f32, whose largest value is {:e})",
                    i / d.max(1) + 1,
                    values[i],
                    f32::MAX
                ));
            }
            let v = values.iter().map(|&x| x as f32).collect();
            Ok(Embeddings::Converted(v, a.rows(), d))
        }
        other => Err(format!(
            "{what}: embeddings must be f32 or f64, got {}",
            other.name()
        )),
    }
}

/// Field `name` of the options table at `idx` as a positive integer, if present.
unsafe fn opt_count(
    state: *mut ffi::lua_State,
    idx: c_int,
    name: &CStr,
    what: &str,
) -> Result<Option<u64>, String> {
    // SAFETY: reads one field of a table at a valid index (under protection) and pops it.
    unsafe {
        if ffi::lua_type(state, idx) != ffi::LUA_TTABLE {
            return Ok(None);
        }
        option_field(state, idx, name, what)?;
        let v = match ffi::lua_type(state, -1) {
            ffi::LUA_TNIL => None,
            ffi::LUA_TNUMBER => match weft_core::key::integral(ffi::lua_tonumber(state, -1)) {
                Some(n) if n >= 1 => Some(n as u64),
                _ => {
                    ffi::lua_pop(state, 1);
                    return Err(format!(
                        "{what}: {} must be a positive integer",
                        name.to_string_lossy()
                    ));
                }
            },
            _ => {
                let got = rawud::type_of(state, -1);
                ffi::lua_pop(state, 1);
                return Err(format!(
                    "{what}: {} must be a positive integer (got {got})",
                    name.to_string_lossy()
                ));
            }
        };
        ffi::lua_pop(state, 1);
        Ok(v)
    }
}

/// Push `opts[name]` for the options table at `idx`, honouring its metamethods (a proxy
/// table works); an error its `__index` raises becomes this call's error.
unsafe fn option_field(
    state: *mut ffi::lua_State,
    idx: c_int,
    name: &CStr,
    what: &str,
) -> Result<(), String> {
    // SAFETY: forwarded contract; the read runs under protection.
    unsafe { rawud::get_field(state, idx, name) }
        .map_err(|e| format!("{what}: options.{}: {e}", name.to_string_lossy()))
}

/// The `device` field of the options table at `idx` (default `auto`).
unsafe fn opt_device(state: *mut ffi::lua_State, idx: c_int, what: &str) -> Result<Device, String> {
    // SAFETY: reads one field of a table at a valid index (under protection) and pops it.
    unsafe {
        if ffi::lua_type(state, idx) != ffi::LUA_TTABLE {
            return Ok(Device::default());
        }
        option_field(state, idx, c"device", what)?;
        let device = match ffi::lua_type(state, -1) {
            ffi::LUA_TNIL => Ok(Device::default()),
            ffi::LUA_TSTRING => {
                let mut len = 0;
                let p = ffi::lua_tolstring(state, -1, &mut len);
                device::parse(what, std::slice::from_raw_parts(p as *const u8, len))
            }
            _ => Err(format!(
                "{what}: options.device must be \"cpu\", \"gpu\" or \"auto\" (got {})",
                rawud::type_of(state, -1)
            )),
        };
        ffi::lua_pop(state, 1);
        device
    }
}

unsafe fn options(state: *mut ffi::lua_State, idx: c_int, what: &str) -> Result<Options, String> {
    // SAFETY: type check and field reads of a valid index.
    unsafe {
        match ffi::lua_type(state, idx) {
            ffi::LUA_TNONE | ffi::LUA_TNIL | ffi::LUA_TTABLE => {}
            _ => {
                return Err(format!(
                    "{what}: options must be a table (got {})",
                    rawud::type_of(state, idx)
                ))
            }
        }
        Ok(Options {
            threads: opt_count(state, idx, c"threads", what)?.map(|n| n as usize),
            budget: opt_count(state, idx, c"budget", what)?
                .map(Budget::bytes)
                .unwrap_or_default(),
            device: opt_device(state, idx, what)?,
        })
    }
}

/// A failure of a call routed by `device` in Lua's terms.
fn failed(what: &str, f: Failure) -> String {
    match f {
        Failure::Input(e) => lua_error(what, e),
        Failure::Device(msg) => msg,
    }
}

/// A compute error in Lua's numbering (rows, starts and ids 1-based).
fn lua_error(what: &str, e: ComputeError) -> String {
    match e {
        ComputeError::BadRow { row, problem } => {
            format!("{what}: embeddings row {} {problem}", row + 1)
        }
        ComputeError::StartOutOfRange { start, n } => {
            format!("{what}: start {} is out of range 1..{n}", start + 1)
        }
        ComputeError::CacheMissing { path, start } => format!(
            "{what}: {}: the ordering from start {} is not in the cache yet",
            path.display(),
            start + 1
        ),
        ComputeError::CacheDamaged {
            path,
            start,
            reason,
        } => format!(
            "{what}: {}: the ordering from start {} is damaged: {reason} (positions and ids \
             as stored in the file, 0-based); rebuild the cache",
            path.display(),
            start + 1
        ),
        other => format!("{what}: {other}"),
    }
}

/// A 1-based position argument → 0-based.
unsafe fn position_arg(
    state: *mut ffi::lua_State,
    idx: c_int,
    what: &str,
    name: &str,
) -> Result<usize, String> {
    // SAFETY: type-checked read of a valid index.
    unsafe {
        if ffi::lua_type(state, idx) != ffi::LUA_TNUMBER {
            return Err(format!(
                "{what}: {name} must be an integer (got {})",
                rawud::type_of(state, idx)
            ));
        }
        let n = ffi::lua_tonumber(state, idx);
        match weft_core::key::integral(n) {
            Some(i) if i >= 1 => Ok((i - 1) as usize),
            Some(i) => Err(format!(
                "{what}: {name} {i} is out of range (positions start at 1)"
            )),
            None => Err(format!("{what}: {name} must be an integer (got {n})")),
        }
    }
}

/// A new array holding `values`, with ids shifted to 1-based when `ids`.
fn u32_array(values: &[u32], rows: usize, cols: Option<usize>) -> Result<Array, String> {
    let a = Array::zeros(DType::U32, rows, cols).map_err(|e| format!("weft: {e}"))?;
    // SAFETY: the array was just created and is not shared yet.
    let out = unsafe { a.as_mut_slice::<u32>() }.expect("a fresh u32 array");
    for (o, v) in out.iter_mut().zip(values) {
        *o = v + 1;
    }
    Ok(a)
}

fn f32_array(values: &[f32], rows: usize, cols: Option<usize>) -> Result<Array, String> {
    let a = Array::zeros(DType::F32, rows, cols).map_err(|e| format!("weft: {e}"))?;
    // SAFETY: the array was just created and is not shared yet.
    unsafe { a.as_mut_slice::<f32>() }
        .expect("a fresh f32 array")
        .copy_from_slice(values);
    Ok(a)
}

/// `weft.similarity(emb [, opts])` → N×N f32 array.
pub(crate) unsafe extern "C-unwind" fn similarity(state: *mut ffi::lua_State) -> c_int {
    const WHAT: &str = "weft.similarity";
    // SAFETY: raw function body; see `guard`.
    unsafe {
        guard(state, |state| {
            let emb = embeddings(state, 1, WHAT)?;
            let opts = options(state, 2, WHAT)?;
            let rows = emb.rows().map_err(|e| lua_error(WHAT, e))?;
            let unit = Normalised::new(rows).map_err(|e| lua_error(WHAT, e))?;
            let e = unit.rows();
            let n = rows.n();
            let out = Array::zeros(DType::F32, n, Some(n)).map_err(|e| format!("{WHAT}: {e}"))?;
            // The array was just created and is not shared yet (`as_mut_slice`'s contract).
            let s = out.as_mut_slice::<f32>().expect("a fresh f32 array");
            device::similarity_into(opts.device, WHAT, e, s, opts.threads, opts.budget)
                .map_err(|f| failed(WHAT, f))?;
            rawud::push(state, LuaArray(out))?;
            Ok(1)
        })
    }
}

/// `weft.topk(emb, k [, opts])` → ids (N×k u32, 1-based), scores (N×k f32).
pub(crate) unsafe extern "C-unwind" fn topk(state: *mut ffi::lua_State) -> c_int {
    const WHAT: &str = "weft.topk";
    // SAFETY: raw function body; see `guard`.
    unsafe {
        guard(state, |state| {
            let emb = embeddings(state, 1, WHAT)?;
            if ffi::lua_type(state, 2) != ffi::LUA_TNUMBER {
                return Err(format!(
                    "{WHAT}: k must be an integer (got {})",
                    rawud::type_of(state, 2)
                ));
            }
            let k = ffi::lua_tonumber(state, 2);
            let opts = options(state, 3, WHAT)?;
            let rows = emb.rows().map_err(|e| lua_error(WHAT, e))?;
            let k = match weft_core::key::integral(k) {
                Some(k) if k >= 1 && (k as u64) < rows.n() as u64 => k as usize,
                _ => {
                    return Err(format!(
                        "{WHAT}: k must be an integer in 1..N-1 (N = {}), got {k}",
                        rows.n()
                    ))
                }
            };
            let unit = Normalised::new(rows).map_err(|e| lua_error(WHAT, e))?;
            let e = unit.rows();
            let found =
                device::topk(opts.device, WHAT, e, k, opts.threads).map_err(|f| failed(WHAT, f))?;
            let ids = u32_array(&found.ids, rows.n(), Some(k))?;
            let scores = f32_array(&found.scores, rows.n(), Some(k))?;
            rawud::push(state, LuaArray(ids))?;
            rawud::push(state, LuaArray(scores))?;
            Ok(2)
        })
    }
}

/// `weft.diversity(emb, start [, opts])` → u32 array of N ids (1-based). `opts.similarity`
/// may pass the N×N array `weft.similarity` returned, so it is not computed again;
/// `opts.length = L` keeps the first L items. With a list of starts, the result is a
/// #starts × L array (L = N without `length`), one ordering a row.
pub(crate) unsafe extern "C-unwind" fn diversity(state: *mut ffi::lua_State) -> c_int {
    const WHAT: &str = "weft.diversity";
    // SAFETY: raw function body; see `guard`.
    unsafe {
        guard(state, |state| {
            let emb = embeddings(state, 1, WHAT)?;
            // one start, or a list of starts (one row of the result each)
            let starts = if ffi::lua_type(state, 2) == ffi::LUA_TTABLE {
                let count = ffi::lua_rawlen(state, 2);
                let mut starts = Vec::with_capacity(count);
                for i in 1..=count {
                    ffi::lua_rawgeti(state, 2, i as ffi::lua_Integer);
                    let start = position_arg(state, -1, WHAT, &format!("starts[{i}]"));
                    ffi::lua_pop(state, 1);
                    starts.push(start?);
                }
                Some(starts)
            } else {
                None
            };
            let start = match starts {
                Some(_) => 0,
                None => position_arg(state, 2, WHAT, "start")?,
            };
            let opts = options(state, 3, WHAT)?;
            let length = opt_count(state, 3, c"length", WHAT)?;
            let given = if ffi::lua_type(state, 3) == ffi::LUA_TTABLE {
                option_field(state, 3, c"similarity", WHAT)?;
                let s = match ffi::lua_type(state, -1) {
                    ffi::LUA_TNIL => Ok(None),
                    _ => arg::<LuaArray>(state, -1, "weft.diversity: opts.similarity")
                        .map(|a| Some((a.0.clone(), a.0.lease(WHAT)))),
                };
                ffi::lua_pop(state, 1);
                s?
            } else {
                None
            };
            let rows = emb.rows().map_err(|e| lua_error(WHAT, e))?;
            let unit = Normalised::new(rows).map_err(|e| lua_error(WHAT, e))?;
            let e = unit.rows();
            let s = match given.as_ref().map(|(s, _lease)| s) {
                None => None,
                Some(s) if s.dtype() == DType::F32 && s.shape() == (rows.n(), Some(rows.n())) => {
                    // As for the embeddings: S is leased for the call.
                    Some(s.as_slice::<f32>().expect("f32"))
                }
                Some(_) => {
                    return Err(format!(
                        "{WHAT}: opts.similarity must be the {n}×{n} f32 array weft.similarity returns for these embeddings",
                        n = rows.n()
                    ))
                }
            };
            let n = rows.n();
            let result = match (starts, length) {
                (None, None) => {
                    let seq = device::diversity(
                        opts.device,
                        WHAT,
                        e,
                        s,
                        start,
                        opts.threads,
                        opts.budget,
                    )
                    .map_err(|f| failed(WHAT, f))?;
                    u32_array(&seq, n, None)?
                }
                (starts, length) => {
                    let len = length.map_or(n, |l| (l as usize).min(n));
                    let list = starts.clone().unwrap_or_else(|| vec![start]);
                    let seqs = device::diversity_prefixes(
                        opts.device,
                        WHAT,
                        e,
                        s,
                        &list,
                        len,
                        opts.threads,
                        opts.budget,
                    )
                    .map_err(|f| failed(WHAT, f))?;
                    let flat: Vec<u32> = seqs.concat();
                    match starts {
                        Some(list) => u32_array(&flat, list.len(), Some(len))?,
                        None => u32_array(&flat, len, None)?,
                    }
                }
            };
            rawud::push(state, LuaArray(result))?;
            Ok(1)
        })
    }
}

/// Push the info table of a cache (built under protection: a memory error is `Err`).
unsafe fn push_info(
    state: *mut ffi::lua_State,
    info: &weft_compute::CacheInfo,
) -> Result<(), String> {
    let hash = info.hash_hex();
    let hash = hash.as_bytes();
    // SAFETY: builds one fresh table (no metatable) on a valid state, under protect; the
    // body only borrows.
    unsafe {
        rawud::protect(state, 0, 1, &mut |state| {
            ffi::lua_createtable(state, 0, 6);
            for (name, v) in [
                (c"n", info.n),
                (c"d", info.d),
                (c"done", info.done),
                (c"id_width", info.id_width),
            ] {
                ffi::lua_pushinteger(state, v as ffi::lua_Integer);
                ffi::lua_setfield(state, -2, name.as_ptr());
            }
            ffi::lua_pushboolean(state, info.complete as c_int);
            ffi::lua_setfield(state, -2, c"complete".as_ptr());
            crate::codec::raw::push_bytes(state, hash);
            ffi::lua_setfield(state, -2, c"hash".as_ptr());
        })
    }
}

unsafe fn flag(
    state: *mut ffi::lua_State,
    idx: c_int,
    name: &CStr,
    what: &str,
) -> Result<bool, String> {
    // SAFETY: reads one field of a table at a valid index (under protection) and pops it.
    unsafe {
        if ffi::lua_type(state, idx) != ffi::LUA_TTABLE {
            return Ok(false);
        }
        option_field(state, idx, name, what)?;
        let on = ffi::lua_toboolean(state, -1) != 0;
        ffi::lua_pop(state, 1);
        Ok(on)
    }
}

/// `weft.diversity_cache(emb, path [, {resume, force, progress, threads, budget}])` → the
/// cache's info table. Orderings are committed in batches; an error or a cancellation
/// leaves everything committed so far, to be resumed.
pub(crate) unsafe extern "C-unwind" fn diversity_cache(state: *mut ffi::lua_State) -> c_int {
    const WHAT: &str = "weft.diversity_cache";
    // SAFETY: raw function body; see `guard`. The progress function runs under lua_pcall.
    unsafe {
        guard(state, |state| {
            let emb = embeddings(state, 1, WHAT)?;
            let path = crate::arrays::path_arg(state, 2, WHAT)?;
            let opts = options(state, 3, WHAT)?;
            let resume = flag(state, 3, c"resume", WHAT)?;
            let force = flag(state, 3, c"force", WHAT)?;
            if resume && force {
                // One rule with the CLI's --resume --force, in the same words.
                return Err(format!("{WHAT}: {}", weft_compute::RESUME_WITH_FORCE));
            }
            // Writing the cache over the file the embeddings are mapped from would destroy
            // them (the mapping would survive, the user's .npy would not).
            let source = arg::<LuaArray>(state, 1, WHAT)?.0.mapped_file();
            if source.is_some()
                && source == weft_core::files::FileId::of_path(std::path::Path::new(&path))
            {
                return Err(format!(
                    "{WHAT}: {path} is the file the embeddings are mapped from; writing the \
                     cache there would destroy them, so name another cache file"
                ));
            }
            // progress: a function (called with done, total), or true for a bar on stderr
            let mut progress_fn = 0;
            let mut bar = None;
            if ffi::lua_type(state, 3) == ffi::LUA_TTABLE {
                option_field(state, 3, c"progress", WHAT)?;
                match ffi::lua_type(state, -1) {
                    ffi::LUA_TFUNCTION => progress_fn = ffi::lua_gettop(state),
                    ffi::LUA_TBOOLEAN if ffi::lua_toboolean(state, -1) != 0 => {
                        bar = Some(crate::progress::Bar::new("diversity cache"))
                    }
                    ffi::LUA_TNIL | ffi::LUA_TBOOLEAN => {}
                    _ => {
                        return Err(format!(
                            "{WHAT}: progress must be a function or true (got {})",
                            rawud::type_of(state, -1)
                        ))
                    }
                }
            }
            let rows = emb.rows().map_err(|e| lua_error(WHAT, e))?;
            let p = std::path::Path::new(&path);
            let writer = if resume && p.exists() {
                CacheWriter::resume(p, rows)
            } else {
                CacheWriter::create(p, rows, force)
            };
            let mut writer = writer.map_err(|e| lua_error(WHAT, e))?.budget(opts.budget);
            let cancel = AtomicBool::new(false);
            let mut callback_error = None;
            let mut report = |pr: weft_compute::Progress| {
                if let Some(bar) = &mut bar {
                    bar.set(pr.done as u64, pr.total as u64);
                }
                if progress_fn != 0 && callback_error.is_none() {
                    ffi::lua_pushvalue(state, progress_fn);
                    ffi::lua_pushinteger(state, pr.done as ffi::lua_Integer);
                    ffi::lua_pushinteger(state, pr.total as ffi::lua_Integer);
                    if let Err(e) = crate::codec::raw::pcall(state, 2, 0) {
                        callback_error = Some(e);
                        cancel.store(true, Ordering::Relaxed);
                    }
                }
                if weft_core::cancel::current_is_cancelled() {
                    cancel.store(true, Ordering::Relaxed);
                }
            };
            let info = device::fill_cache(
                opts.device,
                WHAT,
                &mut writer,
                opts.threads,
                &mut report,
                &cancel,
            )
            .map_err(|f| failed(WHAT, f))?;
            drop(bar);
            if let Some(e) = callback_error {
                if info.complete {
                    return Err(format!(
                        "{WHAT}: the progress function failed after every ordering was saved \
                         (the cache is complete: {} of {}): {e}",
                        info.done,
                        weft_compute::count(info.n, "ordering")
                    ));
                }
                return Err(format!(
                    "{WHAT}: the progress function failed ({} of {} saved; resume to \
                     continue): {e}",
                    info.done,
                    weft_compute::count(info.n, "ordering")
                ));
            }
            if weft_core::cancel::current_is_cancelled() {
                return Err("cancelled".into());
            }
            push_info(state, &info)?;
            Ok(1)
        })
    }
}

/// A diversity cache opened for reading.
pub(crate) struct LuaCache(Cache);

impl RawType for LuaCache {
    const MAGIC: u64 = 0x7765_6674_4341_4331;
    const NAME: &'static CStr = c"weft.cache";

    unsafe fn metatable(state: *mut ffi::lua_State) {
        // SAFETY: builds tables on a valid state with the metatable on top.
        unsafe {
            ffi::lua_createtable(state, 0, 2);
            set_fn(state, c"get", cache_get);
            set_fn(state, c"info", cache_info);
            ffi::lua_setfield(state, -2, c"__index".as_ptr());
        }
    }

    fn handle(&self) -> Option<Handle> {
        None
    }
}

/// `weft.open_cache(path)`.
pub(crate) unsafe extern "C-unwind" fn open_cache(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: raw function body; see `guard`.
    unsafe {
        guard(state, |state| {
            let path = crate::arrays::path_arg(state, 1, "weft.open_cache")?;
            let cache = Cache::open(&path).map_err(|e| lua_error("weft.open_cache", e))?;
            rawud::push(state, LuaCache(cache))?;
            Ok(1)
        })
    }
}

unsafe extern "C-unwind" fn cache_get(state: *mut ffi::lua_State) -> c_int {
    const WHAT: &str = "cache:get";
    // SAFETY: raw function body; see `guard`.
    unsafe {
        guard(state, |state| {
            let cache = &arg::<LuaCache>(state, 1, WHAT)?.0;
            let start = position_arg(state, 2, WHAT, "start")?;
            let seq = cache.get(start).map_err(|e| lua_error(WHAT, e))?;
            rawud::push(state, LuaArray(u32_array(&seq, seq.len(), None)?))?;
            Ok(1)
        })
    }
}

unsafe extern "C-unwind" fn cache_info(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: raw function body; see `guard`.
    unsafe {
        guard(state, |state| {
            let cache = &arg::<LuaCache>(state, 1, "cache:info")?.0;
            push_info(state, cache.info())?;
            Ok(1)
        })
    }
}
