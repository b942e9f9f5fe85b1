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
//! - [`error`]: the error type, [`GpuError`].
#![deny(missing_docs)]

pub mod buffers;
pub mod choice;
pub mod device;
pub mod error;

pub use buffers::{rows_per_part, SplitRows};
pub use choice::DeviceChoice;
pub use device::{adapters, pick, AdapterKind, AdapterSummary, Gpu, GpuOptions, MAX_BINDING_ENV};
pub use error::GpuError;
