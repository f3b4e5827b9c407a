//! A GPU buffer with an NCHW (or any row-major) shape, and the helpers that move data in and out.

use wgpu::util::DeviceExt;

use crate::error::Result;
use crate::gpu::context::GpuContext;

#[derive(Clone, Debug)]
pub struct Tensor {
    pub buffer: wgpu::Buffer,
    pub shape: Vec<usize>,
}

pub const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

impl Tensor {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn bytes(&self) -> u64 {
        4 * self.len() as u64
    }

    pub fn upload(ctx: &GpuContext, label: &str, shape: &[usize], data: &[f32]) -> Self {
        assert_eq!(shape.iter().product::<usize>(), data.len(), "{label}: data does not match shape");
        let contents: &[u8] = if data.is_empty() { &[0; 4] } else { bytemuck::cast_slice(data) };
        let buffer = ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents,
            usage: STORAGE,
        });
        Self { buffer, shape: shape.to_vec() }
    }

    pub fn zeros(ctx: &GpuContext, label: &str, shape: &[usize]) -> Self {
        let n: usize = shape.iter().product();
        let buffer = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (4 * n.max(1)) as u64,
            usage: STORAGE,
            mapped_at_creation: false,
        });
        Self { buffer, shape: shape.to_vec() }
    }

    /// Reinterprets the same buffer with another shape of the same size.
    pub fn view(&self, shape: &[usize]) -> Self {
        assert_eq!(shape.iter().product::<usize>(), self.len());
        Self { buffer: self.buffer.clone(), shape: shape.to_vec() }
    }

    pub fn write(&self, ctx: &GpuContext, data: &[f32]) {
        assert_eq!(data.len(), self.len());
        ctx.queue.write_buffer(&self.buffer, 0, bytemuck::cast_slice(data));
    }

    pub async fn read(&self, ctx: &GpuContext) -> Result<Vec<f32>> {
        let bytes = ctx.read_bytes(&self.buffer, self.bytes()).await?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }
}
