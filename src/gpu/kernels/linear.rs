//! `shaders/linear.wgsl`: y = W·x + b with optional SiLU on the input and on the output.

use super::{dispatch, Dispatch, Kernel};
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::group_norm::silu;
use crate::gpu::tensor::Tensor;

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub n: u32,
    pub inp: u32,
    pub outp: u32,
    pub flags: u32,
}

/// x [N, IN], w [OUT, IN], b [OUT] → out [N, OUT].
pub fn linear(ctx: &GpuContext, x: &Tensor, w: &Tensor, b: &Tensor, silu_in: bool, silu_out: bool, out: &Tensor) -> Dispatch {
    let (n, inp) = (x.shape[0], x.shape[1]);
    let outp = w.shape[0];
    assert_eq!(w.shape, [outp, inp], "linear weight");
    assert_eq!(out.shape, [n, outp], "linear output");
    let params = Params { n: n as u32, inp: inp as u32, outp: outp as u32, flags: silu_in as u32 | (silu_out as u32) << 1 };
    dispatch(ctx, Kernel::Linear, &params, &[&x.buffer, &w.buffer, &b.buffer, &out.buffer], [outp.div_ceil(64) as u32, n as u32, 1])
}

pub fn reference(x: &[f32], n: usize, w: &[f32], b: &[f32], outp: usize, silu_in: bool, silu_out: bool) -> Vec<f32> {
    let inp = x.len() / n;
    let mut out = vec![0.0; n * outp];
    for r in 0..n {
        for o in 0..outp {
            let mut acc = b[o];
            for i in 0..inp {
                let v = x[r * inp + i];
                acc += if silu_in { silu(v) } else { v } * w[o * inp + i];
            }
            out[r * outp + o] = if silu_out { silu(acc) } else { acc };
        }
    }
    out
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::gpu::kernels::{run, testing::*};

    #[test]
    fn matches_reference_with_each_activation() {
        let c = ctx();
        for &(n, inp, outp, si, so) in &[(3usize, 32usize, 128usize, false, true), (2, 128, 70, true, false), (1, 5, 3, false, false)] {
            let (xv, wv, bv) = (values(n * inp, 11), values(outp * inp, 12), values(outp, 13));
            let x = Tensor::upload(c, "x", &[n, inp], &xv);
            let w = Tensor::upload(c, "w", &[outp, inp], &wv);
            let b = Tensor::upload(c, "b", &[outp], &bv);
            let out = Tensor::zeros(c, "out", &[n, outp]);
            run(c, &[linear(c, &x, &w, &b, si, so, &out)]);
            assert_close(&read(&out), &reference(&xv, n, &wv, &bv, outp, si, so), 1e-5, "linear");
        }
    }
}
