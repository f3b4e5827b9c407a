//! `shaders/group_norm.wgsl`: GroupNorm with an optional fused SiLU.

use super::{dispatch, Dispatch, Kernel};
use crate::gpu::context::GpuContext;
use crate::gpu::tensor::Tensor;

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub n: u32,
    pub c: u32,
    pub hw: u32,
    pub groups: u32,
    pub eps: f32,
    pub silu: u32,
    pub _pad: [u32; 2],
}

/// out = GroupNorm(x) · γ + β, then SiLU if `silu`. x, out: [N, C, H, W] (or [N, C, L]).
pub fn group_norm(ctx: &GpuContext, x: &Tensor, gamma: &Tensor, beta: &Tensor, groups: usize, eps: f64, silu: bool, out: &Tensor) -> Dispatch {
    let (n, c) = (x.shape[0], x.shape[1]);
    let hw: usize = x.shape[2..].iter().product();
    assert_eq!(c % groups, 0, "group_norm: {c} channels in {groups} groups");
    assert_eq!(out.len(), x.len());
    let params = Params { n: n as u32, c: c as u32, hw: hw as u32, groups: groups as u32, eps: eps as f32, silu: silu as u32, _pad: [0; 2] };
    dispatch(ctx, Kernel::GroupNorm, &params, &[&x.buffer, &gamma.buffer, &beta.buffer, &out.buffer], [groups as u32, n as u32, 1])
}

pub fn silu(v: f32) -> f32 {
    v / (1.0 + (-v).exp())
}

/// Plain-Rust reference, accumulating in f64.
pub fn reference(x: &[f32], n: usize, c: usize, hw: usize, groups: usize, gamma: &[f32], beta: &[f32], eps: f64, act: bool) -> Vec<f32> {
    let cpg = c / groups;
    let mut out = vec![0.0; x.len()];
    for b in 0..n {
        for g in 0..groups {
            let base = (b * c + g * cpg) * hw;
            let vals = &x[base..base + cpg * hw];
            let mean = vals.iter().map(|&v| v as f64).sum::<f64>() / vals.len() as f64;
            let var = vals.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / vals.len() as f64;
            let inv = 1.0 / (var + eps).sqrt();
            for (i, &v) in vals.iter().enumerate() {
                let ch = g * cpg + i / hw;
                let y = ((v as f64 - mean) * inv) as f32 * gamma[ch] + beta[ch];
                out[base + i] = if act { silu(y) } else { y };
            }
        }
    }
    out
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::gpu::kernels::{run, testing::*};

    fn check(n: usize, c: usize, h: usize, w: usize, groups: usize, act: bool) {
        let cx = ctx();
        // An offset and scale away from 0/1 so the two-pass variance matters.
        let xv: Vec<f32> = values(n * c * h * w, 7).iter().map(|v| 3.0 + 5.0 * v).collect();
        let gv: Vec<f32> = values(c, 8).iter().map(|v| 1.0 + 0.5 * v).collect();
        let bv = values(c, 9);
        let x = Tensor::upload(cx, "x", &[n, c, h, w], &xv);
        let g = Tensor::upload(cx, "g", &[c], &gv);
        let b = Tensor::upload(cx, "b", &[c], &bv);
        let out = Tensor::zeros(cx, "out", &[n, c, h, w]);
        run(cx, &[group_norm(cx, &x, &g, &b, groups, 1e-6, act, &out)]);
        let want = reference(&xv, n, c, h * w, groups, &gv, &bv, 1e-6, act);
        assert_close(&read(&out), &want, 2e-5, &format!("group_norm n{n} c{c} {h}x{w} g{groups} silu={act}"));
    }

    #[test]
    fn odd_sizes_with_and_without_silu() {
        check(2, 24, 7, 7, 8, true);
        check(3, 48, 28, 28, 8, false);
        check(1, 6, 5, 3, 3, true);
        check(2, 32, 16, 16, 32, false);
    }
}
