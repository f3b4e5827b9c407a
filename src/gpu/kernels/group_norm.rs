//! `shaders/group_norm.wgsl`: GroupNorm with an optional fused SiLU.

use crate::gpu::graph::{Graph, TensorId};
use crate::gpu::kernel::Kernel;

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub n: u32,
    pub c: u32,
    pub hw: u32,
    pub groups: u32,
    pub eps: f32,
    pub _pad: [u32; 3],
}
const _: () = assert!(std::mem::size_of::<Params>() == 32);

/// x, out: [N, C, H, W] (or [N, C, L]); gamma, beta: [C].
#[derive(Clone, Copy, Debug)]
pub struct GroupNormIo {
    pub x: TensorId,
    pub gamma: TensorId,
    pub beta: TensorId,
    pub out: TensorId,
}

/// Records out = GroupNorm(x) · γ + β, then SiLU if `silu`.
pub fn group_norm(g: &mut Graph, io: GroupNormIo, groups: usize, eps: f64, silu: bool) {
    let shape = g.shape(io.x);
    let (n, c) = (shape[0], shape[1]);
    let hw: usize = shape[2..].iter().product();
    assert_eq!(c % groups, 0, "group_norm: {c} channels in {groups} groups");
    assert_eq!(g.len(io.out), g.len(io.x));
    let params = Params { n: n as u32, c: c as u32, hw: hw as u32, groups: groups as u32, eps: eps as f32, _pad: [0; 3] };
    let args = [("x", io.x), ("gamma", io.gamma), ("beta", io.beta), ("out", io.out)];
    // Two passes over each group's values, plus the affine and SiLU: data movement, no multiply-adds counted.
    g.record(Kernel::GroupNorm { silu }, &params, &args, [groups as u32, n as u32, 1], 0);
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
    use crate::gpu::kernels::testing::*;

    fn check(n: usize, c: usize, h: usize, w: usize, groups: usize, act: bool) {
        // An offset and scale away from 0/1 so the two-pass variance matters.
        let xv = as_stored(&values(n * c * h * w, 7).iter().map(|v| 3.0 + 5.0 * v).collect::<Vec<_>>());
        let gv = as_stored(&values(c, 8).iter().map(|v| 1.0 + 0.5 * v).collect::<Vec<_>>());
        let bv = as_stored(&values(c, 9));
        let mut gr = Graph::new();
        let x = upload(&mut gr, "x", &[n, c, h, w], &xv);
        let gamma = upload(&mut gr, "g", &[c], &gv);
        let beta = upload(&mut gr, "b", &[c], &bv);
        let out = nan_filled(&mut gr, "out", &[n, c, h, w]);
        group_norm(&mut gr, GroupNormIo { x, gamma, beta, out }, groups, 1e-6, act);
        let want = reference(&xv, n, c, h * w, groups, &gv, &bv, 1e-6, act);
        assert_close(&run_and_read(&gr, out), &want, tol(2e-5), &format!("group_norm n{n} c{c} {h}x{w} g{groups} silu={act}"));
    }

    #[test]
    fn odd_sizes_with_and_without_silu() {
        check(2, 24, 7, 7, 8, true);
        check(3, 48, 28, 28, 8, false);
        check(1, 6, 5, 3, 3, true);
        check(2, 32, 16, 16, 32, false);
    }

    /// x, γ, β and out in f16, the statistics in f32.
    #[test]
    fn in_f16_storage() {
        in_f16(odd_sizes_with_and_without_silu);
    }
}
