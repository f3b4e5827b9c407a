//! `ddpm`: the engine of the page from the command line (natively, on any Vulkan adapter).
//!
//! Timesteps are diffusers' indices 0..T−1 (the value fed to the network; the paper's t is one more).

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    match cli::run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod cli {
    use std::fs::File;
    use std::io::BufWriter;
    use std::path::{Path, PathBuf};
    use std::time::Instant;

    use anyhow::{bail, Context, Result};
    use clap::{Args, Parser, Subcommand};
    use ddpm_web::diffusion::forward::{ForwardNoise, Noiser};
    use ddpm_web::diffusion::nll::{Bound, BoundOptions, UnetEps};
    use ddpm_web::cpu::sampler::HostSampler;
    use ddpm_web::diffusion::sampler::single_pass;
    use ddpm_web::diffusion::samplers::{Predictor, Program, DEFAULT_SNR};
    use ddpm_web::image::{default_cols, grid_rgba, Batch};
    use ddpm_web::gpu::kernel::{KernelChoice, Precision, PrecisionChoice};
    use ddpm_web::model::unet::Target;
    use ddpm_web::{GpuContext, Init, Method, Model, Sampler, SamplerKind, SamplerOptions, Unet, Variance};
    use npyz::WriterBuilder;

    #[derive(Parser)]
    #[command(name = "ddpm", version, about = "DDPM (Ho et al. 2020) on the GPU through wgpu: ε_θ, one Algorithm 2 step, or a whole run")]
    struct Cli {
        /// Where the network runs: `gpu` (a Vulkan adapter through wgpu), `cpu` (the CPU executor: eps, sample,
        /// bench, info), or `auto` (the GPU, or the CPU when there is no adapter, saying so on stderr).
        #[arg(long, global = true, default_value = "auto")]
        backend: Backend,
        /// The network's storage on the GPU: `f32` (the goldens' exact setting), `f16` (half the memory moved;
        /// needs the adapter's shader-f16) or `auto` (f16 where the adapter has it). x_t and ε stay f32, and
        /// the CPU executor computes in f32.
        #[arg(long, global = true, default_value = "f32")]
        precision: PrecisionChoice,
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
    enum Backend {
        Auto,
        Gpu,
        Cpu,
    }

    #[derive(Args)]
    struct KernelArg {
        /// Kernel family: `blocked` (CPU adapters), `tiled` (workgroup-memory implicit GEMM convolutions, for
        /// GPUs), `fused` (tiled, plus one-kernel attention), or `auto` (time each on this adapter, keep the fastest).
        #[arg(long, default_value = "blocked")]
        kernels: KernelChoice,
    }

    /// Which sampler and its settings (each applies only to the samplers it names).
    #[derive(Args)]
    struct SamplerArgs {
        /// ddpm (Algorithm 2), ddim, euler or heun (the probability-flow ODE), sde (the reverse-time SDE,
        /// Euler–Maruyama), langevin (annealed Langevin dynamics) or pc (predictor–corrector).
        #[arg(long, default_value = "ddpm")]
        sampler: SamplerKind,
        /// ddpm: small: σ² = β̃_t; large: σ² = β_t.
        #[arg(long, default_value = "small")]
        variance: Variance,
        /// ddpm: clip x̂_0 to [−1, 1] and use the posterior mean (the official code) instead of the paper's update.
        #[arg(long)]
        clip: bool,
        /// ddim: η from 0 (deterministic) to 1 (DDPM's variance).
        #[arg(long, default_value_t = 0.0)]
        eta: f64,
        /// langevin: steps per noise level; pc: corrector steps after each predictor step.
        #[arg(long)]
        langevin_steps: Option<usize>,
        /// langevin, pc: the signal-to-noise ratio that sets the Langevin step size (Song et al. 2021).
        #[arg(long, default_value_t = DEFAULT_SNR)]
        snr: f64,
        /// pc: the predictor, `sde` or `ddpm`.
        #[arg(long, default_value = "sde")]
        predictor: String,
    }

    impl SamplerArgs {
        fn method(&self) -> Result<Method> {
            Ok(match self.sampler {
                SamplerKind::Ddpm => Method::Ddpm { variance: self.variance, clip: self.clip },
                SamplerKind::Ddim => Method::Ddim { eta: self.eta },
                SamplerKind::Euler => Method::Euler,
                SamplerKind::Heun => Method::Heun,
                SamplerKind::Sde => Method::Sde,
                SamplerKind::Langevin => Method::Langevin { steps_per_level: self.langevin_steps.unwrap_or(2), snr: self.snr },
                SamplerKind::Pc => {
                    let predictor = match self.predictor.as_str() {
                        "sde" => Predictor::Sde,
                        "ddpm" => Predictor::Ddpm,
                        p => bail!("predictor must be `sde` or `ddpm`, not `{p}`"),
                    };
                    Method::Pc { predictor, corrector_steps: self.langevin_steps.unwrap_or(1), snr: self.snr }
                }
            })
        }
    }

    #[derive(Args)]
    struct ModelArg {
        /// A diffusers UNet2DModel folder: config.json, diffusion_pytorch_model.safetensors[, scheduler_config.json].
        #[arg(long)]
        model: PathBuf,
    }

    #[derive(Subcommand)]
    enum Command {
        /// ε_θ(x, t) for an NCHW f32 batch.
        Eps {
            #[command(flatten)]
            model: ModelArg,
            /// Input batch, .npy f32 [N, C, H, W].
            #[arg(long)]
            x: PathBuf,
            /// Network timestep 0..T−1.
            #[arg(long)]
            t: usize,
            #[arg(long)]
            out: PathBuf,
            #[command(flatten)]
            kernels: KernelArg,
        },
        /// One update x_t → x_prev with the given noise z: ε_θ(x, t), then the sampler's update (ddpm, ddim,
        /// sde: from t to prev; langevin: one Langevin step at level t).
        Step {
            #[command(flatten)]
            model: ModelArg,
            #[arg(long)]
            x: PathBuf,
            #[arg(long)]
            t: usize,
            /// The timestep stepped to (default t − 1; −1 is the clean image). DDIM with K steps: t − T/K.
            #[arg(long, allow_hyphen_values = true)]
            prev: Option<isize>,
            /// Noise, .npy f32 of x's shape (unused where the step adds none).
            #[arg(long)]
            z: PathBuf,
            #[command(flatten)]
            sampler: SamplerArgs,
            #[arg(long)]
            out: PathBuf,
            /// Also write x̂_0.
            #[arg(long)]
            x0_out: Option<PathBuf>,
            #[command(flatten)]
            kernels: KernelArg,
        },
        /// A whole run from noise (or from a noised image), saved as a PNG grid and/or .npy.
        Sample {
            #[command(flatten)]
            model: ModelArg,
            #[arg(long, default_value_t = 16)]
            n: usize,
            #[arg(long, default_value_t = 0)]
            seed: u64,
            /// Noise levels: T (the paper) or fewer through a respaced schedule (`set_timesteps(K)`; Heun makes
            /// 2K−1 passes, langevin and pc add their Langevin steps). Default: T for ddpm, sde, langevin and
            /// pc, 50 for ddim, euler and heun.
            #[arg(long)]
            steps: Option<usize>,
            #[command(flatten)]
            sampler: SamplerArgs,
            /// x_T's standard normal draw z, .npy f32 [N, C, H, W] (N is read from it); the run starts as
            /// diffusers' pipelines do, from z times the scheduler's init_noise_sigma.
            #[arg(long)]
            init: Option<PathBuf>,
            /// SDEdit: start from these images, .npy f32 [N, C, H, W] in the model's range, noised to `--start-t`
            /// (with `--init` as the noise when given).
            #[arg(long, requires = "start_t")]
            from: Option<PathBuf>,
            /// The timestep the `--from` images are noised to (the first step of the run at or below it).
            #[arg(long, requires = "from")]
            start_t: Option<usize>,
            /// The final batch as a PNG grid.
            #[arg(long)]
            out: Option<PathBuf>,
            /// The final batch, .npy f32 [N, C, H, W], in the model's range.
            #[arg(long)]
            out_npy: Option<PathBuf>,
            /// Also save x_t and x̂_0 grids every `--every` passes into this folder.
            #[arg(long)]
            trajectory: Option<PathBuf>,
            #[arg(long, default_value_t = 100)]
            every: usize,
            #[command(flatten)]
            kernels: KernelArg,
        },
        /// Inpainting: generate where the mask is 0, keep the source where it is 1 (replacement after every pass,
        /// optionally with RePaint's resampling); the known region of `--out-npy` is the source bit for bit.
        Inpaint {
            #[command(flatten)]
            model: ModelArg,
            /// Source images, .npy f32 [N, C, H, W] in the model's range.
            #[arg(long)]
            x: PathBuf,
            /// 1 where the source is kept, 0 where it is generated: .npy f32 of x's shape or of one image's
            /// ([1, C, H, W], used for every image).
            #[arg(long)]
            mask: PathBuf,
            #[arg(long, default_value_t = 0)]
            seed: u64,
            /// Noise levels (default T for ddpm and sde, 50 for ddim).
            #[arg(long)]
            steps: Option<usize>,
            /// RePaint: after every `jump` steps go back up and redo them, `resample` times in all (1: off).
            #[arg(long, default_value_t = 10)]
            jump: usize,
            #[arg(long, default_value_t = 1)]
            resample: usize,
            #[command(flatten)]
            sampler: SamplerArgs,
            #[arg(long)]
            out: Option<PathBuf>,
            #[arg(long)]
            out_npy: Option<PathBuf>,
            #[command(flatten)]
            kernels: KernelArg,
        },
        /// Interpolation: A and B noised to t with the same noise, mixed (slerp or lerp) into `count` starts, and
        /// denoised in one run whose images share their per-step noise (so the ends equal the plain
        /// `sample --from A|B --start-t T --seed S` runs). With --latents, A and B are x_T draws themselves.
        Interpolate {
            #[command(flatten)]
            model: ModelArg,
            /// One image each, .npy f32 [1, C, H, W] (model range; standard normal draws with --latents).
            #[arg(long)]
            a: PathBuf,
            #[arg(long)]
            b: PathBuf,
            /// The network timestep both are noised to (the run starts at its first step at or below it).
            #[arg(long, required_unless_present = "latents")]
            t: Option<usize>,
            /// A and B are x_T draws: mix them and run the whole chain (DDIM η = 0 or the ODE samplers give a
            /// smooth walk between two generated images).
            #[arg(long, conflicts_with = "t")]
            latents: bool,
            #[arg(long, default_value_t = 8)]
            count: usize,
            /// slerp (spherical, default) or lerp.
            #[arg(long, default_value = "slerp")]
            path: ddpm_web::diffusion::interpolate::Path,
            #[arg(long, default_value_t = 0)]
            seed: u64,
            #[arg(long)]
            steps: Option<usize>,
            #[command(flatten)]
            sampler: SamplerArgs,
            /// The strip as one row of images.
            #[arg(long)]
            out: Option<PathBuf>,
            #[arg(long)]
            out_npy: Option<PathBuf>,
            #[command(flatten)]
            kernels: KernelArg,
        },
        /// Super-resolution (ILVR, Choi et al. 2021): images at twice the side of LOW whose 2x2 averages are LOW;
        /// after every pass each 2x2 block's mean is set to LOW noised to that pass's level.
        Upscale {
            #[command(flatten)]
            model: ModelArg,
            /// Low-resolution images, .npy f32 [N, C, H/2, W/2] in the model's range.
            #[arg(long)]
            x: PathBuf,
            #[arg(long, default_value_t = 0)]
            seed: u64,
            /// Noise levels (default T for ddpm, sde, langevin and pc, 50 for ddim, euler and heun).
            #[arg(long)]
            steps: Option<usize>,
            #[command(flatten)]
            sampler: SamplerArgs,
            #[arg(long)]
            out: Option<PathBuf>,
            #[arg(long)]
            out_npy: Option<PathBuf>,
            #[command(flatten)]
            kernels: KernelArg,
        },
        /// A sampler's program as JSON: every network pass with its timestep and the update's coefficients, so
        /// other implementations (training/samplers.py) run exactly the same maths.
        Program {
            #[command(flatten)]
            model: ModelArg,
            /// Noise levels (as `sample --steps`).
            #[arg(long)]
            steps: usize,
            #[command(flatten)]
            sampler: SamplerArgs,
        },
        /// DDIM inversion: the deterministic DDIM chain run from images to noise (the latents that
        /// `sample --sampler ddim --init` turns back into them).
        Invert {
            #[command(flatten)]
            model: ModelArg,
            /// Images, .npy f32 [N, C, H, W] in the model's range.
            #[arg(long)]
            x: PathBuf,
            /// The DDIM run's number of steps.
            #[arg(long, default_value_t = 50)]
            steps: usize,
            /// The latents x_T, .npy f32 [N, C, H, W].
            #[arg(long)]
            out: PathBuf,
            /// Also decode the latents with the same DDIM chain (η = 0, x̂_0 unclipped, as the inversion) into
            /// this .npy and print how far the round trip lands from the input.
            #[arg(long)]
            roundtrip: Option<PathBuf>,
            #[command(flatten)]
            kernels: KernelArg,
        },
        /// Sampler steps per second at one batch size, as one JSON object on stdout (BENCHMARKS.md).
        Bench {
            #[command(flatten)]
            model: ModelArg,
            #[arg(long, default_value_t = 16)]
            batch: usize,
            /// Timed steps (after a short warm-up).
            #[arg(long, default_value_t = 20)]
            steps: usize,
            /// Kernel family: `auto` (the fastest on this adapter, as the page does), `blocked`, `tiled` or `fused`.
            #[arg(long, default_value = "auto")]
            kernels: KernelChoice,
        },
        /// Parameters, FLOPs per pass, adapter, largest batch, and which convolution kernels are faster here.
        Info {
            #[command(flatten)]
            model: ModelArg,
            /// The batch size at which the kernel families are timed.
            #[arg(long, default_value_t = 16)]
            batch: usize,
        },
        /// The variational bound (paper eq. 5) in bits/dim per image, with its terms L_0, L_1, …, L_{T−1}, L_T,
        /// as JSON; images on the 8-bit grid mapped to [−1, 1].
        Nll {
            #[command(flatten)]
            model: ModelArg,
            /// Clean images, .npy f32 [N, C, H, W], every value k / 127.5 − 1 for an integer k in 0..=255.
            #[arg(long)]
            x: PathBuf,
            /// p_θ's variance: small: σ² = β̃_t; large: σ² = β_t.
            #[arg(long, default_value = "small")]
            variance: Variance,
            /// The mean of the clipped x̂_0 (the official code, evaluate.py) instead of the paper's.
            #[arg(long)]
            clip: bool,
            /// The Philox key of the x_t draws (one per term).
            #[arg(long, default_value_t = 0)]
            seed: u64,
            /// Compute the first K terms and then every K-th, each standing for its K neighbours: an estimate.
            #[arg(long, default_value_t = 1)]
            every: usize,
            /// (image, t) pairs per network pass.
            #[arg(long, default_value_t = 16)]
            batch: usize,
            /// terms.json.
            #[arg(long)]
            out: PathBuf,
            #[command(flatten)]
            kernels: KernelArg,
        },
        /// q(x_t | x_0) with the given noise: √ᾱ_t·x_0 + √(1 − ᾱ_t)·z, diffusers' `add_noise` at index t.
        Noise {
            #[command(flatten)]
            model: ModelArg,
            /// Clean batch x_0, .npy f32 (model range [−1, 1]).
            #[arg(long)]
            x: PathBuf,
            /// Network timestep 0..T−1.
            #[arg(long)]
            t: usize,
            /// Noise, .npy f32 of x's shape.
            #[arg(long)]
            z: PathBuf,
            #[arg(long)]
            out: PathBuf,
        },
    }

    pub fn run() -> Result<()> {
        let cli = Cli::parse();
        let device = match cli.backend {
            Backend::Cpu => Device::Cpu,
            Backend::Gpu => gpu_in(pollster::block_on(GpuContext::new())?, cli.precision)?,
            Backend::Auto => match pollster::block_on(GpuContext::new()) {
                Ok(ctx) => gpu_in(ctx, cli.precision)?,
                Err(ddpm_web::Error::NoAdapter(why)) => {
                    eprintln!("note: no GPU adapter ({why}); running on the CPU");
                    Device::Cpu
                }
                Err(e) => return Err(e.into()),
            },
        };
        if matches!(device, Device::Cpu) && cli.precision == PrecisionChoice::Fixed(Precision::F16) {
            bail!("--precision f16 needs a GPU with shader-f16; the CPU executor computes in f32 (use --precision f32 or auto)");
        }
        match cli.command {
            Command::Eps { model, x, t, out, kernels } => {
                let (model, unet) = device.load(&model.model)?;
                let (shape, xv) = read_npy(&x)?;
                check_input(&unet, &shape)?;
                check_t(&model, t)?;
                let eps = match &device {
                    Device::Gpu(ctx, _) => {
                        let kernels = device.kernels(&unet, shape[0], kernels.kernels)?;
                        pollster::block_on(unet.eps(ctx, &xv, &vec![t; shape[0]], kernels))?
                    }
                    Device::Cpu => {
                        ddpm_web::cpu::EpsPlans::default().eps(&unet, &xv, &vec![t; shape[0]])?
                    }
                };
                write_npy(&out, &[shape[0], unet.config.out_channels, shape[2], shape[3]], &eps)
            }
            Command::Step { model, x, t, prev, z, sampler, out, x0_out, kernels } => {
                let ctx = device.gpu("step")?;
                let (model, unet) = device.load(&model.model)?;
                let (shape, xv) = read_npy(&x)?;
                check_input(&unet, &shape)?;
                check_t(&model, t)?;
                let (zshape, zv) = read_npy(&z)?;
                if zshape != shape {
                    bail!("z has shape {zshape:?} but x has {shape:?}");
                }
                let pass = sampler.method()?.single_pass(&model.schedule(), &model.scheduler, t, prev.unwrap_or(t as isize - 1))?;
                let kernels = device.kernels(&unet, shape[0], kernels.kernels)?;
                let (next, x0) = pollster::block_on(single_pass(ctx, &unet, &xv, &pass, &zv, kernels))?;
                write_npy(&out, &shape, &next)?;
                if let Some(p) = x0_out {
                    write_npy(&p, &shape, &x0)?;
                }
                Ok(())
            }
            Command::Sample { model, n, seed, steps, sampler, init, from, start_t, out, out_npy, trajectory, every, kernels } => {
                if out.is_none() && out_npy.is_none() {
                    bail!("say where the images go: --out PNG and/or --out-npy NPY");
                }
                let (model, unet) = device.load(&model.model)?;
                let schedule = model.schedule();
                let method = sampler.method()?;
                let steps = steps.unwrap_or(default_steps(sampler.sampler, schedule.len()));
                let (z, x0) = (init.as_deref().map(read_npy).transpose()?, from.as_deref().map(read_npy).transpose()?);
                let n = start_shape(&unet, &z, &x0)?.unwrap_or(n);
                let kernels = device.kernels(&unet, n, kernels.kernels)?;
                let opts = SamplerOptions { n, seed, steps, method, kernels, start_t, shared_noise: false };
                let mut sampler = device.sampler(&unet, &schedule, &model.scheduler, opts)?;
                let init = init_of(&z, &x0);
                run_sampler(&unet, &mut sampler, init, out.as_deref(), out_npy.as_deref(), trajectory.as_deref(), every)
            }
            Command::Inpaint { model, x, mask, seed, steps, jump, resample, sampler, out, out_npy, kernels } => {
                if out.is_none() && out_npy.is_none() {
                    bail!("say where the images go: --out PNG and/or --out-npy NPY");
                }
                let (model, unet) = device.load(&model.model)?;
                let schedule = model.schedule();
                let (shape, xv) = read_npy(&x)?;
                check_input(&unet, &shape)?;
                let (mshape, mv) = read_npy(&mask)?;
                let mask = if mshape == shape {
                    mv
                } else if mshape.len() == 4 && mshape[0] == 1 && mshape[1..] == shape[1..] {
                    mv.iter().copied().cycle().take(xv.len()).collect()
                } else {
                    bail!("the mask has shape {mshape:?}; it must be x's {shape:?} or one image's [1, {}, {}, {}]", shape[1], shape[2], shape[3]);
                };
                if mask.iter().any(|&m| m != 0.0 && m != 1.0) {
                    bail!("the mask must hold only 0 (generate) and 1 (keep)");
                }
                let steps = steps.unwrap_or(if sampler.sampler == SamplerKind::Ddim { 50 } else { schedule.len() });
                let program = sampler.method()?.program(&schedule, &model.scheduler, steps)?.repaint(&schedule, jump, resample)?;
                let kernels = device.kernels(&unet, shape[0], kernels.kernels)?;
                let opts = SamplerOptions { n: shape[0], seed, steps, method: sampler.method()?, kernels, start_t: None, shared_noise: false };
                let mut run = device.run(&unet, &schedule, program, opts)?;
                run.set_known(&xv, &mask)?;
                run_sampler(&unet, &mut run, Init::Philox, out.as_deref(), out_npy.as_deref(), None, 1)
            }
            Command::Interpolate { model, a, b, t, latents, count, path, seed, steps, sampler, out, out_npy, kernels } => {
                use ddpm_web::diffusion::interpolate::{noised, strip};
                if out.is_none() && out_npy.is_none() {
                    bail!("say where the strip goes: --out PNG and/or --out-npy NPY");
                }
                if !(2..=64).contains(&count) {
                    bail!("--count must be 2 to 64, not {count}");
                }
                let (model, unet) = device.load(&model.model)?;
                let schedule = model.schedule();
                let ((sa, av), (sb, bv)) = (read_npy(&a)?, read_npy(&b)?);
                for shape in [&sa, &sb] {
                    check_input(&unet, shape)?;
                    if shape[0] != 1 {
                        bail!("--a and --b are one image each ([1, C, H, W]), not {shape:?}");
                    }
                }
                let steps = steps.unwrap_or(default_steps(sampler.sampler, schedule.len()));
                let kernels = device.kernels(&unet, count, kernels.kernels)?;
                let start_t = if latents { None } else { t };
                let opts = SamplerOptions { n: count, seed, steps, method: sampler.method()?, kernels, start_t, shared_noise: true };
                let mut run = device.sampler(&unet, &schedule, &model.scheduler, opts)?;
                let starts = if latents {
                    let scale = run.program().init_scale as f32;
                    strip(&av.iter().map(|v| v * scale).collect::<Vec<_>>(), &bv.iter().map(|v| v * scale).collect::<Vec<_>>(), count, path)
                } else {
                    // Both noised with the z a plain image start draws (its key, one image's counters).
                    let ab = run.program().start_alpha_bar;
                    let key = ddpm_web::diffusion::sampler::IMAGE_NOISE_KEY;
                    strip(&noised(&av, ab, seed, key), &noised(&bv, ab, seed, key), count, path)
                };
                let batch = run.batch();
                let mut frame = run.first_frame(Init::Exact(&starts))?;
                while !run.is_done() {
                    frame = run.step()?;
                }
                if let Some(p) = &out {
                    save_grid_cols(p, &frame.x, batch, count)?;
                }
                if let Some(p) = &out_npy {
                    write_npy(p, &[count, batch.c, batch.h, batch.w], &run.read_x()?)?;
                }
                println!("{count} images from A to B, {} passes ({}) -> {}", run.passes(), run.method_name(),
                    out.iter().chain(out_npy.iter()).map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "));
                Ok(())
            }
            Command::Upscale { model, x, seed, steps, sampler, out, out_npy, kernels } => {
                if out.is_none() && out_npy.is_none() {
                    bail!("say where the images go: --out PNG and/or --out-npy NPY");
                }
                let (model, unet) = device.load(&model.model)?;
                let schedule = model.schedule();
                let (shape, lv) = read_npy(&x)?;
                let (c, h, w) = unet.image_shape();
                if shape.len() != 4 || shape[0] == 0 || shape[1..] != [c, h / 2, w / 2] || h % 2 != 0 || w % 2 != 0 {
                    bail!("the input has shape {shape:?}, but upscaling to the model's {c}x{h}x{w} takes [N, {c}, {}, {}]", h / 2, w / 2);
                }
                let steps = steps.unwrap_or(default_steps(sampler.sampler, schedule.len()));
                let kernels = device.kernels(&unet, shape[0], kernels.kernels)?;
                let opts = SamplerOptions { n: shape[0], seed, steps, method: sampler.method()?, kernels, start_t: None, shared_noise: false };
                let mut run = device.sampler(&unet, &schedule, &model.scheduler, opts)?;
                run.set_low(&lv)?;
                run_sampler(&unet, &mut run, Init::Philox, out.as_deref(), out_npy.as_deref(), None, 1)
            }
            Command::Program { model, steps, sampler } => print_program(&model.model, steps, &sampler),
            Command::Invert { model, x, steps, out, roundtrip, kernels } => {
                let (model, unet) = device.load(&model.model)?;
                let (shape, xv) = read_npy(&x)?;
                check_input(&unet, &shape)?;
                let schedule = model.schedule();
                let program = Program::ddim_inversion(&schedule, &model.scheduler, steps)?;
                let kernels = device.kernels(&unet, shape[0], kernels.kernels)?;
                let opts = SamplerOptions { n: shape[0], seed: 0, steps, method: Method::Ddim { eta: 0.0 }, kernels, start_t: None, shared_noise: false };
                let mut sampler = device.run(&unet, &schedule, program, opts)?;
                // The chain starts at the clean images themselves.
                run_sampler(&unet, &mut sampler, Init::Exact(&xv), None, Some(&out), None, 1)?;
                let Some(back) = roundtrip else { return Ok(()) };
                // Decoding with the model's own DDIM (clip_sample from its config) would clip x̂_0 at high noise
                // and leave the inverted path: the round trip uses the unclipped chain the inversion assumed.
                let unclipped = ddpm_web::SchedulerConfig { clip_sample: Some(false), ..model.scheduler.clone() };
                let decode = Method::Ddim { eta: 0.0 }.program(&schedule, &unclipped, steps)?;
                let latents = sampler.read_x()?;
                let mut sampler = device.run(&unet, &schedule, decode, opts)?;
                run_sampler(&unet, &mut sampler, Init::Exact(&latents), None, Some(&back), None, 1)?;
                let got = sampler.read_x()?;
                let n = xv.len() as f64;
                let mean_abs = xv.iter().zip(&got).map(|(a, b)| (a - b).abs() as f64).sum::<f64>() / n;
                let rmse = (xv.iter().zip(&got).map(|(a, b)| ((a - b) as f64).powi(2)).sum::<f64>() / n).sqrt();
                println!("round trip: mean |x − back| = {mean_abs:.4} ({:.1} of 255 grey levels), RMSE {rmse:.4}", mean_abs * 127.5);
                Ok(())
            }
            Command::Bench { model, batch, steps, kernels } => {
                let (model, unet) = device.load(&model.model)?;
                let report = match &device {
                    Device::Gpu(ctx, _) => {
                        unet.check_batch(ctx, batch)?;
                        pollster::block_on(ddpm_web::bench::bench(ctx, &unet, &model.schedule(), batch, steps, kernels))?
                    }
                    Device::Cpu => ddpm_web::bench::bench_host(&unet, &model.schedule(), batch.max(1), steps)?,
                };
                println!("{}", serde_json::to_string(&report)?);
                Ok(())
            }
            Command::Info { model, batch } => {
                let (model, unet) = device.load(&model.model)?;
                let (c, h, w) = unet.image_shape();
                println!("parameters:       {}", unet.parameter_count());
                println!("FLOPs per pass:   {:.3} G per image", unet.flops_per_image() as f64 / 1e9);
                println!("image:            {c}x{h}x{w}");
                println!("timesteps:        {}", model.schedule().len());
                if let Some(p) = &model.config.provenance {
                    println!("trained on:       {}", p.dataset.as_deref().unwrap_or("?"));
                }
                let Device::Gpu(ctx, _) = &device else {
                    println!("runs on:          the CPU executor (no GPU adapter used)");
                    return Ok(());
                };
                println!("adapter:          {}", ctx.adapter_name());
                let f16 = if ctx.has_f16() { "the adapter has shader-f16" } else { "the adapter has no shader-f16" };
                println!("precision:        {} ({f16}; --precision)", unet.precision());
                println!("largest batch:    {}", unet.max_batch(ctx));
                let batch = batch.clamp(1, unet.max_batch(ctx));
                let tuning = pollster::block_on(unet.tune(ctx, batch))?;
                let times: Vec<String> = tuning.ms.iter().map(|(k, ms)| format!("{} {ms:.1} ms", k.name())).collect();
                let skipped = if tuning.others_skipped { "; projected from one image: too slow an adapter to time the GPU kernels" } else { "" };
                println!("kernels (auto):   {} at batch {batch} (per pass: {}{skipped})", tuning.chosen.name(), times.join(", "));
                Ok(())
            }
            Command::Nll { model, x, variance, clip, seed, every, batch, out, kernels } => {
                let (model, unet) = device.load(&model.model)?;
                let (shape, xv) = read_npy(&x)?;
                check_input(&unet, &shape)?;
                let bound = Bound::new(&model.schedule(), BoundOptions { variance, clip, every, seed })?;
                let total = bound.computed().len() * shape[0];
                let bar = indicatif::ProgressBar::new(total as u64);
                bar.set_style(indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} (image, t) passes  eta {eta}").unwrap());
                let progress = |done, _| {
                    bar.set_position(done as u64);
                    true
                };
                let start = Instant::now();
                let report = match &device {
                    Device::Gpu(ctx, _) => {
                        let batch = batch.clamp(1, unet.max_batch(ctx));
                        let kernels = device.kernels(&unet, batch, kernels.kernels)?;
                        pollster::block_on(bound.run(&xv, shape[0], &mut UnetEps::new(ctx, &unet, kernels), batch, progress))?
                    }
                    Device::Cpu => pollster::block_on(bound.run(&xv, shape[0], &mut ddpm_web::cpu::HostEps::new(&unet), batch.max(1), progress))?,
                };
                bar.finish();
                let file = File::create(&out).with_context(|| format!("creating {}", out.display()))?;
                serde_json::to_writer(BufWriter::new(file), &report)?;
                let mean = report.bits_per_dim.iter().sum::<f64>() / report.bits_per_dim.len() as f64;
                let kind = if report.estimate { format!("an estimate: the first {every} terms, then 1 in {every}") } else { "all terms".into() };
                println!(
                    "{} images: {mean:.4} bits/dim on average ({kind}, σ² {}, {} mean) in {:.1} s on {} -> {}",
                    shape[0],
                    report.variance,
                    if clip { "clipped" } else { "paper" },
                    start.elapsed().as_secs_f64(),
                    device.name(),
                    out.display()
                );
                Ok(())
            }
            Command::Noise { model, x, t, z, out } => {
                let ctx = device.gpu("noise")?;
                let model = Model::load_dir(&model.model)?;
                check_t(&model, t)?;
                let (shape, xv) = read_npy(&x)?;
                let (zshape, zv) = read_npy(&z)?;
                if zshape != shape {
                    bail!("z has shape {zshape:?} but x has {shape:?}");
                }
                let noiser = Noiser::new(ctx, &xv, ForwardNoise::Given(zv))?;
                let xt = pollster::block_on(noiser.x_t(ctx, model.schedule().alpha_bar(t as isize)))?;
                write_npy(&out, &shape, &xt)
            }
        }
    }

    /// `ddpm program`: only the schedule is needed, no weights and no device.
    fn print_program(dir: &Path, steps: usize, sampler: &SamplerArgs) -> Result<()> {
        let model = Model::load_dir(dir)?;
        let program = sampler.method()?.program(&model.schedule(), &model.scheduler, steps)?;
        println!("{}", serde_json::to_string(&program)?);
        Ok(())
    }

    /// A sampler's default number of noise levels: T for the stochastic chains, 50 for the ODE-like ones.
    fn default_steps(kind: SamplerKind, len: usize) -> usize {
        match kind {
            SamplerKind::Ddim | SamplerKind::Euler | SamplerKind::Heun => 50.min(len),
            _ => len,
        }
    }

    type Npy = Option<(Vec<usize>, Vec<f32>)>;

    /// Checks `--init` and `--from` against the model and each other; the batch size they imply.
    fn start_shape(unet: &Unet, z: &Npy, x0: &Npy) -> Result<Option<usize>> {
        for (shape, _) in z.iter().chain(x0) {
            check_input(unet, shape)?;
        }
        if let (Some((zs, _)), Some((xs, _))) = (z, x0) {
            if zs != xs {
                bail!("--init has shape {zs:?} but --from has {xs:?}");
            }
        }
        Ok(z.as_ref().or(x0.as_ref()).map(|(shape, _)| shape[0]))
    }

    fn init_of<'a>(z: &'a Npy, x0: &'a Npy) -> Init<'a> {
        match (x0, z) {
            (Some((_, x0)), z) => Init::Image { x0, z: z.as_ref().map(|z| &z.1[..]) },
            (None, Some((_, z))) => Init::Noise(z),
            (None, None) => Init::Philox,
        }
    }

    /// Takes frames from `next` until `passes` are done, with a progress bar and the trajectory saved;
    /// returns the last frame.
    fn drive(first: ddpm_web::Frame, passes: usize, trajectory: Option<&Path>, every: usize, batch: Batch, mut next: impl FnMut() -> Result<ddpm_web::Frame>) -> Result<ddpm_web::Frame> {
        if let Some(dir) = trajectory {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let bar = indicatif::ProgressBar::new(passes as u64);
        bar.set_style(indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} passes  {per_sec}  eta {eta}  t={msg}").unwrap());
        save_trajectory(trajectory, &first, batch, every, passes)?;
        let mut frame = first;
        for _ in 0..passes {
            frame = next()?;
            bar.set_message(frame.t.to_string());
            bar.inc(1);
            save_trajectory(trajectory, &frame, batch, every, passes)?;
        }
        bar.finish();
        Ok(frame)
    }

    /// Saves the final batch and prints the run's figures.
    #[allow(clippy::too_many_arguments)]
    fn finish(out: Option<&Path>, out_npy: Option<&Path>, frame: &ddpm_web::Frame, x: &[f32], batch: Batch, passes: usize, start: Instant, sampler: &str, flops_per_image: u64, device: &str) -> Result<()> {
        let secs = start.elapsed().as_secs_f64();
        if let Some(out) = out {
            save_grid(out, &frame.x, batch)?;
        }
        if let Some(path) = out_npy {
            write_npy(path, &[batch.n, batch.c, batch.h, batch.w], x)?;
        }
        let outs: Vec<String> = out.iter().chain(out_npy.iter()).map(|p| p.display().to_string()).collect();
        println!(
            "{} images, {passes} passes ({sampler}) in {secs:.1} s ({:.2} passes/s, {:.2} GFLOP/s) on {device} -> {}",
            batch.n,
            passes as f64 / secs,
            flops_per_image as f64 * batch.n as f64 * passes as f64 / secs / 1e9,
            outs.join(", ")
        );
        Ok(())
    }

    /// Runs a sampler to the end with a progress bar, saving the trajectory and the final batch.
    #[allow(clippy::too_many_arguments)]
    fn run_sampler(unet: &Unet, run: &mut Run, init: Init, out: Option<&Path>, out_npy: Option<&Path>, trajectory: Option<&Path>, every: usize) -> Result<()> {
        let batch = run.batch();
        let passes = run.passes();
        let start = Instant::now();
        let first = run.first_frame(init)?;
        let last = drive(first, passes, trajectory, every, batch, || run.step())?;
        let x = if out_npy.is_some() { run.read_x()? } else { Vec::new() };
        finish(out, out_npy, &last, &x, batch, passes, start, run.method_name(), unet.flops_per_image(), &run.device_name())
    }

    /// Where the network runs: a GPU adapter (with the precision its weights are stored in), or the CPU
    /// executor. One per command, so the size of the GPU variant does not matter.
    #[allow(clippy::large_enum_variant)]
    enum Device {
        Gpu(GpuContext, Precision),
        Cpu,
    }

    /// The adapter with `choice` resolved against its features and that precision's kernels compiled.
    fn gpu_in(ctx: GpuContext, choice: PrecisionChoice) -> Result<Device> {
        let precision = choice.resolve(ctx.has_f16());
        pollster::block_on(ctx.enable(precision))?;
        Ok(Device::Gpu(ctx, precision))
    }

    impl Device {
        fn name(&self) -> String {
            match self {
                Device::Gpu(ctx, _) => ctx.adapter_name(),
                Device::Cpu => "the CPU executor".into(),
            }
        }

        /// The adapter, for a command only the GPU path runs.
        fn gpu(&self, command: &str) -> Result<&GpuContext> {
            match self {
                Device::Gpu(ctx, _) => Ok(ctx),
                Device::Cpu => bail!("`ddpm {command}` needs a GPU adapter (the CPU executor runs eps, sample, inpaint, upscale, interpolate, invert, nll, bench, info and program); install mesa-vulkan-drivers for lavapipe, or pass --backend gpu to see why none was found"),
            }
        }

        fn load(&self, dir: &Path) -> Result<(Model, Unet)> {
            let model = Model::load_dir(dir)?;
            let unet = match self {
                Device::Gpu(ctx, precision) => Unet::load_as(Target::Gpu(ctx), &model, *precision)?,
                Device::Cpu => Unet::on_host(&model)?,
            };
            Ok((model, unet))
        }

        /// The GPU's convolution kernels for a batch of `n` (the CPU executor has one way).
        fn kernels(&self, unet: &Unet, n: usize, choice: KernelChoice) -> Result<ddpm_web::gpu::kernel::KernelFamily> {
            match self {
                Device::Gpu(ctx, _) => Ok(pollster::block_on(unet.kernels(ctx, n, choice))?),
                Device::Cpu => Ok(ddpm_web::gpu::kernel::KernelFamily::Blocked),
            }
        }

        fn sampler(&self, unet: &Unet, schedule: &ddpm_web::Schedule, scheduler: &ddpm_web::SchedulerConfig, opts: SamplerOptions) -> Result<Run<'_>> {
            Ok(match self {
                Device::Gpu(ctx, _) => Run::Gpu(ctx, Sampler::new(ctx, unet, schedule, scheduler, opts)?),
                Device::Cpu => Run::Cpu(HostSampler::new(unet, schedule, scheduler, opts)?),
            })
        }

        fn run(&self, unet: &Unet, schedule: &ddpm_web::Schedule, program: Program, opts: SamplerOptions) -> Result<Run<'_>> {
            Ok(match self {
                Device::Gpu(ctx, _) => Run::Gpu(ctx, Sampler::with_program(ctx, unet, schedule, program, opts)?),
                Device::Cpu => Run::Cpu(HostSampler::with_program(unet, schedule, program, opts)?),
            })
        }
    }

    /// A sampler's run on either device, with the calls the commands make (one per command).
    #[allow(clippy::large_enum_variant)]
    enum Run<'a> {
        Gpu(&'a GpuContext, Sampler),
        Cpu(HostSampler),
    }

    impl Run<'_> {
        fn batch(&self) -> Batch {
            match self {
                Run::Gpu(_, s) => s.batch(),
                Run::Cpu(s) => s.batch(),
            }
        }

        fn program(&self) -> &Program {
            match self {
                Run::Gpu(_, s) => s.program(),
                Run::Cpu(s) => s.program(),
            }
        }

        fn passes(&self) -> usize {
            self.program().passes.len()
        }

        fn method_name(&self) -> &'static str {
            match self {
                Run::Gpu(_, s) => s.options().method.kind().name(),
                Run::Cpu(s) => s.options().method.kind().name(),
            }
        }

        fn device_name(&self) -> String {
            match self {
                Run::Gpu(ctx, _) => ctx.adapter_name(),
                Run::Cpu(_) => "the CPU executor".into(),
            }
        }

        fn is_done(&self) -> bool {
            match self {
                Run::Gpu(_, s) => s.is_done(),
                Run::Cpu(s) => s.is_done(),
            }
        }

        fn set_known(&mut self, image: &[f32], mask: &[f32]) -> Result<()> {
            match self {
                Run::Gpu(ctx, s) => s.set_known(ctx, image, mask)?,
                Run::Cpu(s) => s.set_known(image, mask)?,
            }
            Ok(())
        }

        fn set_low(&mut self, low: &[f32]) -> Result<()> {
            match self {
                Run::Gpu(ctx, s) => s.set_low(ctx, low)?,
                Run::Cpu(s) => s.set_low(low)?,
            }
            Ok(())
        }

        fn first_frame(&mut self, init: Init) -> Result<ddpm_web::Frame> {
            Ok(match self {
                Run::Gpu(ctx, s) => pollster::block_on(s.first_frame(ctx, init))?,
                Run::Cpu(s) => s.first_frame(init)?,
            })
        }

        fn step(&mut self) -> Result<ddpm_web::Frame> {
            Ok(match self {
                Run::Gpu(ctx, s) => pollster::block_on(s.step(ctx))?,
                Run::Cpu(s) => s.step()?,
            })
        }

        /// x_t after the last frame (the GPU's prefetch runs nothing past the last pass).
        fn read_x(&self) -> Result<Vec<f32>> {
            Ok(match self {
                Run::Gpu(ctx, s) => pollster::block_on(s.read_x(ctx))?,
                Run::Cpu(s) => s.x().to_vec(),
            })
        }
    }

    fn check_input(unet: &Unet, shape: &[usize]) -> Result<()> {
        let (c, h, w) = unet.image_shape();
        if shape.len() != 4 || shape[1..] != [c, h, w] || shape[0] == 0 {
            bail!("the input has shape {shape:?}, but the model takes [N, {c}, {h}, {w}]");
        }
        Ok(())
    }

    fn check_t(model: &Model, t: usize) -> Result<()> {
        let total = model.schedule().len();
        if t >= total {
            bail!("timestep {t} is outside the schedule (0..{})", total - 1);
        }
        Ok(())
    }

    fn read_npy(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
        let file = File::open(path).with_context(|| format!("reading {}", path.display()))?;
        let npy = npyz::NpyFile::new(std::io::BufReader::new(file)).with_context(|| format!("{} is not a .npy file", path.display()))?;
        let shape = npy.shape().iter().map(|&d| d as usize).collect();
        let data = npy.into_vec::<f32>().with_context(|| format!("{}: expected float32 values", path.display()))?;
        Ok((shape, data))
    }

    fn write_npy(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        let mut w = npyz::WriteOptions::new().default_dtype().shape(&shape).writer(BufWriter::new(file)).begin_nd()?;
        w.extend(data.iter().copied())?;
        w.finish()?;
        Ok(())
    }

    fn save_grid(path: &Path, frame: &[u8], batch: Batch) -> Result<()> {
        save_grid_cols(path, frame, batch, default_cols(batch.n))
    }

    /// The batch as a PNG grid of `cols` columns (one row: an interpolation strip).
    fn save_grid_cols(path: &Path, frame: &[u8], batch: Batch, cols: usize) -> Result<()> {
        let (w, h, rgba) = grid_rgba(frame, batch, cols, 2);
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut enc = png::Encoder::new(BufWriter::new(file), w as u32, h as u32);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        enc.write_header()?.write_image_data(&rgba)?;
        Ok(())
    }

    fn save_trajectory(dir: Option<&Path>, frame: &ddpm_web::Frame, batch: Batch, every: usize, steps: usize) -> Result<()> {
        let Some(dir) = dir else { return Ok(()) };
        if frame.index % every.max(1) != 0 && frame.index != steps {
            return Ok(());
        }
        save_grid(&dir.join(format!("x_t{:04}.png", frame.t)), &frame.x, batch)?;
        if frame.index > 0 {
            save_grid(&dir.join(format!("x0_t{:04}.png", frame.t)), &frame.x0, batch)?;
        }
        Ok(())
    }
}
