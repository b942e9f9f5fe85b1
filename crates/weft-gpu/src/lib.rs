//! weft-gpu: weft's compute kernels on a GPU through wgpu (Vulkan, Metal, DX12) and WGSL
//! compute shaders — no Lua. It sits between the bindings (weft-lua, weft-cli) and
//! weft-compute: the same inputs, the same checks and the same answers as the CPU engine
//! (docs/gpu.md gives the exactness argument), chosen per call by
//! `device = "cpu" | "gpu" | "auto"`.
//!
//! Modules, one concept each:
//! - [`choice`]: parsing `device = "cpu" | "gpu" | "auto"`.
//! - [`device`]: the adapters (`weft devices`), choosing one, and the [`Gpu`] context
//!   (device, queue, limits, f64 support, error capture).
//! - [`buffers`]: uploading a matrix split across storage bindings, allocating, reading back.
//! - [`kernel`]: compiling WGSL pipelines once per device, uniforms, bind groups, dispatch.
//! - `plan`: cutting a job into row blocks that fit the adapter's bindings.
//! - [`similarity`](mod@similarity): S = E·Eᵀ, blocked.
//! - [`topk`](mod@topk): nearest neighbours, shortlisted on the GPU and finished exactly on
//!   the host ([`exact`]), so the ids and scores are the CPU engine's.
//! - [`orderings`]: diversity orderings and the cache's producer, the CPU engine's exactly.
//! - [`error`]: the error type, [`GpuError`].
#![deny(missing_docs)]

pub mod buffers;
pub mod choice;
pub mod device;
pub mod error;
pub mod exact;
pub mod kernel;
pub mod orderings;
mod plan;
pub mod similarity;
pub mod topk;

pub use buffers::{rows_per_part, SplitRows};
pub use choice::DeviceChoice;
pub use device::{adapters, pick, AdapterKind, AdapterSummary, Gpu, GpuOptions, MAX_BINDING_ENV};
pub use error::GpuError;
pub use orderings::{
    diversity, diversity_many, diversity_prefixes, fill_cache, GpuOrderings, OrderOptions,
};
pub use similarity::{similarity, similarity_into};
pub use topk::topk;
