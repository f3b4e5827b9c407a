//! `shaders/frames.wgsl`: f32 images → bytes, four per word, for display and the trajectory.

use super::{dispatch_at, grid_1d, Dispatch, Kernel};
use crate::gpu::context::GpuContext;
use crate::gpu::tensor::Tensor;

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub len: u32,
    pub offset: u32,
    pub _pad: [u32; 2],
}

/// Words a packed frame of `len` values takes.
pub fn words(len: usize) -> usize {
    len.div_ceil(4)
}

/// Packs `src` into `out` (a u32 buffer) starting at word `offset`.
pub fn pack(ctx: &GpuContext, src: &Tensor, out: &wgpu::Buffer, offset_words: usize) -> Dispatch {
    let len = src.len();
    assert!(out.size() as usize >= 4 * (offset_words + words(len)), "frame buffer too small");
    let params = Params { len: len as u32, offset: offset_words as u32, _pad: [0; 2] };
    dispatch_at(ctx, Kernel::PackFrame, &params, &[(1, &src.buffer), (2, out)], grid_1d(words(len), 64))
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::gpu::kernels::{run, testing::*};
    use crate::gpu::tensor::STORAGE;
    use crate::image::to_byte;

    #[test]
    fn packs_like_to_byte_at_an_offset() {
        let c = ctx();
        let n = 1003; // not a multiple of 4
        let xv: Vec<f32> = values(n, 51).iter().map(|v| 1.3 * v).collect();
        let x = Tensor::upload(c, "x", &[n], &xv);
        let out = c.device.create_buffer(&wgpu::BufferDescriptor { label: None, size: 4 * (3 + words(n)) as u64, usage: STORAGE, mapped_at_creation: false });
        run(c, &[pack(c, &x, &out, 3)]);
        let bytes = pollster::block_on(c.read_bytes(&out, out.size())).unwrap();
        let got = &bytes[12..12 + n];
        let want: Vec<u8> = xv.iter().map(|&v| to_byte(v)).collect();
        let off_by_more_than_one = got.iter().zip(&want).filter(|(a, b)| (**a as i32 - **b as i32).abs() > 1).count();
        let exact = got.iter().zip(&want).filter(|(a, b)| a == b).count();
        assert_eq!(off_by_more_than_one, 0);
        assert!(exact > n * 99 / 100, "only {exact} of {n} bytes exact");
        assert_eq!(&bytes[..12], &[0; 12], "words before the offset are untouched");
    }
}
