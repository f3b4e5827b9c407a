//! Algorithm 2 on the GPU: x_T ~ N(0, I); for each kept timestep, ε_θ then the update, x_t never leaving the
//! GPU. After every step the kernel in `frames.wgsl` packs x_t and x̂_0 into bytes, which are copied to a
//! staging buffer and read back while the GPU already runs the next step (two staging buffers in turn), so
//! the page's Timestep slider has every step without the read-back stalling the GPU.

use crate::diffusion::schedule::{Schedule, StepCoeffs, Variance};
use crate::error::{Error, Result};
use crate::gpu::context::{map_read, GpuContext};
use crate::gpu::graph::Graph;
use crate::gpu::kernel::KernelFamily;
use crate::gpu::kernels::frames::{pack, words};
use crate::gpu::kernels::step::{ddpm_step, draw_noise, params_buffer, NoiseSource, Params, StepIo};
use crate::gpu::plan::Plan;
use crate::gpu::tensor::Tensor;
use crate::image::Batch;
use crate::model::unet::Unet;

/// Philox step key of the draw of x_T (the steps use their timestep index).
const INITIAL_KEY: u32 = u32::MAX;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplerOptions {
    /// Images in the batch.
    pub n: usize,
    pub seed: u64,
    /// Updates in the run: T for the paper's chain, fewer for a respaced one.
    pub steps: usize,
    pub variance: Variance,
    /// Clip x̂_0 to [−1, 1] and use the posterior mean (the official code) instead of the paper's update.
    pub clip: bool,
    /// The convolution kernels of the pass (resolve `KernelChoice::Auto` with `Unet::kernels` first).
    pub kernels: KernelFamily,
}

/// The batch at one point of the chain, in bytes (model range [−1, 1] ↦ 0..255, NCHW).
#[derive(Debug, Clone)]
pub struct Frame {
    /// 0 for x_T, k after k updates.
    pub index: usize,
    /// The paper's t of `x`: T for x_T down to 0 for the final images.
    pub t: usize,
    /// The network timestep (diffusers' index) whose update produced this frame; None for x_T.
    pub t_model: Option<usize>,
    pub x: Vec<u8>,
    /// x̂_0 predicted at that update; mid-grey for x_T.
    pub x0: Vec<u8>,
}

pub struct Sampler {
    opts: SamplerOptions,
    batch: Batch,
    schedule: Schedule,
    timesteps: Vec<usize>,
    /// x_t [N, C, H, W] and the timesteps [N], owned here and bound into both plans.
    x: Tensor,
    t: Tensor,
    /// One step: ε_θ, the update, the packing of x_t and x̂_0 into `frame`. Reads `step_params`.
    step_plan: Plan,
    /// x_T ~ N(0, I) and its packing.
    draw_plan: Plan,
    step_params: wgpu::Buffer,
    frame: wgpu::Buffer,
    staging: [wgpu::Buffer; 2],
    /// Updates submitted to the GPU, and frames handed out (frame 0 is x_T).
    submitted: usize,
    returned: usize,
    /// Submit update k+1 before reading frame k (default); off, x_t on the GPU is exactly the last frame's.
    prefetch: bool,
}

impl Sampler {
    pub fn new(ctx: &GpuContext, unet: &Unet, schedule: &Schedule, opts: SamplerOptions) -> Result<Self> {
        if opts.n == 0 {
            return Err(Error::InputShape { expected: "at least one image".into(), found: vec![0] });
        }
        let timesteps = schedule.timesteps(opts.steps)?;
        let (c, h, w) = unet.image_shape();
        if unet.config.out_channels != c {
            return Err(Error::UnsupportedConfig {
                field: "out_channels",
                value: unet.config.out_channels.to_string(),
                hint: format!("sampling needs ε with as many channels as the image ({c})"),
            });
        }
        let batch = Batch { n: opts.n, c, h, w };
        let len = batch.len();
        let x = Tensor::zeros(ctx, "x_t", &[opts.n, c, h, w]);
        let t = Tensor::zeros(ctx, "t", &[opts.n]);
        let x0 = Tensor::zeros(ctx, "x0_pred", &[len]);
        let frame = Tensor::zeros(ctx, "frame", &[2 * words(len)]);
        let step_params = params_buffer(ctx);

        let mut g = Graph::new();
        let (xg, tg, x0g, frame_g) = (g.bound("x_t", &x), g.bound("t", &t), g.bound("x0_pred", &x0), g.bound("frame", &frame));
        let eps = g.activation("eps", &[opts.n, c, h, w]);
        unet.record(ctx, &mut g, xg, tg, eps, opts.kernels)?;
        ddpm_step(&mut g, &step_params, StepIo { eps, x: xg, x0: x0g }, NoiseSource::Philox);
        pack(&mut g, xg, frame_g, 0);
        pack(&mut g, x0g, frame_g, words(len));
        let step_plan = Plan::compile(ctx, &g)?;

        let mut g = Graph::new();
        let (xg, frame_g) = (g.bound("x_t", &x), g.bound("frame", &frame));
        draw_noise(&mut g, &step_params, xg);
        pack(&mut g, xg, frame_g, 0);
        let draw_plan = Plan::compile(ctx, &g)?;

        let frame_bytes = frame.bytes();
        let staging = [0, 1].map(|_| {
            ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("frame staging"),
                size: frame_bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        Ok(Self {
            opts,
            batch,
            schedule: schedule.clone(),
            timesteps,
            x,
            t,
            step_plan,
            draw_plan,
            step_params,
            frame: frame.buffer,
            staging,
            submitted: 0,
            returned: 0,
            prefetch: true,
        })
    }

    pub fn batch(&self) -> Batch {
        self.batch
    }

    /// Bytes of GPU memory this run holds: its plans' buffers (activation pool, params) and the run's own
    /// (x_t, t, x̂_0, the frame and its two staging copies). Fixed when the sampler is made: steps allocate
    /// nothing.
    pub fn gpu_bytes(&self) -> u64 {
        let own = self.x.bytes() + self.t.bytes() + 4 * self.batch.len() as u64 + 3 * self.frame.size();
        own + self.step_plan.owned_buffers().1 + self.draw_plan.owned_buffers().1
    }

    /// The run's network timesteps (diffusers' indices), T−1 first.
    pub fn timesteps(&self) -> &[usize] {
        &self.timesteps
    }

    /// Updates whose frames have been handed out.
    pub fn steps_done(&self) -> usize {
        self.returned.saturating_sub(1)
    }

    pub fn is_done(&self) -> bool {
        self.returned == self.timesteps.len() + 1
    }

    /// The coefficients of update `k` (0-based) of this run.
    pub fn coeffs(&self, k: usize) -> Result<StepCoeffs> {
        let t = self.timesteps[k];
        let prev = self.timesteps.get(k + 1).map_or(-1, |&p| p as isize);
        self.schedule.step_coeffs(t, prev, self.opts.variance, self.opts.clip)
    }

    /// The paper's t of x after `k` updates (T for x_T).
    fn paper_t(&self, k: usize) -> usize {
        if k == 0 {
            self.schedule.len()
        } else {
            self.timesteps.get(k).map_or(0, |&p| p + 1)
        }
    }

    /// Draws x_T ~ N(0, I) on the GPU and returns it as frame 0. Must be the first call.
    pub async fn first_frame(&mut self, ctx: &GpuContext) -> Result<Frame> {
        assert_eq!(self.submitted + self.returned, 0, "first_frame starts the run");
        // Only the seed and key are read; the coefficients are those of a draw (σ = 1).
        let draw = StepCoeffs { x0_x: 0.0, x0_eps: 0.0, mean_x0: 0.0, mean_xt: 0.0, paper_x: 0.0, paper_eps: 0.0, sigma: 1.0, clip: 0 };
        let params = Params::new(draw, self.opts.seed, INITIAL_KEY, self.batch.len());
        ctx.queue.write_buffer(&self.step_params, 0, bytemuck::bytes_of(&params));
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        self.draw_plan.encode(ctx, &mut enc);
        self.copy_frame(&mut enc, 0);
        ctx.queue.submit([enc.finish()]);
        let mut f = self.read_frame(ctx, 0).await?;
        f.x0.fill(128);
        Ok(f)
    }

    /// Runs update k (submitting update k+1 too, so the GPU keeps busy while frame k is read back) and
    /// returns the frame after it.
    pub async fn step(&mut self, ctx: &GpuContext) -> Result<Frame> {
        if self.returned == 0 {
            return Err(Error::Gpu("internal: call first_frame before step".into()));
        }
        if self.is_done() {
            return Err(Error::Timestep { t: self.returned, steps: self.timesteps.len() });
        }
        ctx.check()?;
        let k = self.returned - 1;
        let ahead = if self.prefetch { 2 } else { 1 };
        while self.submitted < (k + ahead).min(self.timesteps.len()) {
            self.submit(ctx, self.submitted)?;
        }
        self.read_frame(ctx, k + 1).await
    }

    /// Turns read-ahead off or on (tests read x_t between steps).
    pub fn set_prefetch(&mut self, on: bool) {
        self.prefetch = on;
    }

    /// x_t as f32 from the GPU: after the last returned frame when prefetch is off.
    pub async fn read_x(&self, ctx: &GpuContext) -> Result<Vec<f32>> {
        self.x.read(ctx).await
    }

    fn submit(&mut self, ctx: &GpuContext, k: usize) -> Result<()> {
        let t = self.timesteps[k];
        let coeffs = self.coeffs(k)?;
        // Both writes land before this submit's commands run and after the previous submit's (queue order).
        self.t.write(ctx, &vec![t as f32; self.batch.n]);
        let params = Params::new(coeffs, self.opts.seed, t as u32, self.batch.len());
        ctx.queue.write_buffer(&self.step_params, 0, bytemuck::bytes_of(&params));
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        self.step_plan.encode(ctx, &mut enc);
        self.copy_frame(&mut enc, k + 1);
        ctx.queue.submit([enc.finish()]);
        self.submitted += 1;
        Ok(())
    }

    fn copy_frame(&self, enc: &mut wgpu::CommandEncoder, index: usize) {
        enc.copy_buffer_to_buffer(&self.frame, 0, &self.staging[index % 2], 0, self.frame.size());
    }

    async fn read_frame(&mut self, ctx: &GpuContext, index: usize) -> Result<Frame> {
        let staging = &self.staging[index % 2];
        map_read(ctx, staging).await?;
        let len = self.batch.len();
        let (x, x0) = {
            let view = staging.slice(..).get_mapped_range().map_err(|e| Error::Gpu(e.to_string()))?;
            (view[..len].to_vec(), view[4 * words(len)..4 * words(len) + len].to_vec())
        };
        staging.unmap();
        self.returned = index + 1;
        Ok(Frame { index, t: self.paper_t(index), t_model: index.checked_sub(1).map(|k| self.timesteps[k]), x, x0 })
    }
}

/// One update from x at network timestep `t` with the given noise z (the `ddpm step` command and the golden
/// tests): returns (x_{t−1}, x̂_0) as f32. The previous timestep is t − 1 (the full chain).
#[allow(clippy::too_many_arguments)]
pub async fn single_step(
    ctx: &GpuContext,
    unet: &Unet,
    schedule: &Schedule,
    x: &[f32],
    t: usize,
    z: &[f32],
    variance: Variance,
    clip: bool,
    kernels: KernelFamily,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let (c, h, w) = unet.image_shape();
    let per = c * h * w;
    if x.is_empty() || x.len() % per != 0 || z.len() != x.len() {
        return Err(Error::InputShape { expected: format!("x and z of N images of {c}x{h}x{w}"), found: vec![x.len(), z.len()] });
    }
    let n = x.len() / per;
    if unet.config.out_channels != c {
        return Err(Error::UnsupportedConfig {
            field: "out_channels",
            value: unet.config.out_channels.to_string(),
            hint: format!("a step needs ε with as many channels as the image ({c})"),
        });
    }
    let coeffs = schedule.step_coeffs(t, t as isize - 1, variance, clip)?;
    let params = params_buffer(ctx);
    ctx.queue.write_buffer(&params, 0, bytemuck::bytes_of(&Params::new(coeffs, 0, t as u32, x.len())));
    let mut g = Graph::new();
    let xg = g.bound("x_t", &Tensor::upload(ctx, "x_t", &[n, c, h, w], x));
    let tg = g.bound("t", &Tensor::upload(ctx, "t", &[n], &vec![t as f32; n]));
    let zg = g.bound("z", &Tensor::upload(ctx, "z", &[x.len()], z));
    let x0 = g.kept("x0_pred", &[n, c, h, w]);
    let eps = g.activation("eps", &[n, unet.config.out_channels, h, w]);
    unet.record(ctx, &mut g, xg, tg, eps, kernels)?;
    ddpm_step(&mut g, &params, StepIo { eps, x: xg, x0 }, NoiseSource::Given(zg));
    let plan = Plan::compile(ctx, &g)?;
    plan.run(ctx);
    ctx.check()?;
    Ok((plan.tensor(xg).read(ctx).await?, plan.tensor(x0).read(ctx).await?))
}
