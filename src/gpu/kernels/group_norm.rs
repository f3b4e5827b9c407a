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
    /// `GroupNormPair`: channels of the first input (0 otherwise).
    pub ca: u32,
    pub _pad: [u32; 2],
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

/// Records out = GroupNorm(x) · γ + β, then SiLU if `silu`; four values at a time where the plane is a
/// multiple of 4 pixels (every channel then starts on a vec4).
pub fn group_norm(g: &mut Graph, io: GroupNormIo, groups: usize, eps: f64, silu: bool) {
    let shape = g.shape(io.x);
    let (n, c) = (shape[0], shape[1]);
    let hw: usize = shape[2..].iter().product();
    assert_eq!(c % groups, 0, "group_norm: {c} channels in {groups} groups");
    assert_eq!(g.len(io.out), g.len(io.x));
    let params = Params { n: n as u32, c: c as u32, hw: hw as u32, groups: groups as u32, eps: eps as f32, ca: 0, _pad: [0; 2] };
    let args = [("x", io.x), ("gamma", io.gamma), ("beta", io.beta), ("out", io.out)];
    // Two passes over each group's values, plus the affine and SiLU: data movement, no multiply-adds counted.
    let kernel = if hw % 4 == 0 { Kernel::GroupNormX4 { silu } } else { Kernel::GroupNorm { silu } };
    g.record(kernel, &params, &args, [groups as u32, n as u32, 1], 0);
}

/// a [N, CA, H, W] and b [N, CB, H, W], read as their channel concatenation; gamma, beta: [CA + CB];
/// out: [N, CA + CB, H, W].
#[derive(Clone, Copy, Debug)]
pub struct GroupNormPairIo {
    pub a: TensorId,
    pub b: TensorId,
    pub gamma: TensorId,
    pub beta: TensorId,
    pub out: TensorId,
}

/// Records out = GroupNorm(cat(a, b)) · γ + β, then SiLU if `silu`, without writing the concatenation.
pub fn group_norm_pair(g: &mut Graph, io: GroupNormPairIo, groups: usize, eps: f64, silu: bool) {
    let [n, ca, h, w] = g.shape(io.a)[..] else { panic!("group_norm_pair: a must be NCHW") };
    let cb = g.shape(io.b)[1];
    assert_eq!(g.shape(io.b), [n, cb, h, w], "group_norm_pair: b must match a's N, H, W");
    assert_eq!(g.shape(io.out), [n, ca + cb, h, w]);
    let c = ca + cb;
    assert_eq!(c % groups, 0, "group_norm_pair: {c} channels in {groups} groups");
    let params = Params { n: n as u32, c: c as u32, hw: (h * w) as u32, groups: groups as u32, eps: eps as f32, ca: ca as u32, _pad: [0; 2] };
    let args = [("a", io.a), ("b", io.b), ("gamma", io.gamma), ("beta", io.beta), ("out", io.out)];
    let kernel = if (h * w) % 4 == 0 { Kernel::GroupNormPairX4 { silu } } else { Kernel::GroupNormPair { silu } };
    g.record(kernel, &params, &args, [groups as u32, n as u32, 1], 0);
}

pub fn silu(v: f32) -> f32 {
    v / (1.0 + (-v).exp())
}

/// Plain-Rust reference, accumulating in f64 (its arguments are the kernel's params, spelt out).
#[allow(clippy::too_many_arguments)]
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
        check_around(n, c, h, w, groups, act, 3.0, 5.0, 2e-5);
    }

    /// Values `offset + scale·u`, u in [-1, 1), within `tolerance` of the f64 reference.
    #[allow(clippy::too_many_arguments)]
    fn check_around(n: usize, c: usize, h: usize, w: usize, groups: usize, act: bool, offset: f32, scale: f32, tolerance: f32) {
        let xv = as_stored(&values(n * c * h * w, 7).iter().map(|v| offset + scale * v).collect::<Vec<_>>());
        let gv = as_stored(&values(c, 8).iter().map(|v| 1.0 + 0.5 * v).collect::<Vec<_>>());
        let bv = as_stored(&values(c, 9));
        let mut gr = Graph::new();
        let x = upload(&mut gr, "x", &[n, c, h, w], &xv);
        let gamma = upload(&mut gr, "g", &[c], &gv);
        let beta = upload(&mut gr, "b", &[c], &bv);
        let out = nan_filled(&mut gr, "out", &[n, c, h, w]);
        group_norm(&mut gr, GroupNormIo { x, gamma, beta, out }, groups, 1e-6, act);
        let want = reference(&xv, n, c, h * w, groups, &gv, &bv, 1e-6, act);
        assert_close(&run_and_read(&gr, out), &want, tol(tolerance), &format!("group_norm n{n} c{c} {h}x{w} g{groups} silu={act} around {offset}"));
    }

    /// The pair form against the reference on the concatenation, with groups that straddle the two inputs
    /// (channel splits that are not multiples of the group size).
    #[test]
    fn pair_inputs_equal_the_concatenation() {
        for &(n, ca, cb, h, w, groups, act) in &[(2usize, 24usize, 8usize, 7usize, 7usize, 8usize, true), (1, 3, 5, 5, 3, 4, false), (3, 64, 32, 14, 14, 32, true)] {
            let c = ca + cb;
            let av = as_stored(&values(n * ca * h * w, 17).iter().map(|v| 1.0 + 2.0 * v).collect::<Vec<_>>());
            let bv = as_stored(&values(n * cb * h * w, 18).iter().map(|v| -2.0 + 4.0 * v).collect::<Vec<_>>());
            let (gv, betav) = (as_stored(&values(c, 19)), as_stored(&values(c, 20)));
            let mut gr = Graph::new();
            let a = upload(&mut gr, "a", &[n, ca, h, w], &av);
            let b = upload(&mut gr, "b", &[n, cb, h, w], &bv);
            let gamma = upload(&mut gr, "g", &[c], &gv);
            let beta = upload(&mut gr, "beta", &[c], &betav);
            let out = nan_filled(&mut gr, "out", &[n, c, h, w]);
            group_norm_pair(&mut gr, GroupNormPairIo { a, b, gamma, beta, out }, groups, 1e-6, act);
            let cat = crate::gpu::kernels::resample::concat_reference(&av, &bv, n);
            let want = reference(&cat, n, c, h * w, groups, &gv, &betav, 1e-6, act);
            assert_close(&run_and_read(&gr, out), &want, tol(2e-5), &format!("group_norm_pair n{n} {ca}+{cb} {h}x{w} g{groups}"));
        }
    }

    /// Values around 500 with spread 1: E[x²] − E[x]² in f32 would lose the variance to cancellation (an
    /// ulp of 250,000 is 0.016, against a variance of 0.33: errors near 5%); Welford's update and Chan's
    /// combination keep it. f32 itself resolves values near 500 to 6e-5, so x − mean, divided by the
    /// standard deviation 0.58, is good to about 1e-4 in any f32 kernel (measured 6.4e-5): the bound is 5e-4.
    #[test]
    fn a_large_offset_does_not_cancel_the_variance() {
        check_around(2, 32, 14, 14, 8, false, 500.0, 1.0, 5e-4);
    }

    #[test]
    fn odd_sizes_with_and_without_silu() {
        check(2, 24, 7, 7, 8, true);
        check(3, 48, 28, 28, 8, false);
        check(1, 6, 5, 3, 3, true);
        check(2, 32, 16, 16, 32, false);
    }

    /// Planes of a multiple of 4 pixels take the vec4 form (28x28, 16x16, 14x14 above; 2x2 and 1x4 here),
    /// others the scalar one (7x7, 5x3, 3x1), in both forms of the kernel; the vec4 form's cases above run
    /// against the reference, and these two small planes too.
    #[test]
    fn vec4_form_where_the_plane_allows() {
        for (h, w, x4) in [(14usize, 14usize, true), (2, 2, true), (1, 4, true), (7, 7, false), (3, 1, false)] {
            let mut gr = Graph::new();
            let x = upload(&mut gr, "x", &[1, 8, h, w], &values(8 * h * w, 1));
            let (gamma, beta) = (upload(&mut gr, "g", &[8], &values(8, 2)), upload(&mut gr, "b", &[8], &values(8, 3)));
            let out = nan_filled(&mut gr, "out", &[1, 8, h, w]);
            group_norm(&mut gr, GroupNormIo { x, gamma, beta, out }, 4, 1e-6, true);
            let b = upload(&mut gr, "xb", &[1, 4, h, w], &values(4 * h * w, 4));
            let (gamma, beta) = (upload(&mut gr, "g2", &[12], &values(12, 5)), upload(&mut gr, "b2", &[12], &values(12, 6)));
            let out = nan_filled(&mut gr, "out2", &[1, 12, h, w]);
            group_norm_pair(&mut gr, GroupNormPairIo { a: x, b, gamma, beta, out }, 4, 1e-6, false);
            let kernels: Vec<Kernel> = gr.ops().iter().map(|op| op.kernel).collect();
            let want = if x4 { [Kernel::GroupNormX4 { silu: true }, Kernel::GroupNormPairX4 { silu: false }] } else { [Kernel::GroupNorm { silu: true }, Kernel::GroupNormPair { silu: false }] };
            assert_eq!(kernels, want, "{h}x{w}");
        }
        check(3, 8, 2, 2, 4, true);
        check(2, 12, 1, 4, 3, false);
    }

    /// x, γ, β and out in f16, the statistics in f32.
    #[test]
    fn in_f16_storage() {
        in_f16(|| {
            odd_sizes_with_and_without_silu();
            pair_inputs_equal_the_concatenation();
        });
    }
}
