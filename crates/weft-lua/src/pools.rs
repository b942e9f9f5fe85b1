//! `weft.pool`, its methods, and the default pool behind `weft.map` / `weft.range`.
//!
//! A pool's function is encoded once per call (`map`, `range`) and shared by every chunk;
//! each worker loads it once and keeps it (see the codec's load cache).

use crate::codec::Label;
use crate::handles::{LuaPool, LuaTask};
use crate::runtime::{encode, Raise, Ret};
use crate::tasks::results;
use crate::worker::{run_as_task, run_call, run_map_chunk, with_worker_state, LuaWorkers};
use crate::worker_state::inherit;
use mlua::{ffi, AnyUserData, Lua, MultiValue, Table, Value as LuaValue};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use weft_core::message::smallvec;
use weft_core::pool::wait_task;
use weft_core::task::{Outcome, WaitEnd};
use weft_core::{cancel, Deadline, Message, Pool, Task, Value};

const MAX_WORKERS: usize = 1024;

/// Number of CPUs weft uses by default.
pub(crate) fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The largest count or size weft accepts: 2^53, past which a Lua number (a double) no
/// longer holds every integer.
const MAX_COUNT: f64 = 9_007_199_254_740_992.0;

/// The Lua type name of `v` as `type(v)` gives it: mlua reports integral numbers on
/// LuaJIT and Lua 5.1 as `integer`, a type those interpreters do not have.
pub(crate) fn lua_type(v: &LuaValue) -> &'static str {
    match v {
        LuaValue::Integer(_) | LuaValue::Number(_) => "number",
        other => other.type_name(),
    }
}

fn positive_int(v: &LuaValue, what: &str) -> Ret<usize> {
    int_in(v, what, MAX_COUNT, "2^53")
}

/// An integer in `1..=max` (`max_text` is how the error shows `max`).
fn int_in(v: &LuaValue, what: &str, max: f64, max_text: &str) -> Ret<usize> {
    let n = match v {
        LuaValue::Integer(i) => *i as f64,
        LuaValue::Number(n) => *n,
        other => {
            return Err(Raise::Usage(format!(
                "{what} must be an integer in 1..{max_text}, got {}",
                lua_type(other)
            )))
        }
    };
    if n.fract() != 0.0 || !(1.0..=max).contains(&n) {
        return Err(Raise::Usage(format!(
            "{what} must be an integer in 1..{max_text}, got {}",
            shown(n)
        )));
    }
    Ok(n as usize)
}

/// A number as Lua prints it (`%.14g`), so 2^62 reads `4.6116860184274e+18`, not 19 digits.
fn shown(n: f64) -> String {
    if !n.is_finite() {
        return if n.is_nan() {
            "nan".into()
        } else if n > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    if n == 0.0 {
        return "0".into();
    }
    let sci = format!("{n:.13e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if !(-4..14).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exp.abs())
    } else {
        trim(&format!("{n:.*}", (13 - exp).max(0) as usize))
    }
}

/// `weft.pool{size = n, init = fn}`.
pub(crate) fn new_pool(lua: &Lua, opts: LuaValue) -> Ret<LuaPool> {
    let mut size = cpus();
    let mut init = None;
    let opts = match opts {
        LuaValue::Nil => None,
        LuaValue::Table(t) => Some(t),
        other => {
            return Err(Raise::Usage(format!(
                "weft.pool: expected an options table {{size = n, init = f}}, got {}",
                lua_type(&other)
            )))
        }
    };
    if let Some(opts) = opts {
        let s: LuaValue = opts.get("size")?;
        if !s.is_nil() {
            size = int_in(
                &s,
                "weft.pool: size",
                MAX_WORKERS as f64,
                &MAX_WORKERS.to_string(),
            )?;
        }
        match opts.get::<LuaValue>("init")? {
            LuaValue::Nil => {}
            f @ LuaValue::Function(_) => {
                let msg = encode(lua, MultiValue::from_iter([f]), Label::Argument, 1).map_err(
                    |e| match e {
                        Raise::Usage(m) => Raise::Usage(m.replace("argument 1", "init")),
                        other => other,
                    },
                )?;
                init = Some(Arc::new(msg));
            }
            other => {
                return Err(Raise::Usage(format!(
                    "weft.pool: init must be a function, got {}",
                    lua_type(&other)
                )))
            }
        }
    }
    let workers = LuaWorkers {
        inherit: inherit(lua),
        init,
    };
    let pool = Pool::new(size, "weft-pool", Arc::new(workers))
        .map_err(|e| Raise::Usage(format!("weft.pool: {e}")))?;
    Ok(LuaPool(Arc::new(pool)))
}

static DEFAULT_POOL: Mutex<Option<Arc<Pool>>> = Mutex::new(None);

fn default_pool(lua: &Lua) -> Ret<Arc<Pool>> {
    let mut slot = DEFAULT_POOL.lock();
    if let Some(p) = &*slot {
        return Ok(p.clone());
    }
    let workers = LuaWorkers {
        inherit: inherit(lua),
        init: None,
    };
    let pool = Arc::new(
        Pool::new(cpus(), "weft-default", Arc::new(workers))
            .map_err(|e| Raise::Usage(format!("weft: {e}")))?,
    );
    *slot = Some(pool.clone());
    Ok(pool)
}

fn pool_of(ud: &AnyUserData) -> Ret<Arc<Pool>> {
    ud.borrow::<LuaPool>()
        .map(|p| p.0.clone())
        .map_err(|_| Raise::Usage("weft: expected a pool".into()))
}

fn submit_call(pool: &Pool, func: Arc<Message>, args: Message) -> Ret<Arc<Task>> {
    let task = Task::new(false);
    let job_task = task.clone();
    pool.submit(Box::new(move || {
        if job_task.start() {
            run_as_task(&job_task, || {
                with_worker_state(|lua| run_call(lua, &func, &args))
            });
        }
    }))
    .map_err(|e| Raise::Usage(format!("weft: {e}")))?;
    Ok(task)
}

fn require_function(v: Option<&LuaValue>, what: &str) -> Ret<()> {
    match v {
        Some(LuaValue::Function(_)) => Ok(()),
        other => Err(Raise::Usage(format!(
            "{what} must be a function, got {}",
            other.map_or("no value", lua_type)
        ))),
    }
}

/// `pool:submit(fn, ...)` → a future.
pub(crate) fn submit(lua: &Lua, mut args: MultiValue) -> Ret<LuaTask> {
    let ud = match args.pop_front() {
        Some(LuaValue::UserData(ud)) => ud,
        _ => {
            return Err(Raise::Usage(
                "weft: pool:submit must be called with ':'".into(),
            ))
        }
    };
    let pool = pool_of(&ud)?;
    require_function(args.front(), "pool:submit: argument 1")?;
    let call = encode(lua, args, Label::Argument, 1)?;
    Ok(LuaTask(submit_call(
        &pool,
        Arc::new(call),
        Message::default(),
    )?))
}

fn chunk_option(opts: Option<Table>, n: usize, workers: usize) -> Ret<usize> {
    if let Some(opts) = opts {
        let c: LuaValue = opts.get("chunk")?;
        if !c.is_nil() {
            return positive_int(&c, "chunk");
        }
    }
    Ok(n.div_ceil(workers * 4).max(1))
}

/// `[first, last]` ranges covering 1..=n, `chunk` at a time.
fn chunks(n: usize, chunk: usize) -> impl Iterator<Item = (usize, usize)> {
    (1..=n)
        .step_by(chunk.max(1))
        .map(move |first| (first, (first + chunk - 1).min(n)))
}

/// Check that `func` is a function and encode it once, to be shared by every chunk.
fn shared_function(lua: &Lua, func: LuaValue, what: &str, position: usize) -> Ret<Arc<Message>> {
    require_function(Some(&func), what)?;
    Ok(Arc::new(encode(
        lua,
        MultiValue::from_iter([func]),
        Label::Argument,
        position,
    )?))
}

/// Chunks a `map`/`range` keeps queued or running at once, per worker: enough to keep
/// every worker busy while the caller collects results in order, and bounded, so that
/// `range(1e9, f, {chunk = 1})` does not create a billion tasks before the first one runs.
const IN_FLIGHT_PER_WORKER: usize = 4;

/// The most slots a result table is created with; it grows past that as Lua tables do
/// (a billion-chunk `range` must not ask for its whole table up front).
const MAX_PRESIZE: usize = 1 << 16;

/// Run `n` items through `pool` as chunks of `chunk`, at most a window of them in flight:
/// `submit(first, last)` queues one chunk, `collect(task)` takes each finished chunk in
/// chunk order. The first failure in chunk order (or a failure to queue) cancels the
/// chunks in flight, queues no more, and is raised.
fn run_chunks(
    lua: &Lua,
    pool: &Pool,
    n: usize,
    chunk: usize,
    mut submit: impl FnMut(usize, usize) -> Ret<Arc<Task>>,
    mut collect: impl FnMut(&Task) -> Ret<()>,
) -> Ret<()> {
    let window = pool.size().saturating_mul(IN_FLIGHT_PER_WORKER).max(1);
    let me = cancel::current();
    let mut queued = chunks(n, chunk);
    let mut in_flight: VecDeque<Arc<Task>> = VecDeque::with_capacity(window);
    let result = (|| {
        loop {
            while in_flight.len() < window {
                let Some((first, last)) = queued.next() else {
                    break;
                };
                in_flight.push_back(submit(first, last)?);
            }
            let Some(task) = in_flight.front() else {
                return Ok(());
            };
            if wait_task(task, Deadline::Never, me.as_deref()) != WaitEnd::Finished {
                return Err(Raise::Usage("cancelled".into()));
            }
            if !matches!(task.outcome(), Some(Outcome::Returned(_))) {
                // Raises the chunk's error (or its cancellation).
                results(lua, task)?;
            }
            collect(task)?;
            in_flight.pop_front();
        }
    })();
    if result.is_err() {
        in_flight.iter().for_each(|t| t.cancel());
    }
    result
}

fn map_on(lua: &Lua, pool: &Pool, func: LuaValue, items: Table, opts: Option<Table>) -> Ret<Table> {
    // Read as `#items` and `items[i]` are in Lua: a proxy's __len/__index are honoured
    // (mlua reads a table without a metatable raw, and runs metamethods protected).
    let n = usize::try_from(items.len()?)
        .map_err(|_| Raise::Usage("map: argument 2: #items is negative".into()))?;
    let chunk = chunk_option(opts, n, pool.size())?;
    let func = shared_function(lua, func, "map: argument 1", 1)?;
    let out = lua.create_table_with_capacity(n.min(MAX_PRESIZE), 0)?;
    let mut index = 1;
    run_chunks(
        lua,
        pool,
        n,
        chunk,
        |first, last| {
            let slice: MultiValue = (first..=last)
                .map(|i| items.get::<LuaValue>(i))
                .collect::<mlua::Result<_>>()?;
            let msg = encode(lua, slice, Label::Item, first)?;
            let task = Task::new(false);
            let (job_task, func) = (task.clone(), func.clone());
            pool.submit(Box::new(move || {
                if job_task.start() {
                    run_as_task(&job_task, || {
                        with_worker_state(|lua| run_map_chunk(lua, &func, &msg, first, &job_task))
                    });
                }
            }))
            .map_err(|e| Raise::Usage(format!("weft: {e}")))?;
            Ok(task)
        },
        |task| {
            if let Some(Outcome::Returned(m)) = task.outcome() {
                set_values(lua, &out, m, index)?;
                index += m.values.len();
            }
            Ok(())
        },
    )?;
    Ok(out)
}

/// Decode `msg`'s values straight into `table[first..]` (no detour through the stack,
/// which is limited to ~65k slots on LuaJIT).
fn set_values(lua: &Lua, table: &Table, msg: &Message, first: usize) -> Ret<()> {
    let data = crate::runtime::data_of(lua);
    let mut err = None;
    // SAFETY: on the owning thread inside a protected call; slot 1 holds `table`.
    unsafe {
        lua.exec_raw::<()>(table, |state| {
            let decoder = match crate::codec::Decoder::new(state, &data.codec, msg) {
                Ok(d) => d,
                Err(e) => {
                    err = Some(e);
                    return;
                }
            };
            for (k, v) in msg.values.iter().enumerate() {
                if let Err(e) = decoder.push(state, v) {
                    err = Some(e);
                    return;
                }
                ffi::lua_rawseti(state, 1, (first + k) as ffi::lua_Integer);
            }
            decoder.finish(state);
            ffi::lua_settop(state, 0);
        })?;
    }
    err.map_or(Ok(()), |e| Err(Raise::Usage(e)))
}

fn range_on(
    lua: &Lua,
    pool: &Pool,
    n: LuaValue,
    func: LuaValue,
    opts: Option<Table>,
) -> Ret<Table> {
    let n = match &n {
        LuaValue::Integer(0) => 0,
        LuaValue::Number(x) if *x == 0.0 => 0,
        other => positive_int(other, "range: n")?,
    };
    let chunk = chunk_option(opts, n, pool.size())?;
    let func = shared_function(lua, func, "range: argument 2", 2)?;
    let out = lua.create_table_with_capacity(n.div_ceil(chunk).min(MAX_PRESIZE), 0)?;
    let mut index = 1;
    run_chunks(
        lua,
        pool,
        n,
        chunk,
        |first, last| {
            let args = Message {
                values: smallvec![Value::Int(first as i64), Value::Int(last as i64)],
                nodes: Default::default(),
            };
            submit_call(pool, func.clone(), args)
        },
        |task| {
            if let Some(Outcome::Returned(m)) = task.outcome() {
                if let Some(v) = m.values.first() {
                    let single = Message {
                        values: smallvec![v.clone()],
                        nodes: m.nodes.clone(),
                    };
                    set_values(lua, &out, &single, index)?;
                }
            }
            index += 1;
            Ok(())
        },
    )?;
    Ok(out)
}

/// `pool:map(fn, items [, {chunk = c}])`.
pub(crate) fn map(
    lua: &Lua,
    (ud, func, items, opts): (AnyUserData, LuaValue, Table, Option<Table>),
) -> Ret<Table> {
    map_on(lua, &*pool_of(&ud)?, func, items, opts)
}

/// `pool:range(n, fn [, {chunk = c}])` → the first result of each chunk, in order.
pub(crate) fn range(
    lua: &Lua,
    (ud, n, func, opts): (AnyUserData, LuaValue, LuaValue, Option<Table>),
) -> Ret<Table> {
    range_on(lua, &*pool_of(&ud)?, n, func, opts)
}

/// `weft.map(fn, items [, opts])` on the default pool.
pub(crate) fn default_map(
    lua: &Lua,
    (func, items, opts): (LuaValue, Table, Option<Table>),
) -> Ret<Table> {
    map_on(lua, &*default_pool(lua)?, func, items, opts)
}

/// `weft.range(n, fn [, opts])` on the default pool.
pub(crate) fn default_range(
    lua: &Lua,
    (n, func, opts): (LuaValue, LuaValue, Option<Table>),
) -> Ret<Table> {
    range_on(lua, &*default_pool(lua)?, n, func, opts)
}

/// `pool:close()`: no new tasks; queued ones finish; waits for the workers to exit.
pub(crate) fn close(_: &Lua, ud: AnyUserData) -> Ret<()> {
    let pool = pool_of(&ud)?;
    pool.close_and_join()
        .map_err(|e| Raise::Usage(format!("weft: pool:close: {e}")))
}

/// `pool:size()`.
pub(crate) fn size(_: &Lua, ud: AnyUserData) -> Ret<usize> {
    Ok(pool_of(&ud)?.size())
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn numbers_read_as_lua_prints_them() {
        let cases = [
            (2f64.powi(62), "4.6116860184274e+18"),
            (1e18, "1e+18"),
            (1.5, "1.5"),
            (-3.0, "-3"),
            (123456.0, "123456"),
            (1e-5, "1e-05"),
            (0.1, "0.1"),
            (2f64.powi(53) + 2.0, "9.007199254741e+15"),
        ];
        for (n, want) in cases {
            assert_eq!(shown(n), want, "{n}");
        }
    }
}
