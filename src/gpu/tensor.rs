//! A GPU buffer with an NCHW (or any row-major) shape and element type, and the helpers that move data in
//! and out. The host side is always f32: f16 tensors are converted on the way in and out.

use wgpu::util::DeviceExt;

use crate::error::Result;
use crate::gpu::context::GpuContext;
use crate::gpu::kernel::Precision;

#[derive(Clone, Debug)]
pub struct Tensor {
    pub buffer: wgpu::Buffer,
    pub shape: Vec<usize>,
    pub dtype: Precision,
}

pub const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// Bytes of a buffer holding `len` values of `dtype`: a multiple of 4 (copies and bindings need it) and at
/// least 4 (wgpu refuses empty bindings).
pub fn buffer_bytes(len: usize, dtype: Precision) -> u64 {
    ((len * dtype.size()) as u64).next_multiple_of(4).max(4)
}

/// `data` as the bytes of a `dtype` buffer (f16 rounded to nearest), padded to [`buffer_bytes`].
pub fn encode(data: &[f32], dtype: Precision) -> Vec<u8> {
    let mut bytes = match dtype {
        Precision::F32 => bytemuck::cast_slice(data).to_vec(),
        Precision::F16 => data.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect(),
    };
    bytes.resize(buffer_bytes(data.len(), dtype) as usize, 0);
    bytes
}

/// The first `len` values of a `dtype` buffer's bytes, as f32.
pub fn decode(bytes: &[u8], len: usize, dtype: Precision) -> Vec<f32> {
    match dtype {
        Precision::F32 => bytemuck::pod_collect_to_vec(&bytes[..4 * len]),
        Precision::F16 => bytes[..2 * len].chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
    }
}

impl Tensor {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of its buffer.
    pub fn bytes(&self) -> u64 {
        buffer_bytes(self.len(), self.dtype)
    }

    /// An f32 tensor holding `data`.
    pub fn upload(ctx: &GpuContext, label: &str, shape: &[usize], data: &[f32]) -> Self {
        Self::upload_as(ctx, label, shape, data, Precision::F32)
    }

    /// A tensor of `dtype` holding `data` (rounded to nearest for f16).
    pub fn upload_as(ctx: &GpuContext, label: &str, shape: &[usize], data: &[f32], dtype: Precision) -> Self {
        assert_eq!(shape.iter().product::<usize>(), data.len(), "{label}: data does not match shape");
        let buffer = ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: Some(label), contents: &encode(data, dtype), usage: STORAGE });
        Self { buffer, shape: shape.to_vec(), dtype }
    }

    /// An f32 tensor of zeros.
    pub fn zeros(ctx: &GpuContext, label: &str, shape: &[usize]) -> Self {
        let n: usize = shape.iter().product();
        let buffer = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: buffer_bytes(n, Precision::F32),
            usage: STORAGE,
            mapped_at_creation: false,
        });
        Self { buffer, shape: shape.to_vec(), dtype: Precision::F32 }
    }

    /// Reinterprets the same buffer with another shape of the same size.
    pub fn view(&self, shape: &[usize]) -> Self {
        assert_eq!(shape.iter().product::<usize>(), self.len());
        Self { buffer: self.buffer.clone(), shape: shape.to_vec(), dtype: self.dtype }
    }

    pub fn write(&self, ctx: &GpuContext, data: &[f32]) {
        assert_eq!(data.len(), self.len());
        ctx.queue.write_buffer(&self.buffer, 0, &encode(data, self.dtype));
    }

    pub async fn read(&self, ctx: &GpuContext) -> Result<Vec<f32>> {
        let bytes = ctx.read_bytes(&self.buffer, self.bytes()).await?;
        Ok(decode(&bytes, self.len(), self.dtype))
    }
}
