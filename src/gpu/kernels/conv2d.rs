//! `shaders/conv2d.wgsl`: convolution with fused bias, per-channel add (time embedding) and residual; a
//! general kernel and two register-blocked ones for the common shapes.

use super::{dispatch, Dispatch, Kernel};
use crate::gpu::context::GpuContext;
use crate::gpu::tensor::Tensor;

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub n: u32,
    pub ic: u32,
    pub ih: u32,
    pub iw: u32,
    pub oc: u32,
    pub oh: u32,
    pub ow: u32,
    pub kh: u32,
    pub kw: u32,
    pub stride: u32,
    pub pad_y: u32,
    pub pad_x: u32,
    pub flags: u32,
    pub _pad: [u32; 3],
}

/// Geometry of one convolution: kernel `k`×`k`, `stride`, zeros `pad_before` above/left and `pad_after`
/// below/right (diffusers' `downsample_padding = 0` is `pad_before = 0, pad_after = 1`).
#[derive(Clone, Copy, Debug)]
pub struct ConvSpec {
    pub k: usize,
    pub stride: usize,
    pub pad_before: usize,
    pub pad_after: usize,
}

impl ConvSpec {
    pub const SAME3: ConvSpec = ConvSpec { k: 3, stride: 1, pad_before: 1, pad_after: 1 };
    pub const POINT: ConvSpec = ConvSpec { k: 1, stride: 1, pad_before: 0, pad_after: 0 };

    pub fn out_size(&self, size: usize) -> usize {
        (size + self.pad_before + self.pad_after - self.k) / self.stride + 1
    }
}

/// out = conv(x, w) + bias [+ chan_add[n, oc]] [+ residual]. Shapes: x [N, IC, H, W], w [OC, IC, k, k].
/// 3x3 same-padding and 1x1 convolutions go to the register-blocked entry points `conv3x3` and `conv1x1` of
/// `shaders/conv2d.wgsl`, the rest (the strided downsamplers) to its `general` entry point.
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    ctx: &GpuContext,
    x: &Tensor,
    w: &Tensor,
    bias: &Tensor,
    spec: ConvSpec,
    chan_add: Option<&Tensor>,
    residual: Option<&Tensor>,
    out: &Tensor,
) -> Dispatch {
    let blocked = (spec.k == 3 && spec.pad_before == 1 && spec.pad_after == 1 || spec.k == 1 && spec.pad_before == 0 && spec.pad_after == 0) && spec.stride == 1;
    record(ctx, x, w, bias, spec, chan_add, residual, out, blocked)
}

/// Always the general kernel (benchmarks compare it with the blocked one).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_general(
    ctx: &GpuContext,
    x: &Tensor,
    w: &Tensor,
    bias: &Tensor,
    spec: ConvSpec,
    chan_add: Option<&Tensor>,
    residual: Option<&Tensor>,
    out: &Tensor,
) -> Dispatch {
    record(ctx, x, w, bias, spec, chan_add, residual, out, false)
}

#[allow(clippy::too_many_arguments)]
fn record(
    ctx: &GpuContext,
    x: &Tensor,
    w: &Tensor,
    bias: &Tensor,
    spec: ConvSpec,
    chan_add: Option<&Tensor>,
    residual: Option<&Tensor>,
    out: &Tensor,
    blocked: bool,
) -> Dispatch {
    let [n, ic, ih, iw] = x.shape[..] else { panic!("conv2d: x must be NCHW, got {:?}", x.shape) };
    let oc = w.shape[0];
    let (oh, ow) = (spec.out_size(ih), spec.out_size(iw));
    assert_eq!(w.shape, [oc, ic, spec.k, spec.k], "conv2d weight");
    assert_eq!(out.shape, [n, oc, oh, ow], "conv2d output");
    if let Some(r) = residual {
        assert_eq!(r.shape, out.shape, "conv2d residual");
    }
    let params = Params {
        n: n as u32,
        ic: ic as u32,
        ih: ih as u32,
        iw: iw as u32,
        oc: oc as u32,
        oh: oh as u32,
        ow: ow as u32,
        kh: spec.k as u32,
        kw: spec.k as u32,
        stride: spec.stride as u32,
        pad_y: spec.pad_before as u32,
        pad_x: spec.pad_before as u32,
        flags: chan_add.is_some() as u32 | (residual.is_some() as u32) << 1,
        _pad: [0; 3],
    };
    // Unused optional inputs still need a binding; `bias` stands in (never read).
    let add = chan_add.unwrap_or(bias);
    let res = residual.unwrap_or(bias);
    let buffers = [&x.buffer, &w.buffer, &bias.buffer, &add.buffer, &res.buffer, &out.buffer];
    if blocked && spec.k == 3 {
        let groups = [(oh * ow.div_ceil(4)).div_ceil(64) as u32, oc.div_ceil(8) as u32, n as u32];
        return dispatch(ctx, Kernel::Conv3x3, &params, &buffers, groups);
    }
    if blocked && spec.k == 1 {
        let groups = [(oh * ow).div_ceil(4).div_ceil(64) as u32, oc.div_ceil(8) as u32, n as u32];
        return dispatch(ctx, Kernel::Conv1x1, &params, &buffers, groups);
    }
    let groups = [(oh * ow).div_ceil(64) as u32, oc.div_ceil(4) as u32, n as u32];
    dispatch(ctx, Kernel::Conv2d, &params, &buffers, groups)
}

/// Plain-Rust reference with the same semantics.
#[allow(clippy::too_many_arguments)]
pub fn reference(
    x: &[f32],
    xs: [usize; 4],
    w: &[f32],
    oc: usize,
    bias: &[f32],
    spec: ConvSpec,
    chan_add: Option<&[f32]>,
    residual: Option<&[f32]>,
) -> Vec<f32> {
    let [n, ic, ih, iw] = xs;
    let (oh, ow) = (spec.out_size(ih), spec.out_size(iw));
    let k = spec.k;
    let mut out = vec![0.0f32; n * oc * oh * ow];
    for b in 0..n {
        for o in 0..oc {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = bias[o];
                    for c in 0..ic {
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = (oy * spec.stride + ky) as isize - spec.pad_before as isize;
                                let ix = (ox * spec.stride + kx) as isize - spec.pad_before as isize;
                                if iy < 0 || ix < 0 || iy >= ih as isize || ix >= iw as isize {
                                    continue;
                                }
                                acc += x[((b * ic + c) * ih + iy as usize) * iw + ix as usize] * w[((o * ic + c) * k + ky) * k + kx];
                            }
                        }
                    }
                    if let Some(a) = chan_add {
                        acc += a[b * oc + o];
                    }
                    let idx = ((b * oc + o) * oh + oy) * ow + ox;
                    if let Some(r) = residual {
                        acc += r[idx];
                    }
                    out[idx] = acc;
                }
            }
        }
    }
    out
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::gpu::kernels::{run, testing::*};

    fn check(n: usize, ic: usize, oc: usize, h: usize, w: usize, spec: ConvSpec, add: bool, res: bool) {
        let c = ctx();
        let xs = [n, ic, h, w];
        let (oh, ow) = (spec.out_size(h), spec.out_size(w));
        let xv = values(n * ic * h * w, 1);
        let wv = values(oc * ic * spec.k * spec.k, 2);
        let bv = values(oc, 3);
        let av = values(n * oc, 4);
        let rv = values(n * oc * oh * ow, 5);
        let x = Tensor::upload(c, "x", &xs, &xv);
        let wt = Tensor::upload(c, "w", &[oc, ic, spec.k, spec.k], &wv);
        let b = Tensor::upload(c, "b", &[oc], &bv);
        let a = Tensor::upload(c, "a", &[n, oc], &av);
        let r = Tensor::upload(c, "r", &[n, oc, oh, ow], &rv);
        let out = Tensor::zeros(c, "out", &[n, oc, oh, ow]);
        let want = reference(&xv, xs, &wv, oc, &bv, spec, add.then_some(&av[..]), res.then_some(&rv[..]));
        // The dispatcher's choice, and the general kernel on the same case.
        run(c, &[conv2d(c, &x, &wt, &b, spec, add.then_some(&a), res.then_some(&r), &out)]);
        assert_close(&read(&out), &want, 1e-5, &format!("conv {xs:?}->{oc} {spec:?}"));
        run(c, &[conv2d_general(c, &x, &wt, &b, spec, add.then_some(&a), res.then_some(&r), &out)]);
        assert_close(&read(&out), &want, 1e-5, &format!("general conv {xs:?}->{oc} {spec:?}"));
    }

    #[test]
    fn same_padding_3x3_odd_sizes() {
        check(2, 3, 5, 7, 7, ConvSpec::SAME3, false, false);
        check(1, 24, 48, 28, 28, ConvSpec::SAME3, true, true);
    }

    #[test]
    fn blocked_3x3_edges() {
        // Channel counts around the block of 8, widths around the run of 4, batch 3, fusions on.
        for &(n, ic, oc, h, w) in &[(3usize, 2usize, 1usize, 5usize, 5usize), (1, 7, 7, 6, 9), (2, 9, 9, 3, 1), (1, 16, 17, 14, 14), (2, 3, 8, 1, 4)] {
            check(n, ic, oc, h, w, ConvSpec::SAME3, true, true);
            check(n, ic, oc, h, w, ConvSpec::SAME3, false, false);
        }
    }

    #[test]
    fn pointwise_with_residual() {
        check(3, 48, 24, 14, 14, ConvSpec::POINT, false, true);
        // Planes of 1, 5, 7 and 49 pixels (short last runs), channel counts around the block of 8.
        for &(n, ic, oc, h, w) in &[(2usize, 3usize, 1usize, 1usize, 1usize), (1, 9, 7, 1, 5), (3, 5, 9, 7, 1), (2, 64, 17, 7, 7)] {
            check(n, ic, oc, h, w, ConvSpec::POINT, true, true);
        }
    }

    #[test]
    fn strided_downsample_both_paddings() {
        // downsample_padding = 1 (symmetric) and 0 (diffusers pads only bottom/right by one).
        check(2, 8, 8, 28, 28, ConvSpec { k: 3, stride: 2, pad_before: 1, pad_after: 1 }, false, false);
        check(2, 8, 8, 7, 7, ConvSpec { k: 3, stride: 2, pad_before: 0, pad_after: 1 }, false, false);
        check(1, 4, 6, 32, 32, ConvSpec { k: 3, stride: 2, pad_before: 0, pad_after: 1 }, false, false);
    }
}
