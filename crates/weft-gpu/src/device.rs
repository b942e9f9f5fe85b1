//! Adapters and the opened device: listing them for `weft devices`, choosing one for
//! `device = "gpu" | "auto"`, and the [`Gpu`] context every kernel runs on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use crate::choice::DeviceChoice;
use crate::error::GpuError;

/// The backends weft asks wgpu for: the native compute APIs (no GL, no browser).
const BACKENDS: wgpu::Backends = wgpu::Backends::VULKAN
    .union(wgpu::Backends::METAL)
    .union(wgpu::Backends::DX12);

/// Environment variable capping the bytes one storage binding may hold (below the
/// adapter's own limit), so tests can force the split / blocked paths on small inputs.
pub const MAX_BINDING_ENV: &str = "WEFT_GPU_MAX_BINDING";

/// What kind of device an adapter drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdapterKind {
    /// A discrete GPU.
    Discrete,
    /// A GPU sharing the CPU's memory.
    Integrated,
    /// A virtualised GPU (VM pass-through and the like).
    Virtual,
    /// A CPU emulating a GPU (Mesa's lavapipe / llvmpipe): correct, slow; `auto` skips it.
    Cpu,
    /// Anything the driver does not classify.
    Other,
}

impl AdapterKind {
    fn from_wgpu(t: wgpu::DeviceType) -> Self {
        match t {
            wgpu::DeviceType::DiscreteGpu => Self::Discrete,
            wgpu::DeviceType::IntegratedGpu => Self::Integrated,
            wgpu::DeviceType::VirtualGpu => Self::Virtual,
            wgpu::DeviceType::Cpu => Self::Cpu,
            wgpu::DeviceType::Other => Self::Other,
        }
    }

    /// The lower-case name `weft devices` prints: discrete, integrated, virtual, cpu, other.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Discrete => "discrete",
            Self::Integrated => "integrated",
            Self::Virtual => "virtual",
            Self::Cpu => "cpu",
            Self::Other => "other",
        }
    }

    /// Preference when several adapters are present (lower is better).
    fn rank(self) -> u8 {
        match self {
            Self::Discrete => 0,
            Self::Integrated => 1,
            Self::Virtual => 2,
            Self::Other => 3,
            Self::Cpu => 4,
        }
    }
}

/// One adapter as `weft devices` / `weft.devices()` list it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterSummary {
    /// The driver's name for the device.
    pub name: String,
    /// vulkan, metal or dx12.
    pub backend: String,
    /// Discrete, integrated, cpu, …
    pub kind: AdapterKind,
    /// The driver and its version, as the driver reports them.
    pub driver: String,
    /// The largest buffer the device can allocate, in bytes.
    pub max_buffer_size: u64,
    /// The most bytes one storage binding can expose to a shader.
    pub max_storage_binding_size: u64,
    /// Storage bindings one compute shader can use.
    pub max_storage_buffers_per_stage: u32,
    /// Workgroup (shared) memory per workgroup, in bytes.
    pub max_workgroup_storage_size: u32,
    /// Whether shaders can compute in f64 (`SHADER_F64`).
    pub f64: bool,
}

impl AdapterSummary {
    fn of(adapter: &wgpu::Adapter) -> Self {
        let info = adapter.get_info();
        let limits = adapter.limits();
        let driver = match (info.driver.is_empty(), info.driver_info.is_empty()) {
            (false, false) => format!("{} {}", info.driver, info.driver_info),
            (false, true) => info.driver.clone(),
            _ => info.driver_info.clone(),
        };
        AdapterSummary {
            name: info.name,
            backend: info.backend.to_str().to_string(),
            kind: AdapterKind::from_wgpu(info.device_type),
            driver,
            max_buffer_size: limits.max_buffer_size,
            max_storage_binding_size: limits.max_storage_buffer_binding_size,
            max_storage_buffers_per_stage: limits.max_storage_buffers_per_shader_stage,
            max_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
            f64: adapter.features().contains(wgpu::Features::SHADER_F64),
        }
    }
}

/// The process's one wgpu instance (creating one loads the Vulkan loader; do it once).
fn instance() -> &'static wgpu::Instance {
    static INSTANCE: OnceLock<wgpu::Instance> = OnceLock::new();
    INSTANCE.get_or_init(|| {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = BACKENDS;
        // No validation layers or debug labels in a library: they cost time and print.
        desc.flags = wgpu::InstanceFlags::empty();
        wgpu::Instance::new(desc)
    })
}

fn enumerate() -> Vec<wgpu::Adapter> {
    pollster::block_on(instance().enumerate_adapters(BACKENDS))
}

/// Every adapter wgpu finds (Vulkan, Metal, DX12), best first; empty without a driver.
pub fn adapters() -> Vec<AdapterSummary> {
    let mut list: Vec<AdapterSummary> = enumerate().iter().map(AdapterSummary::of).collect();
    list.sort_by_key(|a| a.kind.rank());
    list
}

/// Which of `list` a choice runs on: the index, or `None` for the CPU engine.
/// `auto` never picks a CPU-emulated adapter; `gpu` takes the best there is, emulated or not.
pub fn pick(list: &[AdapterSummary], choice: DeviceChoice) -> Option<usize> {
    let usable = |a: &AdapterSummary| match choice {
        DeviceChoice::Cpu => false,
        DeviceChoice::Gpu => true,
        DeviceChoice::Auto => a.kind != AdapterKind::Cpu,
    };
    (0..list.len())
        .filter(|&i| usable(&list[i]))
        .min_by_key(|&i| list[i].kind.rank())
}

/// How a [`Gpu`] is opened.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// Cap on the bytes of one storage binding, below the adapter's limit (`None`: read
    /// [`MAX_BINDING_ENV`], else the adapter's limit). Forces the split / blocked paths.
    pub max_binding: Option<u64>,
}

/// An opened device and queue on one adapter, with its limits; what every kernel runs on.
/// Cheap to share (`Arc<Gpu>`); wgpu's device and queue are thread-safe.
pub struct Gpu {
    summary: AdapterSummary,
    device: wgpu::Device,
    queue: wgpu::Queue,
    limits: wgpu::Limits,
    f64: bool,
    max_binding: u64,
    /// Errors wgpu reports outside an error scope (it would panic otherwise).
    uncaptured: Arc<Mutex<Option<String>>>,
    /// Compiled compute pipelines by name (see [`Gpu::pipeline`]).
    pub(crate) pipelines: Mutex<HashMap<&'static str, Arc<wgpu::ComputePipeline>>>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("adapter", &self.summary)
            .field("max_binding", &self.max_binding)
            .finish()
    }
}

impl Gpu {
    /// Opens the adapter `choice` selects: `Ok(None)` means "run on the CPU engine"
    /// (`cpu`, or `auto` without a real GPU); `gpu` without any adapter is
    /// [`GpuError::NoAdapter`].
    pub fn open(choice: DeviceChoice, options: &GpuOptions) -> Result<Option<Gpu>, GpuError> {
        if choice == DeviceChoice::Cpu {
            return Ok(None);
        }
        let mut found = enumerate();
        found.sort_by_key(|a| AdapterKind::from_wgpu(a.get_info().device_type).rank());
        let list: Vec<AdapterSummary> = found.iter().map(AdapterSummary::of).collect();
        match pick(&list, choice) {
            Some(i) => Gpu::on(&found[i], options).map(Some),
            None if choice == DeviceChoice::Gpu => Err(GpuError::NoAdapter),
            None => Ok(None),
        }
    }

    /// The process-wide device for `choice` under the default options, opened on first
    /// use and shared after (opening costs milliseconds to a second; calls are many).
    pub fn shared(choice: DeviceChoice) -> Result<Option<Arc<Gpu>>, GpuError> {
        static AUTO: OnceLock<Option<Arc<Gpu>>> = OnceLock::new();
        static GPU: Mutex<Option<Arc<Gpu>>> = Mutex::new(None);
        match choice {
            DeviceChoice::Cpu => Ok(None),
            DeviceChoice::Auto => {
                if let Some(g) = AUTO.get() {
                    return Ok(g.clone());
                }
                // `auto` never fails: a device that will not open means the CPU engine.
                let g = Gpu::open(choice, &GpuOptions::default())
                    .ok()
                    .flatten()
                    .map(Arc::new);
                Ok(AUTO.get_or_init(|| g).clone())
            }
            DeviceChoice::Gpu => {
                let mut slot = GPU.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(g) = slot.as_ref() {
                    return Ok(Some(g.clone()));
                }
                let g = Arc::new(
                    Gpu::open(choice, &GpuOptions::default())?.ok_or(GpuError::NoAdapter)?,
                );
                *slot = Some(g.clone());
                Ok(Some(g))
            }
        }
    }

    fn on(adapter: &wgpu::Adapter, options: &GpuOptions) -> Result<Gpu, GpuError> {
        let summary = AdapterSummary::of(adapter);
        let limits = adapter.limits();
        let f64 = summary.f64;
        let features = if f64 {
            wgpu::Features::SHADER_F64
        } else {
            wgpu::Features::empty()
        };
        let desc = wgpu::DeviceDescriptor {
            label: Some("weft"),
            required_features: features,
            // Everything the adapter offers: the defaults cap bindings at 128 MiB.
            required_limits: limits.clone(),
            ..Default::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc)).map_err(|e| {
            GpuError::OpenDevice {
                adapter: summary.name.clone(),
                reason: e.to_string(),
            }
        })?;
        let uncaptured = Arc::new(Mutex::new(None));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = sink.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| e.to_string());
        }));
        let cap = options.max_binding.or_else(|| {
            std::env::var(MAX_BINDING_ENV)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
        });
        let adapter_cap = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        // Bindings hold whole f32 words: keep the cap a multiple of 4.
        let max_binding = cap.map_or(adapter_cap, |c| c.min(adapter_cap)) & !3;
        Ok(Gpu {
            summary,
            device,
            queue,
            limits,
            f64,
            max_binding,
            uncaptured,
            pipelines: Mutex::default(),
        })
    }

    /// The adapter this device runs on.
    pub fn summary(&self) -> &AdapterSummary {
        &self.summary
    }

    /// The wgpu device (to create buffers, pipelines).
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    /// The wgpu queue (to submit and write buffers).
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// The limits the device was opened with (the adapter's own).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// Whether shaders on this device may use f64.
    pub fn has_f64(&self) -> bool {
        self.f64
    }

    /// The most bytes weft puts in one storage binding (adapter limit, or the cap of
    /// [`GpuOptions::max_binding`] / [`MAX_BINDING_ENV`]); a multiple of 4.
    pub fn max_binding(&self) -> u64 {
        self.max_binding
    }

    /// Runs `f` (allocations, dispatches) and turns any out-of-memory, validation or
    /// internal error wgpu reports for it into a [`GpuError`] naming `what`.
    pub fn checked<T>(&self, what: &str, f: impl FnOnce() -> T) -> Result<T, GpuError> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let internal = self.device.push_error_scope(wgpu::ErrorFilter::Internal);
        let out = f();
        // Scopes pop innermost first.
        let internal = pollster::block_on(internal.pop());
        let validation = pollster::block_on(validation.pop());
        let oom = pollster::block_on(oom.pop());
        if let Some(e) = oom {
            return Err(GpuError::OutOfMemory {
                adapter: self.summary.name.clone(),
                what: format!("{what}: {e}"),
            });
        }
        if let Some(e) = validation.or(internal) {
            return Err(self.failed(what, e.to_string()));
        }
        self.take_uncaptured(what)?;
        Ok(out)
    }

    /// Reports (once) an error wgpu raised outside any scope since the last check.
    pub fn take_uncaptured(&self, what: &str) -> Result<(), GpuError> {
        let taken = self
            .uncaptured
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        match taken {
            Some(reason) => Err(self.failed(what, reason)),
            None => Ok(()),
        }
    }

    /// A [`GpuError::Device`] naming this adapter.
    pub fn failed(&self, what: &str, reason: String) -> GpuError {
        GpuError::Device {
            adapter: self.summary.name.clone(),
            what: what.to_string(),
            reason,
        }
    }

    /// Blocks until every submitted job has finished.
    pub fn wait(&self, what: &str) -> Result<(), GpuError> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| self.failed(what, e.to_string()))
    }
}
