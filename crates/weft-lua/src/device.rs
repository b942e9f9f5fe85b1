//! `device = "cpu" | "gpu" | "auto"` in the compute options, and `weft.devices()`.
//!
//! With the cargo feature `gpu` (on by default) similarity and top-k run on weft-gpu when
//! the device says so: `gpu` on the best adapter (a CPU-emulated one such as lavapipe
//! included), `auto` on a real GPU when there is one. `auto` falls back to the CPU engine
//! when the GPU cannot take the job (out of device memory, limits); `gpu` reports it.
//! Without the feature, `gpu` is an error saying so and `auto` is the CPU.

use weft_compute::{Budget, ComputeError, Rows, TopK};

/// Where a compute call runs (the `device` option).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Device {
    /// The CPU engine (weft-compute).
    Cpu,
    /// A GPU adapter, emulated ones included; none is an error.
    Gpu,
    /// A real GPU when there is one, else the CPU engine.
    #[default]
    Auto,
}

/// Parses the `device` option's value.
pub fn parse(what: &str, value: &[u8]) -> Result<Device, String> {
    match value {
        b"cpu" => Ok(Device::Cpu),
        b"gpu" => Ok(Device::Gpu),
        b"auto" => Ok(Device::Auto),
        _ => Err(format!(
            "{what}: options.device must be \"cpu\", \"gpu\" or \"auto\" (got {:?})",
            String::from_utf8_lossy(value)
        )),
    }
}

/// How a call failed: an input error (in weft-compute's terms, for the caller to number
/// 1-based) or a device message already naming the call.
pub enum Failure {
    /// The input failed the engine's checks (0-based rows, as weft-compute reports them).
    Input(ComputeError),
    /// The device failed or is missing; the message names the call.
    Device(String),
}

impl From<ComputeError> for Failure {
    fn from(e: ComputeError) -> Self {
        Failure::Input(e)
    }
}

#[cfg(feature = "gpu")]
mod on {
    use super::*;
    use std::sync::Arc;
    use weft_gpu::{DeviceChoice, Gpu, GpuError};

    /// The shared device for `device`, or `None` for the CPU engine.
    fn gpu(device: Device, what: &str) -> Result<Option<Arc<Gpu>>, Failure> {
        let choice = match device {
            Device::Cpu => return Ok(None),
            Device::Gpu => DeviceChoice::Gpu,
            Device::Auto => DeviceChoice::Auto,
        };
        Gpu::shared(choice).map_err(|e| Failure::Device(format!("{what}: {e}")))
    }

    /// What a GPU failure leads to: an input error is the caller's; under `auto` a job the
    /// GPU could not take (memory, limits, a lost device) is redone on the CPU (`Ok`);
    /// under `gpu` it is reported.
    fn after(device: Device, what: &str, e: GpuError) -> Result<(), Failure> {
        match e {
            GpuError::Compute(e) => Err(Failure::Input(e)),
            _ if device == Device::Auto => Ok(()),
            e => Err(Failure::Device(format!("{what}: {e}"))),
        }
    }

    /// S = E·Eᵀ of normalised rows into `out` (n·n) on `device`.
    pub fn similarity_into(
        device: Device,
        what: &str,
        e: Rows<'_>,
        out: &mut [f32],
        threads: Option<usize>,
        budget: Budget,
    ) -> Result<(), Failure> {
        if let Some(g) = gpu(device, what)? {
            match weft_gpu::similarity_into(&g, e, out, budget) {
                Ok(()) => return Ok(()),
                Err(err) => after(device, what, err)?,
            }
        }
        Ok(weft_compute::similarity_into(e, out, threads, budget)?)
    }

    /// Top-k of normalised rows on `device` (the CPU engine's ids and scores either way).
    pub fn topk(
        device: Device,
        what: &str,
        e: Rows<'_>,
        k: usize,
        threads: Option<usize>,
    ) -> Result<TopK, Failure> {
        if let Some(g) = gpu(device, what)? {
            match weft_gpu::topk(&g, e, k, threads) {
                Ok(t) => return Ok(t),
                Err(err) => after(device, what, err)?,
            }
        }
        Ok(weft_compute::topk(e, k, threads)?)
    }
}

#[cfg(feature = "gpu")]
pub use on::{similarity_into, topk};

/// The error for `device = "gpu"` in a build without the `gpu` feature.
#[cfg(not(feature = "gpu"))]
fn not_built(what: &str) -> Failure {
    Failure::Device(format!(
        "{what}: device \"gpu\": this weft was built without GPU support (cargo feature `gpu`)"
    ))
}

/// S = E·Eᵀ of normalised rows into `out` (n·n): the CPU engine (`gpu` is refused).
#[cfg(not(feature = "gpu"))]
pub fn similarity_into(
    device: Device,
    what: &str,
    e: Rows<'_>,
    out: &mut [f32],
    threads: Option<usize>,
    budget: Budget,
) -> Result<(), Failure> {
    if device == Device::Gpu {
        return Err(not_built(what));
    }
    Ok(weft_compute::similarity_into(e, out, threads, budget)?)
}

/// Top-k of normalised rows: the CPU engine (`gpu` is refused).
#[cfg(not(feature = "gpu"))]
pub fn topk(
    device: Device,
    what: &str,
    e: Rows<'_>,
    k: usize,
    threads: Option<usize>,
) -> Result<TopK, Failure> {
    if device == Device::Gpu {
        return Err(not_built(what));
    }
    Ok(weft_compute::topk(e, k, threads)?)
}

/// The diversity orderings and the cache run on the CPU engine on this branch: `gpu` is
/// refused with a clear message until the GPU orderings land; `auto` is the CPU.
pub fn orderings_on_cpu(device: Device, what: &str) -> Result<(), String> {
    if device == Device::Gpu {
        return Err(format!(
            "{what}: device \"gpu\": diversity orderings on the GPU are not built yet (use \"cpu\" or \"auto\")"
        ));
    }
    Ok(())
}

/// `weft.devices()` → a list of tables, one per GPU adapter, best first: name, backend,
/// type ("discrete", "integrated", "virtual", "cpu", "other"), driver, max_buffer_size,
/// max_storage_binding_size, max_storage_buffers_per_stage, max_workgroup_storage_size,
/// f64. Empty without a driver, and in a build without the `gpu` feature.
pub(crate) fn devices(lua: &mlua::Lua, _: ()) -> mlua::Result<mlua::Table> {
    let list = lua.create_table()?;
    #[cfg(feature = "gpu")]
    for (i, a) in weft_gpu::adapters().into_iter().enumerate() {
        let t = lua.create_table()?;
        t.set("name", a.name)?;
        t.set("backend", a.backend)?;
        t.set("type", a.kind.as_str())?;
        t.set("driver", a.driver)?;
        // Lua numbers hold these exactly (all below 2^53).
        t.set("max_buffer_size", a.max_buffer_size as f64)?;
        t.set(
            "max_storage_binding_size",
            a.max_storage_binding_size as f64,
        )?;
        t.set(
            "max_storage_buffers_per_stage",
            a.max_storage_buffers_per_stage,
        )?;
        t.set("max_workgroup_storage_size", a.max_workgroup_storage_size)?;
        t.set("f64", a.f64)?;
        list.raw_set(i + 1, t)?;
    }
    Ok(list)
}
