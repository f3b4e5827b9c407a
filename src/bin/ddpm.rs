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
    use ddpm_web::diffusion::sampler::single_step;
    use ddpm_web::image::{default_cols, grid_rgba, Batch};
    use ddpm_web::gpu::kernel::KernelChoice;
    use ddpm_web::{GpuContext, Model, Sampler, SamplerOptions, Unet, Variance};
    use npyz::WriterBuilder;

    #[derive(Parser)]
    #[command(name = "ddpm", version, about = "DDPM (Ho et al. 2020) on the GPU through wgpu: ε_θ, one Algorithm 2 step, or a whole run")]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Args)]
    struct KernelArg {
        /// Kernel family: `blocked` (CPU adapters), `tiled` (workgroup-memory implicit GEMM convolutions, for
        /// GPUs), `fused` (tiled, plus one-kernel attention), or `auto` (time each on this adapter, keep the fastest).
        #[arg(long, default_value = "blocked")]
        kernels: KernelChoice,
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
        /// One Algorithm 2 update x_t → x_{t−1} with the given noise z.
        Step {
            #[command(flatten)]
            model: ModelArg,
            #[arg(long)]
            x: PathBuf,
            #[arg(long)]
            t: usize,
            /// Noise, .npy f32 of x's shape (unused at t = 0).
            #[arg(long)]
            z: PathBuf,
            /// small: σ² = β̃_t; large: σ² = β_t.
            #[arg(long, default_value = "small")]
            variance: Variance,
            /// Clip x̂_0 to [−1, 1] and use the posterior mean (the official code) instead of the paper's update.
            #[arg(long)]
            clip: bool,
            #[arg(long)]
            out: PathBuf,
            /// Also write x̂_0.
            #[arg(long)]
            x0_out: Option<PathBuf>,
            #[command(flatten)]
            kernels: KernelArg,
        },
        /// A whole run from noise, saved as a PNG grid.
        Sample {
            #[command(flatten)]
            model: ModelArg,
            #[arg(long, default_value_t = 16)]
            n: usize,
            #[arg(long, default_value_t = 0)]
            seed: u64,
            /// Updates: T (the paper) or fewer through a respaced schedule.
            #[arg(long)]
            steps: Option<usize>,
            #[arg(long, default_value = "small")]
            variance: Variance,
            #[arg(long)]
            clip: bool,
            #[arg(long)]
            out: PathBuf,
            /// Also save x_t and x̂_0 grids every `--every` steps into this folder.
            #[arg(long)]
            trajectory: Option<PathBuf>,
            #[arg(long, default_value_t = 100)]
            every: usize,
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
        let ctx = pollster::block_on(GpuContext::new())?;
        match cli.command {
            Command::Eps { model, x, t, out, kernels } => {
                let (model, unet) = load(&ctx, &model.model)?;
                let (shape, xv) = read_npy(&x)?;
                check_input(&unet, &shape)?;
                check_t(&model, t)?;
                let kernels = pollster::block_on(unet.kernels(&ctx, shape[0], kernels.kernels))?;
                let eps = pollster::block_on(unet.eps(&ctx, &xv, &vec![t; shape[0]], kernels))?;
                write_npy(&out, &[shape[0], unet.config.out_channels, shape[2], shape[3]], &eps)
            }
            Command::Step { model, x, t, z, variance, clip, out, x0_out, kernels } => {
                let (model, unet) = load(&ctx, &model.model)?;
                let (shape, xv) = read_npy(&x)?;
                check_input(&unet, &shape)?;
                check_t(&model, t)?;
                let (zshape, zv) = read_npy(&z)?;
                if zshape != shape {
                    bail!("z has shape {zshape:?} but x has {shape:?}");
                }
                let kernels = pollster::block_on(unet.kernels(&ctx, shape[0], kernels.kernels))?;
                let (next, x0) = pollster::block_on(single_step(&ctx, &unet, &model.schedule(), &xv, t, &zv, variance, clip, kernels))?;
                write_npy(&out, &shape, &next)?;
                if let Some(p) = x0_out {
                    write_npy(&p, &shape, &x0)?;
                }
                Ok(())
            }
            Command::Sample { model, n, seed, steps, variance, clip, out, trajectory, every, kernels } => {
                let (model, unet) = load(&ctx, &model.model)?;
                let schedule = model.schedule();
                let steps = steps.unwrap_or(schedule.len());
                unet.check_batch(&ctx, n)?;
                let kernels = pollster::block_on(unet.kernels(&ctx, n, kernels.kernels))?;
                let mut sampler = Sampler::new(&ctx, &unet, &schedule, SamplerOptions { n, seed, steps, variance, clip, kernels })?;
                let batch = sampler.batch();
                if let Some(dir) = &trajectory {
                    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
                }
                let bar = indicatif::ProgressBar::new(steps as u64);
                bar.set_style(indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} steps  {per_sec}  eta {eta}  t={msg}").unwrap());
                let start = Instant::now();
                let mut frame = pollster::block_on(sampler.first_frame(&ctx))?;
                save_trajectory(trajectory.as_deref(), &frame, batch, every, steps)?;
                while !sampler.is_done() {
                    frame = pollster::block_on(sampler.step(&ctx))?;
                    bar.set_message(frame.t.to_string());
                    bar.inc(1);
                    save_trajectory(trajectory.as_deref(), &frame, batch, every, steps)?;
                }
                bar.finish();
                let secs = start.elapsed().as_secs_f64();
                save_grid(&out, &frame.x, batch)?;
                println!(
                    "{n} images, {steps} steps in {secs:.1} s ({:.2} steps/s, {:.2} GFLOP/s) on {} -> {}",
                    steps as f64 / secs,
                    unet.flops_per_image() as f64 * n as f64 * steps as f64 / secs / 1e9,
                    ctx.adapter_name(),
                    out.display()
                );
                Ok(())
            }
            Command::Bench { model, batch, steps, kernels } => {
                let (model, unet) = load(&ctx, &model.model)?;
                unet.check_batch(&ctx, batch)?;
                let report = pollster::block_on(ddpm_web::bench::bench(&ctx, &unet, &model.schedule(), batch, steps, kernels))?;
                println!("{}", serde_json::to_string(&report)?);
                Ok(())
            }
            Command::Info { model, batch } => {
                let (model, unet) = load(&ctx, &model.model)?;
                let (c, h, w) = unet.image_shape();
                println!("parameters:       {}", unet.parameter_count());
                println!("FLOPs per pass:   {:.3} G per image", unet.flops_per_image() as f64 / 1e9);
                println!("image:            {c}x{h}x{w}");
                println!("timesteps:        {}", model.schedule().len());
                if let Some(p) = &model.config.provenance {
                    println!("trained on:       {}", p.dataset.as_deref().unwrap_or("?"));
                }
                println!("adapter:          {}", ctx.adapter_name());
                println!("largest batch:    {}", unet.max_batch(&ctx));
                let batch = batch.clamp(1, unet.max_batch(&ctx));
                let tuning = pollster::block_on(unet.tune(&ctx, batch))?;
                let times: Vec<String> = tuning.ms.iter().map(|(k, ms)| format!("{} {ms:.1} ms", k.name())).collect();
                let skipped = if tuning.others_skipped { "; too slow an adapter to time the others" } else { "" };
                println!("kernels (auto):   {} at batch {batch} (per pass: {}{skipped})", tuning.chosen.name(), times.join(", "));
                Ok(())
            }
            Command::Noise { model, x, t, z, out } => {
                let model = Model::load_dir(&model.model)?;
                check_t(&model, t)?;
                let (shape, xv) = read_npy(&x)?;
                let (zshape, zv) = read_npy(&z)?;
                if zshape != shape {
                    bail!("z has shape {zshape:?} but x has {shape:?}");
                }
                let noiser = Noiser::new(&ctx, &xv, ForwardNoise::Given(zv))?;
                let xt = pollster::block_on(noiser.x_t(&ctx, model.schedule().alpha_bar(t as isize)))?;
                write_npy(&out, &shape, &xt)
            }
        }
    }

    fn load(ctx: &GpuContext, dir: &Path) -> Result<(Model, Unet)> {
        let model = Model::load_dir(dir)?;
        let unet = Unet::new(ctx, &model)?;
        Ok((model, unet))
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
        let (w, h, rgba) = grid_rgba(frame, batch, default_cols(batch.n), 2);
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
