//! The noise schedule as a few arrays computed once (diffusers' `DDPMScheduler` habit): β_t, α_t = 1 − β_t,
//! ᾱ_t = Π α_s. Indices are diffusers' 0..T−1 (the paper's t is one more). `step_coeffs` turns a pair of
//! kept timesteps into the numbers the WGSL update needs, so respaced sampling is the same kernel.

use serde::Deserialize;

use crate::error::{Error, Result};

/// Which σ_t² Algorithm 2 adds back (paper, section 3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variance {
    /// σ_t² = β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t, diffusers' "fixed_small".
    Small,
    /// σ_t² = β_t, diffusers' "fixed_large".
    Large,
}

impl std::str::FromStr for Variance {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "small" | "fixed_small" | "beta_tilde" => Ok(Self::Small),
            "large" | "fixed_large" | "beta" => Ok(Self::Large),
            _ => Err(format!("variance must be `small` (β̃_t) or `large` (β_t), not `{s}`")),
        }
    }
}

/// `scheduler_config.json` fields that define the schedule (diffusers' defaults when absent).
#[derive(Debug, Clone, Deserialize)]
pub struct SchedulerConfig {
    #[serde(default = "thousand")]
    pub num_train_timesteps: usize,
    #[serde(default = "beta_start")]
    pub beta_start: f64,
    #[serde(default = "beta_end")]
    pub beta_end: f64,
    #[serde(default)]
    pub beta_schedule: BetaSchedule,
    /// How `set_timesteps(K)` spaces K of the T timesteps; absent, each scheduler class's default.
    #[serde(default)]
    pub timestep_spacing: Option<TimestepSpacing>,
    #[serde(default)]
    pub steps_offset: usize,
    /// Clip x̂_0 to ±clip_sample_range; absent, each class's default (DDPM, DDIM: on; Heun: off).
    #[serde(default)]
    pub clip_sample: Option<bool>,
    #[serde(default = "one")]
    pub clip_sample_range: f64,
    #[serde(default)]
    pub prediction_type: PredictionType,
    #[serde(default)]
    pub thresholding: bool,
    /// DDIM: ᾱ before the first step is 1 (default) or ᾱ_0.
    #[serde(default)]
    pub set_alpha_to_one: Option<bool>,
    #[serde(default)]
    pub use_karras_sigmas: bool,
    #[serde(default)]
    pub interpolation_type: InterpolationType,
    #[serde(default)]
    pub final_sigmas_type: FinalSigmas,
    /// β_t given one per timestep (diffusers' `trained_betas`); when present it replaces `beta_schedule`.
    #[serde(default)]
    pub trained_betas: Option<Vec<f64>>,
}

/// The most training timesteps a schedule may have: 100 times the paper's T, and a bound on the arrays the
/// schedule and the page's plot allocate.
pub const MAX_TRAIN_TIMESTEPS: usize = 100_000;

/// The smallest ᾱ_T accepted: x̂_0 = (x_t − √(1−ᾱ) ε)/√ᾱ must stay finite in f32 (1/√1e-30 = 1e15). The
/// paper's schedule ends at 4e-5, the cosine one near 1e-9.
const MIN_ALPHA_BAR: f64 = 1e-30;

/// diffusers' `timestep_spacing` (Lin et al. 2023, table 2).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TimestepSpacing {
    /// Every (T/K)-th index from 0, plus `steps_offset`.
    Leading,
    /// K evenly spaced values from 0 to T−1 (fractional for Euler and Heun).
    Linspace,
    /// Every (T/K)-th index counted down from T−1.
    Trailing,
}

/// What the network predicts: ddpm-web's samplers take ε.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum PredictionType {
    #[default]
    Epsilon,
    Sample,
    VPrediction,
}

/// How Euler and Heun interpolate σ between the schedule's timesteps.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum InterpolationType {
    #[default]
    Linear,
    LogLinear,
}

/// The σ Euler ends at.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum FinalSigmas {
    #[default]
    Zero,
    SigmaMin,
}

/// `beta_schedule`: the β_t curves diffusers' `DDPMScheduler` offers without trained betas.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum BetaSchedule {
    /// The paper's: β linear from beta_start to beta_end.
    #[default]
    Linear,
    /// Latent diffusion's: linspace of √β, squared.
    ScaledLinear,
    /// Nichol & Dhariwal's cosine schedule.
    SquaredcosCapV2,
}

fn thousand() -> usize { 1000 }
fn beta_start() -> f64 { 1e-4 }
fn beta_end() -> f64 { 0.02 }
fn one() -> f64 { 1.0 }

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            num_train_timesteps: 1000,
            beta_start: 1e-4,
            beta_end: 0.02,
            beta_schedule: BetaSchedule::Linear,
            timestep_spacing: None,
            steps_offset: 0,
            clip_sample: None,
            clip_sample_range: 1.0,
            prediction_type: PredictionType::Epsilon,
            thresholding: false,
            set_alpha_to_one: None,
            use_karras_sigmas: false,
            interpolation_type: InterpolationType::Linear,
            final_sigmas_type: FinalSigmas::Zero,
            trained_betas: None,
        }
    }
}

impl SchedulerConfig {
    pub fn from_json(text: &str) -> Result<Self> {
        let cfg: Self = crate::model::config::parse_json(text).map_err(|e| Error::ConfigJson(format!("scheduler_config.json: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Every number the schedule and the samplers read, checked before any array is made from it.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, value: &dyn std::fmt::Display, hint: &str| {
            Err(Error::SchedulerValue { field, value: value.to_string(), hint: hint.into() })
        };
        let t = self.num_train_timesteps;
        if t == 0 || t > MAX_TRAIN_TIMESTEPS {
            return bad("num_train_timesteps", &t, &format!("must be 1 to {MAX_TRAIN_TIMESTEPS}"));
        }
        if let Some(betas) = &self.trained_betas {
            if betas.len() != t {
                return bad("trained_betas", &format!("{} values", betas.len()), &format!("one per timestep: num_train_timesteps is {t}"));
            }
            if let Some((i, b)) = betas.iter().enumerate().find(|(_, b)| !(**b > 0.0 && **b < 1.0)) {
                return bad("trained_betas", &format!("{b} at index {i}"), "every β must be strictly between 0 and 1");
            }
        } else if self.beta_schedule != BetaSchedule::SquaredcosCapV2 {
            for (field, b) in [("beta_start", self.beta_start), ("beta_end", self.beta_end)] {
                if !(b > 0.0 && b < 1.0) {
                    return bad(field, &b, "β must be strictly between 0 and 1");
                }
            }
            if self.beta_start > self.beta_end {
                return bad("beta_start", &self.beta_start, &format!("must not exceed beta_end ({}): noise is added faster as t grows", self.beta_end));
            }
        }
        if !(self.clip_sample_range.is_finite() && self.clip_sample_range > 0.0) {
            return bad("clip_sample_range", &self.clip_sample_range, "must be a positive number");
        }
        if self.steps_offset >= t {
            return bad("steps_offset", &self.steps_offset, &format!("must be below num_train_timesteps ({t})"));
        }
        // The arrays themselves: a long schedule of large βs drives ᾱ_T to 0, and x̂_0 divides by √ᾱ_t.
        let s = Schedule::build(self);
        let last = s.alphas_cumprod[t - 1];
        if last.is_nan() || last < MIN_ALPHA_BAR {
            return bad("num_train_timesteps", &t, &format!("with these βs ᾱ at the last step is {last:e}, below {MIN_ALPHA_BAR:e}: the images could not be recovered from x_t"));
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct Schedule {
    pub betas: Vec<f64>,
    pub alphas: Vec<f64>,
    pub alphas_cumprod: Vec<f64>,
}

/// One update as an affine map, the uniform of `shaders/update.wgsl` (keep the two in the same order). Every
/// sampler is one of these per step; `samplers.rs` computes them in f64 from the schedule:
///   x̂_0 = clamp(x0_x · x_t − x0_eps · ε, −clip, clip)
///   x'  = to_x0 · x̂_0 + to_x · x_t + to_eps · ε + to_z · z  [+ to_saved · saved + to_deriv · deriv]
/// and Heun's first stage also keeps deriv = deriv_x · x_t + deriv_x0 · x̂_0.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable, serde::Serialize, serde::Deserialize)]
pub struct StepCoeffs {
    /// x̂_0 = (x_t − √(1−ᾱ_t) ε) / √ᾱ_t (paper eq. 15 rearranged) for the VP samplers.
    pub x0_x: f32,
    pub x0_eps: f32,
    /// |x̂_0| bound: 1 for the official code's clipping, `NO_CLIP` otherwise.
    pub clip: f32,
    pub to_x0: f32,
    pub to_x: f32,
    pub to_eps: f32,
    /// σ of the added noise; 0 where a step adds none (the kernel then draws none).
    pub to_z: f32,
    pub to_saved: f32,
    pub to_deriv: f32,
    pub deriv_x: f32,
    pub deriv_x0: f32,
    #[serde(skip)]
    pub _pad: f32,
}

/// The `clip` of a sampler that does not clip x̂_0 (finite, so the WGSL clamp stays well defined).
pub const NO_CLIP: f32 = f32::MAX;

impl StepCoeffs {
    /// All zero, x̂_0 unclipped: the start every sampler's coefficients are built from.
    pub const ZERO: StepCoeffs = StepCoeffs {
        x0_x: 0.0, x0_eps: 0.0, clip: NO_CLIP, to_x0: 0.0, to_x: 0.0, to_eps: 0.0, to_z: 0.0,
        to_saved: 0.0, to_deriv: 0.0, deriv_x: 0.0, deriv_x0: 0.0, _pad: 0.0,
    };

    /// x ← keep · x + sigma · z (x_T is keep = 0; noising an image to level t is √ᾱ_t, √(1−ᾱ_t)).
    pub fn noise(keep: f64, sigma: f64) -> StepCoeffs {
        StepCoeffs { to_x: keep as f32, to_z: sigma as f32, ..Self::ZERO }
    }

    /// x̂_0 of the VP process at ᾱ (paper eq. 15 rearranged), clipped to ±`clip` when given.
    pub fn with_x0(self, alpha_bar: f64, clip: Option<f64>) -> StepCoeffs {
        StepCoeffs {
            x0_x: (1.0 / alpha_bar.sqrt()) as f32,
            x0_eps: ((1.0 - alpha_bar).sqrt() / alpha_bar.sqrt()) as f32,
            clip: clip.map_or(NO_CLIP, |c| c as f32),
            ..self
        }
    }
}

impl Schedule {
    /// β linear from `beta_start` to `beta_end` over T steps, as `torch.linspace`.
    pub fn linear(steps: usize, beta_start: f64, beta_end: f64) -> Self {
        let betas = (0..steps)
            .map(|i| if steps == 1 { beta_start } else { beta_start + (beta_end - beta_start) * i as f64 / (steps - 1) as f64 })
            .collect();
        Self::from_betas(betas)
    }

    /// The schedule of a config, validated first (a config built in code, not read, is checked here).
    pub fn from_config(cfg: &SchedulerConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Self::build(cfg))
    }

    /// The arrays of a config whose counts are in bounds (`validate` calls this for the values it checks).
    fn build(cfg: &SchedulerConfig) -> Self {
        let t = cfg.num_train_timesteps;
        if let Some(betas) = &cfg.trained_betas {
            return Self::from_betas(betas.clone());
        }
        match cfg.beta_schedule {
            BetaSchedule::Linear => Self::linear(t, cfg.beta_start, cfg.beta_end),
            // diffusers: linspace of √β, squared (latent diffusion's schedule).
            BetaSchedule::ScaledLinear => {
                let s = Self::linear(t, cfg.beta_start.sqrt(), cfg.beta_end.sqrt());
                Self::from_betas(s.betas.iter().map(|b| b * b).collect())
            }
            // Nichol & Dhariwal's cosine schedule, β capped at 0.999 as diffusers does.
            BetaSchedule::SquaredcosCapV2 => {
                let f = |x: f64| ((x + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2).cos().powi(2);
                let betas = (0..t)
                    .map(|i| (1.0 - f((i + 1) as f64 / t as f64) / f(i as f64 / t as f64)).min(0.999))
                    .collect();
                Self::from_betas(betas)
            }
        }
    }

    fn from_betas(betas: Vec<f64>) -> Self {
        let alphas: Vec<f64> = betas.iter().map(|b| 1.0 - b).collect();
        let mut acc = 1.0;
        let alphas_cumprod = alphas.iter().map(|a| { acc *= a; acc }).collect();
        Self { betas, alphas, alphas_cumprod }
    }

    pub fn len(&self) -> usize {
        self.betas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.betas.is_empty()
    }

    /// ᾱ at index `t`, with ᾱ_{−1} = 1 (the step before the first).
    pub fn alpha_bar(&self, t: isize) -> f64 {
        if t < 0 { 1.0 } else { self.alphas_cumprod[t as usize] }
    }

    /// The timesteps a run of `steps` steps visits, T−1 first: diffusers' `set_timesteps` with "leading"
    /// spacing (every (T / steps)-th index from 0). `steps == T` is the paper's full chain.
    pub fn timesteps(&self, steps: usize) -> Result<Vec<usize>> {
        let total = self.len();
        if steps == 0 || steps > total {
            return Err(Error::Timestep { t: steps, steps: total + 1 });
        }
        let ratio = total / steps;
        Ok((0..steps).rev().map(|i| i * ratio).collect())
    }

    /// Coefficients of the update from `t` to `prev` (`prev` < 0 at the last step). With respacing the
    /// per-step β is recomputed from ᾱ at the kept steps: β = 1 − ᾱ_t / ᾱ_prev (diffusers' `step`).
    pub fn step_coeffs(&self, t: usize, prev: isize, variance: Variance, clip: bool) -> Result<StepCoeffs> {
        if t >= self.len() || prev >= t as isize {
            return Err(Error::Timestep { t, steps: self.len() });
        }
        let ab_t = self.alpha_bar(t as isize);
        let ab_prev = self.alpha_bar(prev);
        let alpha = ab_t / ab_prev;
        let beta = 1.0 - alpha;
        let sigma2 = match variance {
            Variance::Small => ((1.0 - ab_prev) / (1.0 - ab_t) * beta).max(1e-20),
            Variance::Large => beta,
        };
        let sigma = if t == 0 { 0.0 } else { sigma2.sqrt() };
        let base = StepCoeffs { to_z: sigma as f32, ..StepCoeffs::ZERO };
        Ok(if clip {
            // The official code: the posterior mean μ̃_t(clip(x̂_0), x_t) (paper eq. 7).
            StepCoeffs {
                to_x0: (ab_prev.sqrt() * beta / (1.0 - ab_t)) as f32,
                to_x: (alpha.sqrt() * (1.0 - ab_prev) / (1.0 - ab_t)) as f32,
                ..base.with_x0(ab_t, Some(1.0))
            }
        } else {
            // Algorithm 2's line 4: (x_t − β_t/√(1−ᾱ_t) ε) / √α_t; x̂_0 is only shown.
            StepCoeffs {
                to_x: (1.0 / alpha.sqrt()) as f32,
                to_eps: -(beta / (1.0 - ab_t).sqrt() / alpha.sqrt()) as f32,
                ..base.with_x0(ab_t, None)
            }
        })
    }

    /// log SNR_t = log(ᾱ_t / (1 − ᾱ_t)), for the page's plot.
    pub fn log_snr(&self, t: usize) -> f64 {
        let a = self.alphas_cumprod[t];
        (a / (1.0 - a)).ln()
    }
}

/// The CPU reference of `update.wgsl`, one element: returns (x', x̂_0, deriv) where deriv is what
/// `heun_predict` keeps. `saved` and `deriv_in` are Heun's kept state (0 for the other entry points).
pub fn reference_update(c: &StepCoeffs, x: f32, eps: f32, z: f32, saved: f32, deriv_in: f32) -> (f32, f32, f32) {
    let x0 = (c.x0_x * x - c.x0_eps * eps).clamp(-c.clip, c.clip);
    let next = c.to_x0 * x0 + c.to_x * x + c.to_eps * eps + c.to_z * z + c.to_saved * saved + c.to_deriv * deriv_in;
    (next, x0, c.deriv_x * x + c.deriv_x0 * x0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paper() -> Schedule {
        Schedule::linear(1000, 1e-4, 0.02)
    }

    #[test]
    fn pins_values_from_diffusers() {
        let s = paper();
        // diffusers' test_scheduling_ddpm.py: variance at 487 is 0.00979 and at 999 is 0.02.
        let small = |t: usize| {
            let c = s.step_coeffs(t, t as isize - 1, Variance::Small, true).unwrap();
            (c.to_z as f64).powi(2)
        };
        assert!((small(487) - 0.00979).abs() < 1e-5, "{}", small(487));
        assert!((small(999) - 0.02).abs() < 1e-5, "{}", small(999));
        assert!((s.alphas_cumprod[999] - 4.0358e-5).abs() < 1e-8, "{}", s.alphas_cumprod[999]);
    }

    #[test]
    fn paper_update_equals_posterior_mean_without_clipping() {
        let s = paper();
        for &t in &[1usize, 10, 500, 999] {
            let c = s.step_coeffs(t, t as isize - 1, Variance::Large, false).unwrap();
            let (x, eps) = (0.3f32, -0.7f32);
            let clipped = s.step_coeffs(t, t as isize - 1, Variance::Large, true).unwrap();
            let x0 = clipped.x0_x * x - clipped.x0_eps * eps; // unclipped: the identity holds for any x̂_0
            let posterior = clipped.to_x0 * x0 + clipped.to_x * x;
            let (paper_mean, _, _) = reference_update(&c, x, eps, 0.0, 0.0, 0.0);
            assert!((posterior - paper_mean).abs() < 1e-4 * (1.0 + paper_mean.abs()), "t={t}");
        }
    }

    #[test]
    fn last_step_adds_no_noise_and_respacing_matches_diffusers() {
        let s = paper();
        assert_eq!(s.step_coeffs(0, -1, Variance::Large, true).unwrap().to_z, 0.0);
        let ts = s.timesteps(10).unwrap();
        assert_eq!(ts, vec![900, 800, 700, 600, 500, 400, 300, 200, 100, 0]);
        assert_eq!(s.timesteps(1000).unwrap()[0], 999);
        assert!(s.timesteps(1001).is_err());
    }

    fn tiny_with(field: &str, value: &str) -> Result<SchedulerConfig> {
        let mut v: serde_json::Value = serde_json::from_str(include_str!("../../tests/models/tiny/scheduler_config.json")).unwrap();
        v[field] = serde_json::from_str(value).unwrap();
        SchedulerConfig::from_json(&v.to_string())
    }

    fn refused(field: &str, value: &str, says: &str) {
        let e = tiny_with(field, value).expect_err(&format!("{field} = {value} must be refused")).to_string();
        assert!(e.contains(field) && e.contains("scheduler_config.json") && e.contains(says), "{field} = {value}: {e}");
    }

    #[test]
    fn refuses_betas_outside_zero_one_and_insane_counts() {
        // Adds: every value the schedule is built from is checked first, the message naming the file and
        // field (β = 0 made 1 − ᾱ_0 = 0 and NaN coefficients; β ≥ 1 made ᾱ ≤ 0).
        refused("beta_start", "0", "between 0 and 1");
        refused("beta_start", "-0.1", "between 0 and 1");
        refused("beta_end", "1", "between 0 and 1");
        refused("beta_end", "1.5", "between 0 and 1");
        refused("beta_start", "0.05", "must not exceed beta_end");
        refused("num_train_timesteps", "0", "1 to 100000");
        refused("num_train_timesteps", "1000000000", "1 to 100000");
        refused("clip_sample_range", "0", "positive");
        refused("steps_offset", "1000", "below num_train_timesteps");
        assert!(tiny_with("beta_schedule", "\"scaled_linear\"").is_ok());
        let e = tiny_with("beta_schedule", "\"sigmoid\"").unwrap_err().to_string();
        assert!(e.contains("beta_schedule") && e.contains("sigmoid"), "an unknown schedule name is named: {e}");
        let e = tiny_with("num_train_timesteps", "-5").unwrap_err().to_string();
        assert!(e.contains("num_train_timesteps"), "{e}");
    }

    #[test]
    fn refuses_a_schedule_whose_alpha_bar_vanishes() {
        // Adds: βs each in (0, 1) can still drive ᾱ_T below what f32 x̂_0 = x_t/√ᾱ survives (NaN images).
        let mut v: serde_json::Value = serde_json::from_str(include_str!("../../tests/models/tiny/scheduler_config.json")).unwrap();
        v["num_train_timesteps"] = 100_000.into();
        v["beta_start"] = 0.5.into();
        v["beta_end"] = 0.9.into();
        let e = SchedulerConfig::from_json(&v.to_string()).unwrap_err().to_string();
        assert!(e.contains("num_train_timesteps") && e.contains("ᾱ"), "{e}");
    }

    #[test]
    fn trained_betas_are_used_and_checked() {
        // Adds: trained_betas, ignored before (a model with them sampled with the wrong schedule), now
        // replaces beta_schedule and is checked for length and range.
        let mut v: serde_json::Value = serde_json::from_str(include_str!("../../tests/models/tiny/scheduler_config.json")).unwrap();
        v["num_train_timesteps"] = 3.into();
        v["trained_betas"] = serde_json::json!([0.1, 0.2, 0.3]);
        let cfg = SchedulerConfig::from_json(&v.to_string()).unwrap();
        let s = Schedule::from_config(&cfg).unwrap();
        assert_eq!(s.betas, vec![0.1, 0.2, 0.3]);
        assert!((s.alphas_cumprod[2] - 0.9 * 0.8 * 0.7).abs() < 1e-12);
        v["trained_betas"] = serde_json::json!([0.1, 0.2]);
        let e = SchedulerConfig::from_json(&v.to_string()).unwrap_err().to_string();
        assert!(e.contains("trained_betas") && e.contains("2 values"), "{e}");
        v["trained_betas"] = serde_json::json!([0.1, 0.0, 0.3]);
        let e = SchedulerConfig::from_json(&v.to_string()).unwrap_err().to_string();
        assert!(e.contains("trained_betas") && e.contains("index 1"), "{e}");
    }

    #[test]
    fn a_config_built_in_code_is_checked_too() {
        // Adds: Schedule::from_config validates, so no path builds arrays from unchecked numbers.
        let cfg = SchedulerConfig { beta_end: 2.0, ..SchedulerConfig::default() };
        assert!(matches!(Schedule::from_config(&cfg), Err(Error::SchedulerValue { field: "beta_end", .. })));
    }
}
