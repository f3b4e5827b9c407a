//! `shaders/langevin.wgsl`: one Langevin corrector step per image with the step size of Song et al. 2021
//! (Algorithm 5), from the norms of z and of the score over each image.

use crate::gpu::graph::{Graph, Params as OpParams};
use crate::gpu::kernel::Kernel;
use crate::gpu::kernels::update::{NoiseSource, StepIo};

/// What one Langevin step at a noise level needs (computed by `samplers.rs` from the schedule).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LangevinCoeffs {
    /// score = score_eps · ε = −ε / √(1−ᾱ_t) (seed 004 §5).
    pub score_eps: f32,
    /// Target signal-to-noise ratio r of the step-size rule.
    pub snr: f32,
    /// α_t of the rule step = 2 α_t (r ‖z‖ / ‖score‖)².
    pub alpha: f32,
    /// x̂_0 = x0_x · x − x0_eps · ε at the input, for display.
    pub x0_x: f32,
    pub x0_eps: f32,
}

/// Uniform of `langevin.wgsl` (48 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub score_eps: f32,
    pub snr: f32,
    pub alpha: f32,
    pub x0_x: f32,
    pub x0_eps: f32,
    pub image_len: u32,
    pub n: u32,
    pub seed_lo: u32,
    pub seed_hi: u32,
    pub step_key: u32,
    /// z repeats every `period` values (n · image_len: independent; image_len: one noise for the batch).
    pub period: u32,
    pub _pad: u32,
}
const _: () = assert!(std::mem::size_of::<Params>() == 48);

impl Params {
    pub fn new(c: LangevinCoeffs, seed: u64, step_key: u32, n: usize, image_len: usize) -> Self {
        Self {
            score_eps: c.score_eps,
            snr: c.snr,
            alpha: c.alpha,
            x0_x: c.x0_x,
            x0_eps: c.x0_eps,
            image_len: image_len as u32,
            n: n as u32,
            seed_lo: seed as u32,
            seed_hi: (seed >> 32) as u32,
            step_key,
            period: (n * image_len) as u32,
            _pad: 0,
        }
    }

    /// The same noise for every image of the batch.
    pub fn shared(self) -> Self {
        Self { period: self.image_len, ..self }
    }
}

/// Records one Langevin step over `n` images of `image_len` values, reading [`Params`] from `params`.
pub fn langevin(g: &mut Graph, params: &wgpu::Buffer, io: StepIo, noise: NoiseSource, n: usize) {
    let len = g.len(io.x);
    assert_eq!(g.len(io.eps), len);
    assert_eq!(g.len(io.x0), len);
    assert!(n > 0 && len % n == 0, "{len} values are not {n} images");
    let mut args = vec![("eps", io.eps), ("x", io.x), ("x0", io.x0)];
    let kernel = match noise {
        NoiseSource::Philox => Kernel::Langevin(crate::gpu::kernel::Noise::Philox),
        NoiseSource::Given(z) => {
            assert_eq!(g.len(z), len);
            args.push(("z", z));
            Kernel::Langevin(crate::gpu::kernel::Noise::Given)
        }
    };
    g.record_with(kernel, OpParams::Buffer(params.clone()), &args, [n as u32, 1, 1], 0);
}

/// The CPU reference for one image: returns (x', x̂_0), in f64 inside as the norms are sums.
pub fn reference_langevin(c: &LangevinCoeffs, x: &[f32], eps: &[f32], z: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let z_norm = z.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
    let score_norm = (c.score_eps as f64).abs() * eps.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
    let step = if score_norm == 0.0 { 0.0 } else { 2.0 * c.alpha as f64 * (c.snr as f64 * z_norm / score_norm).powi(2) };
    let next = (0..x.len())
        .map(|i| (x[i] as f64 + step * c.score_eps as f64 * eps[i] as f64 + (2.0 * step).sqrt() * z[i] as f64) as f32)
        .collect();
    let x0 = (0..x.len()).map(|i| c.x0_x * x[i] - c.x0_eps * eps[i]).collect();
    (next, x0)
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::gpu::kernels::testing::*;
    use crate::gpu::kernels::update::{reference_gaussian, uniform_buffer};

    const COEFFS: LangevinCoeffs = LangevinCoeffs { score_eps: -1.3, snr: 0.16, alpha: 0.98, x0_x: 1.1, x0_eps: 0.4 };

    fn run(n: usize, per: usize, xv: &[f32], ev: &[f32], zv: Option<&[f32]>, seed: u64) -> (Vec<f32>, Vec<f32>) {
        let c = ctx();
        let buf = uniform_buffer(c, "langevin params", std::mem::size_of::<Params>());
        c.queue.write_buffer(&buf, 0, bytemuck::bytes_of(&Params::new(COEFFS, seed, 11, n, per)));
        let mut g = Graph::new();
        let x = upload(&mut g, "x", &[n * per], xv);
        let eps = upload(&mut g, "eps", &[n * per], ev);
        let x0 = nan_filled(&mut g, "x0", &[n * per]);
        let noise = zv.map_or(NoiseSource::Philox, |zv| NoiseSource::Given(upload(&mut g, "z", &[n * per], zv)));
        langevin(&mut g, &buf, StepIo { eps, x, x0 }, noise, n);
        let plan = crate::gpu::plan::Plan::compile(c, &g).unwrap();
        plan.run(c);
        (read(plan.tensor(x)), read(plan.tensor(x0)))
    }

    /// Images of different sizes of ε (so the per-image step sizes differ) and a length that is not a
    /// multiple of the workgroup: each image must use its own norms.
    #[test]
    fn matches_reference_with_per_image_norms_given_or_philox_noise() {
        let (n, per) = (3, 28 * 28 + 5);
        let xv = values(n * per, 81);
        let ev: Vec<f32> = values(n * per, 82).iter().enumerate().map(|(i, v)| v * (1 + i / per) as f32).collect();
        let zv = values(n * per, 83);
        let seed = 4242;
        for given in [true, false] {
            let z: Vec<f32> = if given { zv.clone() } else { (0..(n * per) as u32).map(|i| reference_gaussian(seed, 11, i)).collect() };
            let (x, x0) = run(n, per, &xv, &ev, given.then_some(&zv[..]), seed);
            for k in 0..n {
                let r = k * per..(k + 1) * per;
                let (wx, wx0) = reference_langevin(&COEFFS, &xv[r.clone()], &ev[r.clone()], &z[r.clone()]);
                assert_close(&x[r.clone()], &wx, 1e-4, &format!("x, image {k}, given {given}"));
                assert_close(&x0[r], &wx0, 1e-5, &format!("x0, image {k}"));
            }
        }
    }

    #[test]
    fn zero_score_leaves_x_unchanged() {
        // A zero ε makes the step size 0/0: the kernel must take no step rather than write NaN.
        let per = 300;
        let xv = values(per, 91);
        let (x, _) = run(1, per, &xv, &vec![0.0; per], Some(&values(per, 92)), 1);
        assert_close(&x, &xv, 0.0, "x");
    }
}
