//! `shaders/forward.wgsl`: the forward process q(x_t | x_0) in one step, x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) z, with z
//! given (diffusers' `add_noise`) or drawn by Philox on the GPU (the page: one fixed draw per image).

use crate::gpu::context::GpuContext;
use crate::gpu::graph::{grid_1d, Graph, Params as OpParams, TensorId};
use crate::gpu::kernel::{Kernel, Noise};

/// Uniform of `forward.wgsl` (32 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    /// √ᾱ_t.
    pub signal: f32,
    /// √(1 − ᾱ_t).
    pub noise: f32,
    pub seed_lo: u32,
    pub seed_hi: u32,
    /// Second word of the Philox counter. Kept fixed while t changes, so z (and x_t) move continuously.
    pub key: u32,
    pub len: u32,
    pub _pad: [u32; 2],
}
const _: () = assert!(std::mem::size_of::<Params>() == 32);

impl Params {
    /// For ᾱ_t = `alpha_bar` (1 gives x_0 back, 0 pure noise). The roots are taken in f64, then rounded.
    pub fn new(alpha_bar: f64, seed: u64, key: u32, len: usize) -> Self {
        let a = alpha_bar.clamp(0.0, 1.0);
        Self {
            signal: a.sqrt() as f32,
            noise: (1.0 - a).sqrt() as f32,
            seed_lo: seed as u32,
            seed_hi: (seed >> 32) as u32,
            key,
            len: len as u32,
            _pad: [0; 2],
        }
    }
}

/// The uniform buffer a caller rewrites before each run (the page, once per slider move).
pub fn params_buffer(ctx: &GpuContext) -> wgpu::Buffer {
    ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("forward params"),
        size: std::mem::size_of::<Params>() as u64,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

/// x_0 read, x_t written, both of one length.
#[derive(Clone, Copy, Debug)]
pub struct ForwardIo {
    pub x0: TensorId,
    pub xt: TensorId,
}

/// Where z comes from.
#[derive(Clone, Copy, Debug)]
pub enum NoiseSource {
    /// Philox on the GPU, from the seed and key in the params.
    Philox,
    /// A tensor of x_0's length.
    Given(TensorId),
}

/// Records xt ← √ᾱ x0 + √(1 − ᾱ) z, reading its [`Params`] from `params`.
pub fn forward(g: &mut Graph, params: &wgpu::Buffer, io: ForwardIo, noise: NoiseSource) {
    let len = g.len(io.x0);
    assert_eq!(g.len(io.xt), len);
    let mut args = vec![("x0", io.x0), ("xt", io.xt)];
    let kernel = match noise {
        NoiseSource::Philox => Kernel::Forward(Noise::Philox),
        NoiseSource::Given(z) => {
            assert_eq!(g.len(z), len);
            args.push(("z", z));
            Kernel::Forward(Noise::Given)
        }
    };
    // Two multiply-adds per value.
    g.record_with(kernel, OpParams::Buffer(params.clone()), &args, grid_1d(len, 64), 4 * len as u64);
}

/// The plain-Rust reference of one value.
pub fn reference(p: &Params, x0: f32, z: f32) -> f32 {
    p.signal * x0 + p.noise * z
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::diffusion::schedule::Schedule;
    use crate::gpu::kernels::update::reference_gaussian;
    use crate::gpu::kernels::testing::*;

    /// x_t for `params` into a NaN-filled output, with `zv` as z (Philox when None).
    fn run(params: Params, xv: &[f32], zv: Option<&[f32]>) -> Vec<f32> {
        let c = ctx();
        let n = xv.len();
        let buf = params_buffer(c);
        c.queue.write_buffer(&buf, 0, bytemuck::bytes_of(&params));
        let mut g = Graph::new();
        let x0 = upload(&mut g, "x0", &[n], xv);
        let xt = nan_filled(&mut g, "xt", &[n]);
        let noise = match zv {
            Some(zv) => NoiseSource::Given(upload(&mut g, "z", &[n], zv)),
            None => NoiseSource::Philox,
        };
        forward(&mut g, &buf, ForwardIo { x0, xt }, noise);
        run_and_read(&g, xt)
    }

    /// The given-noise kernel is the formula at the schedule's ends and middle, on a length that is not a
    /// multiple of the workgroup.
    #[test]
    fn given_noise_matches_reference_across_the_schedule() {
        let s = Schedule::linear(1000, 1e-4, 0.02);
        let n = 1003;
        let (xv, zv) = (values(n, 61), values(n, 62));
        for t in [0isize, 1, 500, 999] {
            let p = Params::new(s.alpha_bar(t), 5, 0, n);
            let want: Vec<f32> = xv.iter().zip(&zv).map(|(&x, &z)| reference(&p, x, z)).collect();
            assert_close(&run(p, &xv, Some(&zv)), &want, 1e-6, &format!("t={t}"));
        }
    }

    /// The ends of the process: ᾱ = 1 (the paper's t = 0) returns x_0 exactly; ᾱ = 0 returns z exactly.
    #[test]
    fn alpha_bar_one_is_the_image_and_zero_is_the_noise() {
        let n = 300;
        let (xv, zv) = (values(n, 63), values(n, 64));
        assert_eq!(run(Params::new(1.0, 0, 0, n), &xv, Some(&zv)), xv);
        assert_eq!(run(Params::new(0.0, 0, 0, n), &xv, Some(&zv)), zv);
    }

    /// The Philox variant draws exactly the update kernel's generator (same seed, counter and Box-Muller), and a
    /// fixed seed and key give the same z at every ᾱ, which is what makes the page's scrubbing continuous.
    #[test]
    fn philox_noise_is_the_samplers_generator_and_fixed_across_t() {
        let n = 4099;
        let seed = 0xfeed_beef_0123_4567u64;
        let xv = values(n, 65);
        let z: Vec<f32> = (0..n as u32).map(|i| reference_gaussian(seed, 7, i)).collect();
        for ab in [0.0, 0.3, 0.97] {
            let p = Params::new(ab, seed, 7, n);
            let want: Vec<f32> = xv.iter().zip(&z).map(|(&x, &z)| reference(&p, x, z)).collect();
            assert_close(&run(p, &xv, None), &want, 1e-4, &format!("philox, ᾱ={ab}"));
        }
        // Another key is another draw.
        let other = run(Params::new(0.0, seed, 8, n), &xv, None);
        assert!(other.iter().zip(&z).filter(|(a, b)| (**a - **b).abs() < 1e-6).count() < 10);
    }
}
