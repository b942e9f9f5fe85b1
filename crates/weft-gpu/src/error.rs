//! The error type of the GPU path: one variant per way it fails, each a one-line message
//! naming what failed and what to do about it.

use thiserror::Error;

/// Everything the GPU path can fail with.
#[derive(Debug, Error)]
pub enum GpuError {
    /// A `device` value (option or `--device` flag) that is not one of the allowed ones.
    #[error("{option}: unknown device {value:?} (allowed: \"cpu\", \"gpu\", \"auto\")")]
    BadDevice {
        /// The option's name as the caller spelled it (`device`, `--device`).
        option: String,
        /// The rejected value.
        value: String,
    },
    /// `device = "gpu"` but no Vulkan / Metal / DX12 adapter could be found.
    #[error("device \"gpu\": no GPU adapter found (no Vulkan, Metal or DX12 driver answered; on Linux install a Vulkan driver, e.g. mesa-vulkan-drivers; use device \"cpu\" or \"auto\" to run on the CPU)")]
    NoAdapter,
    /// The adapter was found but opening a device on it failed.
    #[error("GPU adapter {adapter:?}: cannot open a device: {reason}")]
    OpenDevice {
        /// The adapter's name.
        adapter: String,
        /// The driver's reason.
        reason: String,
    },
    /// The job needs more than the adapter's limits allow, even split into blocks.
    #[error("GPU adapter {adapter:?}: limits too small: {what}")]
    LimitsTooSmall {
        /// The adapter's name.
        adapter: String,
        /// Which limit, what was needed and what the adapter has.
        what: String,
    },
    /// The device ran out of memory while allocating or running a job.
    #[error("GPU adapter {adapter:?}: out of device memory ({what}); use device \"cpu\", or a smaller input")]
    OutOfMemory {
        /// The adapter's name.
        adapter: String,
        /// What was being allocated or run.
        what: String,
    },
    /// The device was lost (driver reset, GPU removed) or reported an internal error.
    #[error("GPU adapter {adapter:?}: {what} failed: {reason}")]
    Device {
        /// The adapter's name.
        adapter: String,
        /// What was being done.
        what: String,
        /// The driver's / wgpu's message.
        reason: String,
    },
    /// The input failed the CPU engine's checks (shape, NaN, zero rows, k, …).
    #[error(transparent)]
    Compute(#[from] weft_compute::ComputeError),
}
