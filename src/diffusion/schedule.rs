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

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self { num_train_timesteps: 1000, beta_start: 1e-4, beta_end: 0.02, beta_schedule: BetaSchedule::Linear }
    }
}

impl SchedulerConfig {
    pub fn from_json(text: &str) -> Result<Self> {
        crate::model::config::parse_json(text).map_err(|e| Error::ConfigJson(format!("scheduler_config.json: {e}")))
    }
}

#[derive(Debug, Clone)]
pub struct Schedule {
    pub betas: Vec<f64>,
    pub alphas: Vec<f64>,
    pub alphas_cumprod: Vec<f64>,
}

/// What the update kernel needs for one step from timestep `t` to `prev` (uniform layout of
/// `shaders/ddpm_step.wgsl`; keep the two in the same order).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct StepCoeffs {
    /// x̂_0 = x0_x · x_t − x0_eps · ε  (= (x_t − √(1−ᾱ_t) ε) / √ᾱ_t, paper eq. 15 rearranged)
    pub x0_x: f32,
    pub x0_eps: f32,
    /// Posterior mean μ̃_t(x̂_0, x_t) = mean_x0 · x̂_0 + mean_xt · x_t (paper eq. 7), used with clipping.
    pub mean_x0: f32,
    pub mean_xt: f32,
    /// Algorithm 2's mean (x_t − β_t/√(1−ᾱ_t) ε) / √α_t = paper_x · x_t − paper_eps · ε, used without clipping.
    pub paper_x: f32,
    pub paper_eps: f32,
    /// σ_t; 0 at the last step (Algorithm 2: z = 0 when t = 1).
    pub sigma: f32,
    /// 1: clip x̂_0 to [−1, 1] and use the posterior mean (the official code); 0: the paper's update.
    pub clip: u32,
}

impl Schedule {
    /// β linear from `beta_start` to `beta_end` over T steps, as `torch.linspace`.
    pub fn linear(steps: usize, beta_start: f64, beta_end: f64) -> Self {
        let betas = (0..steps)
            .map(|i| if steps == 1 { beta_start } else { beta_start + (beta_end - beta_start) * i as f64 / (steps - 1) as f64 })
            .collect();
        Self::from_betas(betas)
    }

    pub fn from_config(cfg: &SchedulerConfig) -> Result<Self> {
        let t = cfg.num_train_timesteps;
        if t == 0 {
            return Err(Error::UnsupportedConfig { field: "num_train_timesteps", value: "0".into(), hint: "must be positive".into() });
        }
        match cfg.beta_schedule {
            BetaSchedule::Linear => Ok(Self::linear(t, cfg.beta_start, cfg.beta_end)),
            // diffusers: linspace of √β, squared (latent diffusion's schedule).
            BetaSchedule::ScaledLinear => {
                let s = Self::linear(t, cfg.beta_start.sqrt(), cfg.beta_end.sqrt());
                Ok(Self::from_betas(s.betas.iter().map(|b| b * b).collect()))
            }
            // Nichol & Dhariwal's cosine schedule, β capped at 0.999 as diffusers does.
            BetaSchedule::SquaredcosCapV2 => {
                let f = |x: f64| ((x + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2).cos().powi(2);
                let betas = (0..t)
                    .map(|i| (1.0 - f((i + 1) as f64 / t as f64) / f(i as f64 / t as f64)).min(0.999))
                    .collect();
                Ok(Self::from_betas(betas))
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
        Ok(StepCoeffs {
            x0_x: (1.0 / ab_t.sqrt()) as f32,
            x0_eps: ((1.0 - ab_t).sqrt() / ab_t.sqrt()) as f32,
            mean_x0: (ab_prev.sqrt() * beta / (1.0 - ab_t)) as f32,
            mean_xt: (alpha.sqrt() * (1.0 - ab_prev) / (1.0 - ab_t)) as f32,
            paper_x: (1.0 / alpha.sqrt()) as f32,
            paper_eps: (beta / (1.0 - ab_t).sqrt() / alpha.sqrt()) as f32,
            sigma: if t == 0 { 0.0 } else { sigma2.sqrt() as f32 },
            clip: clip as u32,
        })
    }

    /// log SNR_t = log(ᾱ_t / (1 − ᾱ_t)), for the page's plot.
    pub fn log_snr(&self, t: usize) -> f64 {
        let a = self.alphas_cumprod[t];
        (a / (1.0 - a)).ln()
    }
}

/// The CPU reference of the update, applied element by element (tests compare the kernel with this).
pub fn reference_update(c: &StepCoeffs, x: f32, eps: f32, z: f32) -> (f32, f32) {
    let mut x0 = c.x0_x * x - c.x0_eps * eps;
    let mean = if c.clip != 0 {
        x0 = x0.clamp(-1.0, 1.0);
        c.mean_x0 * x0 + c.mean_xt * x
    } else {
        c.paper_x * x - c.paper_eps * eps
    };
    (mean + c.sigma * z, x0)
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
            (c.sigma as f64).powi(2)
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
            let x0 = c.x0_x * x - c.x0_eps * eps;
            let posterior = c.mean_x0 * x0 + c.mean_xt * x;
            let (paper_mean, _) = reference_update(&c, x, eps, 0.0);
            assert!((posterior - paper_mean).abs() < 1e-4 * (1.0 + paper_mean.abs()), "t={t}");
        }
    }

    #[test]
    fn last_step_adds_no_noise_and_respacing_matches_diffusers() {
        let s = paper();
        assert_eq!(s.step_coeffs(0, -1, Variance::Large, true).unwrap().sigma, 0.0);
        let ts = s.timesteps(10).unwrap();
        assert_eq!(ts, vec![900, 800, 700, 600, 500, 400, 300, 200, 100, 0]);
        assert_eq!(s.timesteps(1000).unwrap()[0], 999);
        assert!(s.timesteps(1001).is_err());
    }
}
