//! `shaders/ddpm_step.wgsl`: the Algorithm 2 update with Philox noise drawn on the GPU.

use crate::diffusion::schedule::StepCoeffs;
use crate::gpu::context::GpuContext;
use crate::gpu::graph::{grid_1d, Graph, Params as OpParams, TensorId};
use crate::gpu::kernel::{Kernel, Noise};

/// Uniform of `ddpm_step.wgsl` (48 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub coeffs: StepCoeffs,
    pub seed_lo: u32,
    pub seed_hi: u32,
    /// Second word of the Philox counter: which step's noise this is.
    pub step_key: u32,
    pub len: u32,
}
const _: () = assert!(std::mem::size_of::<Params>() == 48);

impl Params {
    pub fn new(coeffs: StepCoeffs, seed: u64, step_key: u32, len: usize) -> Self {
        Self { coeffs, seed_lo: seed as u32, seed_hi: (seed >> 32) as u32, step_key, len: len as u32 }
    }
}

/// Creates the uniform buffer the sampler rewrites before each step.
pub fn params_buffer(ctx: &GpuContext) -> wgpu::Buffer {
    ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("step params"),
        size: std::mem::size_of::<Params>() as u64,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

/// The tensors of one update, all of x's length: eps read, x updated in place, x0 written.
#[derive(Clone, Copy, Debug)]
pub struct StepIo {
    pub eps: TensorId,
    pub x: TensorId,
    pub x0: TensorId,
}

/// Where z comes from.
#[derive(Clone, Copy, Debug)]
pub enum NoiseSource {
    /// Philox on the GPU, from the seed and step key in the params.
    Philox,
    /// A tensor of x's length.
    Given(TensorId),
}

/// Records x ← update(x, eps, z); x0 ← x̂_0, reading its [`Params`] from `params` (a uniform buffer the
/// caller rewrites before each step).
pub fn ddpm_step(g: &mut Graph, params: &wgpu::Buffer, io: StepIo, noise: NoiseSource) {
    let len = g.len(io.x);
    assert_eq!(g.len(io.eps), len);
    assert_eq!(g.len(io.x0), len);
    let mut args = vec![("eps", io.eps), ("x", io.x), ("x0", io.x0)];
    let kernel = match noise {
        NoiseSource::Philox => Kernel::DdpmStep(Noise::Philox),
        NoiseSource::Given(z) => {
            assert_eq!(g.len(z), len);
            args.push(("z", z));
            Kernel::DdpmStep(Noise::Given)
        }
    };
    g.record_with(kernel, OpParams::Buffer(params.clone()), &args, grid_1d(len, 64), 0);
}

/// Records x ~ N(0, I) (Philox with the seed and step key of `params`; its coefficients are not read).
pub fn draw_noise(g: &mut Graph, params: &wgpu::Buffer, x: TensorId) {
    let len = g.len(x);
    g.record_with(Kernel::DrawNoise, OpParams::Buffer(params.clone()), &[("x", x)], grid_1d(len, 64), 0);
}

fn mul_hi_lo(a: u32, b: u32) -> (u32, u32) {
    let p = a as u64 * b as u64;
    ((p >> 32) as u32, p as u32)
}

/// Philox4x32-10 (Random123), the CPU reference of the shader's generator.
pub fn philox4x32_10(mut c: [u32; 4], mut k: [u32; 2]) -> [u32; 4] {
    for _ in 0..10 {
        let (hi0, lo0) = mul_hi_lo(0xD251_1F53, c[0]);
        let (hi1, lo1) = mul_hi_lo(0xCD9E_8D57, c[2]);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
        k = [k[0].wrapping_add(0x9E37_79B9), k[1].wrapping_add(0xBB67_AE85)];
    }
    c
}

/// The shader's z for element `i` (Box-Muller on Philox output).
pub fn reference_gaussian(seed: u64, step_key: u32, i: u32) -> f32 {
    let r = philox4x32_10([i, step_key, 0, 0], [seed as u32, (seed >> 32) as u32]);
    let u1 = ((r[0] >> 8) as f64 + 1.0) / 16_777_216.0;
    let u2 = (r[1] >> 8) as f64 / 16_777_216.0;
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::diffusion::schedule::{reference_update, Schedule, Variance};
    use crate::gpu::kernels::testing::*;

    #[test]
    fn philox_known_answers() {
        // Random123's kat_vectors for philox4x32_10.
        assert_eq!(philox4x32_10([0; 4], [0; 2]), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
        assert_eq!(philox4x32_10([u32::MAX; 4], [u32::MAX; 2]), [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]);
        assert_eq!(
            philox4x32_10([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }

    /// One update with `zv` as z (or Philox noise when `zv` is None).
    fn run_step(params: Params, xv: &[f32], ev: &[f32], zv: Option<&[f32]>) -> (Vec<f32>, Vec<f32>) {
        let c = ctx();
        let n = xv.len();
        let buf = params_buffer(c);
        c.queue.write_buffer(&buf, 0, bytemuck::bytes_of(&params));
        let mut g = Graph::new();
        let x = upload(&mut g, "x", &[n], xv);
        let eps = upload(&mut g, "eps", &[n], ev);
        let x0 = nan_filled(&mut g, "x0", &[n]);
        let noise = match zv {
            Some(zv) => NoiseSource::Given(upload(&mut g, "z", &[n], zv)),
            None => NoiseSource::Philox,
        };
        ddpm_step(&mut g, &buf, StepIo { eps, x, x0 }, noise);
        let plan = crate::gpu::plan::Plan::compile(c, &g).unwrap();
        plan.run(c);
        (read(plan.tensor(x)), read(plan.tensor(x0)))
    }

    #[test]
    fn update_matches_reference_for_every_mode() {
        let s = Schedule::linear(1000, 1e-4, 0.02);
        let n = 1000;
        let xv: Vec<f32> = values(n, 41).iter().map(|v| 2.5 * v).collect();
        let (ev, zv) = (values(n, 42), values(n, 43));
        for &t in &[0usize, 1, 500, 999] {
            for variance in [Variance::Small, Variance::Large] {
                for clip in [false, true] {
                    let k = s.step_coeffs(t, t as isize - 1, variance, clip).unwrap();
                    let (x, x0) = run_step(Params::new(k, 7, 3, n), &xv, &ev, Some(&zv));
                    let want: Vec<(f32, f32)> = (0..n).map(|i| reference_update(&k, xv[i], ev[i], zv[i])).collect();
                    let what = format!("t={t} {variance:?} clip={clip}");
                    assert_close(&x, &want.iter().map(|w| w.0).collect::<Vec<_>>(), 1e-5, &what);
                    assert_close(&x0, &want.iter().map(|w| w.1).collect::<Vec<_>>(), 1e-5, &what);
                }
            }
        }
    }

    #[test]
    fn gpu_noise_is_philox_box_muller_and_standard_normal() {
        // With x = eps = 0 and σ = 1 (a coefficient set made for the test), x_{t-1} is z itself.
        let k = StepCoeffs { x0_x: 0.0, x0_eps: 0.0, mean_x0: 0.0, mean_xt: 0.0, paper_x: 0.0, paper_eps: 0.0, sigma: 1.0, clip: 0 };
        let n = 100_003;
        let zeros = vec![0.0; n];
        let seed = 0x1234_5678_9abc_def0u64;
        let (z, _) = run_step(Params::new(k, seed, 17, n), &zeros, &zeros, None);
        let want: Vec<f32> = (0..n as u32).map(|i| reference_gaussian(seed, 17, i)).collect();
        assert_close(&z, &want, 1e-4, "philox normals");
        let mean = z.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        let var = z.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.02 && (var - 1.0).abs() < 0.02, "mean {mean} var {var}");
        // Another step key gives other noise.
        let (z2, _) = run_step(Params::new(k, seed, 18, n), &zeros, &zeros, None);
        assert!(z.iter().zip(&z2).filter(|(a, b)| a == b).count() < 10);
    }

    #[test]
    fn draw_noise_is_the_updates_generator() {
        let c = ctx();
        let n = 1003;
        let seed = 99u64;
        let buf = params_buffer(c);
        let k = StepCoeffs { x0_x: 0.0, x0_eps: 0.0, mean_x0: 0.0, mean_xt: 0.0, paper_x: 0.0, paper_eps: 0.0, sigma: 0.0, clip: 0 };
        c.queue.write_buffer(&buf, 0, bytemuck::bytes_of(&Params::new(k, seed, u32::MAX, n)));
        let mut g = Graph::new();
        let x = nan_filled(&mut g, "x", &[n]);
        draw_noise(&mut g, &buf, x);
        let want: Vec<f32> = (0..n as u32).map(|i| reference_gaussian(seed, u32::MAX, i)).collect();
        assert_close(&run_and_read(&g, x), &want, 1e-4, "x_T");
    }
}
