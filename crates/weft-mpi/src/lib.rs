//! MPI for weft: the one crate that owns MPI in a process.
//!
//! Whoever needs MPI first — the `weft` command's diversity cache under `mpirun`, or the
//! `weft.mpi` Lua module — calls [`init`]: MPI is initialised once per process with the
//! thread level weft needs ([`THREADING`], MPI_THREAD_MULTIPLE, since weft's pool threads
//! may call it), and every later caller gets the same [`Mpi`] (rank, size, the world
//! communicator). [`abort`] prints a rank's one-line message and ends the whole job
//! (MPI_Abort), so a failing rank never leaves the others waiting; [`finalize`] ends MPI on
//! the way out of a run that went well. [`launcher`] tells, from the environment and
//! without MPI, whether an MPI launcher (`mpirun`, `mpiexec`, `srun`) started this
//! process. [`cache`] fills a diversity cache with every rank of the job (`mpirun -n P weft
//! diversity-cache`).
//!
//! Features: `mpi` (default) is the MPI layer, rsmpi over the system's MPI (Debian:
//! `libopenmpi-dev`, and `libclang-dev` to generate the bindings). weft-cli and weft-lua
//! depend on this crate without it (only [`launcher`], so a build without MPI refuses to
//! run as several ranks) and turn it on with their own `mpi` feature. rsmpi is re-exported
//! as [`mpi`] so that every user speaks the same version.
#![deny(missing_docs)]

pub mod launcher;

#[cfg(feature = "mpi")]
pub mod cache;
#[cfg(feature = "mpi")]
mod world;

#[cfg(feature = "mpi")]
pub use mpi;
#[cfg(feature = "mpi")]
pub use world::{abort, finalize, finalize_at_exit, get, init, Mpi, THREADING};
