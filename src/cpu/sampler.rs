//! A sampler's run on the CPU: the same [`Program`] as the GPU's [`crate::Sampler`] (every pass's timestep
//! and update coefficients), ε_θ from the U-Net's graph on the [`HostPlan`], and each update by the plain-Rust
//! twins of `update.wgsl` and `langevin.wgsl` ([`reference_update`], [`reference_langevin`]) with the same
//! Philox noise ([`reference_gaussian`]): one seed gives the same images on either path, to float rounding.

use crate::cpu::EpsPlan;
use crate::diffusion::sampler::{paper_t, Frame, Init, SamplerOptions, IMAGE_NOISE_KEY};
use crate::diffusion::samplers::{Program, Update, INIT_KEY};
use crate::diffusion::schedule::{reference_update, Schedule, SchedulerConfig, StepCoeffs};
use crate::error::{Error, Result};
use crate::gpu::kernels::langevin::reference_langevin;
use crate::gpu::kernels::update::reference_gaussian;
use crate::image::{to_byte, Batch};
use crate::model::unet::Unet;

/// Philox keys of the known region's noise, as the GPU sampler's.
const KNOWN_KEY_BIT: u32 = 0x8000_0000;

enum Guide {
    Known { image: Vec<f32>, mask: Vec<f32> },
    Low(Vec<f32>),
}

pub struct HostSampler {
    opts: SamplerOptions,
    batch: Batch,
    program: Program,
    schedule: Schedule,
    unet: EpsPlan,
    x: Vec<f32>,
    x0: Vec<f32>,
    /// Heun's kept x and derivative.
    saved: Vec<f32>,
    deriv: Vec<f32>,
    /// Guidance after every pass: inpainting's source and mask, or super-resolution's low-resolution batch.
    guide: Option<Guide>,
    /// Index of this batch's first image in a larger batch split between workers: its Philox noise is that
    /// batch's, so a split run gives the images of an unsplit one.
    first_image: usize,
    /// Frames handed out (frame 0 is x_T).
    returned: usize,
}

impl HostSampler {
    pub fn new(unet: &Unet, schedule: &Schedule, scheduler: &SchedulerConfig, opts: SamplerOptions) -> Result<Self> {
        let program = opts.program(schedule, scheduler)?;
        Self::with_program(unet, schedule, program, opts)
    }

    /// A run of any program over `opts.n` images, with `unet` loaded by [`Unet::on_host`].
    pub fn with_program(unet: &Unet, schedule: &Schedule, program: Program, opts: SamplerOptions) -> Result<Self> {
        let (c, h, w) = unet.sampling_shape()?;
        let batch = Batch { n: opts.n, c, h, w };
        let eps = EpsPlan::new(unet, opts.n)?;
        let len = batch.len();
        Ok(Self {
            opts,
            batch,
            program,
            schedule: schedule.clone(),
            unet: eps,
            x: vec![0.0; len],
            x0: vec![0.0; len],
            saved: Vec::new(),
            deriv: Vec::new(),
            guide: None,
            first_image: 0,
            returned: 0,
        })
    }

    pub fn batch(&self) -> Batch {
        self.batch
    }

    pub fn options(&self) -> SamplerOptions {
        self.opts
    }

    pub fn program(&self) -> &Program {
        &self.program
    }

    pub fn is_done(&self) -> bool {
        self.returned == self.program.passes.len() + 1
    }

    /// Passes whose frames have been handed out.
    pub fn steps_done(&self) -> usize {
        self.returned.saturating_sub(1)
    }

    /// x_t after the last frame.
    pub fn x(&self) -> &[f32] {
        &self.x
    }

    /// FLOPs of one network pass over the batch.
    pub fn flops_per_pass(&self) -> u64 {
        self.unet.flops()
    }

    /// Inpainting, as [`crate::Sampler::set_known`]: `image` kept where `mask` is 1.
    pub fn set_known(&mut self, image: &[f32], mask: &[f32]) -> Result<()> {
        let len = self.batch.len();
        if image.len() != len || mask.len() != len {
            return Err(Error::InputShape { expected: format!("an image and a mask of {len} values each"), found: vec![image.len(), mask.len()] });
        }
        self.guide = Some(Guide::Known { image: image.to_vec(), mask: mask.to_vec() });
        Ok(())
    }

    /// Super-resolution, as [`crate::Sampler::set_low`]: every 2x2 block's mean follows `low` (half the side).
    pub fn set_low(&mut self, low: &[f32]) -> Result<()> {
        let Batch { n, c, h, w } = self.batch;
        if h % 2 != 0 || w % 2 != 0 {
            return Err(Error::InputShape { expected: "an image with even sides for 2x upscaling".into(), found: vec![h, w] });
        }
        let len = n * c * (h / 2) * (w / 2);
        if low.len() != len {
            return Err(Error::InputShape { expected: format!("a low-resolution batch of {len} values ([{n}, {c}, {}, {}])", h / 2, w / 2), found: vec![low.len()] });
        }
        self.guide = Some(Guide::Low(low.to_vec()));
        Ok(())
    }

    /// Makes this run images `first_image..` of a larger batch (see the field).
    pub fn starting_at(mut self, first_image: usize) -> Self {
        self.first_image = first_image;
        self
    }

    /// Philox noise z_i of pass `key`, as the shaders draw it (repeating every image when shared); `per` is
    /// the values per image of the tensor drawn for (x, or the low-resolution source).
    fn noise_of(&self, key: u32, per: usize) -> impl Fn(usize) -> f32 {
        let (seed, shared, offset) = (self.opts.seed, self.opts.shared_noise, self.first_image * per);
        move |i| reference_gaussian(seed, key, if shared { i % per } else { i + offset } as u32)
    }

    fn noise(&self, key: u32) -> impl Fn(usize) -> f32 {
        self.noise_of(key, self.batch.image_len())
    }

    /// The guidance at `level`: inpainting's known region set to the source noised there, or each 2x2
    /// block's mean moved to the low-resolution source noised there (`update.wgsl`'s `project`).
    fn guide(&mut self, level: f64, key: u32) {
        let Some(guide) = &self.guide else { return };
        let ab = Program::alpha_bar_at(&self.schedule, level);
        let c = StepCoeffs::noise(ab.sqrt(), (1.0 - ab).max(0.0).sqrt());
        let draw = |z: &dyn Fn(usize) -> f32, i: usize| if c.to_z == 0.0 { 0.0 } else { z(i) };
        match guide {
            Guide::Known { image, mask } => {
                let z = self.noise(key | KNOWN_KEY_BIT);
                for i in 0..self.x.len() {
                    if mask[i] > 0.5 {
                        self.x[i] = c.to_x * image[i] + c.to_z * draw(&z, i);
                    }
                }
            }
            Guide::Low(low) => {
                // The low source's own noise is indexed over its own values (period: all of them).
                let (w, h) = (self.batch.w, self.batch.h);
                let z = {
                    let (seed, key, offset) = (self.opts.seed, key | KNOWN_KEY_BIT, self.first_image * self.batch.c * (h / 2) * (w / 2));
                    move |b: usize| reference_gaussian(seed, key, (b + offset) as u32)
                };
                let (half_w, per_plane) = (w / 2, (w / 2) * (h / 2));
                for (b, &target) in low.iter().enumerate() {
                    let (plane, r) = (b / per_plane, b % per_plane);
                    let base = plane * w * h + (r / half_w) * 2 * w + (r % half_w) * 2;
                    let idx = [base, base + 1, base + w, base + w + 1];
                    let mean = idx.iter().map(|&i| self.x[i]).sum::<f32>() * 0.25;
                    let shift = c.to_x * target + c.to_z * 0.5 * draw(&z, b) - mean;
                    idx.iter().for_each(|&i| self.x[i] += shift);
                }
            }
        }
    }

    fn frame(&mut self, index: usize) -> Frame {
        self.returned = index + 1;
        let t = if index == 0 { paper_t(self.program.start_level) } else { paper_t(self.program.passes[index - 1].level_after) };
        let x0 = if index == 0 { vec![128; self.x.len()] } else { self.x0.iter().map(|&v| to_byte(v)).collect() };
        Frame { index, t, t_model: index.checked_sub(1).map(|k| self.program.passes[k].t_model), x: self.x.iter().map(|&v| to_byte(v)).collect(), x0 }
    }

    /// x_T (drawn, given, or an image noised) as frame 0. Must be the first call.
    pub fn first_frame(&mut self, init: Init<'_>) -> Result<Frame> {
        if self.returned != 0 {
            return Err(Error::Cpu("internal: first_frame starts the run".into()));
        }
        let len = self.batch.len();
        let n = self.batch.n;
        let check = |v: &[f32], what: &str| {
            if v.len() == len {
                Ok(())
            } else {
                Err(Error::InputShape { expected: format!("{what} of {len} values ({n} images)"), found: vec![v.len()] })
            }
        };
        let image_start = self.opts.start_t.is_some();
        let (keep, scale, z) = match init {
            Init::Exact(x) => {
                check(x, "x")?;
                self.x.copy_from_slice(x);
                return Ok(self.frame(0));
            }
            Init::Philox if !image_start => (0.0, self.program.init_scale, None),
            Init::Noise(z) if !image_start => (0.0, self.program.init_scale, Some(z)),
            Init::Image { x0, z } if image_start => {
                check(x0, "x_0")?;
                self.x.copy_from_slice(x0);
                let ab = self.program.start_alpha_bar;
                (ab.sqrt(), (1.0 - ab).sqrt(), z)
            }
            _ => return Err(Error::Cpu("internal: an image start needs start_t, and start_t an image".into())),
        };
        let c = StepCoeffs::noise(keep, scale);
        match z {
            Some(z) => {
                check(z, "z")?;
                self.x.iter_mut().zip(z).for_each(|(x, z)| *x = c.to_x * *x + c.to_z * z);
            }
            None => {
                let z = self.noise(if image_start { IMAGE_NOISE_KEY } else { INIT_KEY });
                self.x.iter_mut().enumerate().for_each(|(i, x)| *x = c.to_x * *x + c.to_z * z(i));
            }
        }
        self.guide(self.program.start_level, INIT_KEY);
        Ok(self.frame(0))
    }

    /// Runs the next pass and returns the frame after it.
    // x, x̂_0, ε and Heun's state are parallel arrays: one index reads clearer than a four-way zip.
    #[allow(clippy::needless_range_loop)]
    pub fn step(&mut self) -> Result<Frame> {
        if self.returned == 0 {
            return Err(Error::Cpu("internal: call first_frame before step".into()));
        }
        if self.is_done() {
            return Err(Error::Timestep { t: self.returned, steps: self.program.passes.len() });
        }
        let k = self.returned - 1;
        let pass = self.program.passes[k];
        let len = self.x.len();
        let eps: Vec<f32> = if matches!(pass.update, Update::Renoise(_)) {
            Vec::new()
        } else {
            self.unet.eps(&self.x, &vec![pass.t_model; self.batch.n])?.to_vec()
        };
        match pass.update {
            Update::Affine(c) => {
                let z = self.noise(pass.key);
                for i in 0..len {
                    let zi = if c.to_z == 0.0 { 0.0 } else { z(i) };
                    (self.x[i], self.x0[i], _) = reference_update(&c, self.x[i], eps[i], zi, 0.0, 0.0);
                }
            }
            Update::HeunPredict(c) => {
                self.saved = self.x.clone();
                self.deriv.resize(len, 0.0);
                for i in 0..len {
                    (self.x[i], self.x0[i], self.deriv[i]) = reference_update(&c, self.x[i], eps[i], 0.0, 0.0, 0.0);
                }
            }
            Update::HeunCorrect(c) => {
                if self.saved.len() != len {
                    return Err(Error::Cpu("internal: Heun's second stage before its first".into()));
                }
                for i in 0..len {
                    (self.x[i], self.x0[i], _) = reference_update(&c, self.x[i], eps[i], 0.0, self.saved[i], self.deriv[i]);
                }
            }
            Update::Langevin(c) => {
                let z = self.noise(pass.key);
                let per = self.batch.image_len();
                for b in 0..self.batch.n {
                    let r = b * per..(b + 1) * per;
                    let zb: Vec<f32> = r.clone().map(&z).collect();
                    let (next, x0) = reference_langevin(&c, &self.x[r.clone()], &eps[r.clone()], &zb);
                    self.x[r.clone()].copy_from_slice(&next);
                    self.x0[r].copy_from_slice(&x0);
                }
            }
            Update::Renoise(c) => {
                let z = self.noise(pass.key);
                self.x.iter_mut().enumerate().for_each(|(i, x)| *x = c.to_x * *x + c.to_z * z(i));
            }
        }
        self.guide(pass.level_after, pass.key);
        Ok(self.frame(k + 1))
    }
}
