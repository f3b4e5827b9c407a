//! `shaders/update.wgsl`: every sampler's update as one affine map, Heun's two stages, and adding noise, with
//! Philox noise drawn on the GPU (`shaders/philox.wgsl`) or read from a tensor.

use crate::diffusion::schedule::StepCoeffs;
use crate::gpu::context::GpuContext;
use crate::gpu::graph::{grid_1d, Graph, Params as OpParams, TensorId};
use crate::gpu::kernel::{Kernel, Noise};

/// Uniform of `update.wgsl` (80 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub coeffs: StepCoeffs,
    pub seed_lo: u32,
    pub seed_hi: u32,
    /// Second word of the Philox counter: which step's noise this is.
    pub step_key: u32,
    pub len: u32,
    /// z repeats every `period` values (len: every value its own; one image's size: shared by the batch).
    pub period: u32,
    /// project_low: the full image's width and height.
    pub width: u32,
    pub height: u32,
    pub _pad: u32,
}
const _: () = assert!(std::mem::size_of::<Params>() == 80);

impl Params {
    pub fn new(coeffs: StepCoeffs, seed: u64, step_key: u32, len: usize) -> Self {
        let (len, period) = (len as u32, len as u32);
        Self { coeffs, seed_lo: seed as u32, seed_hi: (seed >> 32) as u32, step_key, len, period, width: 0, height: 0, _pad: 0 }
    }

    /// The same noise for every `period` values (every image of a batch, with one image's size).
    pub fn with_period(self, period: usize) -> Self {
        Self { period: period as u32, ..self }
    }
}

/// Creates a uniform buffer of `size` bytes that a sampler rewrites before each step.
pub fn uniform_buffer(ctx: &GpuContext, label: &str, size: usize) -> wgpu::Buffer {
    ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: size as u64,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

/// Creates the uniform buffer of [`Params`].
pub fn params_buffer(ctx: &GpuContext) -> wgpu::Buffer {
    uniform_buffer(ctx, "update params", std::mem::size_of::<Params>())
}

/// The tensors of one update, all of x's length: eps read, x updated in place, x0 written.
#[derive(Clone, Copy, Debug)]
pub struct StepIo {
    pub eps: TensorId,
    pub x: TensorId,
    pub x0: TensorId,
}

/// Heun's state between its two stages, both of x's length.
#[derive(Clone, Copy, Debug)]
pub struct HeunState {
    pub saved: TensorId,
    pub deriv: TensorId,
}

/// Where z comes from.
#[derive(Clone, Copy, Debug)]
pub enum NoiseSource {
    /// Philox on the GPU, from the seed and step key in the params.
    Philox,
    /// A tensor of x's length.
    Given(TensorId),
}

impl NoiseSource {
    fn kernel_noise(self, g: &Graph, len: usize, args: &mut Vec<(&'static str, TensorId)>) -> Noise {
        match self {
            NoiseSource::Philox => Noise::Philox,
            NoiseSource::Given(z) => {
                assert_eq!(g.len(z), len);
                args.push(("z", z));
                Noise::Given
            }
        }
    }
}

fn check_io(g: &Graph, io: StepIo) -> usize {
    let len = g.len(io.x);
    assert_eq!(g.len(io.eps), len);
    assert_eq!(g.len(io.x0), len);
    len
}

/// Records x ← affine update of (x̂_0, x, ε, z); x0 ← x̂_0, reading its [`Params`] from `params` (a uniform
/// buffer the caller rewrites before each step).
pub fn affine(g: &mut Graph, params: &wgpu::Buffer, io: StepIo, noise: NoiseSource) {
    let len = check_io(g, io);
    let mut args = vec![("eps", io.eps), ("x", io.x), ("x0", io.x0)];
    let kernel = Kernel::Affine(noise.kernel_noise(g, len, &mut args));
    g.record_with(kernel, OpParams::Buffer(params.clone()), &args, grid_1d(len, 64), 0);
}

/// Records Heun's first stage (no noise): the affine update, and `state` ← (x, deriv_x·x + deriv_x0·x̂_0).
pub fn heun_predict(g: &mut Graph, params: &wgpu::Buffer, io: StepIo, state: HeunState) {
    heun(g, Kernel::HeunPredict, params, io, state)
}

/// Records Heun's second stage: the affine update plus to_saved·saved + to_deriv·deriv.
pub fn heun_correct(g: &mut Graph, params: &wgpu::Buffer, io: StepIo, state: HeunState) {
    heun(g, Kernel::HeunCorrect, params, io, state)
}

fn heun(g: &mut Graph, kernel: Kernel, params: &wgpu::Buffer, io: StepIo, state: HeunState) {
    let len = check_io(g, io);
    assert_eq!(g.len(state.saved), len);
    assert_eq!(g.len(state.deriv), len);
    let args = [("eps", io.eps), ("x", io.x), ("x0", io.x0), ("saved", state.saved), ("deriv", state.deriv)];
    g.record_with(kernel, OpParams::Buffer(params.clone()), &args, grid_1d(len, 64), 0);
}

/// Records x ← to_x·x + to_z·z (x_T when to_x = 0; q(x_t | x_0) with √ᾱ_t, √(1−ᾱ_t)).
pub fn add_noise(g: &mut Graph, params: &wgpu::Buffer, x: TensorId, noise: NoiseSource) {
    let len = g.len(x);
    let mut args = vec![("x", x)];
    let kernel = Kernel::AddNoise(noise.kernel_noise(g, len, &mut args));
    g.record_with(kernel, OpParams::Buffer(params.clone()), &args, grid_1d(len, 64), 0);
}

/// The inpainting source and its mask (1 where the source is kept), both of x's length.
#[derive(Clone, Copy, Debug)]
pub struct Known {
    pub image: TensorId,
    pub mask: TensorId,
}

/// Records x ← to_x·known + to_z·z where mask > 0.5 (x kept elsewhere): the known region at x's level.
pub fn replace_known(g: &mut Graph, params: &wgpu::Buffer, x: TensorId, known: Known, noise: NoiseSource) {
    let len = g.len(x);
    assert_eq!(g.len(known.image), len);
    assert_eq!(g.len(known.mask), len);
    let mut args = vec![("x", x), ("known", known.image), ("mask", known.mask)];
    let kernel = Kernel::ReplaceKnown(noise.kernel_noise(g, len, &mut args));
    g.record_with(kernel, OpParams::Buffer(params.clone()), &args, grid_1d(len, 64), 0);
}

/// Records ILVR's low-pass projection: each 2x2 block of `x` ([N, C, H, W], H and W even) gets the mean of
/// `low` ([N, C, H/2, W/2]) noised as the params say, its detail kept. Params: len = low's length, width, height.
pub fn project_low(g: &mut Graph, params: &wgpu::Buffer, x: TensorId, low: TensorId) {
    assert_eq!(g.len(x), 4 * g.len(low));
    let len = g.len(low);
    g.record_with(Kernel::ProjectLow, OpParams::Buffer(params.clone()), &[("x", x), ("low", low)], grid_1d(len, 64), 0);
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

    /// Which entry point a test runs.
    #[derive(Clone, Copy)]
    enum Entry {
        Affine,
        HeunPredict,
        HeunCorrect,
    }

    struct Out {
        x: Vec<f32>,
        x0: Vec<f32>,
        saved: Vec<f32>,
        deriv: Vec<f32>,
    }

    /// One update with `zv` as z (or Philox noise when `zv` is None). Heun's state starts as `state`
    /// (NaN-filled for heun_predict, which must write it).
    fn run_update(entry: Entry, params: Params, xv: &[f32], ev: &[f32], zv: Option<&[f32]>, state: Option<(&[f32], &[f32])>) -> Out {
        let c = ctx();
        let n = xv.len();
        let buf = params_buffer(c);
        c.queue.write_buffer(&buf, 0, bytemuck::bytes_of(&params));
        let mut g = Graph::new();
        let x = upload(&mut g, "x", &[n], xv);
        let eps = upload(&mut g, "eps", &[n], ev);
        let x0 = nan_filled(&mut g, "x0", &[n]);
        let io = StepIo { eps, x, x0 };
        let heun_state = match state {
            Some((s, d)) => HeunState { saved: upload(&mut g, "saved", &[n], s), deriv: upload(&mut g, "deriv", &[n], d) },
            None => HeunState { saved: nan_filled(&mut g, "saved", &[n]), deriv: nan_filled(&mut g, "deriv", &[n]) },
        };
        match entry {
            Entry::Affine => {
                let noise = match zv {
                    Some(zv) => NoiseSource::Given(upload(&mut g, "z", &[n], zv)),
                    None => NoiseSource::Philox,
                };
                affine(&mut g, &buf, io, noise);
            }
            Entry::HeunPredict => heun_predict(&mut g, &buf, io, heun_state),
            Entry::HeunCorrect => heun_correct(&mut g, &buf, io, heun_state),
        }
        let plan = crate::gpu::plan::Plan::compile(c, &g).unwrap();
        plan.run(c);
        Out {
            x: read(plan.tensor(x)),
            x0: read(plan.tensor(x0)),
            saved: read(plan.tensor(heun_state.saved)),
            deriv: read(plan.tensor(heun_state.deriv)),
        }
    }

    fn column(v: &[(f32, f32, f32)], k: usize) -> Vec<f32> {
        v.iter().map(|w| [w.0, w.1, w.2][k]).collect()
    }

    #[test]
    fn ddpm_update_matches_reference_for_every_mode() {
        let s = Schedule::linear(1000, 1e-4, 0.02);
        let n = 1000;
        let xv: Vec<f32> = values(n, 41).iter().map(|v| 2.5 * v).collect();
        let (ev, zv) = (values(n, 42), values(n, 43));
        for &t in &[0usize, 1, 500, 999] {
            for variance in [Variance::Small, Variance::Large] {
                for clip in [false, true] {
                    let k = s.step_coeffs(t, t as isize - 1, variance, clip).unwrap();
                    let out = run_update(Entry::Affine, Params::new(k, 7, 3, n), &xv, &ev, Some(&zv), None);
                    let want: Vec<_> = (0..n).map(|i| reference_update(&k, xv[i], ev[i], zv[i], 0.0, 0.0)).collect();
                    let what = format!("t={t} {variance:?} clip={clip}");
                    assert_close(&out.x, &column(&want, 0), 1e-5, &what);
                    assert_close(&out.x0, &column(&want, 1), 1e-5, &what);
                }
            }
        }
    }

    /// Coefficients with every field non-zero and a clip that acts on about half the values, so a field the
    /// shader reads from the wrong place (or ignores) shows.
    fn every_field() -> StepCoeffs {
        StepCoeffs {
            x0_x: 1.7, x0_eps: 0.9, clip: 1.0, to_x0: 0.35, to_x: -0.8, to_eps: 0.45, to_z: 0.3,
            to_saved: 0.6, to_deriv: -0.25, deriv_x: 1.3, deriv_x0: -0.7, _pad: 0.0,
        }
    }

    #[test]
    fn every_entry_point_reads_each_coefficient_as_the_reference() {
        let n = 777;
        let xv: Vec<f32> = values(n, 61).iter().map(|v| 1.5 * v).collect();
        let (ev, zv, sv, dv) = (values(n, 62), values(n, 63), values(n, 64), values(n, 65));
        let k = every_field();
        let p = Params::new(k, 5, 9, n);
        // affine: no saved state (its terms must not appear).
        let out = run_update(Entry::Affine, p, &xv, &ev, Some(&zv), None);
        let want: Vec<_> = (0..n).map(|i| reference_update(&k, xv[i], ev[i], zv[i], 0.0, 0.0)).collect();
        assert_close(&out.x, &column(&want, 0), 1e-5, "affine x");
        assert_close(&out.x0, &column(&want, 1), 1e-5, "affine x0");
        assert!(out.x0.iter().any(|v| v.abs() == 1.0), "the clip never acted: the test would miss it");
        // heun_predict: no noise; keeps x and the derivative.
        let out = run_update(Entry::HeunPredict, p, &xv, &ev, None, None);
        let want: Vec<_> = (0..n).map(|i| reference_update(&k, xv[i], ev[i], 0.0, 0.0, 0.0)).collect();
        assert_close(&out.x, &column(&want, 0), 1e-5, "heun_predict x");
        assert_close(&out.x0, &column(&want, 1), 1e-5, "heun_predict x0");
        assert_close(&out.deriv, &column(&want, 2), 1e-5, "heun_predict deriv");
        assert_close(&out.saved, &xv, 0.0, "heun_predict saved");
        // heun_correct: adds the kept state, leaves it as it was.
        let out = run_update(Entry::HeunCorrect, p, &xv, &ev, None, Some((&sv, &dv)));
        let want: Vec<_> = (0..n).map(|i| reference_update(&k, xv[i], ev[i], 0.0, sv[i], dv[i])).collect();
        assert_close(&out.x, &column(&want, 0), 1e-5, "heun_correct x");
        assert_close(&out.x0, &column(&want, 1), 1e-5, "heun_correct x0");
        assert_close(&out.saved, &sv, 0.0, "heun_correct saved");
    }

    #[test]
    fn gpu_noise_is_philox_box_muller_and_standard_normal() {
        // With x = eps = 0 and to_z = 1, x' is z itself.
        let k = StepCoeffs { to_z: 1.0, ..StepCoeffs::ZERO };
        let n = 100_003;
        let zeros = vec![0.0; n];
        let seed = 0x1234_5678_9abc_def0u64;
        let z = run_update(Entry::Affine, Params::new(k, seed, 17, n), &zeros, &zeros, None, None).x;
        let want: Vec<f32> = (0..n as u32).map(|i| reference_gaussian(seed, 17, i)).collect();
        assert_close(&z, &want, 1e-4, "philox normals");
        let mean = z.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        let var = z.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.02 && (var - 1.0).abs() < 0.02, "mean {mean} var {var}");
        // Another step key gives other noise.
        let z2 = run_update(Entry::Affine, Params::new(k, seed, 18, n), &zeros, &zeros, None, None).x;
        assert!(z.iter().zip(&z2).filter(|(a, b)| a == b).count() < 10);
        // A period repeats the first `period` values (a batch sharing one image's noise).
        let shared = run_update(Entry::Affine, Params::new(k, seed, 17, n).with_period(1000), &zeros, &zeros, None, None).x;
        assert!((0..n).all(|i| shared[i] == z[i % 1000]), "period 1000");
    }

    #[test]
    fn add_noise_scales_x_and_adds_the_updates_generator_or_given_z() {
        let c = ctx();
        let n = 1003;
        let seed = 99u64;
        let xv = values(n, 71);
        let zv = values(n, 72);
        let buf = params_buffer(c);
        c.queue.write_buffer(&buf, 0, bytemuck::bytes_of(&Params::new(StepCoeffs::noise(0.6, 0.8), seed, u32::MAX, n)));
        for given in [false, true] {
            let mut g = Graph::new();
            let x = upload(&mut g, "x", &[n], &xv);
            let noise = if given { NoiseSource::Given(upload(&mut g, "z", &[n], &zv)) } else { NoiseSource::Philox };
            add_noise(&mut g, &buf, x, noise);
            let z = |i: usize| if given { zv[i] } else { reference_gaussian(seed, u32::MAX, i as u32) };
            let want: Vec<f32> = (0..n).map(|i| 0.6 * xv[i] + 0.8 * z(i)).collect();
            assert_close(&run_and_read(&g, x), &want, 1e-4, if given { "given z" } else { "philox z" });
        }
    }

    #[test]
    fn replace_known_changes_only_the_masked_values_and_is_exact_at_the_clean_level() {
        let c = ctx();
        let n = 1003;
        let (xv, kv, zv) = (values(n, 101), values(n, 102), values(n, 103));
        let mv: Vec<f32> = (0..n).map(|i| ((i * 7) % 3 == 0) as u8 as f32).collect();
        let seed = 11u64;
        for (keep, sigma, given) in [(0.8, 0.6, true), (0.8, 0.6, false), (1.0, 0.0, false)] {
            let buf = params_buffer(c);
            c.queue.write_buffer(&buf, 0, bytemuck::bytes_of(&Params::new(StepCoeffs::noise(keep, sigma), seed, 5, n)));
            let mut g = Graph::new();
            let x = upload(&mut g, "x", &[n], &xv);
            let known = Known { image: upload(&mut g, "known", &[n], &kv), mask: upload(&mut g, "mask", &[n], &mv) };
            let noise = if given { NoiseSource::Given(upload(&mut g, "z", &[n], &zv)) } else { NoiseSource::Philox };
            replace_known(&mut g, &buf, x, known, noise);
            let got = run_and_read(&g, x);
            let z = |i: usize| if given { zv[i] } else { reference_gaussian(seed, 5, i as u32) };
            for i in 0..n {
                if mv[i] > 0.5 {
                    let want = keep as f32 * kv[i] + sigma as f32 * z(i);
                    assert!((got[i] - want).abs() <= 1e-5 * (1.0 + want.abs()), "{i}: {} vs {want}", got[i]);
                    if sigma == 0.0 {
                        assert_eq!(got[i].to_bits(), kv[i].to_bits(), "the clean level keeps the source bit for bit");
                    }
                } else {
                    assert_eq!(got[i].to_bits(), xv[i].to_bits(), "{i}: unmasked values stay");
                }
            }
        }
    }

    #[test]
    fn project_low_sets_each_blocks_mean_and_keeps_its_detail() {
        let c = ctx();
        let (n, ch, h, w) = (2, 1, 6, 4);
        let xv = values(n * ch * h * w, 111);
        let lv = values(n * ch * (h / 2) * (w / 2), 112);
        let len = lv.len();
        for (keep, sigma) in [(1.0, 0.0), (0.7, 0.5)] {
            let buf = params_buffer(c);
            let p = Params { width: w as u32, height: h as u32, ..Params::new(StepCoeffs::noise(keep, sigma), 9, 4, len) };
            c.queue.write_buffer(&buf, 0, bytemuck::bytes_of(&p));
            let mut g = Graph::new();
            let x = upload(&mut g, "x", &[n, ch, h, w], &xv);
            let low = upload(&mut g, "low", &[n, ch, h / 2, w / 2], &lv);
            project_low(&mut g, &buf, x, low);
            let got = run_and_read(&g, x);
            for (b, &l) in lv.iter().enumerate() {
                let (plane, r) = (b / ((h / 2) * (w / 2)), b % ((h / 2) * (w / 2)));
                let (row, col) = (2 * (r / (w / 2)), 2 * (r % (w / 2)));
                let idx = [0, 1, w, w + 1].map(|o| plane * h * w + row * w + col + o);
                let want_mean = keep as f32 * l + sigma as f32 * 0.5 * reference_gaussian(9, 4, b as u32);
                let old_mean = idx.iter().map(|&i| xv[i]).sum::<f32>() / 4.0;
                let mean = idx.iter().map(|&i| got[i]).sum::<f32>() / 4.0;
                assert!((mean - want_mean).abs() < 1e-5, "block {b}: mean {mean} vs {want_mean}");
                for &i in &idx {
                    assert!(((got[i] - mean) - (xv[i] - old_mean)).abs() < 1e-5, "block {b}: detail at {i} changed");
                }
            }
        }
    }
}
