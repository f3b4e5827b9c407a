//! `shaders/ddpm_step.wgsl`: the Algorithm 2 update with Philox noise drawn on the GPU.

use super::{grid_1d, uniform_dispatch, Dispatch, Kernel};
use crate::diffusion::schedule::StepCoeffs;
use crate::gpu::context::GpuContext;
use crate::gpu::tensor::Tensor;

/// Uniform of `ddpm_step.wgsl` (64 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub coeffs: StepCoeffs,
    pub seed_lo: u32,
    pub seed_hi: u32,
    /// Second word of the Philox counter: which step's noise this is.
    pub step_key: u32,
    pub len: u32,
    /// 1: read z from the `z` buffer instead of drawing it.
    pub given_noise: u32,
    pub _pad: [u32; 3],
}

impl Params {
    pub fn new(coeffs: StepCoeffs, seed: u64, step_key: u32, len: usize, given_noise: bool) -> Self {
        Self { coeffs, seed_lo: seed as u32, seed_hi: (seed >> 32) as u32, step_key, len: len as u32, given_noise: given_noise as u32, _pad: [0; 3] }
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

/// x ← update(x, eps, z); x0 ← x̂_0. `z` is only read when the params say `given_noise`.
pub fn ddpm_step(ctx: &GpuContext, params: &wgpu::Buffer, eps: &Tensor, z: &Tensor, x: &Tensor, x0: &Tensor) -> Dispatch {
    assert_eq!(eps.len(), x.len());
    assert_eq!(x0.len(), x.len());
    uniform_dispatch(
        ctx,
        Kernel::DdpmStep,
        params,
        &[(1, &eps.buffer), (2, &z.buffer), (3, &x.buffer), (4, &x0.buffer)],
        grid_1d(x.len(), 64),
    )
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
    use crate::gpu::kernels::{run, testing::*};

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

    fn run_step(params: Params, xv: &[f32], ev: &[f32], zv: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let c = ctx();
        let n = xv.len();
        let buf = params_buffer(c);
        c.queue.write_buffer(&buf, 0, bytemuck::bytes_of(&params));
        let (x, e, z, x0) = (
            Tensor::upload(c, "x", &[n], xv),
            Tensor::upload(c, "eps", &[n], ev),
            Tensor::upload(c, "z", &[n], zv),
            Tensor::zeros(c, "x0", &[n]),
        );
        run(c, &[ddpm_step(c, &buf, &e, &z, &x, &x0)]);
        (read(&x), read(&x0))
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
                    let (x, x0) = run_step(Params::new(k, 7, 3, n, true), &xv, &ev, &zv);
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
        let (z, _) = run_step(Params::new(k, seed, 17, n, false), &zeros, &zeros, &zeros);
        let want: Vec<f32> = (0..n as u32).map(|i| reference_gaussian(seed, 17, i)).collect();
        assert_close(&z, &want, 1e-4, "philox normals");
        let mean = z.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        let var = z.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.02 && (var - 1.0).abs() < 0.02, "mean {mean} var {var}");
        // Another step key gives other noise.
        let (z2, _) = run_step(Params::new(k, seed, 18, n, false), &zeros, &zeros, &zeros);
        assert!(z.iter().zip(&z2).filter(|(a, b)| a == b).count() < 10);
    }
}
