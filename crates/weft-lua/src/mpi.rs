//! `weft.mpi`: the ranks of an MPI job (`mpirun -n P weft run script.lua`, or a host
//! interpreter loading a `weft.so` built with the `mpi` feature) sending Lua values to
//! each other.
//!
//! A value crosses as one MPI message of bytes: the codec turns it into a
//! [`weft_core::Message`] exactly as for a channel, and [`weft_core::wire`] turns that
//! into bytes (arrays as their element bytes in one block). Collectives carry those
//! bytes too, except `reduce`/`allreduce`, which run MPI's own reductions on numbers and
//! array elements.
//!
//! MPI is initialised on the first call (through weft-mpi, at MPI_THREAD_MULTIPLE), so a
//! script that never touches `weft.mpi` never starts MPI, and calls from any weft thread
//! are safe. Without a launcher the process is a job of one rank (MPI's singleton mode).
//!
//! Every collective is entered by every rank even when this rank's argument is bad (its
//! part then says so), and all ranks raise the same error afterwards: a bad argument on
//! one rank never leaves the others waiting inside the collective.
//!
//! Ranks are 0-based, as MPI, `mpirun` and Slurm number them (the one exception to the
//! crate's 1-based rule: a rank is a process's name, not a position in a Lua sequence).

use crate::codec::Label;
use crate::runtime::{self, Raise, Ret};
use mlua::{Lua, MultiValue, Value as LuaValue};
use weft_core::array::{Array, DType};
use weft_core::message::{Message, Value};
use weft_core::{wire, Handle};
use weft_mpi::mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use weft_mpi::mpi::datatype::PartitionMut;
use weft_mpi::mpi::point_to_point::{Destination, Source};
use weft_mpi::mpi::topology::{Communicator, SimpleCommunicator};
use weft_mpi::mpi::traits::Equivalence;
use weft_mpi::mpi::Count;

mod reduce;

/// The largest tag accepted: MPI guarantees at least this MPI_TAG_UB everywhere.
const MAX_TAG: i64 = 32767;

/// The first bytes of a collective's part from a rank whose value could not be sent.
const FAILED: &[u8; 4] = b"werr";

fn usage(f: &str, msg: impl std::fmt::Display) -> Raise {
    Raise::Usage(format!("weft.mpi.{f}: {msg}"))
}

/// MPI for this process (initialised by the first call), or why not.
fn world(f: &str) -> Ret<(SimpleCommunicator, i32, i32)> {
    let mpi = weft_mpi::init().map_err(|e| usage(f, e.trim_start_matches("weft: ")))?;
    at_exit();
    Ok((mpi.world(), mpi.rank(), mpi.size()))
}

/// Nothing calls MPI_Finalize or MPI_Abort for a host interpreter (`luajit script.lua`
/// under mpirun), nor for a script that ends with `os.exit`: finalise at a clean exit, and
/// end the whole job when the process exits with a failure status (a Lua error in the
/// script), since the other ranks may be waiting for this one. (The `weft` command also
/// does both itself on its way out, after which these find nothing left to do.)
fn at_exit() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        weft_mpi::finalize_at_exit();
        extern "C" fn on_exit_handler(status: std::ffi::c_int, _: *mut std::ffi::c_void) {
            if status != 0 && !weft_mpi::mpi::environment::is_finalized() {
                weft_mpi::abort(
                    status,
                    &format!(
                        "the Lua program exited with status {status} (its error, if any, is \
                         printed above); ending the job"
                    ),
                );
            }
        }
        extern "C" {
            // glibc (not in the libc crate): like atexit, and the handler gets the status.
            fn on_exit(
                handler: extern "C" fn(std::ffi::c_int, *mut std::ffi::c_void),
                arg: *mut std::ffi::c_void,
            ) -> std::ffi::c_int;
        }
        // SAFETY: glibc's on_exit with a plain extern "C" function that ignores its
        // argument; registered after finalize_at_exit, so it runs before it.
        unsafe { on_exit(on_exit_handler, std::ptr::null_mut()) };
    });
}

/// An integer argument, or a usage error naming it.
fn integer(f: &str, what: &str, v: &LuaValue) -> Ret<i64> {
    let n = match v {
        LuaValue::Integer(i) => return Ok(*i),
        LuaValue::Number(n) => *n,
        other => {
            return Err(usage(
                f,
                format!("{what} must be an integer (got {})", other.type_name()),
            ))
        }
    };
    weft_core::key::integral(n)
        .ok_or_else(|| usage(f, format!("{what} must be an integer (got {n})")))
}

/// A rank argument: `0..size`, and for the point-to-point calls not this rank (a send to
/// oneself would wait for a receive that the same caller can only make after it).
fn rank_arg(f: &str, what: &str, v: &LuaValue, rank: i32, size: i32) -> Ret<i32> {
    let r = integer(f, what, v)?;
    if r < 0 || r >= size as i64 {
        return Err(usage(
            f,
            format!(
                "{what} must be a rank from 0 to {} (got {r}; ranks are 0-based)",
                size - 1
            ),
        ));
    }
    if (f == "send" || f == "recv") && r == rank as i64 {
        return Err(usage(
            f,
            format!("{what} {r} is this rank; a rank cannot {f} to or from itself"),
        ));
    }
    Ok(r as i32)
}

fn root_arg(f: &str, v: &LuaValue, rank: i32, size: i32) -> Ret<i32> {
    if v.is_nil() {
        return Err(usage(f, "root is missing (the rank whose value counts)"));
    }
    rank_arg(f, "root", v, rank, size)
}

fn tag_arg(f: &str, v: &LuaValue) -> Ret<Option<i32>> {
    if v.is_nil() {
        return Ok(None);
    }
    let t = integer(f, "tag", v)?;
    if !(0..=MAX_TAG).contains(&t) {
        return Err(usage(
            f,
            format!("tag must be from 0 to {MAX_TAG} (got {t})"),
        ));
    }
    Ok(Some(t as i32))
}

/// One Lua value as message bytes.
fn to_bytes(lua: &Lua, f: &str, v: LuaValue) -> Ret<Vec<u8>> {
    let msg = runtime::encode(lua, MultiValue::from_iter([v]), Label::Value, 1)
        .map_err(|e| usage(f, e.into_text().trim_start_matches("weft: ")))?;
    wire::encode(&msg).map_err(|e| usage(f, e))
}

/// Message bytes back as one Lua value.
fn from_bytes(lua: &Lua, f: &str, bytes: &[u8]) -> Ret<LuaValue> {
    let msg = wire::decode(bytes).map_err(|e| usage(f, e))?;
    let mut values = runtime::decode(lua, &msg)?;
    Ok(values.pop_front().unwrap_or(LuaValue::Nil))
}

/// This rank's part of a collective: its value's bytes, or [`FAILED`] and why.
fn part(lua: &Lua, f: &str, v: LuaValue) -> (Vec<u8>, Option<Raise>) {
    match to_bytes(lua, f, v).and_then(|b| fits(f, b)) {
        Ok(b) => (b, None),
        Err(e) => {
            let mut b = FAILED.to_vec();
            b.extend_from_slice(e.text().as_bytes());
            (b, Some(e))
        }
    }
}

/// A part received from `from`, as a Lua value (or the error its sender reported).
fn unpart(lua: &Lua, f: &str, from: usize, bytes: &[u8]) -> Ret<LuaValue> {
    match bytes.strip_prefix(FAILED) {
        Some(why) => Err(usage(
            f,
            format!(
                "rank {from} could not send its value ({})",
                String::from_utf8_lossy(why)
            ),
        )),
        None => from_bytes(lua, f, bytes),
    }
}

/// MPI counts are C ints: a message past 2 GiB is refused rather than truncated.
fn fits(f: &str, b: Vec<u8>) -> Ret<Vec<u8>> {
    if b.len() > Count::MAX as usize {
        return Err(too_large(f, b.len()));
    }
    Ok(b)
}

fn too_large(f: &str, len: usize) -> Raise {
    usage(
        f,
        format!("the value takes {len} bytes, more than MPI's limit of 2 GiB per message; send it in parts"),
    )
}

trait RaiseText {
    fn text(&self) -> String;
}

impl RaiseText for Raise {
    fn text(&self) -> String {
        match self {
            Raise::Usage(s) => s.clone(),
            Raise::Value(v) => format!("{v:?}"),
        }
    }
}

/// `weft.mpi.rank()`: this process's rank, 0-based.
pub(crate) fn rank(_: &Lua, (): ()) -> Ret<i64> {
    Ok(world("rank")?.1 as i64)
}

/// `weft.mpi.size()`: the number of ranks.
pub(crate) fn size(_: &Lua, (): ()) -> Ret<i64> {
    Ok(world("size")?.2 as i64)
}

/// `weft.mpi.barrier()`.
pub(crate) fn barrier(_: &Lua, (): ()) -> Ret<()> {
    world("barrier")?.0.barrier();
    Ok(())
}

/// `weft.mpi.send(dest, value [, tag])`: blocks until MPI has the bytes (for a large
/// value, until the receiver takes it).
pub(crate) fn send(lua: &Lua, (dest, value, tag): (LuaValue, LuaValue, LuaValue)) -> Ret<()> {
    let (world, rank, size) = world("send")?;
    let dest = rank_arg("send", "dest", &dest, rank, size)?;
    let tag = tag_arg("send", &tag)?.unwrap_or(0);
    let msg = runtime::encode(lua, MultiValue::from_iter([value]), Label::Value, 1)
        .map_err(|e| usage("send", e.into_text().trim_start_matches("weft: ")))?;
    with_buffer(&SEND_BUFFER, |bytes| {
        wire::encode_into(&msg, bytes).map_err(|e| usage("send", e))?;
        if bytes.len() > Count::MAX as usize {
            return Err(too_large("send", bytes.len()));
        }
        world.process_at_rank(dest).send_with_tag(&bytes[..], tag);
        Ok(())
    })
}

thread_local! {
    /// The bytes of this thread's last sent value, kept for the next send: a program
    /// sending many large values reuses one buffer rather than faulting in fresh pages
    /// each time (a 4 MB array costs about a millisecond of page faults otherwise).
    static SEND_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    /// The same for receiving.
    static RECV_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Buffers larger than this are freed after use instead of kept.
const KEEP_BUFFER: usize = 256 << 20;

/// Run `f` with this thread's buffer from `slot` (or a fresh one if it is in use: a
/// finaliser sending from inside an encode).
fn with_buffer<R>(
    slot: &'static std::thread::LocalKey<std::cell::RefCell<Vec<u8>>>,
    f: impl FnOnce(&mut Vec<u8>) -> R,
) -> R {
    slot.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            let r = f(&mut buf);
            if buf.capacity() > KEEP_BUFFER {
                *buf = Vec::new();
            }
            r
        }
        Err(_) => f(&mut Vec::new()),
    })
}

/// `weft.mpi.recv([source [, tag]])` → value, source, tag.
pub(crate) fn recv(lua: &Lua, (source, tag): (LuaValue, LuaValue)) -> Ret<(LuaValue, i64, i64)> {
    let (world, rank, size) = world("recv")?;
    if size == 1 {
        // Nobody could ever send it anything (a rank cannot send to itself).
        return Err(usage(
            "recv",
            "this job has a single rank, so there is no other rank to receive from",
        ));
    }
    let source = match source {
        LuaValue::Nil => None,
        v => Some(rank_arg("recv", "source", &v, rank, size)?),
    };
    let tag = tag_arg("recv", &tag)?;
    // A matched probe then a receive of exactly that message: two weft threads receiving
    // at once cannot take each other's message between the probe and the receive.
    let (message, status) = match (source, tag) {
        (Some(s), Some(t)) => world.process_at_rank(s).matched_probe_with_tag(t),
        (Some(s), None) => world.process_at_rank(s).matched_probe(),
        (None, Some(t)) => world.any_process().matched_probe_with_tag(t),
        (None, None) => world.any_process().matched_probe(),
    };
    let len = status.count(u8::equivalent_datatype()).max(0) as usize;
    let msg = with_buffer(&RECV_BUFFER, |bytes| {
        // Stale bytes past the old length need no zeroing: the receive overwrites them.
        if bytes.len() < len {
            bytes.resize(len, 0);
        }
        bytes.truncate(len);
        message.matched_receive_into(&mut bytes[..]);
        wire::decode(bytes).map_err(|e| usage("recv", e))
    })?;
    let value = runtime::decode(lua, &msg)?
        .pop_front()
        .unwrap_or(LuaValue::Nil);
    Ok((value, status.source_rank() as i64, status.tag() as i64))
}

/// `weft.mpi.bcast(value, root)`: root's value on every rank.
pub(crate) fn bcast(lua: &Lua, (value, root): (LuaValue, LuaValue)) -> Ret<LuaValue> {
    let (world, rank, size) = world("bcast")?;
    let root = root_arg("bcast", &root, rank, size)?;
    let root_process = world.process_at_rank(root);
    let mut bytes = Vec::new();
    let mut own_error = None;
    if rank == root {
        (bytes, own_error) = part(lua, "bcast", value);
    }
    let mut len = bytes.len() as u64;
    root_process.broadcast_into(&mut len);
    bytes.resize(len as usize, 0);
    root_process.broadcast_into(&mut bytes[..]);
    if let Some(e) = own_error {
        return Err(e);
    }
    unpart(lua, "bcast", root as usize, &bytes)
}

/// Where each rank's part starts in a gathered buffer, and the total; none past 2 GiB.
fn displacements(f: &str, counts: &[Count]) -> Ret<Vec<Count>> {
    let mut at: i64 = 0;
    let mut displs = Vec::with_capacity(counts.len());
    for c in counts {
        displs.push(at as Count);
        at += *c as i64;
    }
    if at > Count::MAX as i64 {
        return Err(usage(
            f,
            format!("the ranks' values take {at} bytes together, more than MPI's limit of 2 GiB per collective"),
        ));
    }
    Ok(displs)
}

/// The parts in `buf` as a Lua sequence (rank r at index r + 1).
fn parts_table(
    lua: &Lua,
    f: &str,
    buf: &[u8],
    counts: &[Count],
    displs: &[Count],
) -> Ret<LuaValue> {
    let t = lua.create_table_with_capacity(counts.len(), 0)?;
    for (r, (c, d)) in counts.iter().zip(displs).enumerate() {
        let v = unpart(lua, f, r, &buf[*d as usize..(*d + *c) as usize])?;
        t.raw_set(r + 1, v)?;
    }
    Ok(LuaValue::Table(t))
}

/// `weft.mpi.gather(value, root)`: on root, every rank's value in rank order (rank r at
/// index r + 1); nil elsewhere.
pub(crate) fn gather(lua: &Lua, (value, root): (LuaValue, LuaValue)) -> Ret<LuaValue> {
    let (world, rank, size) = world("gather")?;
    let root = root_arg("gather", &root, rank, size)?;
    let root_process = world.process_at_rank(root);
    let (bytes, own_error) = part(lua, "gather", value);
    let count = bytes.len() as Count;
    if rank != root {
        root_process.gather_into(&count);
        root_process.gather_varcount_into(&bytes[..]);
        return own_error.map_or(Ok(LuaValue::Nil), Err);
    }
    let mut counts = vec![0 as Count; size as usize];
    root_process.gather_into_root(&count, &mut counts[..]);
    // Too large in total: every rank still has to finish the gather, so take nothing.
    let displs = displacements("gather", &counts);
    let (sizes, offsets) = match &displs {
        Ok(d) => (counts.clone(), d.clone()),
        Err(_) => (vec![0; size as usize], vec![0; size as usize]),
    };
    let total: usize = sizes.iter().map(|c| *c as usize).sum();
    let mut buf = vec![0u8; total];
    {
        let mut partition = PartitionMut::new(&mut buf[..], &sizes[..], &offsets[..]);
        root_process.gather_varcount_into_root(&bytes[..], &mut partition);
    }
    if let Some(e) = own_error {
        return Err(e);
    }
    let displs = displs?;
    parts_table(lua, "gather", &buf, &counts, &displs)
}

/// `weft.mpi.allgather(value)`: every rank's value, in rank order, on every rank.
pub(crate) fn allgather(lua: &Lua, value: LuaValue) -> Ret<LuaValue> {
    let (world, _, size) = world("allgather")?;
    let (bytes, own_error) = part(lua, "allgather", value);
    let count = bytes.len() as Count;
    let mut counts = vec![0 as Count; size as usize];
    world.all_gather_into(&count, &mut counts[..]);
    // Every rank sees the same counts, so every rank refuses an oversized total alike.
    let displs = displacements("allgather", &counts)?;
    let total: usize = counts.iter().map(|c| *c as usize).sum();
    let mut buf = vec![0u8; total];
    {
        let mut partition = PartitionMut::new(&mut buf[..], &counts[..], &displs[..]);
        world.all_gather_varcount_into(&bytes[..], &mut partition);
    }
    if let Some(e) = own_error {
        return Err(e);
    }
    parts_table(lua, "allgather", &buf, &counts, &displs)
}

/// `weft.mpi.reduce(x, op, root)`: the element-wise reduction on root, nil elsewhere.
pub(crate) fn reduce(lua: &Lua, (x, op, root): (LuaValue, LuaValue, LuaValue)) -> Ret<LuaValue> {
    let (world, rank, size) = world("reduce")?;
    let root = root_arg("reduce", &root, rank, size)?;
    reduce::run(lua, &world, "reduce", x, op, Some(root))
}

/// `weft.mpi.allreduce(x, op)`: the element-wise reduction on every rank.
pub(crate) fn allreduce(lua: &Lua, (x, op): (LuaValue, LuaValue)) -> Ret<LuaValue> {
    let (world, _, _) = world("allreduce")?;
    reduce::run(lua, &world, "allreduce", x, op, None)
}

/// A reduction's operand: a number or a weft array.
enum Operand {
    Int(i64),
    Num(f64),
    Array(Array),
}

/// Read `x` as an operand (through the codec, which knows weft's array userdata).
fn operand(lua: &Lua, f: &str, x: LuaValue) -> Ret<Operand> {
    let kind = x.type_name();
    let msg: Message = match &x {
        LuaValue::Integer(i) => return Ok(Operand::Int(*i)),
        LuaValue::Number(n) => return Ok(Operand::Num(*n)),
        LuaValue::UserData(_) | LuaValue::LightUserData(_) => {
            runtime::encode(lua, MultiValue::from_iter([x]), Label::Value, 1)
                .ok()
                .unwrap_or_default()
        }
        _ => Message::default(),
    };
    match msg.values.first() {
        Some(Value::Handle(Handle::Array(a))) => Ok(Operand::Array((**a).clone())),
        _ => Err(usage(
            f,
            format!("x must be a number or a weft array (got {kind})"),
        )),
    }
}

/// An array as a Lua value.
fn push_array(lua: &Lua, a: Array) -> Ret<LuaValue> {
    let msg = Message::single(Value::Handle(Handle::Array(Box::new(a))));
    Ok(runtime::decode(lua, &msg)?
        .pop_front()
        .unwrap_or(LuaValue::Nil))
}

/// The MPI operation for an op name.
fn system_op(op: u8) -> SystemOperation {
    match op {
        0 => SystemOperation::sum(),
        1 => SystemOperation::min(),
        _ => SystemOperation::max(),
    }
}

/// The ops `reduce` and `allreduce` know, by code.
const OPS: [&str; 3] = ["sum", "min", "max"];

/// The dtype of a code from [`DType::ALL`].
fn dtype_at(code: u64) -> DType {
    DType::ALL[code as usize % DType::ALL.len()]
}
