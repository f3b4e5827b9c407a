//! `shaders/embed.wgsl`: the sinusoidal timestep embedding.

use crate::gpu::graph::{Graph, TensorId};
use crate::gpu::kernel::Kernel;

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub n: u32,
    pub half: u32,
    pub flip: u32,
    pub _p0: u32,
    pub shift: f32,
    pub _pad: [u32; 3],
}
const _: () = assert!(std::mem::size_of::<Params>() == 32);

/// Records t [N] (timesteps as f32) → out [N, dim]; `dim` must be even (checked by the config).
pub fn time_embedding(g: &mut Graph, t: TensorId, dim: usize, flip_sin_to_cos: bool, freq_shift: f64, out: TensorId) {
    let n = g.shape(t)[0];
    assert_eq!(g.shape(out), [n, dim]);
    let half = dim / 2;
    let params = Params { n: n as u32, half: half as u32, flip: flip_sin_to_cos as u32, _p0: 0, shift: freq_shift as f32, _pad: [0; 3] };
    g.record(Kernel::TimeEmbed, &params, &[("t", t), ("out", out)], [half.div_ceil(64) as u32, n as u32, 1], 0);
}

/// Reference in f32 as diffusers computes it (exp and the product rounded to f32, sin/cos of that f32).
pub fn reference(t: &[f32], dim: usize, flip: bool, shift: f64) -> Vec<f32> {
    let half = dim / 2;
    let mut out = Vec::with_capacity(t.len() * dim);
    for &tv in t {
        let args: Vec<f32> = (0..half)
            .map(|j| tv * (-(10000f32.ln()) * j as f32 / (half as f32 - shift as f32)).exp())
            .collect();
        let s = args.iter().map(|a| (*a as f64).sin() as f32);
        let c = args.iter().map(|a| (*a as f64).cos() as f32);
        if flip {
            out.extend(c.chain(s));
        } else {
            out.extend(s.chain(c));
        }
    }
    out
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::gpu::kernels::testing::*;

    #[test]
    fn matches_reference_over_the_whole_schedule() {
        let tv: Vec<f32> = vec![0.0, 1.0, 17.0, 250.0, 500.0, 999.0];
        for &(dim, flip, shift) in &[(32usize, false, 1.0f64), (128, true, 0.0), (24, true, 1.0)] {
            let mut g = Graph::new();
            let t = upload_f32(&mut g, "t", &[tv.len()], &tv);
            let out = nan_filled(&mut g, "emb", &[tv.len(), dim]);
            time_embedding(&mut g, t, dim, flip, shift, out);
            // Absolute: the argument reaches 999 rad, where one f32 ulp of exp() moves sin by ~1e-4.
            let got = run_and_read(&g, out);
            let want = reference(&tv, dim, flip, shift);
            let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, |m, e| if e.is_nan() { f32::NAN } else { m.max(e) });
            // In f16, plus half an f16 ulp at 1 (the output is stored rounded).
            let bound = if precision() == crate::gpu::kernel::Precision::F16 { 2e-4 + 2.5e-4 } else { 2e-4 };
            assert!(worst < bound, "embedding dim {dim} flip {flip} shift {shift}: max error {worst}");
        }
    }

    #[test]
    fn in_f16_storage() {
        in_f16(matches_reference_over_the_whole_schedule);
    }
}
