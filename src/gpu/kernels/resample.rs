//! `shaders/resample.wgsl`: nearest 2x upsampling and channel concatenation.

use super::{dispatch_at, grid_1d, Dispatch, Kernel};
use crate::gpu::context::GpuContext;
use crate::gpu::tensor::Tensor;

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub n: u32,
    pub ca: u32,
    pub cb: u32,
    pub h: u32,
    pub w: u32,
    pub _pad: [u32; 3],
}

fn params(a: &Tensor, cb: usize) -> Params {
    let [n, ca, h, w] = a.shape[..] else { panic!("expected NCHW, got {:?}", a.shape) };
    Params { n: n as u32, ca: ca as u32, cb: cb as u32, h: h as u32, w: w as u32, _pad: [0; 3] }
}

/// x [N, C, H, W] → out [N, C, 2H, 2W].
pub fn upsample_nearest2x(ctx: &GpuContext, x: &Tensor, out: &Tensor) -> Dispatch {
    let [n, c, h, w] = x.shape[..] else { panic!() };
    assert_eq!(out.shape, [n, c, 2 * h, 2 * w]);
    dispatch_at(ctx, Kernel::Upsample, &params(x, 0), &[(1, &x.buffer), (3, &out.buffer)], grid_1d(out.len(), 64))
}

/// a [N, CA, H, W], b [N, CB, H, W] → out [N, CA+CB, H, W].
pub fn concat_channels(ctx: &GpuContext, a: &Tensor, b: &Tensor, out: &Tensor) -> Dispatch {
    let [n, ca, h, w] = a.shape[..] else { panic!() };
    let cb = b.shape[1];
    assert_eq!(b.shape, [n, cb, h, w], "concat: b must match a's N, H, W");
    assert_eq!(out.shape, [n, ca + cb, h, w]);
    dispatch_at(ctx, Kernel::Concat, &params(a, cb), &[(1, &a.buffer), (2, &b.buffer), (3, &out.buffer)], grid_1d(out.len(), 64))
}

pub fn upsample_reference(x: &[f32], nc: usize, h: usize, w: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(4 * x.len());
    for p in 0..nc {
        for y in 0..2 * h {
            for xx in 0..2 * w {
                out.push(x[(p * h + y / 2) * w + xx / 2]);
            }
        }
    }
    out
}

pub fn concat_reference(a: &[f32], b: &[f32], n: usize) -> Vec<f32> {
    let (la, lb) = (a.len() / n, b.len() / n);
    (0..n).flat_map(|i| a[i * la..(i + 1) * la].iter().chain(&b[i * lb..(i + 1) * lb]).copied()).collect()
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::gpu::kernels::{run, testing::*};

    #[test]
    fn upsample_odd_sizes() {
        let c = ctx();
        for &(n, ch, h, w) in &[(2usize, 3usize, 7usize, 7usize), (1, 48, 14, 14), (3, 5, 1, 2)] {
            let xv = values(n * ch * h * w, 31);
            let x = Tensor::upload(c, "x", &[n, ch, h, w], &xv);
            let out = Tensor::zeros(c, "out", &[n, ch, 2 * h, 2 * w]);
            run(c, &[upsample_nearest2x(c, &x, &out)]);
            assert_eq!(read(&out), upsample_reference(&xv, n * ch, h, w), "upsample {n}x{ch}x{h}x{w}");
        }
    }

    #[test]
    fn concat_odd_channel_counts() {
        let c = ctx();
        for &(n, ca, cb, h, w) in &[(2usize, 48usize, 24usize, 7usize, 7usize), (3, 1, 5, 28, 28)] {
            let (av, bv) = (values(n * ca * h * w, 32), values(n * cb * h * w, 33));
            let a = Tensor::upload(c, "a", &[n, ca, h, w], &av);
            let b = Tensor::upload(c, "b", &[n, cb, h, w], &bv);
            let out = Tensor::zeros(c, "out", &[n, ca + cb, h, w]);
            run(c, &[concat_channels(c, &a, &b, &out)]);
            assert_eq!(read(&out), concat_reference(&av, &bv, n));
        }
    }

    #[test]
    fn large_grids_fold_into_y() {
        // 64 * 65,535 values would overflow one dimension of workgroups.
        let c = ctx();
        let (n, ch, h, w) = (1usize, 2usize, 1024usize, 1100usize);
        let xv = values(n * ch * h * w, 34);
        let x = Tensor::upload(c, "x", &[n, ch, h, w], &xv);
        let out = Tensor::zeros(c, "out", &[n, ch, 2 * h, 2 * w]);
        assert!(grid_1d(out.len(), 64)[1] > 1);
        run(c, &[upsample_nearest2x(c, &x, &out)]);
        assert_eq!(read(&out), upsample_reference(&xv, n * ch, h, w));
    }
}
