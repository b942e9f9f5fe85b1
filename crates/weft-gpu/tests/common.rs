//! Shared by the GPU tests: open a device or explain why not.
//!
//! In CI (`WEFT_REQUIRE_GPU=1`, set by `make test`) no adapter is a failure; on a developer
//! machine without a Vulkan driver the tests skip with a printed reason.

#![allow(dead_code)]

use weft_gpu::{DeviceChoice, Gpu, GpuOptions};

/// Whether the environment demands an adapter (CI).
pub fn required() -> bool {
    std::env::var("WEFT_REQUIRE_GPU").is_ok_and(|v| v == "1")
}

/// A device for `device = "gpu"` (lavapipe in CI) with `options`, or `None` after
/// printing why the test skips. Panics when an adapter is required and missing.
pub fn gpu_with(options: &GpuOptions) -> Option<Gpu> {
    match Gpu::open(DeviceChoice::Gpu, options) {
        Ok(g) => g,
        Err(e) if !required() => {
            eprintln!("skipped: {e} (set WEFT_REQUIRE_GPU=1 to make this a failure)");
            None
        }
        Err(e) => panic!("WEFT_REQUIRE_GPU=1 but: {e}"),
    }
}

/// [`gpu_with`] under the default options.
pub fn gpu() -> Option<Gpu> {
    gpu_with(&GpuOptions::default())
}
