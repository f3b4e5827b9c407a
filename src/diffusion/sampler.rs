//! A sampler's run on the GPU: x_T, then for each pass of its [`Program`] ε_θ and the update, x_t never
//! leaving the GPU. After every pass the kernel in `frames.wgsl` packs x_t and x̂_0 into bytes, which are
//! copied to a staging buffer and read back while the GPU already runs the next pass (two staging buffers in
//! turn), so the page's Timestep slider has every step without the read-back stalling the GPU.
//!
//! The GPU work is a few plans over buffers the run owns: the network (x, t → ε), one plan per kind of update
//! the program uses (affine, Heun's two stages, Langevin), the frame packing, and the start (x_T drawn, or an
//! image noised). Each pass writes the timestep and its update's coefficients into uniform buffers, then
//! encodes network, update and packing in one command buffer.

use crate::diffusion::samplers::{Method, Pass, Program, Update, INIT_KEY};
use crate::diffusion::schedule::{Schedule, SchedulerConfig, StepCoeffs};
use crate::error::{Error, Result};
use crate::gpu::context::{map_read, GpuContext};
use crate::gpu::graph::Graph;
use crate::gpu::kernel::KernelFamily;
use crate::gpu::kernels::frames::{pack, words};
use crate::gpu::kernels::langevin::{self, langevin};
use crate::gpu::kernels::update::{
    self, add_noise, affine, heun_correct, heun_predict, params_buffer, replace_known, uniform_buffer, HeunState, Known, NoiseSource, StepIo,
};
use crate::gpu::plan::Plan;
use crate::gpu::tensor::Tensor;
use crate::image::Batch;
use crate::model::unet::Unet;

/// Philox step key of the noise an image is noised with before SDEdit (x_T's is [`INIT_KEY`]).
pub const IMAGE_NOISE_KEY: u32 = u32::MAX - 1;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplerOptions {
    /// Images in the batch.
    pub n: usize,
    pub seed: u64,
    /// Noise levels visited: T for the paper's chain, fewer for a respaced one (`set_timesteps(K)`).
    pub steps: usize,
    pub method: Method,
    /// The convolution kernels of the pass (resolve `KernelChoice::Auto` with `Unet::kernels` first).
    pub kernels: KernelFamily,
    /// Start from an image noised to this timestep (SDEdit) instead of from pure noise; see [`Init::Image`].
    pub start_t: Option<usize>,
    /// Every image of the batch gets the same noise (each image's Philox counter restarts at 0): an
    /// interpolation strip's members then differ only by their start.
    pub shared_noise: bool,
}

impl SamplerOptions {
    /// The run these options ask for: the method's program over `steps` levels, from `start_t` when given.
    /// Both samplers (GPU and CPU) start from it.
    pub fn program(&self, schedule: &Schedule, scheduler: &SchedulerConfig) -> Result<Program> {
        if self.n == 0 {
            return Err(Error::InputShape { expected: "at least one image".into(), found: vec![0] });
        }
        let program = self.method.program(schedule, scheduler, self.steps)?;
        match self.start_t {
            Some(t) if t >= schedule.len() => Err(Error::Timestep { t, steps: schedule.len() }),
            Some(t) => program.from_level(schedule, t as f64),
            None => Ok(program),
        }
    }
}

/// What x_T is.
#[derive(Debug, Clone, Copy)]
pub enum Init<'a> {
    /// Philox noise from the seed (times the program's `init_scale`).
    Philox,
    /// A given standard normal draw z of the batch's shape (times `init_scale`): diffusers' pipelines with
    /// these latents give the same images.
    Noise(&'a [f32]),
    /// Images x_0 in the model's range, noised to the run's start level: √ᾱ x_0 + √(1−ᾱ) z, z given or drawn.
    Image { x0: &'a [f32], z: Option<&'a [f32]> },
    /// These values exactly (a program that starts from clean images, as DDIM inversion).
    Exact(&'a [f32]),
}

/// The batch at one point of the chain, in bytes (model range [−1, 1] ↦ 0..255, NCHW).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Frame {
    /// 0 for x_T, k after k passes.
    pub index: usize,
    /// The paper's t of `x` (rounded where the level is fractional): T for x_T down to 0 for the final images.
    pub t: usize,
    /// The network timestep of the pass that produced this frame; None for x_T.
    pub t_model: Option<f32>,
    pub x: Vec<u8>,
    /// x̂_0 predicted at that pass; mid-grey for x_T.
    pub x0: Vec<u8>,
}

/// The paper's t of a noise level (diffusers' index + 1; the clean image is 0).
pub fn paper_t(level: f64) -> usize {
    (level + 1.0).round().max(0.0) as usize
}

/// The update plans a program needs, each compiled once over the run's buffers.
struct UpdatePlans {
    affine: Option<Plan>,
    heun_predict: Option<Plan>,
    heun_correct: Option<Plan>,
    langevin: Option<Plan>,
    renoise: Option<Plan>,
}

/// Guidance after every pass toward a source noised to the pass's level: inpainting's known region, or
/// super-resolution's low-pass (ILVR).
struct Guide {
    kind: GuideKind,
    plan: Plan,
    params: wgpu::Buffer,
    /// The source and mask buffers, kept for `gpu_bytes`.
    bytes: u64,
    /// These buffers in the engine's tally (`gpu::live`).
    _live: crate::gpu::live::Live,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum GuideKind {
    Known,
    /// The low-resolution source's length (the kernel's invocations).
    Low { len: usize },
}

/// Philox keys of the known region's noise: the pass's key with the top bit set (pass keys stay below it).
const KNOWN_KEY_BIT: u32 = 0x8000_0000;

pub struct Sampler {
    opts: SamplerOptions,
    batch: Batch,
    program: Program,
    /// For ᾱ at a pass's level (inpainting's replacement).
    schedule: Schedule,
    guide: Option<Guide>,
    /// x_t [N, C, H, W], the timesteps [N], x̂_0, ε: owned here and bound into every plan.
    x: Tensor,
    t: Tensor,
    own_bytes: u64,
    unet_plan: Plan,
    updates: UpdatePlans,
    pack_plan: Plan,
    update_params: wgpu::Buffer,
    langevin_params: wgpu::Buffer,
    frame: wgpu::Buffer,
    staging: [wgpu::Buffer; 2],
    /// Passes submitted to the GPU, and frames handed out (frame 0 is x_T).
    submitted: usize,
    returned: usize,
    /// Submit pass k+1 before reading frame k (default); off, x_t on the GPU is exactly the last frame's.
    prefetch: bool,
    /// This run's buffers in the engine's tally (`gpu::live`).
    _live: crate::gpu::live::Live,
}

impl Sampler {
    pub fn new(ctx: &GpuContext, unet: &Unet, schedule: &Schedule, scheduler: &SchedulerConfig, opts: SamplerOptions) -> Result<Self> {
        let program = opts.program(schedule, scheduler)?;
        Self::with_program(ctx, unet, schedule, program, opts)
    }

    /// A run of any program (DDIM inversion's, RePaint's) over `opts.n` images.
    pub fn with_program(ctx: &GpuContext, unet: &Unet, schedule: &Schedule, program: Program, opts: SamplerOptions) -> Result<Self> {
        let (c, h, w) = unet.sampling_shape()?;
        unet.check_batch(ctx, opts.n)?;
        let batch = Batch { n: opts.n, c, h, w };
        let len = batch.len();
        let shape = [opts.n, c, h, w];
        let x = Tensor::zeros(ctx, "x_t", &shape);
        let t = Tensor::zeros(ctx, "t", &[opts.n]);
        let eps = Tensor::zeros(ctx, "eps", &shape);
        let x0 = Tensor::zeros(ctx, "x0_pred", &shape);
        let frame = Tensor::zeros(ctx, "frame", &[2 * words(len)]);
        let update_params = params_buffer(ctx);
        let langevin_params = uniform_buffer(ctx, "langevin params", std::mem::size_of::<langevin::Params>());

        let mut g = Graph::new();
        let (xg, tg, eg) = (g.bound("x_t", &x), g.bound("t", &t), g.bound("eps", &eps));
        unet.record(ctx, &mut g, xg, tg, eg, opts.kernels)?;
        let unet_plan = Plan::compile(ctx, &g)?;

        let uses = |f: fn(&Update) -> bool| program.passes.iter().any(|p| f(&p.update));
        let heun = uses(|u| matches!(u, Update::HeunPredict(_) | Update::HeunCorrect(_)));
        let state = heun.then(|| (Tensor::zeros(ctx, "heun saved", &shape), Tensor::zeros(ctx, "heun deriv", &shape)));
        let plan_of = |record: &dyn Fn(&mut Graph, StepIo, Option<HeunState>)| -> Result<Plan> {
            let mut g = Graph::new();
            let io = StepIo { eps: g.bound("eps", &eps), x: g.bound("x_t", &x), x0: g.bound("x0_pred", &x0) };
            let st = state.as_ref().map(|(s, d)| HeunState { saved: g.bound("heun saved", s), deriv: g.bound("heun deriv", d) });
            record(&mut g, io, st);
            Plan::compile(ctx, &g)
        };
        let updates = UpdatePlans {
            affine: uses(|u| matches!(u, Update::Affine(_)))
                .then(|| plan_of(&|g, io, _| affine(g, &update_params, io, NoiseSource::Philox)))
                .transpose()?,
            heun_predict: heun.then(|| plan_of(&|g, io, st| heun_predict(g, &update_params, io, st.unwrap()))).transpose()?,
            heun_correct: heun.then(|| plan_of(&|g, io, st| heun_correct(g, &update_params, io, st.unwrap()))).transpose()?,
            langevin: uses(|u| matches!(u, Update::Langevin(_)))
                .then(|| plan_of(&|g, io, _| langevin(g, &langevin_params, io, NoiseSource::Philox, opts.n)))
                .transpose()?,
            renoise: uses(|u| matches!(u, Update::Renoise(_)))
                .then(|| plan_of(&|g, io, _| add_noise(g, &update_params, io.x, NoiseSource::Philox)))
                .transpose()?,
        };

        let mut g = Graph::new();
        let (xg, x0g, frame_g) = (g.bound("x_t", &x), g.bound("x0_pred", &x0), g.bound("frame", &frame));
        pack(&mut g, xg, frame_g, 0);
        pack(&mut g, x0g, frame_g, words(len));
        let pack_plan = Plan::compile(ctx, &g)?;

        let frame_bytes = frame.bytes();
        let staging = [0, 1].map(|_| {
            ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("frame staging"),
                size: frame_bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        let state_bytes = state.as_ref().map_or(0, |(s, d)| s.bytes() + d.bytes());
        let own_bytes = x.bytes() + t.bytes() + eps.bytes() + x0.bytes() + state_bytes + 3 * frame_bytes;
        // x_t, t, ε, x̂_0, the frame, its two staging copies, the two params buffers, Heun's state if any.
        let own_count = 9 + if state.is_some() { 2 } else { 0 };
        let plans = [Some(&unet_plan), Some(&pack_plan), updates.affine.as_ref(), updates.heun_predict.as_ref(), updates.heun_correct.as_ref(), updates.langevin.as_ref()];
        let (plan_count, plan_bytes) = plans.iter().flatten().map(|p| p.owned_buffers()).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        let _live = crate::gpu::live::Live::new(own_count + plan_count, own_bytes + update_params.size() + langevin_params.size() + plan_bytes);
        Ok(Self {
            opts,
            batch,
            program,
            schedule: schedule.clone(),
            guide: None,
            x,
            t,
            own_bytes,
            unet_plan,
            updates,
            pack_plan,
            update_params,
            langevin_params,
            frame: frame.buffer,
            staging,
            submitted: 0,
            returned: 0,
            prefetch: true,
            _live,
        })
    }

    pub fn batch(&self) -> Batch {
        self.batch
    }

    pub fn options(&self) -> SamplerOptions {
        self.opts
    }

    /// Bytes of GPU memory this run holds: its plans' buffers (activation pool, params) and the run's own
    /// (x_t, t, ε, x̂_0, Heun's state, the frame and its two staging copies). Fixed when the sampler is made:
    /// steps allocate nothing.
    pub fn gpu_bytes(&self) -> u64 {
        let u = &self.updates;
        let plans = [
            Some(&self.unet_plan),
            Some(&self.pack_plan),
            u.affine.as_ref(),
            u.heun_predict.as_ref(),
            u.heun_correct.as_ref(),
            u.langevin.as_ref(),
            u.renoise.as_ref(),
            self.guide.as_ref().map(|i| &i.plan),
        ];
        let known = self.guide.as_ref().map_or(0, |i| i.bytes);
        self.own_bytes + known + plans.iter().flatten().map(|p| p.owned_buffers().1).sum::<u64>()
    }

    pub fn program(&self) -> &Program {
        &self.program
    }

    /// The run's passes (network evaluations), first first.
    pub fn passes(&self) -> &[Pass] {
        &self.program.passes
    }

    /// Passes whose frames have been handed out.
    pub fn steps_done(&self) -> usize {
        self.returned.saturating_sub(1)
    }

    pub fn is_done(&self) -> bool {
        self.returned == self.program.passes.len() + 1
    }

    /// Passes submitted to the GPU so far (`step` keeps one ahead of the frames handed out, until the last).
    pub fn passes_submitted(&self) -> usize {
        self.submitted
    }

    /// The paper's t of x after `k` passes (T for x_T).
    fn frame_t(&self, k: usize) -> usize {
        if k == 0 {
            paper_t(self.program.start_level)
        } else {
            paper_t(self.program.passes[k - 1].level_after)
        }
    }

    /// Makes this run an inpainting (before `first_frame`): `image` (the batch's shape, model range) is kept
    /// where `mask` is 1 and generated where it is 0. After every pass, and at the start, the known region is
    /// set to the source noised to x's level ("replacement"); at the end it is the source bit for bit.
    pub fn set_known(&mut self, ctx: &GpuContext, image: &[f32], mask: &[f32]) -> Result<()> {
        let len = self.batch.len();
        if image.len() != len || mask.len() != len {
            return Err(Error::InputShape { expected: format!("an image and a mask of {len} values each"), found: vec![image.len(), mask.len()] });
        }
        if self.submitted + self.returned != 0 {
            return Err(Error::Gpu("internal: set_known before first_frame".into()));
        }
        let shape = [self.batch.n, self.batch.c, self.batch.h, self.batch.w];
        let (img, msk) = (Tensor::upload(ctx, "known image", &shape, image), Tensor::upload(ctx, "known mask", &shape, mask));
        let params = params_buffer(ctx);
        let mut g = Graph::new();
        let xg = g.bound("x_t", &self.x);
        let known = Known { image: g.bound("known image", &img), mask: g.bound("known mask", &msk) };
        replace_known(&mut g, &params, xg, known, NoiseSource::Philox);
        let plan = Plan::compile(ctx, &g)?;
        let (count, plan_bytes) = plan.owned_buffers();
        let bytes = img.bytes() + msk.bytes();
        let _live = crate::gpu::live::Live::new(count + 3, bytes + params.size() + plan_bytes);
        self.guide = Some(Guide { kind: GuideKind::Known, plan, params, bytes, _live });
        Ok(())
    }

    /// Makes this run a super-resolution (before `first_frame`), ILVR's way (Choi et al. 2021): `low` is the
    /// batch at half the width and height (model range); after every pass, and at the start, each 2x2 block's
    /// mean is set to `low` noised to x's level. At the end the 2x2 average of the result is `low`.
    pub fn set_low(&mut self, ctx: &GpuContext, low: &[f32]) -> Result<()> {
        let (n, c, h, w) = (self.batch.n, self.batch.c, self.batch.h, self.batch.w);
        if h % 2 != 0 || w % 2 != 0 {
            return Err(Error::InputShape { expected: "an image with even sides for 2x upscaling".into(), found: vec![h, w] });
        }
        let len = n * c * (h / 2) * (w / 2);
        if low.len() != len {
            return Err(Error::InputShape { expected: format!("a low-resolution batch of {len} values ([{n}, {c}, {}, {}])", h / 2, w / 2), found: vec![low.len()] });
        }
        if self.submitted + self.returned != 0 {
            return Err(Error::Gpu("internal: set_low before first_frame".into()));
        }
        let t = Tensor::upload(ctx, "low", &[n, c, h / 2, w / 2], low);
        let params = params_buffer(ctx);
        let mut g = Graph::new();
        let (xg, lg) = (g.bound("x_t", &self.x), g.bound("low", &t));
        update::project_low(&mut g, &params, xg, lg);
        let plan = Plan::compile(ctx, &g)?;
        let (count, plan_bytes) = plan.owned_buffers();
        let _live = crate::gpu::live::Live::new(count + 2, t.bytes() + params.size() + plan_bytes);
        self.guide = Some(Guide { kind: GuideKind::Low { len }, plan, params, bytes: t.bytes(), _live });
        Ok(())
    }

    /// The update kernel's params for this run: its seed, and its noise shared by the batch or not.
    fn update_params(&self, coeffs: StepCoeffs, key: u32) -> update::Params {
        let params = update::Params::new(coeffs, self.opts.seed, key, self.batch.len());
        if self.opts.shared_noise {
            params.with_period(self.batch.len() / self.batch.n)
        } else {
            params
        }
    }

    /// Encodes the guidance at `level` (keyed by `key`): inpainting's replacement or ILVR's projection.
    fn encode_known(&self, ctx: &GpuContext, enc: &mut wgpu::CommandEncoder, level: f64, key: u32) {
        let Some(guide) = &self.guide else { return };
        let ab = Program::alpha_bar_at(&self.schedule, level);
        let coeffs = StepCoeffs::noise(ab.sqrt(), (1.0 - ab).max(0.0).sqrt());
        let params = match guide.kind {
            GuideKind::Known => self.update_params(coeffs, key | KNOWN_KEY_BIT),
            GuideKind::Low { len } => update::Params {
                width: self.batch.w as u32,
                height: self.batch.h as u32,
                ..update::Params::new(coeffs, self.opts.seed, key | KNOWN_KEY_BIT, len)
            },
        };
        ctx.queue.write_buffer(&guide.params, 0, bytemuck::bytes_of(&params));
        guide.plan.encode(ctx, enc);
    }

    /// Puts x_T on the GPU (drawn, given, or an image noised) and returns it as frame 0. Must be the first call.
    pub async fn first_frame(&mut self, ctx: &GpuContext, init: Init<'_>) -> Result<Frame> {
        if self.submitted + self.returned != 0 {
            return Err(Error::Gpu("internal: first_frame starts the run".into()));
        }
        let len = self.batch.len();
        let check = |v: &[f32], what: &str| {
            if v.len() == len {
                Ok(())
            } else {
                Err(Error::InputShape { expected: format!("{what} of {len} values ({} images)", self.batch.n), found: vec![v.len()] })
            }
        };
        let image_start = self.opts.start_t.is_some();
        if let Init::Exact(x) = init {
            check(x, "x")?;
            self.x.write(ctx, x);
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            self.pack_plan.encode(ctx, &mut enc);
            self.copy_frame(&mut enc, 0);
            ctx.queue.submit([enc.finish()]);
            let mut f = self.read_frame(ctx, 0).await?;
            f.x0.fill(128);
            return Ok(f);
        }
        let (coeffs, z) = match init {
            Init::Philox if !image_start => (StepCoeffs::noise(0.0, self.program.init_scale), None),
            Init::Noise(z) if !image_start => (StepCoeffs::noise(0.0, self.program.init_scale), Some(z)),
            Init::Image { x0, z } if image_start => {
                check(x0, "x_0")?;
                self.x.write(ctx, x0);
                let ab = self.program.start_alpha_bar;
                (StepCoeffs::noise(ab.sqrt(), (1.0 - ab).sqrt()), z)
            }
            _ => return Err(Error::Gpu("internal: an image start needs start_t, and start_t an image".into())),
        };
        let key = if image_start { IMAGE_NOISE_KEY } else { INIT_KEY };
        let params = self.update_params(coeffs, key);
        ctx.queue.write_buffer(&self.update_params, 0, bytemuck::bytes_of(&params));
        let mut g = Graph::new();
        let xg = g.bound("x_t", &self.x);
        let noise = match z {
            Some(z) => {
                check(z, "z")?;
                NoiseSource::Given(g.bound("z", &Tensor::upload(ctx, "z", &[len], z)))
            }
            None => NoiseSource::Philox,
        };
        add_noise(&mut g, &self.update_params, xg, noise);
        let start = Plan::compile(ctx, &g)?;
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        start.encode(ctx, &mut enc);
        self.encode_known(ctx, &mut enc, self.program.start_level, INIT_KEY);
        self.pack_plan.encode(ctx, &mut enc);
        self.copy_frame(&mut enc, 0);
        ctx.queue.submit([enc.finish()]);
        let mut f = self.read_frame(ctx, 0).await?;
        f.x0.fill(128);
        Ok(f)
    }

    /// Runs pass k (submitting pass k+1 too, so the GPU keeps busy while frame k is read back) and returns
    /// the frame after it.
    pub async fn step(&mut self, ctx: &GpuContext) -> Result<Frame> {
        if self.returned == 0 {
            return Err(Error::Gpu("internal: call first_frame before step".into()));
        }
        if self.is_done() {
            return Err(Error::Timestep { t: self.returned, steps: self.program.passes.len() });
        }
        ctx.check()?;
        let k = self.returned - 1;
        let ahead = if self.prefetch { 2 } else { 1 };
        while self.submitted < (k + ahead).min(self.program.passes.len()) {
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
        let pass = self.program.passes[k];
        // These writes land before this submit's commands run and after the previous submit's (queue order).
        self.t.write(ctx, &vec![pass.t_model; self.batch.n]);
        let (c, h, w) = (self.batch.c, self.batch.h, self.batch.w);
        let plan = match pass.update {
            Update::Affine(c) | Update::HeunPredict(c) | Update::HeunCorrect(c) => {
                let params = self.update_params(c, pass.key);
                ctx.queue.write_buffer(&self.update_params, 0, bytemuck::bytes_of(&params));
                match pass.update {
                    Update::Affine(_) => &self.updates.affine,
                    Update::HeunPredict(_) => &self.updates.heun_predict,
                    _ => &self.updates.heun_correct,
                }
            }
            Update::Langevin(lc) => {
                let mut params = langevin::Params::new(lc, self.opts.seed, pass.key, self.batch.n, c * h * w);
                if self.opts.shared_noise {
                    params = params.shared();
                }
                ctx.queue.write_buffer(&self.langevin_params, 0, bytemuck::bytes_of(&params));
                &self.updates.langevin
            }
            Update::Renoise(c) => {
                let params = self.update_params(c, pass.key);
                ctx.queue.write_buffer(&self.update_params, 0, bytemuck::bytes_of(&params));
                &self.updates.renoise
            }
        };
        let plan = plan.as_ref().ok_or_else(|| Error::Gpu("internal: no plan for this update".into()))?;
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        // A jump back up the chain needs no ε.
        if !matches!(pass.update, Update::Renoise(_)) {
            self.unet_plan.encode(ctx, &mut enc);
        }
        plan.encode(ctx, &mut enc);
        self.encode_known(ctx, &mut enc, pass.level_after, pass.key);
        self.pack_plan.encode(ctx, &mut enc);
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
        let t_model = index.checked_sub(1).map(|k| self.program.passes[k].t_model);
        Ok(Frame { index, t: self.frame_t(index), t_model, x, x0 })
    }
}

/// One pass with the given noise z (the `ddpm step` command and the golden tests): ε_θ(x, pass.t_model) then
/// its update. Returns (x', x̂_0) as f32. Heun's stages need the run's state and are not single steps.
pub async fn single_pass(ctx: &GpuContext, unet: &Unet, x: &[f32], pass: &Pass, z: &[f32], kernels: KernelFamily) -> Result<(Vec<f32>, Vec<f32>)> {
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
    let mut g = Graph::new();
    let xg = g.bound("x_t", &Tensor::upload(ctx, "x_t", &[n, c, h, w], x));
    let tg = g.bound("t", &Tensor::upload(ctx, "t", &[n], &vec![pass.t_model; n]));
    let zg = g.bound("z", &Tensor::upload(ctx, "z", &[x.len()], z));
    let x0 = g.kept("x0_pred", &[n, c, h, w]);
    let eps = g.activation("eps", &[n, unet.config.out_channels, h, w]);
    unet.record(ctx, &mut g, xg, tg, eps, kernels)?;
    let io = StepIo { eps, x: xg, x0 };
    let params = match pass.update {
        Update::Affine(coeffs) => {
            let buf = params_buffer(ctx);
            ctx.queue.write_buffer(&buf, 0, bytemuck::bytes_of(&update::Params::new(coeffs, 0, pass.key, x.len())));
            affine(&mut g, &buf, io, NoiseSource::Given(zg));
            buf
        }
        Update::Langevin(lc) => {
            let buf = uniform_buffer(ctx, "langevin params", std::mem::size_of::<langevin::Params>());
            ctx.queue.write_buffer(&buf, 0, bytemuck::bytes_of(&langevin::Params::new(lc, 0, pass.key, n, per)));
            langevin(&mut g, &buf, io, NoiseSource::Given(zg), n);
            buf
        }
        Update::HeunPredict(_) | Update::HeunCorrect(_) | Update::Renoise(_) => {
            return Err(Error::SamplerSetting { setting: "sampler", value: "heun".into(), hint: "Heun's stages are not single steps; run `sample`".into() })
        }
    };
    let plan = Plan::compile(ctx, &g)?;
    plan.run(ctx);
    drop(params);
    ctx.check()?;
    Ok((plan.tensor(xg).read(ctx).await?, plan.tensor(x0).read(ctx).await?))
}
