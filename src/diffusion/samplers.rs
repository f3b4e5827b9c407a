//! Every sampler as a *program*: the list of network passes a run makes, each with the timestep fed to the
//! network and the update that follows it. The updates are the affine maps of `shaders/update.wgsl`
//! ([`StepCoeffs`]) or a Langevin step (`shaders/langevin.wgsl`), with coefficients computed here in f64, so
//! the GPU side of every sampler is the same three plans (network, update, frame packing) and a new sampler
//! is a new function here.
//!
//! The state x is always in the space the network takes: the VP process's x_t, with
//! q(x_t | x_0) = N(√ᾱ_t x_0, (1−ᾱ_t) I) (Ho et al. 2020, eq. 4). diffusers' Euler and Heun schedulers keep
//! x_σ = x_t / √ᾱ_t instead (Karras et al. 2022's variance-exploding view, σ² = (1−ᾱ)/ᾱ) and divide by
//! √(σ²+1) = 1/√ᾱ in `scale_model_input`; working in x_t folds that division into the coefficients and keeps
//! every frame of every sampler on the same scale, so the page's Timestep slider compares like with like.
//!
//! Noise levels are diffusers' timestep indices as f64: integer for DDPM, DDIM, SDE and Langevin, possibly
//! fractional for Euler and Heun (σ interpolated between indices, as diffusers does); −1 is the clean image.

use crate::diffusion::schedule::{
    FinalSigmas, InterpolationType, PredictionType, Schedule, SchedulerConfig, StepCoeffs, TimestepSpacing, Variance,
};
use crate::error::{Error, Result};
use crate::gpu::kernels::langevin::LangevinCoeffs;

/// Which sampler, as the page's select and `--sampler` name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SamplerKind {
    Ddpm,
    Ddim,
    Euler,
    Heun,
    Sde,
    Langevin,
    Pc,
}

impl SamplerKind {
    pub const ALL: [SamplerKind; 7] =
        [Self::Ddpm, Self::Ddim, Self::Euler, Self::Heun, Self::Sde, Self::Langevin, Self::Pc];

    pub fn name(self) -> &'static str {
        match self {
            Self::Ddpm => "ddpm",
            Self::Ddim => "ddim",
            Self::Euler => "euler",
            Self::Heun => "heun",
            Self::Sde => "sde",
            Self::Langevin => "langevin",
            Self::Pc => "pc",
        }
    }

    /// A short name for a select.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ddpm => "DDPM (Algorithm 2)",
            Self::Ddim => "DDIM",
            Self::Euler => "ODE, Euler",
            Self::Heun => "ODE, Heun",
            Self::Sde => "Reverse SDE",
            Self::Langevin => "Annealed Langevin",
            Self::Pc => "Predictor–corrector",
        }
    }

    /// One line for a person choosing.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Ddpm => "DDPM: Algorithm 2, ancestral sampling (Ho et al. 2020)",
            Self::Ddim => "DDIM: deterministic at η = 0 (Song, Meng & Ermon 2021)",
            Self::Euler => "Probability-flow ODE, Euler steps",
            Self::Heun => "Probability-flow ODE, Heun steps (2 passes per step)",
            Self::Sde => "Reverse-time SDE, Euler–Maruyama",
            Self::Langevin => "Annealed Langevin dynamics (NCSN)",
            Self::Pc => "Predictor–corrector: reverse SDE + Langevin",
        }
    }
}

impl std::str::FromStr for SamplerKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Self::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|k| k.name()).collect();
            format!("sampler must be one of {}, not `{s}`", names.join(", "))
        })
    }
}

/// The predictor of the predictor–corrector sampler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Predictor {
    /// The reverse-SDE step (Song et al. 2021's Euler–Maruyama predictor).
    Sde,
    /// Algorithm 2's step (the ancestral-sampling predictor).
    Ddpm,
}

/// A sampler with its settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    Ddpm { variance: Variance, clip: bool },
    Ddim { eta: f64 },
    Euler,
    Heun,
    Sde,
    /// `steps_per_level` Langevin steps at each noise level, step size from `snr`.
    Langevin { steps_per_level: usize, snr: f64 },
    Pc { predictor: Predictor, corrector_steps: usize, snr: f64 },
}

/// Song et al. 2021's signal-to-noise ratio for the VP corrector on CIFAR-10.
pub const DEFAULT_SNR: f64 = 0.16;

impl Method {
    /// Each sampler with the defaults a person would start from.
    pub fn default_for(kind: SamplerKind) -> Method {
        match kind {
            SamplerKind::Ddpm => Method::Ddpm { variance: Variance::Small, clip: true },
            SamplerKind::Ddim => Method::Ddim { eta: 0.0 },
            SamplerKind::Euler => Method::Euler,
            SamplerKind::Heun => Method::Heun,
            SamplerKind::Sde => Method::Sde,
            SamplerKind::Langevin => Method::Langevin { steps_per_level: 2, snr: DEFAULT_SNR },
            SamplerKind::Pc => Method::Pc { predictor: Predictor::Sde, corrector_steps: 1, snr: DEFAULT_SNR },
        }
    }

    pub fn kind(&self) -> SamplerKind {
        match self {
            Method::Ddpm { .. } => SamplerKind::Ddpm,
            Method::Ddim { .. } => SamplerKind::Ddim,
            Method::Euler => SamplerKind::Euler,
            Method::Heun => SamplerKind::Heun,
            Method::Sde => SamplerKind::Sde,
            Method::Langevin { .. } => SamplerKind::Langevin,
            Method::Pc { .. } => SamplerKind::Pc,
        }
    }

    /// The passes of a run of `steps` steps (noise levels), from pure noise to the clean image.
    pub fn program(&self, schedule: &Schedule, cfg: &SchedulerConfig, steps: usize) -> Result<Program> {
        let name = self.kind().name();
        if cfg.prediction_type != PredictionType::Epsilon {
            return Err(unsupported(name, "prediction_type", format!("{:?}", cfg.prediction_type), "the samplers take an ε-prediction model"));
        }
        let total = schedule.len();
        if steps == 0 || steps > total {
            return Err(Error::SamplerSetting { setting: "steps", value: steps.to_string(), hint: format!("choose 1 to {total}") });
        }
        match *self {
            Method::Ddpm { variance, clip } => {
                let ts = schedule.timesteps(steps)?;
                let passes = chain(&ts)
                    .map(|(t, prev)| {
                        let c = schedule.step_coeffs(t, prev, variance, clip)?;
                        // Keyed by t, so a run's noise does not depend on how it was respaced.
                        Ok(Pass { t_model: t as f32, level: t as f64, level_after: prev as f64, update: Update::Affine(c), key: t as u32 })
                    })
                    .collect::<Result<_>>()?;
                Ok(Program::vp(total, passes))
            }
            Method::Ddim { eta } => {
                if !(0.0..=1.0).contains(&eta) {
                    return Err(Error::SamplerSetting { setting: "eta", value: eta.to_string(), hint: "η runs from 0 (deterministic) to 1 (DDPM's variance)".into() });
                }
                if cfg.thresholding {
                    return Err(unsupported(name, "thresholding", "true".into(), "dynamic thresholding is not implemented"));
                }
                let ts = ddim_timesteps(cfg, total, steps)?;
                let ratio = (total / steps) as isize;
                let final_ab = if cfg.set_alpha_to_one.unwrap_or(true) { 1.0 } else { schedule.alpha_bar(0) };
                let clip = cfg.clip_sample.unwrap_or(true).then_some(cfg.clip_sample_range);
                let passes = ts
                    .iter()
                    .enumerate()
                    .map(|(k, &t)| {
                        let prev = t as isize - ratio;
                        let ab_t = schedule.alpha_bar(t as isize);
                        let ab_prev = if prev >= 0 { schedule.alpha_bar(prev) } else { final_ab };
                        Pass {
                            t_model: t as f32,
                            level: t as f64,
                            level_after: prev.max(-1) as f64,
                            update: Update::Affine(ddim_coeffs(ab_t, ab_prev, eta, clip)),
                            key: k as u32,
                        }
                    })
                    .collect();
                Ok(Program::vp(total, passes))
            }
            Method::Euler | Method::Heun => {
                if cfg.use_karras_sigmas {
                    return Err(unsupported(name, "use_karras_sigmas", "true".into(), "only the schedule's own σ are implemented"));
                }
                if cfg.interpolation_type != InterpolationType::Linear {
                    return Err(unsupported(name, "interpolation_type", "log_linear".into(), "only linear interpolation is implemented"));
                }
                let sigmas = Sigmas::new(schedule);
                let ts = karras_timesteps(cfg, total, steps)?;
                let heun = matches!(self, Method::Heun);
                // Heun has no final_sigmas_type: it always ends at σ = 0.
                let last = match cfg.final_sigmas_type {
                    FinalSigmas::SigmaMin if !heun => sigmas.at(0.0),
                    _ => 0.0,
                };
                let mut levels: Vec<(f64, f64)> = ts.iter().map(|&t| (t, sigmas.at(t))).collect();
                levels.push((-1.0, last));
                let sigma_max = levels.iter().map(|l| l.1).fold(0.0, f64::max);
                // diffusers: latents = z · init_noise_sigma, in x_σ; the network sees x_σ/√(σ_0²+1).
                let init_sigma = match cfg.timestep_spacing.unwrap_or(TimestepSpacing::Linspace) {
                    TimestepSpacing::Linspace | TimestepSpacing::Trailing => sigma_max,
                    TimestepSpacing::Leading => (sigma_max * sigma_max + 1.0).sqrt(),
                };
                let init_scale = init_sigma / (levels[0].1 * levels[0].1 + 1.0).sqrt();
                let passes = if heun {
                    let clip = cfg.clip_sample.unwrap_or(false).then_some(cfg.clip_sample_range);
                    heun_passes(&levels, clip)
                } else {
                    euler_passes(&levels)
                };
                Ok(Program { init_scale, start_level: levels[0].0, start_alpha_bar: 0.0, passes })
            }
            Method::Sde => {
                let ts = schedule.timesteps(steps)?;
                let passes = chain(&ts)
                    .enumerate()
                    .map(|(k, (t, prev))| Pass {
                        t_model: t as f32,
                        level: t as f64,
                        level_after: prev as f64,
                        update: Update::Affine(sde_coeffs(schedule, t, prev)),
                        key: k as u32,
                    })
                    .collect();
                Ok(Program::vp(total, passes))
            }
            Method::Langevin { steps_per_level, snr } => {
                check_langevin(steps_per_level, snr, 1)?;
                let mut passes = Vec::new();
                for t in schedule.timesteps(steps)? {
                    for _ in 0..steps_per_level {
                        let key = passes.len() as u32;
                        passes.push(langevin_pass(schedule, t, snr, key));
                    }
                }
                Ok(Program::vp(total, passes))
            }
            Method::Pc { predictor, corrector_steps, snr } => {
                check_langevin(corrector_steps, snr, 0)?;
                let mut passes = Vec::new();
                for (t, prev) in chain(&schedule.timesteps(steps)?) {
                    let c = match predictor {
                        Predictor::Sde => sde_coeffs(schedule, t, prev),
                        Predictor::Ddpm => schedule.step_coeffs(t, prev, Variance::Large, false)?,
                    };
                    let key = passes.len() as u32;
                    passes.push(Pass { t_model: t as f32, level: t as f64, level_after: prev as f64, update: Update::Affine(c), key });
                    // The corrector moves x towards p at the level the predictor reached; none after the
                    // last step, where x is the sample.
                    if prev >= 0 {
                        for _ in 0..corrector_steps {
                            let key = passes.len() as u32;
                            passes.push(langevin_pass(schedule, prev as usize, snr, key));
                        }
                    }
                }
                Ok(Program::vp(total, passes))
            }
        }
    }
}

impl Method {
    /// One update from timestep `t` to `prev` (−1: the clean image), for `ddpm step`: DDPM's, DDIM's (prev =
    /// t − T/K in a K-step run) and the reverse SDE's; Langevin's is a step at level t (prev unused). The ODE
    /// samplers' steps depend on σ between kept steps and Heun's on the previous pass: run them whole.
    pub fn single_pass(&self, schedule: &Schedule, cfg: &SchedulerConfig, t: usize, prev: isize) -> Result<Pass> {
        if t >= schedule.len() || prev >= t as isize || prev < -1 {
            return Err(Error::SamplerSetting { setting: "prev", value: prev.to_string(), hint: format!("the step must go from t = {t} down to a timestep from −1 to {}", t as isize - 1) });
        }
        let c = match *self {
            Method::Ddpm { variance, clip } => schedule.step_coeffs(t, prev, variance, clip)?,
            Method::Ddim { eta } => {
                let final_ab = if cfg.set_alpha_to_one.unwrap_or(true) { 1.0 } else { schedule.alpha_bar(0) };
                let ab_prev = if prev >= 0 { schedule.alpha_bar(prev) } else { final_ab };
                let clip = cfg.clip_sample.unwrap_or(true).then_some(cfg.clip_sample_range);
                ddim_coeffs(schedule.alpha_bar(t as isize), ab_prev, eta, clip)
            }
            Method::Sde => sde_coeffs(schedule, t, prev),
            Method::Langevin { snr, .. } | Method::Pc { snr, .. } => return Ok(langevin_pass(schedule, t, snr, 0)),
            Method::Euler | Method::Heun => {
                let name = self.kind().name();
                return Err(Error::SamplerSetting { setting: "sampler", value: name.into(), hint: "its steps are not single steps; run `sample`".into() });
            }
        };
        Ok(Pass { t_model: t as f32, level: t as f64, level_after: prev as f64, update: Update::Affine(c), key: t as u32 })
    }
}

fn unsupported(sampler: &'static str, field: &'static str, value: String, hint: &str) -> Error {
    Error::UnsupportedScheduler { sampler, field, value, hint: hint.into() }
}

fn check_langevin(steps: usize, snr: f64, min_steps: usize) -> Result<()> {
    if steps < min_steps || steps > 100 {
        return Err(Error::SamplerSetting { setting: "Langevin steps", value: steps.to_string(), hint: format!("choose {min_steps} to 100 per noise level") });
    }
    if !(snr > 0.0 && snr <= 10.0) {
        return Err(Error::SamplerSetting { setting: "snr", value: snr.to_string(), hint: "the step size's signal-to-noise ratio must be in (0, 10]".into() });
    }
    Ok(())
}

/// One network pass and the update after it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Pass {
    /// The timestep fed to the network's time embedding (fractional where the scheduler makes it so).
    pub t_model: f32,
    /// Noise level of x when the pass starts, and after its update (−1: the clean image).
    pub level: f64,
    pub level_after: f64,
    pub update: Update,
    /// Second word of the Philox counter for this pass's noise.
    pub key: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "coeffs")]
pub enum Update {
    Affine(StepCoeffs),
    HeunPredict(StepCoeffs),
    HeunCorrect(StepCoeffs),
    Langevin(LangevinCoeffs),
    /// No network pass: x ← to_x·x + to_z·z, back up the chain (RePaint's resampling jumps).
    Renoise(StepCoeffs),
}

/// A whole run (as JSON, what `ddpm program` prints for other implementations to run: training/samplers.py).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Program {
    /// x_T = init_scale · z for z ~ N(0, I) (1 except where diffusers scales its Euler/Heun latents).
    pub init_scale: f64,
    /// Noise level of x_T, and ᾱ there (what an image start is noised with).
    pub start_level: f64,
    pub start_alpha_bar: f64,
    pub passes: Vec<Pass>,
}

/// Philox step keys of the start draws, out of the passes' range.
pub const INIT_KEY: u32 = u32::MAX;

impl Program {
    fn vp(total: usize, passes: Vec<Pass>) -> Program {
        Program { init_scale: 1.0, start_level: total as f64 - 1.0, start_alpha_bar: 0.0, passes }
    }

    /// SDEdit (Meng et al. 2022): the passes from the first one that starts at or below level `t`, and that
    /// level, to which the image is noised. Heun's second stages cannot start a run.
    pub fn from_level(mut self, schedule: &Schedule, t: f64) -> Result<Program> {
        let first = self
            .passes
            .iter()
            .position(|p| p.level <= t + 1e-9 && !matches!(p.update, Update::HeunCorrect(_)))
            .ok_or_else(|| Error::SamplerSetting { setting: "start t", value: t.to_string(), hint: "no step of this run starts that low".into() })?;
        self.start_level = self.passes[first].level;
        self.start_alpha_bar = Self::alpha_bar_at(schedule, self.start_level);
        self.passes.drain(..first);
        self.init_scale = 1.0;
        Ok(self)
    }

    /// RePaint's resampling (Lugmayr et al. 2022, Algorithm 1 with its jump schedule): after every `jump`
    /// passes, go back up to the level those passes started from in one draw of q(x_a | x_b) =
    /// N(√(ᾱ_a/ᾱ_b) x_b, (1 − ᾱ_a/ᾱ_b) I) (Ho et al. 2020, eq. 4 between two levels), and run them again, so
    /// `resample` times in all; with inpainting's replacement after every pass this lets the generated region
    /// agree with the known one instead of leaving a seam. Only for samplers whose passes each step one level
    /// down (ddpm, ddim, sde); reruns draw fresh noise.
    pub fn repaint(self, schedule: &Schedule, jump: usize, resample: usize) -> Result<Program> {
        if resample <= 1 {
            return Ok(self);
        }
        if jump == 0 || resample > 50 {
            return Err(Error::SamplerSetting { setting: "jump/resample", value: format!("{jump}/{resample}"), hint: "jump ≥ 1 and resample from 1 to 50".into() });
        }
        if self.passes.iter().any(|p| !matches!(p.update, Update::Affine(_)) || p.level_after >= p.level) {
            return Err(Error::SamplerSetting { setting: "resample", value: resample.to_string(), hint: "RePaint's resampling needs a sampler that steps one level per pass: ddpm, ddim or sde".into() });
        }
        let ab = |level: f64| Self::alpha_bar_at(schedule, level);
        let mut passes = Vec::new();
        for block in self.passes.chunks(jump) {
            let (top, bottom) = (block[0].level, block[block.len() - 1].level_after);
            for r in 0..resample {
                if r > 0 {
                    let ratio = ab(top) / ab(bottom);
                    let back = StepCoeffs::noise(ratio.sqrt(), (1.0 - ratio).sqrt());
                    let key = 0x4000_0000 + passes.len() as u32;
                    passes.push(Pass { t_model: top as f32, level: bottom, level_after: top, update: Update::Renoise(back), key });
                }
                // Reruns need their own noise: the keys of the first run are below 2^20 (timesteps or indices).
                passes.extend(block.iter().map(|p| Pass { key: p.key + ((r as u32) << 20), ..*p }));
            }
        }
        Ok(Program { passes, ..self })
    }

    /// DDIM inversion: the deterministic DDIM (η = 0) chain run backwards, from the clean image (level −1)
    /// up through the same levels a `steps`-step DDIM run visits, each step x_b = √ᾱ_b x̂_0 + √(1−ᾱ_b) ε with
    /// ε at the current point (the explicit Euler step of the ODE in DDIM's variables; Song et al. 2021,
    /// eq. 13). x̂_0 is not clipped: clipping would break invertibility.
    pub fn ddim_inversion(schedule: &Schedule, cfg: &SchedulerConfig, steps: usize) -> Result<Program> {
        let total = schedule.len();
        if steps == 0 || steps > total {
            return Err(Error::SamplerSetting { setting: "steps", value: steps.to_string(), hint: format!("choose 1 to {total}") });
        }
        let mut levels: Vec<isize> = ddim_timesteps(cfg, total, steps)?.iter().map(|&t| t as isize).collect();
        levels.push(-1);
        levels.reverse();
        let passes = levels
            .windows(2)
            .enumerate()
            .map(|(k, w)| {
                let (a, b) = (w[0], w[1]);
                let c = StepCoeffs {
                    to_x0: schedule.alpha_bar(b).sqrt() as f32,
                    to_eps: (1.0 - schedule.alpha_bar(b)).sqrt() as f32,
                    ..StepCoeffs::ZERO.with_x0(schedule.alpha_bar(a), None)
                };
                Pass { t_model: a.max(0) as f32, level: a as f64, level_after: b as f64, update: Update::Affine(c), key: k as u32 }
            })
            .collect();
        Ok(Program { init_scale: 1.0, start_level: -1.0, start_alpha_bar: 1.0, passes })
    }

    /// ᾱ at a (possibly fractional) level, as the Euler/Heun σ interpolation defines it; exact at integers.
    pub fn alpha_bar_at(schedule: &Schedule, level: f64) -> f64 {
        if level < 0.0 {
            return 1.0;
        }
        let s = Sigmas::new(schedule).at(level);
        1.0 / (s * s + 1.0)
    }
}

/// (t, prev) pairs of a chain of kept timesteps, prev = −1 after the last.
fn chain(ts: &[usize]) -> impl Iterator<Item = (usize, isize)> + '_ {
    ts.iter().enumerate().map(|(k, &t)| (t, ts.get(k + 1).map_or(-1, |&p| p as isize)))
}

/// diffusers' `DDIMScheduler.set_timesteps` (integer timesteps).
fn ddim_timesteps(cfg: &SchedulerConfig, total: usize, steps: usize) -> Result<Vec<usize>> {
    let ts: Vec<i64> = match cfg.timestep_spacing.unwrap_or(TimestepSpacing::Leading) {
        TimestepSpacing::Linspace => linspace(total, steps).iter().rev().map(|&v| v.round() as i64).collect(),
        TimestepSpacing::Leading => {
            let ratio = total / steps;
            (0..steps).rev().map(|i| (i * ratio + cfg.steps_offset) as i64).collect()
        }
        TimestepSpacing::Trailing => trailing(total, steps).iter().map(|&v| v as i64).collect(),
    };
    ts.into_iter()
        .map(|t| usize::try_from(t).ok().filter(|&t| t < total))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| unsupported("ddim", "steps_offset", cfg.steps_offset.to_string(), "it moves timesteps past the schedule"))
}

/// diffusers' `EulerDiscreteScheduler` / `HeunDiscreteScheduler.set_timesteps` (f32 timesteps).
fn karras_timesteps(cfg: &SchedulerConfig, total: usize, steps: usize) -> Result<Vec<f64>> {
    let ts: Vec<f64> = match cfg.timestep_spacing.unwrap_or(TimestepSpacing::Linspace) {
        TimestepSpacing::Linspace => linspace(total, steps).iter().rev().map(|&v| v as f32 as f64).collect(),
        TimestepSpacing::Leading => {
            let ratio = total / steps;
            (0..steps).rev().map(|i| (i * ratio + cfg.steps_offset) as f64).collect()
        }
        TimestepSpacing::Trailing => trailing(total, steps),
    };
    if ts.iter().any(|&t| t > (total - 1) as f64) {
        return Err(unsupported("euler", "steps_offset", cfg.steps_offset.to_string(), "it moves timesteps past the schedule"));
    }
    Ok(ts)
}

/// numpy's linspace(0, T−1, K), ascending.
fn linspace(total: usize, steps: usize) -> Vec<f64> {
    let end = (total - 1) as f64;
    if steps == 1 {
        return vec![0.0];
    }
    let step = end / (steps - 1) as f64;
    (0..steps).map(|i| if i == steps - 1 { end } else { i as f64 * step }).collect()
}

/// round(arange(T, 0, −T/K)) − 1, descending.
fn trailing(total: usize, steps: usize) -> Vec<f64> {
    let ratio = total as f64 / steps as f64;
    (0..steps).map(|i| (total as f64 - i as f64 * ratio).round() - 1.0).collect()
}

/// σ_t = √((1−ᾱ_t)/ᾱ_t) at every index, linearly interpolated between them (numpy's `interp`, as diffusers).
struct Sigmas(Vec<f64>);

impl Sigmas {
    fn new(s: &Schedule) -> Self {
        Sigmas(s.alphas_cumprod.iter().map(|a| ((1.0 - a) / a).sqrt()).collect())
    }

    fn at(&self, t: f64) -> f64 {
        let last = self.0.len() - 1;
        let t = t.clamp(0.0, last as f64);
        let i = (t.floor() as usize).min(last);
        let j = (i + 1).min(last);
        let w = t - i as f64;
        self.0[i] * (1.0 - w) + self.0[j] * w
    }
}

/// DDIM (Song, Meng & Ermon 2021, eq. 12): x' = √ᾱ_prev x̂_0 + √(1−ᾱ_prev−σ²) ε + σ z with
/// σ = η √((1−ᾱ_prev)/(1−ᾱ_t) · (1−ᾱ_t/ᾱ_prev)) (their eq. 16), as diffusers' `DDIMScheduler.step`.
fn ddim_coeffs(ab_t: f64, ab_prev: f64, eta: f64, clip: Option<f64>) -> StepCoeffs {
    let variance = (1.0 - ab_prev) / (1.0 - ab_t) * (1.0 - ab_t / ab_prev);
    let sigma = eta * variance.max(0.0).sqrt();
    StepCoeffs {
        to_x0: ab_prev.sqrt() as f32,
        to_eps: (1.0 - ab_prev - sigma * sigma).max(0.0).sqrt() as f32,
        to_z: sigma as f32,
        ..StepCoeffs::ZERO.with_x0(ab_t, clip)
    }
}

/// The reverse-time VP SDE by Euler–Maruyama (Song et al. 2021, eq. 6 with the VP SDE's f = −½β x, g = √β
/// of their eq. 11; seed 003 §2.5, eqs. 10–11), one kept step t → prev with β = 1 − ᾱ_t/ᾱ_prev standing for
/// β(t)Δt: x' = x + (½β x + β ∇log p_t(x)) + √β z, and ∇log p_t(x) = −ε/√(1−ᾱ_t) (seed 004 §5).
/// The last step adds no noise (Song et al.'s "denoise" at the end; Algorithm 2's z = 0 at t = 1).
fn sde_coeffs(schedule: &Schedule, t: usize, prev: isize) -> StepCoeffs {
    let ab_t = schedule.alpha_bar(t as isize);
    let beta = 1.0 - ab_t / schedule.alpha_bar(prev);
    StepCoeffs {
        to_x: (1.0 + 0.5 * beta) as f32,
        to_eps: (-beta / (1.0 - ab_t).sqrt()) as f32,
        to_z: if prev < 0 { 0.0 } else { beta.sqrt() as f32 },
        ..StepCoeffs::ZERO.with_x0(ab_t, None)
    }
}

/// One Langevin step at level t (Song et al. 2021, Algorithm 5's corrector, α_t = 1 − β_t).
fn langevin_pass(schedule: &Schedule, t: usize, snr: f64, key: u32) -> Pass {
    let ab = schedule.alpha_bar(t as isize);
    let x0 = StepCoeffs::ZERO.with_x0(ab, None);
    let c = LangevinCoeffs {
        score_eps: (-1.0 / (1.0 - ab).sqrt()) as f32,
        snr: snr as f32,
        alpha: schedule.alphas[t] as f32,
        x0_x: x0.x0_x,
        x0_eps: x0.x0_eps,
    };
    Pass { t_model: t as f32, level: t as f64, level_after: t as f64, update: Update::Langevin(c), key }
}

/// √(σ²+1) = 1/√ᾱ: x_σ = s · x_t.
fn scale(sigma: f64) -> f64 {
    (sigma * sigma + 1.0).sqrt()
}

/// The probability-flow ODE dx_σ/dσ = (x_σ − x̂_0)/σ = ε (Karras et al. 2022, eq. 3 in σ; Song et al. 2021,
/// eq. 13) by Euler steps, as diffusers' `EulerDiscreteScheduler.step` (no churn): x_σ' = x_σ + (σ'−σ) ε,
/// in x_t: x' = (s x + (σ'−σ) ε) / s'.
fn euler_passes(levels: &[(f64, f64)]) -> Vec<Pass> {
    levels
        .windows(2)
        .enumerate()
        .map(|(k, w)| {
            let ((t, sigma), (t_next, sigma_next)) = (w[0], w[1]);
            let (s, s_next) = (scale(sigma), scale(sigma_next));
            let c = StepCoeffs {
                to_x: (s / s_next) as f32,
                to_eps: ((sigma_next - sigma) / s_next) as f32,
                ..StepCoeffs::ZERO.with_x0(1.0 / (s * s), None)
            };
            Pass { t_model: t as f32, level: t, level_after: t_next, update: Update::Affine(c), key: k as u32 }
        })
        .collect()
}

/// Heun's method on the same ODE (Karras et al. 2022, Algorithm 1), as diffusers' `HeunDiscreteScheduler`:
/// from σ to σ', d₁ = (x_σ − x̂_0)/σ and the Euler point x̃ = x_σ + (σ'−σ) d₁; then at x̃ (a second pass at
/// σ'), d₂ = (x̃ − x̂_0')/σ' and x_σ' = x_σ + (σ'−σ)(d₁ + d₂)/2. The last step, to σ' = 0, is Euler's (d₂
/// would divide by 0). x̂_0 is clipped in both stages when the config says so, as diffusers does.
fn heun_passes(levels: &[(f64, f64)], clip: Option<f64>) -> Vec<Pass> {
    let mut passes = Vec::new();
    for (k, w) in levels.windows(2).enumerate() {
        let ((t, sigma), (t_next, sigma_next)) = (w[0], w[1]);
        let (s, s_next) = (scale(sigma), scale(sigma_next));
        let dt = sigma_next - sigma;
        // x' = (s x + dt d₁)/s' with d₁ = (s x − x̂_0)/σ.
        let first = StepCoeffs {
            to_x: (s * (1.0 + dt / sigma) / s_next) as f32,
            to_x0: (-dt / (sigma * s_next)) as f32,
            deriv_x: (s / sigma) as f32,
            deriv_x0: (-1.0 / sigma) as f32,
            ..StepCoeffs::ZERO.with_x0(1.0 / (s * s), clip)
        };
        let key = passes.len() as u32;
        let last = k + 2 == levels.len();
        let update = if last { Update::Affine(first) } else { Update::HeunPredict(first) };
        passes.push(Pass { t_model: t as f32, level: t, level_after: t_next, update, key });
        if !last {
            // x'' = (s · saved + dt/2 · d₁ + dt/2 · (s' x̃ − x̂_0')/σ') / s'.
            let second = StepCoeffs {
                to_saved: (s / s_next) as f32,
                to_deriv: (dt / (2.0 * s_next)) as f32,
                to_x: (dt / (2.0 * sigma_next)) as f32,
                to_x0: (-dt / (2.0 * sigma_next * s_next)) as f32,
                ..StepCoeffs::ZERO.with_x0(1.0 / (s_next * s_next), clip)
            };
            let key = passes.len() as u32;
            passes.push(Pass { t_model: t_next as f32, level: t_next, level_after: t_next, update: Update::HeunCorrect(second), key });
        }
    }
    passes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::schedule::reference_update;

    fn paper() -> Schedule {
        Schedule::linear(1000, 1e-4, 0.02)
    }

    /// The model's scheduler_config.json as DDPMScheduler saves it (leading spacing, clip on).
    fn saved_ddpm_config() -> SchedulerConfig {
        SchedulerConfig { timestep_spacing: Some(TimestepSpacing::Leading), clip_sample: Some(true), ..SchedulerConfig::default() }
    }

    fn program(m: Method, cfg: &SchedulerConfig, steps: usize) -> Program {
        m.program(&paper(), cfg, steps).unwrap()
    }

    #[test]
    fn timesteps_match_diffusers_set_timesteps() {
        // Values printed by diffusers 0.42.1's set_timesteps(10) on the paper's schedule.
        let cfg = SchedulerConfig::default();
        assert_eq!(ddim_timesteps(&cfg, 1000, 10).unwrap(), vec![900, 800, 700, 600, 500, 400, 300, 200, 100, 0]);
        let euler = karras_timesteps(&cfg, 1000, 4).unwrap();
        assert_eq!(euler, vec![999.0, 666.0, 333.0, 0.0]);
        let euler = karras_timesteps(&cfg, 1000, 7).unwrap();
        assert!((euler[1] - 832.5).abs() < 1e-9 && (euler[5] - 166.5).abs() < 1e-9, "{euler:?}");
        let trailing = SchedulerConfig { timestep_spacing: Some(TimestepSpacing::Trailing), ..SchedulerConfig::default() };
        assert_eq!(ddim_timesteps(&trailing, 1000, 3).unwrap(), vec![999, 666, 332]);
    }

    #[test]
    fn sigma_interpolation_is_exact_at_integers_and_linear_between() {
        let s = paper();
        let sig = Sigmas::new(&s);
        let exact = |t: usize| ((1.0 - s.alphas_cumprod[t]) / s.alphas_cumprod[t]).sqrt();
        assert_eq!(sig.at(500.0), exact(500));
        assert!((sig.at(500.25) - (0.75 * exact(500) + 0.25 * exact(501))).abs() < 1e-12);
        assert!((Program::alpha_bar_at(&s, 300.0) - s.alphas_cumprod[300]).abs() < 1e-12);
    }

    /// Runs a program on a scalar "model" whose ε is a fixed linear function of x, with the CPU reference of
    /// the kernels: lets the tests below compare whole chains with the formulas written out.
    fn run_scalar(p: &Program, x: f64, eps_of: impl Fn(f64) -> f64) -> f64 {
        let (mut x, mut saved, mut deriv) = (x as f32, 0.0f32, 0.0f32);
        for pass in &p.passes {
            let e = eps_of(x as f64) as f32;
            match pass.update {
                Update::Affine(c) => x = reference_update(&c, x, e, 0.0, 0.0, 0.0).0,
                Update::HeunPredict(c) => {
                    let (next, _, d) = reference_update(&c, x, e, 0.0, 0.0, 0.0);
                    (saved, deriv, x) = (x, d, next);
                }
                Update::HeunCorrect(c) => x = reference_update(&c, x, e, 0.0, saved, deriv).0,
                Update::Langevin(_) | Update::Renoise(_) => unreachable!("deterministic programs only"),
            }
        }
        x as f64
    }

    #[test]
    fn euler_and_heun_in_x_t_equal_diffusers_steps_in_x_sigma() {
        // diffusers' EulerDiscreteScheduler / HeunDiscreteScheduler loops written out in x_σ, with ε = 0.3·x_in
        // (any smooth ε will do), against the programs run in x_t.
        let s = paper();
        let cfg = SchedulerConfig::default(); // linspace spacing, Heun without clipping
        for steps in [1usize, 3, 10] {
            let ts = karras_timesteps(&cfg, 1000, steps).unwrap();
            let sig = Sigmas::new(&s);
            let mut sigmas: Vec<f64> = ts.iter().map(|&t| sig.at(t)).collect();
            sigmas.push(0.0);
            let eps = |x_in: f64| 0.3 * x_in + 0.1;
            let z = 0.7;
            // Euler.
            let mut x = z * sigmas[0]; // init_noise_sigma = σ_max for linspace
            for k in 0..steps {
                let e = eps(x / scale(sigmas[k]));
                x += (sigmas[k + 1] - sigmas[k]) * e;
            }
            let p = program(Method::Euler, &cfg, steps);
            let got = run_scalar(&p, z * p.init_scale, eps);
            // f32 rounding at |x_σ| up to σ_max ≈ 157: compare relatively.
            assert!((got - x).abs() < 3e-5 * (1.0 + x.abs()), "euler {steps}: {got} vs {x}");
            // Heun.
            let mut x = z * sigmas[0];
            for k in 0..steps {
                let (sg, sn) = (sigmas[k], sigmas[k + 1]);
                let d1 = eps(x / scale(sg));
                if sn == 0.0 {
                    x += (sn - sg) * d1;
                } else {
                    let x_tilde = x + (sn - sg) * d1;
                    let d2 = eps(x_tilde / scale(sn));
                    x += (sn - sg) * (d1 + d2) / 2.0;
                }
            }
            let p = program(Method::Heun, &cfg, steps);
            assert_eq!(p.passes.len(), 2 * steps - 1, "Heun's K steps are 2K−1 passes");
            let got = run_scalar(&p, z * p.init_scale, eps);
            assert!((got - x).abs() < 3e-5 * (1.0 + x.abs()), "heun {steps}: {got} vs {x}");
        }
    }

    #[test]
    fn ddim_at_eta_1_has_ddpm_small_variance_and_eta_0_none() {
        // Song et al. 2021 (DDIM), eq. 16: η = 1 gives DDPM's σ_t² = β̃_t, and then (unclipped) DDPM's mean.
        let s = paper();
        let cfg = SchedulerConfig { clip_sample: Some(false), ..saved_ddpm_config() };
        let p1 = program(Method::Ddim { eta: 1.0 }, &cfg, 1000);
        let p0 = program(Method::Ddim { eta: 0.0 }, &cfg, 1000);
        for (k, t) in [(0usize, 999usize), (500, 499), (998, 1)] {
            let Update::Affine(c1) = p1.passes[k].update else { panic!() };
            let Update::Affine(c0) = p0.passes[k].update else { panic!() };
            let ddpm = s.step_coeffs(t, t as isize - 1, Variance::Small, false).unwrap();
            assert!((c1.to_z - ddpm.to_z).abs() < 1e-6, "t={t}: {} vs {}", c1.to_z, ddpm.to_z);
            // With η = 1 the mean is DDPM's posterior mean written in (x̂_0, ε) instead of (x̂_0, x_t).
            let (x, e) = (0.4f32, -0.3f32);
            let ddim_mean = reference_update(&c1, x, e, 0.0, 0.0, 0.0).0;
            let ddpm_mean = reference_update(&ddpm, x, e, 0.0, 0.0, 0.0).0;
            assert!((ddim_mean - ddpm_mean).abs() < 1e-4, "t={t}: {ddim_mean} vs {ddpm_mean}");
            assert_eq!(c0.to_z, 0.0);
        }
    }

    #[test]
    fn sde_step_is_euler_maruyama_of_the_reverse_vp_sde() {
        // Song et al. 2021, eq. 6 with f = −½β x, g = √β: x' = x − [f − g² ∇log p] Δt + g √Δt z, with β Δt
        // → β_t and ∇log p = −ε/√(1−ᾱ_t), written out term by term.
        let s = paper();
        let p = program(Method::Sde, &SchedulerConfig::default(), 1000);
        let (x, e, z) = (0.8f64, -0.5f64, 1.2f64);
        for (k, t) in [(0usize, 999usize), (499, 500), (998, 1)] {
            let Update::Affine(c) = p.passes[k].update else { panic!() };
            let beta = s.betas[t];
            let score = -e / (1.0 - s.alphas_cumprod[t]).sqrt();
            let want = x - (-0.5 * beta * x - beta * score) + beta.sqrt() * z;
            let got = reference_update(&c, x as f32, e as f32, z as f32, 0.0, 0.0).0 as f64;
            assert!((got - want).abs() < 1e-5, "t={t}: {got} vs {want}");
        }
        let Update::Affine(last) = p.passes[999].update else { panic!() };
        assert_eq!(last.to_z, 0.0, "the last step adds no noise");
    }

    #[test]
    fn langevin_and_pc_programs_visit_each_level_as_asked() {
        let cfg = SchedulerConfig::default();
        let p = program(Method::Langevin { steps_per_level: 3, snr: 0.1 }, &cfg, 10);
        assert_eq!(p.passes.len(), 30);
        assert!(p.passes.iter().all(|q| matches!(q.update, Update::Langevin(_))));
        assert_eq!(p.passes[3].t_model, 800.0);
        let p = program(Method::Pc { predictor: Predictor::Sde, corrector_steps: 2, snr: 0.1 }, &cfg, 10);
        // 10 predictor steps, 2 corrector steps after each but the last.
        assert_eq!(p.passes.len(), 10 + 2 * 9);
        assert!(matches!(p.passes[1].update, Update::Langevin(_)) && p.passes[1].t_model == 800.0);
        let keys: std::collections::HashSet<u32> = p.passes.iter().map(|q| q.key).collect();
        assert_eq!(keys.len(), p.passes.len(), "every pass draws its own noise");
        let Update::Langevin(c) = p.passes[1].update else { panic!() };
        assert!((c.alpha as f64 - paper().alphas[800]).abs() < 1e-7);
        assert!(Method::Langevin { steps_per_level: 0, snr: 0.1 }.program(&paper(), &cfg, 10).is_err());
        assert!(Method::Ddim { eta: 1.5 }.program(&paper(), &cfg, 10).is_err());
    }

    #[test]
    fn ddim_inversion_then_ddim_returns_the_start_for_a_linear_model() {
        // With ε ≡ 0 each direction only rescales x by √(ᾱ_b/ᾱ_a): inverting then sampling must return the
        // start (to rounding) — a check that the two programs visit the same levels in opposite orders.
        let s = paper();
        let cfg = SchedulerConfig { clip_sample: Some(false), ..SchedulerConfig::default() };
        let inv = Program::ddim_inversion(&s, &cfg, 20).unwrap();
        assert_eq!(inv.passes.len(), 20);
        assert_eq!(inv.passes.last().unwrap().level_after, 950.0);
        let eps = |_: f64| 0.0;
        let x0 = 0.37;
        let xt = run_scalar(&inv, x0, eps);
        let back = run_scalar(&program(Method::Ddim { eta: 0.0 }, &cfg, 20), xt, eps);
        assert!((back - x0).abs() < 1e-5, "{back} vs {x0}");
    }

    #[test]
    fn from_level_starts_at_the_first_pass_at_or_below_t() {
        let cfg = SchedulerConfig::default();
        let p = program(Method::Ddpm { variance: Variance::Small, clip: true }, &cfg, 1000).from_level(&paper(), 300.0).unwrap();
        assert_eq!((p.start_level, p.passes.len()), (300.0, 301));
        let p = program(Method::Heun, &cfg, 10).from_level(&paper(), 500.0).unwrap();
        assert!(!matches!(p.passes[0].update, Update::HeunCorrect(_)) && p.start_level <= 500.0);
        assert!(program(Method::Euler, &cfg, 10).from_level(&paper(), -1.0).is_err());
    }

    #[test]
    fn rejects_schedulers_it_does_not_implement() {
        let v = SchedulerConfig { prediction_type: PredictionType::VPrediction, ..SchedulerConfig::default() };
        assert!(matches!(Method::Ddim { eta: 0.0 }.program(&paper(), &v, 10), Err(Error::UnsupportedScheduler { .. })));
        let k = SchedulerConfig { use_karras_sigmas: true, ..SchedulerConfig::default() };
        assert!(matches!(Method::Euler.program(&paper(), &k, 10), Err(Error::UnsupportedScheduler { .. })));
    }

    #[test]
    fn repaint_reruns_each_block_after_a_jump_back_to_its_top() {
        // 10 DDPM steps (900 … 0), jump 3, resample 2: blocks of 3, 3, 3, 1 passes, each run twice with one
        // renoise between: 10 + 10 + 4 renoise passes.
        let s = paper();
        let p = program(Method::Ddpm { variance: Variance::Small, clip: true }, &SchedulerConfig::default(), 10).repaint(&s, 3, 2).unwrap();
        assert_eq!(p.passes.len(), 24);
        let Update::Renoise(c) = p.passes[3].update else { panic!("{:?}", p.passes[3]) };
        // Back from level 600 (after 900 → 800 → 700 → 600) to 900: √(ᾱ_900/ᾱ_600).
        assert_eq!((p.passes[3].level, p.passes[3].level_after), (600.0, 900.0));
        assert!((c.to_x as f64 - (s.alphas_cumprod[900] / s.alphas_cumprod[600]).sqrt()).abs() < 1e-6);
        assert!((c.to_z as f64 - (1.0 - s.alphas_cumprod[900] / s.alphas_cumprod[600]).sqrt()).abs() < 1e-6);
        assert_eq!(p.passes[4].t_model, 900.0);
        assert_ne!(p.passes[4].key, p.passes[0].key, "the rerun draws fresh noise");
        assert!(program(Method::Heun, &SchedulerConfig::default(), 10).repaint(&s, 3, 2).is_err());
    }
}
