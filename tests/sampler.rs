//! The Algorithm 2 loop on the GPU: noise, wiring, determinism, frame labels, batch limits.
#![cfg(not(target_arch = "wasm32"))]

use ddpm_web::diffusion::sampler::single_pass;
use ddpm_web::gpu::kernel::KernelFamily;
use ddpm_web::gpu::kernels::update::reference_gaussian;
use ddpm_web::{Error, GpuContext, Init, Method, Model, Sampler, SamplerOptions, Unet, Variance};

const TINY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/models/tiny");

fn setup() -> (GpuContext, Model, Unet) {
    let ctx = pollster::block_on(GpuContext::new()).expect("a Vulkan adapter (mesa-vulkan-drivers)");
    let dir = std::env::var("DDPM_TEST_MODEL").unwrap_or_else(|_| TINY.to_string());
    let model = Model::load_dir(std::path::Path::new(&dir)).unwrap();
    let unet = Unet::new(&ctx, &model).unwrap();
    (ctx, model, unet)
}

const DDPM: Method = Method::Ddpm { variance: Variance::Small, clip: true };

fn sampler(ctx: &GpuContext, model: &Model, unet: &Unet, opts: SamplerOptions) -> Result<Sampler, Error> {
    Sampler::new(ctx, unet, &model.schedule(), &model.scheduler, opts)
}

fn opts(n: usize, seed: u64, steps: usize) -> SamplerOptions {
    SamplerOptions { n, seed, steps, method: DDPM, kernels: KernelFamily::Blocked, start_t: None, shared_noise: false }
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn the_loop_is_philox_noise_then_single_steps() {
    let (ctx, model, unet) = setup();
    let schedule = model.schedule();
    let seed = 42;
    let mut s = sampler(&ctx, &model, &unet, opts(3, seed, 1000)).unwrap();
    s.set_prefetch(false);
    pollster::block_on(s.first_frame(&ctx, Init::Philox)).unwrap();
    let x_t = pollster::block_on(s.read_x(&ctx)).unwrap();
    let want: Vec<f32> = (0..x_t.len() as u32).map(|i| reference_gaussian(seed, u32::MAX, i)).collect();
    assert!(max_diff(&x_t, &want) < 1e-4, "x_T is Philox noise keyed (seed, u32::MAX)");

    // Two sampler steps equal two single steps fed the same Philox noise (keyed by timestep).
    let mut x = x_t;
    for t in [999usize, 998] {
        pollster::block_on(s.step(&ctx)).unwrap();
        let got = pollster::block_on(s.read_x(&ctx)).unwrap();
        let z: Vec<f32> = (0..x.len() as u32).map(|i| reference_gaussian(seed, t as u32, i)).collect();
        let pass = DDPM.single_pass(&schedule, &model.scheduler, t, t as isize - 1).unwrap();
        let (next, _) = pollster::block_on(single_pass(&ctx, &unet, &x, &pass, &z, KernelFamily::Blocked)).unwrap();
        let err = max_diff(&got, &next);
        assert!(err < 1e-4, "step at t={t}: sampler differs from single_step by {err}");
        x = next;
    }
}

#[test]
fn same_seed_same_images_and_frames_count_down_to_zero() {
    let (ctx, model, unet) = setup();
    let run = |seed: u64| {
        let mut s = sampler(&ctx, &model, &unet, opts(2, seed, 10)).unwrap();
        let ts: Vec<f32> = s.passes().iter().map(|p| p.t_model).collect();
        assert_eq!(ts, [900.0, 800.0, 700.0, 600.0, 500.0, 400.0, 300.0, 200.0, 100.0, 0.0]);
        let mut frames = vec![pollster::block_on(s.first_frame(&ctx, Init::Philox)).unwrap()];
        while !s.is_done() {
            frames.push(pollster::block_on(s.step(&ctx)).unwrap());
        }
        frames
    };
    let a = run(7);
    let b = run(7);
    let c = run(8);
    assert_eq!(a.len(), 11);
    let ts: Vec<usize> = a.iter().map(|f| f.t).collect();
    assert_eq!(ts, vec![1000, 801, 701, 601, 501, 401, 301, 201, 101, 1, 0]);
    assert_eq!(a[0].t_model, None);
    assert_eq!(a[10].t_model, Some(0.0));
    for (fa, fb) in a.iter().zip(&b) {
        assert_eq!(fa.x, fb.x, "same seed, same frame {}", fa.index);
        assert_eq!(fa.x0, fb.x0);
    }
    assert_ne!(a[10].x, c[10].x, "another seed gives other images");
    assert_ne!(a[0].x, a[10].x, "the run changes the images");
    // x_T is N(0, 1) noise: bytes spread around mid-grey, many clipped at the ends.
    let mean = a[0].x.iter().map(|&v| v as f64).sum::<f64>() / a[0].x.len() as f64;
    assert!((mean - 127.5).abs() < 8.0, "x_T byte mean {mean}");
}

#[test]
fn a_batch_too_large_for_the_adapter_is_an_error() {
    let (ctx, model, unet) = setup();
    let max = unet.max_batch(&ctx);
    match sampler(&ctx, &model, &unet, opts(max + 1, 0, 10)) {
        Err(e @ Error::BatchTooLarge { .. }) => assert!(e.to_string().contains("at most"), "{e}"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a batch of {} was accepted, max is {max}", max + 1),
    }
    assert!(sampler(&ctx, &model, &unet, opts(2, 0, 1001)).is_err(), "more steps than T");
}

#[test]
fn a_lost_device_is_an_error_not_a_panic() {
    let (ctx, model, unet) = setup();
    let mut s = sampler(&ctx, &model, &unet, opts(2, 1, 10)).unwrap();
    pollster::block_on(s.first_frame(&ctx, Init::Philox)).unwrap();
    ctx.device.destroy();
    match pollster::block_on(s.step(&ctx)) {
        Err(e @ Error::DeviceLost(_)) => assert!(e.to_string().contains("lost"), "{e}"),
        Err(e) => panic!("expected DeviceLost, got: {e}"),
        Ok(_) => panic!("a step on a destroyed device succeeded"),
    }
    assert!(matches!(ctx.check(), Err(Error::DeviceLost(_))));
}

/// The Langevin plan inside a run (predictor–corrector, DDPM predictor) takes the batch's images one per
/// workgroup and the pass's own Philox key: each pass equals `single_pass` fed the reference generator's z.
#[test]
fn pc_run_passes_equal_single_passes_with_the_reference_noise() {
    let (ctx, model, unet) = setup();
    let seed = 5;
    let method = Method::Pc { predictor: ddpm_web::diffusion::samplers::Predictor::Ddpm, corrector_steps: 1, snr: 0.16 };
    let o = SamplerOptions { method, ..opts(2, seed, 3) };
    let mut s = sampler(&ctx, &model, &unet, o).unwrap();
    s.set_prefetch(false);
    pollster::block_on(s.first_frame(&ctx, Init::Philox)).unwrap();
    let mut x = pollster::block_on(s.read_x(&ctx)).unwrap();
    let passes = s.passes().to_vec();
    assert!(matches!(passes[1].update, ddpm_web::diffusion::samplers::Update::Langevin(_)));
    for pass in &passes[..3] {
        pollster::block_on(s.step(&ctx)).unwrap();
        let got = pollster::block_on(s.read_x(&ctx)).unwrap();
        let z: Vec<f32> = (0..x.len() as u32).map(|i| reference_gaussian(seed, pass.key, i)).collect();
        let (next, _) = pollster::block_on(single_pass(&ctx, &unet, &x, pass, &z, KernelFamily::Blocked)).unwrap();
        let err = max_diff(&got, &next);
        assert!(err < 1e-4, "pass at t={} ({:?}): run differs from single_pass by {err}", pass.t_model, pass.update);
        x = next;
    }
}

/// SDEdit's start: the image noised to the run's first level with the given z, √ᾱ x_0 + √(1−ᾱ) z, and the
/// frames then count down from that t, not from T.
#[test]
fn an_image_start_is_the_image_noised_to_start_t() {
    let (ctx, model, unet) = setup();
    let schedule = model.schedule();
    let o = SamplerOptions { start_t: Some(500), ..opts(2, 1, 1000) };
    let mut s = sampler(&ctx, &model, &unet, o).unwrap();
    s.set_prefetch(false);
    let len = 2 * 28 * 28;
    let x0: Vec<f32> = (0..len).map(|i| ((i % 97) as f32 / 48.0) - 1.0).collect();
    let z: Vec<f32> = (0..len).map(|i| ((i * 31 % 101) as f32 / 50.0) - 1.0).collect();
    let f = pollster::block_on(s.first_frame(&ctx, Init::Image { x0: &x0, z: Some(&z) })).unwrap();
    assert_eq!(f.t, 501, "the paper's t of diffusers' index 500");
    assert_eq!(s.passes().len(), 501);
    let ab = schedule.alphas_cumprod[500];
    let want: Vec<f32> = x0.iter().zip(&z).map(|(a, b)| (ab.sqrt() * *a as f64 + (1.0 - ab).sqrt() * *b as f64) as f32).collect();
    let got = pollster::block_on(s.read_x(&ctx)).unwrap();
    assert!(max_diff(&got, &want) < 1e-5);
    // Starting a run meant for noise with an image (or the reverse) is refused, not guessed.
    let mut plain = sampler(&ctx, &model, &unet, opts(2, 1, 10)).unwrap();
    assert!(pollster::block_on(plain.first_frame(&ctx, Init::Image { x0: &x0, z: None })).is_err());
}
