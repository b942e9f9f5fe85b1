//! `device = "cpu" | "gpu" | "auto"` in the compute options, and `weft.devices()`; the
//! routing is shared with the `weft` binary's `--device`.
//!
//! With the cargo feature `gpu` (on by default) similarity and top-k run on weft-gpu when
//! the device says so: `gpu` on the best adapter (a CPU-emulated one such as lavapipe
//! included), `auto` on a real GPU when there is one and the input has at least
//! [`AUTO_MIN_ROWS`] rows. `auto` falls back to the CPU engine
//! when the GPU cannot take the job (out of device memory, limits); `gpu` reports it.
//! The diversity orderings and the cache go to weft-gpu's orderings the same way.
//! Without the feature, `gpu` is an error saying so and `auto` is the CPU.

use std::sync::atomic::AtomicBool;
use weft_compute::{Budget, CacheInfo, CacheWriter, ComputeError, Progress, Rows, TopK};

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

/// Under `auto`, jobs on fewer rows than this run on the CPU engine without opening a
/// device: the CPU engine's similarity of 4,096 rows × 384 takes tens of milliseconds,
/// about what opening an adapter and compiling its pipelines costs, and a headless Vulkan
/// loader may print to stderr when it starts (Mesa's device-select layer does without
/// XDG_RUNTIME_DIR). `gpu` opens the device whatever the size.
pub const AUTO_MIN_ROWS: usize = 4096;

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

/// The shared device for a job on `rows` rows on `device`, or `None` for the CPU engine
/// (see [`AUTO_MIN_ROWS`]).
#[cfg(feature = "gpu")]
fn gpu(
    device: Device,
    what: &str,
    rows: usize,
) -> Result<Option<std::sync::Arc<weft_gpu::Gpu>>, Failure> {
    use weft_gpu::DeviceChoice;
    let choice = match device {
        Device::Cpu => return Ok(None),
        Device::Auto if rows < AUTO_MIN_ROWS => return Ok(None),
        Device::Gpu => DeviceChoice::Gpu,
        Device::Auto => DeviceChoice::Auto,
    };
    weft_gpu::Gpu::shared(choice).map_err(|e| Failure::Device(format!("{what}: {e}")))
}

/// Without the `gpu` feature: `gpu` is an error saying so, anything else the CPU engine.
#[cfg(not(feature = "gpu"))]
fn gpu(
    device: Device,
    what: &str,
    _rows: usize,
) -> Result<Option<std::convert::Infallible>, Failure> {
    match device {
        Device::Gpu => Err(Failure::Device(format!(
            "{what}: device \"gpu\": this weft was built without GPU support (cargo feature `gpu`)"
        ))),
        _ => Ok(None),
    }
}

/// What a GPU failure leads to: an input error is the caller's; under `auto` a job the GPU
/// could not take (memory, limits, a lost device) is redone on the CPU (`Ok`); under `gpu`
/// it is reported.
#[cfg(feature = "gpu")]
fn after(device: Device, what: &str, e: weft_gpu::GpuError) -> Result<(), Failure> {
    match e {
        weft_gpu::GpuError::Compute(e) => Err(Failure::Input(e)),
        _ if device == Device::Auto => Ok(()),
        e => Err(Failure::Device(format!("{what}: {e}"))),
    }
}

/// Whether calls on `rows` rows on `device` go to a GPU (for callers that cut work
/// differently there).
pub fn uses_gpu(device: Device, what: &str, rows: usize) -> Result<bool, Failure> {
    Ok(gpu(device, what, rows)?.is_some())
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
    #[cfg_attr(not(feature = "gpu"), allow(unused_variables))]
    if let Some(g) = gpu(device, what, e.n())? {
        #[cfg(feature = "gpu")]
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
    #[cfg_attr(not(feature = "gpu"), allow(unused_variables))]
    if let Some(g) = gpu(device, what, e.n())? {
        #[cfg(feature = "gpu")]
        match weft_gpu::topk(&g, e, k, threads) {
            Ok(t) => return Ok(t),
            Err(err) => after(device, what, err)?,
        }
    }
    Ok(weft_compute::topk(e, k, threads)?)
}

/// The ordering from `start` on `device` (weft-compute's, bit for bit, either way).
/// `s`, a similarity matrix the caller already has, serves the CPU engine only.
#[allow(clippy::too_many_arguments)]
pub fn diversity(
    device: Device,
    what: &str,
    e: Rows<'_>,
    s: Option<&[f32]>,
    start: usize,
    threads: Option<usize>,
    budget: Budget,
) -> Result<Vec<u32>, Failure> {
    #[cfg_attr(not(feature = "gpu"), allow(unused_variables))]
    if let Some(g) = gpu(device, what, e.n())? {
        #[cfg(feature = "gpu")]
        match weft_gpu::diversity(&g, e, start) {
            Ok(seq) => return Ok(seq),
            Err(err) => after(device, what, err)?,
        }
    }
    Ok(weft_compute::diversity(e, s, start, threads, budget)?)
}

/// The first `len` items of the orderings from `starts` on `device`.
#[allow(clippy::too_many_arguments)]
pub fn diversity_prefixes(
    device: Device,
    what: &str,
    e: Rows<'_>,
    s: Option<&[f32]>,
    starts: &[usize],
    len: usize,
    threads: Option<usize>,
    budget: Budget,
) -> Result<Vec<Vec<u32>>, Failure> {
    #[cfg_attr(not(feature = "gpu"), allow(unused_variables))]
    if let Some(g) = gpu(device, what, e.n())? {
        #[cfg(feature = "gpu")]
        match weft_gpu::diversity_prefixes(&g, e, starts, len) {
            Ok(seqs) => return Ok(seqs),
            Err(err) => after(device, what, err)?,
        }
    }
    Ok(weft_compute::diversity_prefixes(
        e, s, starts, len, threads, budget,
    )?)
}

/// Fills the cache's missing orderings on `device` (same file, progress and cancellation
/// either way; under `auto` a GPU failure continues on the CPU from what was committed).
pub fn fill_cache(
    device: Device,
    what: &str,
    writer: &mut CacheWriter<'_>,
    threads: Option<usize>,
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<CacheInfo, Failure> {
    #[cfg_attr(not(feature = "gpu"), allow(unused_variables))]
    if let Some(g) = gpu(device, what, writer.embeddings().n())? {
        #[cfg(feature = "gpu")]
        {
            let options = weft_gpu::OrderOptions::default();
            match weft_gpu::fill_cache(&g, writer, &options, progress, cancel) {
                Ok(info) => return Ok(info),
                Err(err) => after(device, what, err)?,
            }
        }
    }
    Ok(writer.run(threads, progress, cancel)?)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_keeps_small_jobs_on_the_cpu_without_asking_for_a_device() {
        // No adapter is opened for these, so they hold on any machine, GPU or not.
        assert!(!uses_gpu(Device::Auto, "t", AUTO_MIN_ROWS - 1).unwrap_or(true));
        assert!(!uses_gpu(Device::Cpu, "t", 1 << 20).unwrap_or(true));
    }

    #[test]
    #[cfg(not(feature = "gpu"))]
    fn a_build_without_the_gpu_feature_refuses_gpu_and_computes_auto_on_the_cpu() {
        let e = vec![1.0f32, 0.0, 0.0, 1.0];
        let rows = Rows::new(&e, 2, 2).unwrap();
        match topk(Device::Gpu, "weft.topk", rows, 1, Some(1)) {
            Err(Failure::Device(m)) => assert!(
                m == "weft.topk: device \"gpu\": this weft was built without GPU support \
                      (cargo feature `gpu`)",
                "{m}"
            ),
            _ => panic!("gpu must be refused"),
        }
        assert!(!uses_gpu(Device::Auto, "t", 1 << 20).unwrap_or(true));
        let t = topk(Device::Auto, "weft.topk", rows, 1, Some(1))
            .ok()
            .expect("the CPU engine");
        assert_eq!(t.ids, vec![1, 0]);
    }

    #[test]
    fn device_values_parse_and_others_are_named() {
        assert_eq!(parse("f", b"auto"), Ok(Device::Auto));
        assert_eq!(parse("f", b"gpu"), Ok(Device::Gpu));
        let e = parse("weft.topk", b"GPU").unwrap_err();
        assert!(
            e.contains("weft.topk: options.device must be") && e.contains("\"GPU\""),
            "{e}"
        );
    }
}
