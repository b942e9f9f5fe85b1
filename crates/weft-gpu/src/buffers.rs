//! Moving matrices to and from the device: a row-major matrix uploaded as several storage
//! buffers when one binding cannot hold it (lavapipe caps a binding at 128 MiB, real GPUs
//! at 2–4 GiB), storage buffers allocated with a clear error when memory runs out, and
//! results read back.

use crate::device::Gpu;
use crate::error::GpuError;

/// Rows per part when a `rows × cols` f32 matrix is split so one part fits in
/// `max_binding` bytes: whole rows only. `None` when a single row does not fit.
pub fn rows_per_part(rows: usize, cols: usize, max_binding: u64) -> Option<usize> {
    let row_bytes = (cols.max(1) as u64) * 4;
    let fit = (max_binding / row_bytes) as usize;
    (fit > 0).then(|| fit.min(rows.max(1)))
}

/// A row-major f32 matrix on the device, as consecutive row ranges each in its own buffer
/// (each fits one storage binding). Part `p` holds rows `p*rows_per_part ..` (the last may
/// be shorter).
#[derive(Debug)]
pub struct SplitRows {
    /// The buffers, in row order.
    pub parts: Vec<wgpu::Buffer>,
    /// Rows in every part but possibly the last.
    pub rows_per_part: usize,
    /// Total rows.
    pub rows: usize,
    /// Columns (f32 per row).
    pub cols: usize,
}

impl SplitRows {
    /// The row range `[first, end)` part `p` holds.
    pub fn part_rows(&self, p: usize) -> (usize, usize) {
        let first = p * self.rows_per_part;
        (first, (first + self.rows_per_part).min(self.rows))
    }
}

impl Gpu {
    /// Allocates a storage buffer of `bytes` (rounded up to 4) with `extra` usages, or
    /// says which limit or memory stopped it.
    pub fn storage(
        &self,
        what: &str,
        bytes: u64,
        extra: wgpu::BufferUsages,
    ) -> Result<wgpu::Buffer, GpuError> {
        let size = bytes.max(4).div_ceil(4) * 4;
        if size > self.limits().max_buffer_size {
            return Err(GpuError::LimitsTooSmall {
                adapter: self.summary().name.clone(),
                what: format!(
                    "{what} needs a buffer of {size} bytes, the adapter's largest is {}",
                    self.limits().max_buffer_size
                ),
            });
        }
        self.checked(what, || {
            self.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some(what),
                size,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_DST
                    | wgpu::BufferUsages::COPY_SRC
                    | extra,
                mapped_at_creation: false,
            })
        })
    }

    /// Uploads a row-major `rows × cols` f32 matrix split into parts of at most
    /// [`Gpu::max_binding`] bytes (at most `max_rows_per_part` rows each, if given).
    pub fn upload_rows(
        &self,
        what: &str,
        data: &[f32],
        rows: usize,
        cols: usize,
        max_rows_per_part: Option<usize>,
    ) -> Result<SplitRows, GpuError> {
        assert_eq!(
            data.len(),
            rows * cols,
            "upload_rows: data is not rows × cols"
        );
        let per = rows_per_part(rows, cols, self.max_binding()).ok_or_else(|| GpuError::LimitsTooSmall {
            adapter: self.summary().name.clone(),
            what: format!("{what}: one row of {cols} f32 ({} bytes) exceeds a storage binding of {} bytes", cols * 4, self.max_binding()),
        })?;
        let per = max_rows_per_part.map_or(per, |m| per.min(m.max(1)));
        let mut parts = Vec::new();
        let mut first = 0;
        while first < rows.max(1) {
            let end = (first + per).min(rows);
            let chunk = &data[first * cols..end * cols];
            let buf = self.storage(what, (chunk.len() * 4) as u64, wgpu::BufferUsages::empty())?;
            if !chunk.is_empty() {
                self.checked(what, || {
                    self.queue()
                        .write_buffer(&buf, 0, bytemuck::cast_slice(chunk))
                })?;
            }
            parts.push(buf);
            first = end.max(first + per);
        }
        Ok(SplitRows {
            parts,
            rows_per_part: per,
            rows,
            cols,
        })
    }

    /// A host-visible buffer of `bytes` that read-backs copy through; reuse it across blocks.
    pub fn staging(&self, bytes: u64) -> Result<wgpu::Buffer, GpuError> {
        let size = bytes.max(4).div_ceil(4) * 4;
        self.checked("allocating a read-back buffer", || {
            self.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some("weft readback"),
                size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })
    }

    /// Copies `out.len()` values of `T` from `src` at byte `offset` (a multiple of 4) into
    /// `out` through `staging` (at least that large), after every submitted job has finished.
    pub fn read_into<T: bytemuck::Pod>(
        &self,
        what: &str,
        staging: &wgpu::Buffer,
        src: &wgpu::Buffer,
        offset: u64,
        out: &mut [T],
    ) -> Result<(), GpuError> {
        let bytes = std::mem::size_of_val(out) as u64;
        if bytes == 0 {
            return Ok(());
        }
        // Copies are whole 4-byte words: read the rounded span and cut.
        let span = bytes.div_ceil(4) * 4;
        self.checked(what, || {
            let mut enc = self.device().create_command_encoder(&Default::default());
            enc.copy_buffer_to_buffer(src, offset, staging, 0, span);
            self.queue().submit([enc.finish()]);
        })?;
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, 0..span, move |r| {
            let _ = tx.send(r);
        });
        self.wait(what)?;
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(self.failed(what, e.to_string())),
            Err(_) => return Err(self.failed(what, "the read-back was dropped".to_string())),
        }
        {
            let view = staging
                .get_mapped_range(0..span)
                .map_err(|e| self.failed(what, e.to_string()))?;
            bytemuck::cast_slice_mut::<T, u8>(out).copy_from_slice(&view[..bytes as usize]);
        }
        staging.unmap();
        self.take_uncaptured(what)
    }

    /// Reads `count` values of type `T` from `buffer` starting at byte `offset` (a multiple
    /// of 4), after every submitted job has finished.
    pub fn download<T: bytemuck::Pod>(
        &self,
        what: &str,
        buffer: &wgpu::Buffer,
        offset: u64,
        count: usize,
    ) -> Result<Vec<T>, GpuError> {
        let mut out = vec![T::zeroed(); count];
        if count > 0 {
            let staging = self.staging(std::mem::size_of_val(&out[..]) as u64)?;
            self.read_into(what, &staging, buffer, offset, &mut out)?;
        }
        Ok(out)
    }
}
