//! `reduce` and `allreduce`: MPI's own reductions over numbers and array elements.
//!
//! First every rank publishes what it is reducing (one small allgather: the kind, dtype,
//! shape and op), so that ranks that disagree (one passes an f32 array, another an f64
//! one, or a different length, or "min" against "max") all raise the same clear error
//! instead of MPI reducing mismatched buffers. Then one MPI_Reduce/MPI_Allreduce runs on
//! the elements in place, typed, with no per-element encoding.

use super::{dtype_at, operand, push_array, system_op, usage, Operand, OPS};
use crate::runtime::{Raise, Ret};
use mlua::{Lua, Value as LuaValue};
use weft_core::array::{Array, DType, Element};
use weft_mpi::mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use weft_mpi::mpi::datatype::{Buffer, BufferMut};
use weft_mpi::mpi::topology::{Communicator, SimpleCommunicator};
use weft_mpi::mpi::traits::Equivalence;

const INT: u64 = 0;
const NUM: u64 = 1;
const ARRAY: u64 = 2;
/// x was neither a number nor an array.
const BAD: u64 = 3;
/// The op code of a name that is not in [`OPS`].
const BAD_OP: u64 = 255;
/// A 1-D array's column count in a descriptor.
const NO_COLS: u64 = u64::MAX;

/// What one rank reduces: kind, op, dtype, rows, cols.
type Descriptor = [u64; 5];

fn describe(d: &Descriptor) -> String {
    match d[0] {
        INT | NUM => "a number".to_string(),
        ARRAY if d[4] == NO_COLS => {
            format!("a {} array of {} elements", dtype_at(d[2]).name(), d[3])
        }
        ARRAY => format!("a {} array of {}×{}", dtype_at(d[2]).name(), d[3], d[4]),
        _ => "something else".to_string(),
    }
}

/// Run the reduction; `root` is `None` for allreduce.
pub(super) fn run(
    lua: &Lua,
    world: &SimpleCommunicator,
    f: &str,
    x: LuaValue,
    op: LuaValue,
    root: Option<i32>,
) -> Ret<LuaValue> {
    let rank = world.rank();
    let size = world.size() as usize;
    let x = operand(lua, f, x);
    let op_code = match &op {
        LuaValue::String(s) => OPS
            .iter()
            .position(|o| s.as_bytes().as_ref() == o.as_bytes())
            .map_or(BAD_OP, |i| i as u64),
        _ => BAD_OP,
    };
    let mine: Descriptor = match &x {
        Ok(Operand::Int(_)) => [INT, op_code, 0, 0, 0],
        Ok(Operand::Num(_)) => [NUM, op_code, 0, 0, 0],
        Ok(Operand::Array(a)) => {
            let dtype = DType::ALL.iter().position(|d| *d == a.dtype()).unwrap_or(0) as u64;
            let (rows, cols) = a.shape();
            [
                ARRAY,
                op_code,
                dtype,
                rows as u64,
                cols.map_or(NO_COLS, |c| c as u64),
            ]
        }
        Err(_) => [BAD, op_code, 0, 0, 0],
    };
    let mut all = vec![0u64; 5 * size];
    world.all_gather_into(&mine[..], &mut all[..]);
    let all: Vec<Descriptor> = all
        .chunks_exact(5)
        .map(|c| c.try_into().expect("5 words"))
        .collect();

    // Errors, the same on every rank (this rank's own one in its own words).
    let x = x?;
    if op_code == BAD_OP {
        let got = match &op {
            LuaValue::String(s) => format!("\"{}\"", s.to_string_lossy()),
            other => other.type_name().to_string(),
        };
        return Err(usage(
            f,
            format!("op must be \"sum\", \"min\" or \"max\" (got {got})"),
        ));
    }
    for (r, d) in all.iter().enumerate() {
        if d[0] == BAD {
            return Err(usage(
                f,
                format!("rank {r}'s x is not a number or a weft array"),
            ));
        }
        if d[1] == BAD_OP {
            return Err(usage(
                f,
                format!("rank {r}'s op is not \"sum\", \"min\" or \"max\""),
            ));
        }
        if d[1] != mine[1] {
            return Err(usage(
                f,
                format!(
                    "ranks disagree on op: rank {rank} \"{}\", rank {r} \"{}\"",
                    OPS[mine[1] as usize], OPS[d[1] as usize]
                ),
            ));
        }
        let numbers = |d: &Descriptor| d[0] == INT || d[0] == NUM;
        let same = if numbers(d) {
            numbers(&mine)
        } else {
            d[2..] == mine[2..] && d[0] == mine[0]
        };
        if !same {
            return Err(usage(
                f,
                format!(
                    "ranks disagree on x: rank {rank} has {}, rank {r} {}",
                    describe(&mine),
                    describe(d)
                ),
            ));
        }
    }

    let op = system_op(mine[1] as u8);
    let on_root = root.is_none_or(|r| r == rank);
    match x {
        Operand::Int(_) | Operand::Num(_) if all.iter().all(|d| d[0] == INT) => {
            let Operand::Int(v) = x else {
                unreachable!("every rank has an integer")
            };
            let mut out = 0i64;
            collective(world, root, &v, &mut out, op);
            Ok(if on_root {
                LuaValue::Integer(out as _)
            } else {
                LuaValue::Nil
            })
        }
        Operand::Int(_) | Operand::Num(_) => {
            let v = match x {
                Operand::Int(i) => i as f64,
                Operand::Num(n) => n,
                Operand::Array(_) => unreachable!("matched above"),
            };
            let mut out = 0f64;
            collective(world, root, &v, &mut out, op);
            Ok(if on_root {
                LuaValue::Number(out)
            } else {
                LuaValue::Nil
            })
        }
        Operand::Array(a) => {
            let out = match a.dtype() {
                DType::F32 => reduce_array::<f32>(world, &a, root, op)?,
                DType::F64 => reduce_array::<f64>(world, &a, root, op)?,
                DType::I32 => reduce_array::<i32>(world, &a, root, op)?,
                DType::I64 => reduce_array::<i64>(world, &a, root, op)?,
                DType::U8 => reduce_array::<u8>(world, &a, root, op)?,
                DType::U16 => reduce_array::<u16>(world, &a, root, op)?,
                DType::U32 => reduce_array::<u32>(world, &a, root, op)?,
            };
            match out {
                Some(out) => push_array(lua, out),
                None => Ok(LuaValue::Nil),
            }
        }
    }
}

/// One reduction of `send` into `out` (allreduce when `root` is `None`; `out` is left
/// untouched off the root). A number or a slice of elements.
fn collective<S: Buffer + ?Sized, R: BufferMut + ?Sized>(
    world: &SimpleCommunicator,
    root: Option<i32>,
    send: &S,
    out: &mut R,
    op: SystemOperation,
) {
    match root {
        None => world.all_reduce_into(send, out, op),
        Some(r) if r == world.rank() => world.process_at_rank(r).reduce_into_root(send, out, op),
        Some(r) => world.process_at_rank(r).reduce_into(send, op),
    }
}

/// Reduce an array's elements as `T`; the result (a new array of the same shape) on the
/// ranks that get one.
fn reduce_array<T: Element + Equivalence>(
    world: &SimpleCommunicator,
    a: &Array,
    root: Option<i32>,
    op: SystemOperation,
) -> Ret<Option<Array>> {
    let on_root = root.is_none_or(|r| r == world.rank());
    let (rows, cols) = a.shape();
    let out = if on_root {
        Some(
            Array::zeros_resident(a.dtype(), rows, cols)
                .map_err(|e| Raise::Usage(format!("weft.mpi: {e}")))?,
        )
    } else {
        None
    };
    // weft's own writers wait out the reduction (raw pointers are the user's duty).
    let _lease = a.lease("weft.mpi");
    // SAFETY: the dtype is T's (the caller matched on it); the lease keeps weft's writers
    // out while MPI reads the elements.
    let send = unsafe { a.as_slice::<T>() }.expect("the caller matched the dtype");
    let mut none: [T; 0] = [];
    let recv = match &out {
        // SAFETY: `out` was just created and is not shared: nothing else reads or writes it.
        Some(o) => unsafe { o.as_mut_slice::<T>() }.expect("a fresh array of this dtype"),
        None => &mut none[..],
    };
    collective(world, root, send, recv, op);
    Ok(out)
}
