//! weft-compute: the embedding kernels behind `weft.similarity`, `weft.topk`,
//! `weft.diversity` and the diversity cache — pure Rust, no Lua.
//!
//! Inputs are borrowed row-major f32 matrices ([`Rows`]); ids are 0-based (the Lua layer
//! converts). Every kernel is exact against a float64 reference in the sense docs/design.md
//! states, multi-threaded (`threads`: `None` = the machine's cores) and SIMD (AVX-512 or
//! AVX2 chosen at run time, with a portable scalar path that gives the same bits).
//!
//! Modules, one concept each:
//! - [`rows`]: the borrowed input matrix.
//! - [`normalize`](mod@normalize): L2 normalisation (norm in f64, stored f32).
//! - `gemm`: the blocked SIMD micro-kernel computing tiles of S = E·Eᵀ; `tiles`: the tile
//!   list and the shared output the drivers scatter tiles into.
//! - [`similarity`](mod@similarity): the full N×N matrix (upper triangle computed, mirrored), returned or
//!   written into a caller's buffer ([`similarity_into`]).
//! - [`topk`](mod@topk): nearest neighbours from tiles of S on the fly, memory O(N·k).
//! - `rule`: the exact f64 decision rule of a diversity step and its error bounds;
//!   `sums`: the vectorised per-step running-sum loop over chunks of f32 rows; `matrix`:
//!   one ordering over the caller's f32 S; `compact`: the i16 copy of S in a learned item
//!   order, read line by line; `orderings`: the engine that runs orderings over the compact
//!   S or no S at all, and the pick state they share; `tails`: orderings that reach the
//!   same state share the rest of their picks.
//! - [`pick`]: the exact pick of a step for an engine outside this crate (the GPU) that
//!   finds its own shortlist, and the error terms of its proof.
//! - [`diversity`](mod@diversity): one ordering, or several sharing one compact S.
//! - [`cache`]: the resumable on-disk file of every ordering (docs/cache-format.md).
//! - [`columns`]: orderings over S split by columns across processes (the MPI cache).
//! - [`budget`]: the memory budget that decides when S is computed on the fly.
//! - [`threads`]: thread counts and pools.
//! - [`probe`]: the machine's streaming bandwidth and cache sizes, for the benchmarks.
//! - [`error`]: the error type, [`ComputeError`].
#![deny(missing_docs)]

pub mod budget;
pub mod cache;
pub mod columns;
mod compact;
pub mod diversity;
pub mod error;
mod gemm;
#[cfg(test)]
mod isa_check;
mod matrix;
pub mod normalize;
mod orderings;
pub mod pick;
pub mod probe;
pub mod rows;
mod rule;
pub mod similarity;
mod sums;
mod tails;
pub mod threads;
mod tile64;
mod tiles;
pub mod topk;

pub use budget::Budget;
pub use cache::{Cache, CacheInfo, CacheWriter, Producer, Progress, RunStats};
pub use diversity::{diversity, diversity_many, diversity_prefixes, Orderings};
pub use error::{count, ComputeError, RowProblem, RESUME_WITH_FORCE};
pub use normalize::{normalize, Normalised};
pub use rows::Rows;
pub use similarity::{similarity, similarity_into};
pub use topk::{topk, TopK};
