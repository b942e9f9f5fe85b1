//! Diversity orderings on the GPU, identical to weft-compute's (docs/gpu-orderings.md).
//!
//! A batch of orderings advances together, many steps per submission: the device adds each
//! ordering's last pick's row of a quantised S to its integer running sums and shortlists
//! the items within a proven band of the minimum. A shortlist of one item is the rule's pick,
//! so the device takes it and goes on; any other waits for the host, which re-scores it with
//! weft-compute's own f64 rule ([`Picker`]) after replaying the device's picks. The integer
//! sums are exact, so the band only has to cover each entry's error, and every pick is the
//! CPU engine's, bit for bit, whatever the adapter (f64 on the device only narrows the band).
//!
//! Memory: E (n·d f32) in one binding; S quantised to i32 in up to four bindings of whole rows
//! when it fits them (and [`OrderOptions::s_limit`]), else each step computes the rows it
//! needs from E (O(n·d) per ordering and step: slower, same picks); the batch's sums (b·n
//! i32) in one binding, b chosen to fit.

use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;
use weft_compute::pick::{entry_bound_any_f32, entry_bound_any_f64, step_bound, Picker};
use weft_compute::{CacheInfo, CacheWriter, Producer, Progress, Rows};

use crate::{Gpu, GpuError};

/// Shortlist slots per ordering and step; a longer shortlist makes the host score every
/// unchosen item of that ordering (rare: the band holds a few items).
const SLOTS: usize = 16;
/// Bindings the step shader has for blocks of S.
const S_BINDINGS: usize = 4;
/// The most orderings one batch advances (one cache commit: progress and Ctrl-C granularity).
pub const MAX_BATCH: usize = 2048;
/// A chosen item's sum in the shader.
const CHOSEN: i32 = i32::MAX;
/// Most steps recorded per submission; an ordering takes up to this many picks on the device
/// between two visits of the host (its "ring" of picks for the host to replay). The count
/// adapts: halved while most orderings stop for the host (ties: dispatches for stopped
/// orderings are wasted), doubled while few do.
const STEPS: usize = 32;
/// An ordering's status in the shader: advancing, stopped for the host, finished.
const RUNNING: i32 = 0;
const WAITING: i32 = 1;
const DONE: i32 = 2;
/// Threads per workgroup in both shaders.
const WORKGROUP: u32 = 256;

/// How [`GpuOrderings`] uses the device.
#[derive(Clone, Debug, Default)]
pub struct OrderOptions {
    /// Orderings per batch (default: as many as the sums binding holds, at most
    /// [`MAX_BATCH`]).
    pub batch: Option<usize>,
    /// Most bytes of device memory the quantised S may take (default: as the bindings
    /// allow). `Some(0)` forces the path that computes rows of S from E at every step.
    pub s_limit: Option<u64>,
    /// Build S in f32 even when the adapter has f64 (the f64 build gives a far narrower
    /// band of candidates, so less work on the host; both give the same orderings).
    pub f32_only: bool,
}

/// Where the step shader finds rows of S.
enum Source {
    /// The quantised S in blocks of whole rows.
    Matrix {
        blocks: Vec<wgpu::Buffer>,
        rows_per_block: usize,
    },
    /// Rows computed from E at every step.
    FromE,
}

/// Normalised rows uploaded once, ready to run orderings from any starts.
pub struct GpuOrderings<'g> {
    gpu: &'g Gpu,
    rows: Vec<f32>,
    n: usize,
    d: usize,
    /// Integer units per unit of similarity.
    scale: f64,
    /// Bound on |q/scale − e_i·e_j| for every quantised entry.
    entry_err: f64,
    source: Source,
    /// Whether S was built from f64 dot products.
    s_f64: bool,
    e: wgpu::Buffer,
    dummy: wgpu::Buffer,
    layout: wgpu::BindGroupLayout,
    add: wgpu::ComputePipeline,
    shortlist: wgpu::ComputePipeline,
    decide: wgpu::ComputePipeline,
    batch: usize,
    /// Step submissions so far (each followed by one wait for the host).
    submissions: std::sync::atomic::AtomicU64,
    /// Bytes of the quantised S the step shader has read for finished orderings.
    s_bytes_read: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for GpuOrderings<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuOrderings")
            .field("n", &self.n)
            .field("d", &self.d)
            .field("s_on_device", &self.s_on_device())
            .field("batch", &self.batch)
            .finish()
    }
}

/// The step shader's uniform (order_step.wgsl `Params`).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    b: u32,
    k: u32,
    len: u32,
    scale: f32,
    rows_per_block: u32,
    d: u32,
    ring: u32,
}

/// The build shader's uniform (order_build.wgsl `Build`).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Build {
    n: u32,
    d: u32,
    first: u32,
    rows: u32,
    scale: f32,
    pad: [u32; 3],
}

/// round(x·scale) of |x| ≤ 2 stays within ±2^30 summed over n entries: scale ≤ 2^29/n, and
/// at most 2^22 (an f32 holds the product's integer part exactly below 2^24).
fn scale_for(n: usize) -> f64 {
    ((1u64 << 29) / n as u64).clamp(1, 1 << 22) as f64
}

impl<'g> GpuOrderings<'g> {
    /// Uploads the normalised rows `e` (validated as the CPU engine does) and builds the
    /// quantised S on the device when it fits.
    pub fn new(gpu: &'g Gpu, e: Rows<'_>, options: &OrderOptions) -> Result<Self, GpuError> {
        Picker::new(e, 0)?;
        let (n, d) = (e.n(), e.d());
        let too_small = |what: String| GpuError::LimitsTooSmall {
            adapter: gpu.summary().name.clone(),
            what,
        };
        let cap = gpu.max_binding();
        let e_bytes = (n * d * 4) as u64;
        if e_bytes > cap {
            return Err(too_small(format!(
                "diversity orderings need the {n}×{d} embeddings ({e_bytes} bytes) in one \
                 storage binding, the limit is {cap} bytes"
            )));
        }
        if n as u64 > u64::from(u32::MAX) / (d as u64).max(1) {
            return Err(too_small(format!(
                "{n}×{d} embeddings exceed 32-bit indexing"
            )));
        }
        let row_bytes = n as u64 * 4;
        let fit = (cap / row_bytes) as usize;
        let batch = options
            .batch
            .unwrap_or(MAX_BATCH)
            .clamp(1, MAX_BATCH)
            .min(fit);
        if batch == 0 {
            return Err(too_small(format!(
                "one ordering's {n} running sums ({row_bytes} bytes) exceed a storage binding \
                 of {cap} bytes"
            )));
        }
        let scale = scale_for(n);
        let entry_err = entry_bound_any_f32(d) + f64::powi(2.0, -22) + 0.5 / scale;
        let e_buf = gpu.storage(
            "diversity orderings: embeddings",
            e_bytes,
            wgpu::BufferUsages::empty(),
        )?;
        gpu.checked("diversity orderings: uploading the embeddings", || {
            gpu.queue()
                .write_buffer(&e_buf, 0, bytemuck::cast_slice(e.data()))
        })?;
        let dummy = gpu.storage(
            "diversity orderings: placeholder",
            4,
            wgpu::BufferUsages::empty(),
        )?;
        let (layout, [add_s, add_e, shortlist, decide]) = step_pipelines(gpu)?;
        let mut me = GpuOrderings {
            gpu,
            rows: e.data().to_vec(),
            n,
            d,
            scale,
            entry_err,
            source: Source::FromE,
            s_f64: false,
            e: e_buf,
            dummy,
            layout,
            add: add_e,
            shortlist,
            decide,
            batch,
            submissions: Default::default(),
            s_bytes_read: Default::default(),
        };
        let s_bytes = row_bytes * n as u64;
        let blocks = n.div_ceil(fit);
        if blocks <= S_BINDINGS && options.s_limit.is_none_or(|l| s_bytes <= l) {
            let f64 = gpu.has_f64() && !options.f32_only;
            match me.build_s(fit.min(n), f64) {
                Ok(s) => {
                    me.source = s;
                    me.add = add_s;
                    me.s_f64 = f64;
                    if f64 {
                        // Products exact, sums within (d + 2)·2⁻⁵²·1.02, the quantising
                        // product within 2⁻⁵¹, rounding 0.5/scale (docs/gpu-orderings.md).
                        me.entry_err = entry_bound_any_f64(d) + f64::powi(2.0, -51) + 0.5 / scale;
                    }
                }
                // Documented fallback: S that does not fit device memory is computed per step.
                Err(GpuError::OutOfMemory { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(me)
    }

    /// Whether S is held on the device (false: rows are computed from E at every step).
    pub fn s_on_device(&self) -> bool {
        matches!(self.source, Source::Matrix { .. })
    }

    /// Whether S on the device was built from f64 dot products (a narrower band).
    pub fn s_in_f64(&self) -> bool {
        self.s_f64
    }

    /// Step submissions made so far: each records up to 32 steps of the whole batch and is
    /// followed by one read-back and the host's re-scoring.
    pub fn submissions(&self) -> u64 {
        self.submissions.load(Ordering::Relaxed)
    }

    /// Bytes of the quantised S on the device that the orderings run so far read: the
    /// `add` step reads, for every pick but an ordering's last, the entries of the pick's
    /// row for the items not yet chosen, 4 bytes each (0 when rows come from E).
    pub fn s_bytes_read(&self) -> u64 {
        self.s_bytes_read.load(Ordering::Relaxed)
    }

    /// Orderings advanced together in one batch.
    pub fn batch_size(&self) -> usize {
        self.batch
    }

    /// Computes the quantised S in blocks of `rows_per_block` rows, from f64 dot products
    /// when `f64` (the adapter has SHADER_F64), else from f32 ones.
    fn build_s(&self, rows_per_block: usize, f64: bool) -> Result<Source, GpuError> {
        let gpu = self.gpu;
        let what = "diversity orderings: building S";
        let module = if f64 {
            shader(
                gpu,
                "order_build64",
                include_str!("shaders/order_build64.wgsl"),
            )?
        } else {
            shader(gpu, "order_build", include_str!("shaders/order_build.wgsl"))?
        };
        let pipeline = gpu.checked(what, || {
            gpu.device()
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some("weft order_build"),
                    layout: None,
                    module: &module,
                    entry_point: Some("build"),
                    compilation_options: Default::default(),
                    cache: None,
                })
        })?;
        let mut blocks = Vec::new();
        let mut first = 0;
        while first < self.n {
            let rows = rows_per_block.min(self.n - first);
            let out = gpu.storage(
                "diversity orderings: S",
                (rows * self.n * 4) as u64,
                wgpu::BufferUsages::empty(),
            )?;
            let params = Build {
                n: self.n as u32,
                d: self.d as u32,
                first: first as u32,
                rows: rows as u32,
                scale: self.scale as f32,
                pad: [0; 3],
            };
            let uniform = self.uniform(bytemuck::bytes_of(&params))?;
            gpu.checked(what, || {
                let group = gpu.device().create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("weft order_build"),
                    layout: &pipeline.get_bind_group_layout(0),
                    entries: &[entry(0, &uniform), entry(1, &self.e), entry(2, &out)],
                });
                let mut enc = gpu.device().create_command_encoder(&Default::default());
                {
                    let mut pass = enc.begin_compute_pass(&Default::default());
                    pass.set_pipeline(&pipeline);
                    pass.set_bind_group(0, &group, &[]);
                    pass.dispatch_workgroups(groups(self.n), rows.min(65_535) as u32, 1);
                }
                gpu.queue().submit([enc.finish()]);
            })?;
            gpu.wait(what)?;
            blocks.push(out);
            first += rows;
        }
        Ok(Source::Matrix {
            blocks,
            rows_per_block,
        })
    }

    fn uniform(&self, bytes: &[u8]) -> Result<wgpu::Buffer, GpuError> {
        let gpu = self.gpu;
        let buf = gpu.checked("diversity orderings: parameters", || {
            gpu.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some("weft order params"),
                size: bytes.len() as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        gpu.queue().write_buffer(&buf, 0, bytes);
        Ok(buf)
    }

    /// The full orderings from `starts` (0-based, validated).
    pub fn run(&self, starts: &[usize]) -> Result<Vec<Vec<u32>>, GpuError> {
        let never = AtomicBool::new(false);
        Ok(self
            .run_cancellable(starts, &never)?
            .into_iter()
            .map(|s| s.expect("not cancelled"))
            .collect())
    }

    /// The first `len` items (clamped to 1..=n) of the orderings from `starts`: exactly the
    /// prefixes of what [`run`](Self::run) returns, in `len` − 1 steps.
    pub fn run_prefixes(&self, starts: &[usize], len: usize) -> Result<Vec<Vec<u32>>, GpuError> {
        let never = AtomicBool::new(false);
        Ok(self
            .prefixes_cancellable(starts, len, &never)?
            .into_iter()
            .map(|s| s.expect("not cancelled"))
            .collect())
    }

    /// Like [`run`](Self::run); once `cancel` is set the batch in progress stops at its
    /// next step and no further batch starts: their entries are `None`.
    pub fn run_cancellable(
        &self,
        starts: &[usize],
        cancel: &AtomicBool,
    ) -> Result<Vec<Option<Vec<u32>>>, GpuError> {
        self.prefixes_cancellable(starts, self.n, cancel)
    }

    fn prefixes_cancellable(
        &self,
        starts: &[usize],
        len: usize,
        cancel: &AtomicBool,
    ) -> Result<Vec<Option<Vec<u32>>>, GpuError> {
        let len = len.clamp(1, self.n);
        let rows = Rows::new(&self.rows, self.n, self.d)?;
        let pickers = starts
            .iter()
            .map(|&s| Picker::new(rows, s))
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::with_capacity(starts.len());
        let mut pickers = pickers.into_iter();
        for chunk in starts.chunks(self.batch) {
            let batch: Vec<Picker<'_>> = pickers.by_ref().take(chunk.len()).collect();
            if cancel.load(Ordering::Relaxed) {
                out.extend(std::iter::repeat_n(None, chunk.len()));
                continue;
            }
            out.extend(self.run_batch(batch, len, cancel)?);
        }
        Ok(out)
    }

    /// Advances one batch to `len` items. Each submission records [`STEPS`] steps; an
    /// ordering whose shortlist is one item takes it on the device and goes on, any other
    /// waits for the host, which replays the device's picks into its [`Picker`]s (checking
    /// each), re-scores the waiting shortlists with the f64 rule and sends the picks back.
    fn run_batch(
        &self,
        mut pickers: Vec<Picker<'_>>,
        len: usize,
        cancel: &AtomicBool,
    ) -> Result<Vec<Option<Vec<u32>>>, GpuError> {
        let gpu = self.gpu;
        let (n, b) = (self.n, pickers.len());
        let what = "diversity orderings";
        let none = wgpu::BufferUsages::empty();
        let sums = gpu.storage(
            "diversity orderings: running sums",
            (b * n * 4) as u64,
            none,
        )?;
        let state_len = 6 * b + n + 1;
        let state = gpu.storage("diversity orderings: state", (state_len * 4) as u64, none)?;
        let cands_len = 2 * b * SLOTS + b * STEPS;
        let cands = gpu.storage(
            "diversity orderings: shortlists",
            (cands_len * 4) as u64,
            none,
        )?;
        let back = gpu.checked(what, || {
            gpu.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some("weft order readback"),
                size: ((6 * b + cands_len) * 4) as u64,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        let mut params = Params {
            n: n as u32,
            b: b as u32,
            k: SLOTS as u32,
            len: len as u32,
            scale: self.scale as f32,
            rows_per_block: 1,
            d: self.d as u32,
            ring: STEPS as u32,
        };
        let s: Vec<&wgpu::Buffer> = match &self.source {
            Source::Matrix {
                blocks,
                rows_per_block,
            } => {
                params.rows_per_block = *rows_per_block as u32;
                (0..S_BINDINGS)
                    .map(|i| blocks.get(i).unwrap_or(&self.dummy))
                    .collect()
            }
            Source::FromE => vec![&self.dummy; S_BINDINGS],
        };
        let uniform = self.uniform(bytemuck::bytes_of(&params))?;
        let group = gpu.checked(what, || {
            gpu.device().create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("weft order_step"),
                layout: &self.layout,
                entries: &[
                    entry(0, &uniform),
                    entry(1, &state),
                    entry(2, &sums),
                    entry(3, &cands),
                    entry(4, &self.e),
                    entry(5, s[0]),
                    entry(6, s[1]),
                    entry(7, s[2]),
                    entry(8, s[3]),
                ],
            })
        })?;
        // band[t]: the rule's pick p after t picks has a_p − min a ≤ 2·b_t
        // (docs/gpu-orderings.md); clamped, a band shortlists everything (the host scores).
        let bands: Vec<i32> = (0..=n)
            .map(|t| {
                let bound = step_bound(t, self.d, self.entry_err);
                ((2.0 * bound * self.scale).ceil() + 1.0).min(f64::from(1 << 30)) as i32
            })
            .collect();
        gpu.queue()
            .write_buffer(&state, (6 * b * 4) as u64, bytemuck::cast_slice(&bands));
        let mut enc = gpu.device().create_command_encoder(&Default::default());
        enc.clear_buffer(&sums, 0, None);
        gpu.queue().submit([enc.finish()]);
        let mut host = vec![0i32; 6 * b];
        let mut read = vec![0i32; 6 * b + cands_len];
        let ring_at = 2 * b * SLOTS;
        let mut steps = STEPS;
        while pickers.iter().any(|p| p.len() < len) {
            if cancel.load(Ordering::Relaxed) {
                return Ok(vec![None; b]);
            }
            for (i, p) in pickers.iter().enumerate() {
                host[i] = p.last() as i32;
                host[b + i] = CHOSEN;
                host[2 * b + i] = 0;
                host[3 * b + i] = p.len() as i32;
                host[4 * b + i] = if p.len() < len { RUNNING } else { DONE };
                host[5 * b + i] = 0;
            }
            gpu.queue()
                .write_buffer(&state, 0, bytemuck::cast_slice(&host));
            let mut enc = gpu.device().create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_bind_group(0, &group, &[]);
                for _ in 0..steps {
                    pass.set_pipeline(&self.add);
                    pass.dispatch_workgroups(groups(n), b as u32, 1);
                    pass.set_pipeline(&self.shortlist);
                    pass.dispatch_workgroups(groups(n), b as u32, 1);
                    pass.set_pipeline(&self.decide);
                    pass.dispatch_workgroups(b.div_ceil(64) as u32, 1, 1);
                }
            }
            enc.copy_buffer_to_buffer(&state, 0, &back, 0, (6 * b * 4) as u64);
            enc.copy_buffer_to_buffer(&cands, 0, &back, (6 * b * 4) as u64, (cands_len * 4) as u64);
            gpu.queue().submit([enc.finish()]);
            self.submissions.fetch_add(1, Ordering::Relaxed);
            self.read_back(&back, &mut read)?;
            let (st, rest) = read.split_at(6 * b);
            let waited = st[4 * b..5 * b].iter().filter(|&&x| x == WAITING).count();
            let running = pickers.iter().filter(|p| p.len() < len).count();
            steps = if 2 * waited > running {
                (steps / 2).max(1)
            } else {
                (steps * 2).min(STEPS)
            };
            let (lists, ring) = rest.split_at(ring_at);
            let scale = self.scale;
            pickers
                .par_iter_mut()
                .enumerate()
                .try_for_each(|(i, p)| {
                    // The device's picks were lone shortlists: the rule's picks unscored.
                    let before = p.len();
                    let fill = st[5 * b + i].clamp(0, STEPS as i32) as usize;
                    for &j in &ring[i * STEPS..i * STEPS + fill] {
                        p.choose(&[(0.0, j as u32)], 0.0)
                            .map_err(|e| e.to_string())?;
                    }
                    if st[3 * b + i] != p.len() as i32 {
                        return Err(format!(
                            "the device counts {} picks, the host {}",
                            st[3 * b + i],
                            p.len()
                        ));
                    }
                    if p.len() >= len {
                        return Ok(());
                    }
                    if st[4 * b + i] != WAITING {
                        // A running ordering takes a pick or waits at its first step: no
                        // progress means a broken device, and looping on would hang.
                        return match p.len() > before {
                            true => Ok(()),
                            false => Err(format!(
                                "the ordering from {} made no progress in a submission",
                                p.first()
                            )),
                        };
                    }
                    let count = st[2 * b + i];
                    if count as usize > SLOTS {
                        p.choose_any();
                        return Ok(());
                    }
                    let mut cands = [(0.0f64, 0u32); SLOTS];
                    let list = &lists[2 * i * SLOTS..][..2 * count.max(0) as usize];
                    for (c, pair) in cands.iter_mut().zip(list.chunks_exact(2)) {
                        *c = (f64::from(pair[1]) / scale, pair[0] as u32);
                    }
                    let bound = step_bound(p.len(), self.d, self.entry_err);
                    p.choose(&cands[..list.len() / 2], bound)
                        .map_err(|e| e.to_string())?;
                    Ok(())
                })
                .map_err(|e: String| gpu.failed(what, e))?;
        }
        gpu.take_uncaptured(what)?;
        if self.s_on_device() {
            let entries: u64 = pickers.iter().map(|p| s_entries_read(n, p.len())).sum();
            let bytes = entries * std::mem::size_of::<i32>() as u64;
            self.s_bytes_read.fetch_add(bytes, Ordering::Relaxed);
        }
        Ok(pickers.into_iter().map(|p| Some(p.into_seq())).collect())
    }

    /// Maps `back` once the step's submission is done and copies it into `read`.
    fn read_back(&self, back: &wgpu::Buffer, read: &mut [i32]) -> Result<(), GpuError> {
        let gpu = self.gpu;
        let what = "diversity orderings: reading the shortlists";
        let (tx, rx) = std::sync::mpsc::channel();
        back.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        gpu.wait(what)?;
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(gpu.failed(what, e.to_string())),
            Err(_) => return Err(gpu.failed(what, "the read-back was dropped".into())),
        }
        {
            let view = back
                .get_mapped_range(..)
                .map_err(|e| gpu.failed(what, e.to_string()))?;
            read.copy_from_slice(bytemuck::cast_slice(&view[..]));
        }
        back.unmap();
        Ok(())
    }
}

/// Entries of S the step shader reads for an ordering of `len` items among `n`: the add
/// after the t-th pick (t = 1 … len − 1; the last pick is never added) reads the n − t
/// items not yet chosen.
fn s_entries_read(n: usize, len: usize) -> u64 {
    let (n, adds) = (n as u64, len.saturating_sub(1) as u64);
    adds * n - adds * (adds + 1) / 2
}

impl Producer for GpuOrderings<'_> {
    type Error = GpuError;

    fn batch(&self) -> usize {
        self.batch
    }

    fn s_bytes_read(&self) -> Option<u64> {
        self.s_on_device().then(|| GpuOrderings::s_bytes_read(self))
    }

    fn run_cancellable(
        &self,
        starts: &[usize],
        cancel: &AtomicBool,
    ) -> Result<Vec<Option<Vec<u32>>>, GpuError> {
        GpuOrderings::run_cancellable(self, starts, cancel)
    }
}

/// The orderings from each of `starts` over normalised rows `e`, on `gpu`: exactly
/// [`fn@weft_compute::diversity_many`]'s.
pub fn diversity_many(gpu: &Gpu, e: Rows<'_>, starts: &[usize]) -> Result<Vec<Vec<u32>>, GpuError> {
    GpuOrderings::new(gpu, e, &OrderOptions::default())?.run(starts)
}

/// The ordering from `start` over normalised rows `e`, on `gpu`: exactly
/// [`fn@weft_compute::diversity`]'s.
pub fn diversity(gpu: &Gpu, e: Rows<'_>, start: usize) -> Result<Vec<u32>, GpuError> {
    let mut seqs = diversity_many(gpu, e, &[start])?;
    Ok(seqs.pop().expect("one ordering"))
}

/// The first `len` items of the orderings from `starts`, on `gpu`: exactly
/// [`fn@weft_compute::diversity_prefixes`]'s.
pub fn diversity_prefixes(
    gpu: &Gpu,
    e: Rows<'_>,
    starts: &[usize],
    len: usize,
) -> Result<Vec<Vec<u32>>, GpuError> {
    GpuOrderings::new(gpu, e, &OrderOptions::default())?.run_prefixes(starts, len)
}

/// Fills the missing orderings of a cache on `gpu` (as [`CacheWriter::run`] does on the
/// CPU, with the same file, progress and cancellation).
pub fn fill_cache(
    gpu: &Gpu,
    writer: &mut CacheWriter<'_>,
    options: &OrderOptions,
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<CacheInfo, GpuError> {
    writer.run_with(
        |rows| GpuOrderings::new(gpu, rows, options),
        progress,
        cancel,
    )
}

fn groups(n: usize) -> u32 {
    n.div_ceil(WORKGROUP as usize) as u32
}

fn entry(binding: u32, buffer: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: buffer.as_entire_binding(),
    }
}

fn shader(gpu: &Gpu, label: &str, source: &str) -> Result<wgpu::ShaderModule, GpuError> {
    gpu.checked(label, || {
        gpu.device()
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            })
    })
}

/// The step shader's explicit layout (every entry point shares one bind group) and its
/// pipelines: add from S, add from E, shortlist, decide.
fn step_pipelines(
    gpu: &Gpu,
) -> Result<(wgpu::BindGroupLayout, [wgpu::ComputePipeline; 4]), GpuError> {
    let what = "diversity orderings: compiling the step shader";
    let module = shader(gpu, "order_step", include_str!("shaders/order_step.wgsl"))?;
    let storage = |binding: u32, read_only: bool| wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    };
    let mut entries = vec![wgpu::BindGroupLayoutEntry {
        binding: 0,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }];
    entries.extend((1..=3).map(|b| storage(b, false)));
    entries.extend((4..=8).map(|b| storage(b, true)));
    gpu.checked(what, || {
        let layout = gpu
            .device()
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some("weft order_step"),
                entries: &entries,
            });
        let pl = gpu
            .device()
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some("weft order_step"),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
        let make = |name: &str| {
            gpu.device()
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(name),
                    layout: Some(&pl),
                    module: &module,
                    entry_point: Some(name),
                    compilation_options: Default::default(),
                    cache: None,
                })
        };
        let pipelines = ["add_s", "add_e", "shortlist", "decide"].map(make);
        (layout, pipelines)
    })
}

#[cfg(test)]
mod tests {
    use super::s_entries_read;

    #[test]
    fn entries_read_count_the_unchosen_items_of_every_added_pick() {
        // n = 5, all 5 items: adds after picks 1..4 read 4 + 3 + 2 + 1 entries.
        assert_eq!(s_entries_read(5, 5), 10);
        // A prefix of 3: adds after picks 1 and 2.
        assert_eq!(s_entries_read(5, 3), 4 + 3);
        assert_eq!(s_entries_read(5, 1), 0, "a start alone adds nothing");
        assert_eq!(s_entries_read(5, 0), 0);
        let n = 7_797;
        assert_eq!(s_entries_read(n, n), (n as u64 - 1) * n as u64 / 2);
    }
}
