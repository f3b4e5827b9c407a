//! The 2-D playground: a Gaussian mixture whose VP-noised density and score are known in closed form, and
//! clouds of particles run by each sampler the texts teach with that exact score, so a person sees what the
//! samplers do when the network is perfect. Plain Rust, no GPU: the page steps ~2,000 particles per frame.
//!
//! Seeds cited below: `003` is the DDPM/NCSN tutorial (equations numbered there), `004` Patrick Yin's notes.
//!
//! Time is the paper's t, 0..=T: t = 0 is the data itself (ᾱ = 1), t ≥ 1 reads index t − 1 of the
//! [`Schedule`] (its indices are diffusers' 0..T−1), which is what the page's Timestep slider shows.

use rand_distr::{Distribution, StandardNormal};
use rand_xoshiro::rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::diffusion::schedule::{Schedule, Variance};

/// One component of the data mixture: weight (unnormalised), mean, and diagonal variances.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Component {
    pub weight: f64,
    pub mean: [f64; 2],
    pub var: [f64; 2],
}

/// A 2-D Gaussian mixture p(x) = Σ_k w_k N(x; μ_k, diag(v_k)). Weights are normalised when a density is made.
#[derive(Debug, Clone, PartialEq)]
pub struct Mixture {
    pub components: Vec<Component>,
}

/// The most components the page lets a person add: each one is a term of every score evaluation.
pub const MAX_COMPONENTS: usize = 12;

/// ᾱ at the paper's t (t = 0 is the data: ᾱ = 1).
pub fn alpha_bar_at(schedule: &Schedule, t: usize) -> f64 {
    schedule.alpha_bar(t as isize - 1)
}

/// β at the paper's t ≥ 1 (the step from x_{t−1} to x_t).
fn beta_at(schedule: &Schedule, t: usize) -> f64 {
    schedule.betas[t - 1]
}

impl Mixture {
    /// Four unequal modes, one of them far from the origin and light, so a sampler that gets the
    /// proportions wrong, or misses a mode, shows it.
    pub fn demo() -> Self {
        let c = |weight, mean, var| Component { weight, mean, var };
        Self {
            components: vec![
                c(0.40, [-1.4, 1.1], [0.05, 0.05]),
                c(0.25, [1.5, 1.3], [0.03, 0.12]),
                c(0.20, [1.1, -1.4], [0.12, 0.03]),
                c(0.15, [-1.7, -1.8], [0.02, 0.02]),
            ],
        }
    }

    /// Adds a component at `mean`, weighted like an average existing one, so a click never swamps the rest.
    /// Past [`MAX_COMPONENTS`] the oldest is dropped.
    pub fn add(&mut self, mean: [f64; 2], var: f64) {
        let w = if self.components.is_empty() {
            1.0
        } else {
            self.components.iter().map(|c| c.weight).sum::<f64>() / self.components.len() as f64
        };
        if self.components.len() >= MAX_COMPONENTS {
            self.components.remove(0);
        }
        self.components.push(Component { weight: w, mean, var: [var, var] });
    }

    fn total_weight(&self) -> f64 {
        self.components.iter().map(|c| c.weight).sum()
    }

    /// E[x] = Σ_k w_k μ_k.
    pub fn mean(&self) -> [f64; 2] {
        let total = self.total_weight();
        self.components.iter().fold([0.0; 2], |m, c| [m[0] + c.weight / total * c.mean[0], m[1] + c.weight / total * c.mean[1]])
    }

    /// The normalised weights.
    pub fn proportions(&self) -> Vec<f64> {
        let total = self.total_weight();
        self.components.iter().map(|c| c.weight / total).collect()
    }

    /// The share of `points` nearest each component (highest posterior under the data mixture): how a
    /// cloud has spread over the modes, to set beside [`Mixture::proportions`].
    pub fn shares(&self, points: &[[f64; 2]]) -> Vec<f64> {
        let d = Density::new(self);
        let mut counts = vec![0.0; self.components.len()];
        for p in points {
            if let Some(c) = counts.get_mut(d.component_of(*p)) {
                *c += 1.0;
            }
        }
        counts.iter().map(|c| c / points.len().max(1) as f64).collect()
    }

    /// The marginal of x_t: q(x_t | x_0) = N(√ᾱ x_0, (1 − ᾱ) I) (seed 003 eq. 7) convolved with each
    /// component gives N(√ᾱ μ_k, ᾱ diag(v_k) + (1 − ᾱ) I), with the same weights.
    pub fn noised(&self, alpha_bar: f64) -> Mixture {
        let s = alpha_bar.sqrt();
        Mixture {
            components: self
                .components
                .iter()
                .map(|c| Component {
                    weight: c.weight,
                    mean: [s * c.mean[0], s * c.mean[1]],
                    var: [alpha_bar * c.var[0] + (1.0 - alpha_bar), alpha_bar * c.var[1] + (1.0 - alpha_bar)],
                })
                .collect(),
        }
    }

    /// The density p_t at the paper's t, ready to evaluate.
    pub fn density_at(&self, schedule: &Schedule, t: usize) -> Density {
        Density::new(&self.noised(alpha_bar_at(schedule, t)))
    }
}

#[derive(Debug, Clone, Copy)]
struct Term {
    /// log w_k − log 2π − ½ log(v_0 v_1): the component's log density at its mean, weight included.
    log_norm: f64,
    mean: [f64; 2],
    inv_var: [f64; 2],
}

/// A mixture prepared for many evaluations (the per-component constants computed once).
#[derive(Debug, Clone)]
pub struct Density {
    terms: Vec<Term>,
    /// The smallest variance of any component along any axis: the finest scale of the density.
    pub min_var: f64,
}

impl Density {
    pub fn new(m: &Mixture) -> Self {
        let total = m.total_weight();
        let terms = m
            .components
            .iter()
            .map(|c| Term {
                log_norm: (c.weight / total).ln() - (2.0 * std::f64::consts::PI).ln() - 0.5 * (c.var[0] * c.var[1]).ln(),
                mean: c.mean,
                inv_var: [1.0 / c.var[0], 1.0 / c.var[1]],
            })
            .collect();
        let min_var = m.components.iter().flat_map(|c| c.var).fold(f64::INFINITY, f64::min);
        Self { terms, min_var }
    }

    fn log_term(t: &Term, x: [f64; 2]) -> f64 {
        let d = [x[0] - t.mean[0], x[1] - t.mean[1]];
        t.log_norm - 0.5 * (d[0] * d[0] * t.inv_var[0] + d[1] * d[1] * t.inv_var[1])
    }

    /// log p(x) = log Σ_k exp(l_k(x)), by log-sum-exp so far-out points do not underflow to log 0.
    pub fn log_density(&self, x: [f64; 2]) -> f64 {
        let max = self.terms.iter().map(|t| Self::log_term(t, x)).fold(f64::NEG_INFINITY, f64::max);
        if !max.is_finite() {
            return max;
        }
        max + self.terms.iter().map(|t| (Self::log_term(t, x) - max).exp()).sum::<f64>().ln()
    }

    pub fn density(&self, x: [f64; 2]) -> f64 {
        self.log_density(x).exp()
    }

    /// ∇ log p(x) = Σ_k r_k(x) · (−(x − μ_k) / v_k), with r_k = softmax_k(l_k(x)) the posterior probability
    /// of component k (computed relative to the largest l_k, the same log-sum-exp shift).
    pub fn score(&self, x: [f64; 2]) -> [f64; 2] {
        // Few components: recomputing l_k beats allocating per particle.
        let max = self.terms.iter().map(|t| Self::log_term(t, x)).fold(f64::NEG_INFINITY, f64::max);
        if !max.is_finite() {
            return [0.0, 0.0];
        }
        let (mut z, mut s) = (0.0, [0.0; 2]);
        for t in &self.terms {
            let r = (Self::log_term(t, x) - max).exp();
            z += r;
            s[0] -= r * (x[0] - t.mean[0]) * t.inv_var[0];
            s[1] -= r * (x[1] - t.mean[1]) * t.inv_var[1];
        }
        if z > 0.0 { [s[0] / z, s[1] / z] } else { [0.0, 0.0] }
    }

    /// p at every (xs[i], ys[j]), row j after row j − 1: each component factorises over the two axes
    /// (diagonal variances), so a grid costs K multiply-adds per point instead of K exponentials (the
    /// page's heat map, recomputed every frame while t moves). Points where every term underflows read 0.
    pub fn density_grid(&self, xs: &[f64], ys: &[f64]) -> Vec<f64> {
        let along = |vals: &[f64], d: usize, with_norm: bool| -> Vec<Vec<f64>> {
            self.terms
                .iter()
                .map(|t| vals.iter().map(|v| ((if with_norm { t.log_norm } else { 0.0 }) - 0.5 * (v - t.mean[d]).powi(2) * t.inv_var[d]).exp()).collect())
                .collect()
        };
        let (ex, ey) = (along(xs, 0, false), along(ys, 1, true));
        let mut out = vec![0.0; xs.len() * ys.len()];
        for (k, exk) in ex.iter().enumerate() {
            for (row, &eyk) in out.chunks_exact_mut(xs.len()).zip(&ey[k]) {
                for (o, &e) in row.iter_mut().zip(exk) {
                    *o += eyk * e;
                }
            }
        }
        out
    }

    /// The component with the highest posterior probability at x (which mode a particle is in).
    pub fn component_of(&self, x: [f64; 2]) -> usize {
        let mut best = (0, f64::NEG_INFINITY);
        for (k, t) in self.terms.iter().enumerate() {
            let l = Self::log_term(t, x);
            if l > best.1 {
                best = (k, l);
            }
        }
        best.0
    }
}

/// The noise a perfect network would predict: ε(x, t) = −√(1 − ᾱ_t) ∇ log p_t(x) (seed 004 §5).
pub fn eps(density_t: &Density, alpha_bar: f64, x: [f64; 2]) -> [f64; 2] {
    let s = density_t.score(x);
    let k = -(1.0 - alpha_bar).sqrt();
    [k * s[0], k * s[1]]
}

/// The particle samplers, each driven by the exact score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamplerKind {
    Ddpm,
    ReverseSde,
    ProbabilityFlow,
    AnnealedLangevin,
    Langevin,
}

impl SamplerKind {
    pub const ALL: [SamplerKind; 5] =
        [Self::Ddpm, Self::ReverseSde, Self::ProbabilityFlow, Self::AnnealedLangevin, Self::Langevin];

    /// A stable name (the select's value).
    pub fn name(self) -> &'static str {
        match self {
            Self::Ddpm => "ddpm",
            Self::ReverseSde => "sde",
            Self::ProbabilityFlow => "ode",
            Self::AnnealedLangevin => "annealed",
            Self::Langevin => "langevin",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }

    /// What the select shows.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ddpm => "DDPM (Algorithm 2)",
            Self::ReverseSde => "Reverse SDE (Euler–Maruyama)",
            Self::ProbabilityFlow => "Probability-flow ODE (Euler)",
            Self::AnnealedLangevin => "Annealed Langevin (NCSN)",
            Self::Langevin => "Plain Langevin at t",
        }
    }

    /// Whether the run walks t from T down to 0 (the others sample one fixed p_t, or anneal by levels).
    pub fn is_reverse_chain(self) -> bool {
        matches!(self, Self::Ddpm | Self::ReverseSde | Self::ProbabilityFlow)
    }
}

/// Langevin step sizes are η times the finest variance of the density being sampled. Song & Ermon (2019)
/// take α_i = ε σ_i²/σ_L² with ε = 2e-5 and σ_L = 0.01, i.e. α_i = 0.2 σ_i²: η = 0.2 here. Their σ_i² is
/// the noise variance, which in images dwarfs the data's own spread at every level; in 2-D the data's
/// modes have widths of their own, so the finest variance of p_t (ᾱ v_min + 1 − ᾱ) stands in for σ_i²:
/// the drift's Lipschitz constant is at most its inverse, so η < 2 is stable, and η = 0.2 relaxes a mode
/// in ~2/η = 10 steps at ~5% of discretisation bias on its variance.
pub const LANGEVIN_ETA: f64 = 0.2;
/// Annealed Langevin (Song & Ermon 2019, Algorithm 1) with their L = 10 levels and T = 100 steps each.
pub const ANNEAL_LEVELS: usize = 10;
pub const ANNEAL_STEPS: usize = 100;
/// Plain Langevin takes as many steps as annealed Langevin does in all, so neither wins by effort.
pub const LANGEVIN_STEPS: usize = ANNEAL_LEVELS * ANNEAL_STEPS;

/// One update of the whole cloud.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Move {
    /// x_t → x_{t−1} for the reverse chains, at the paper's t.
    Reverse { t: usize },
    /// One Langevin step on p_t with step size `step`.
    Langevin { t: usize, step: f64 },
}

/// How a run goes: which sampler, where plain Langevin samples (the paper's t), DDPM's σ_t², how many
/// particles keep their path, and the seed of the noise the run adds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunOptions {
    pub kind: SamplerKind,
    pub t: usize,
    pub variance: Variance,
    pub trails: usize,
    pub seed: u64,
}

/// A cloud of particles and the run it is on.
pub struct Particles {
    pub kind: SamplerKind,
    pub x: Vec<[f64; 2]>,
    /// For the first `trails.len()` particles, their position before the run and after each move.
    pub trails: Vec<Vec<[f32; 2]>>,
    moves: Vec<Move>,
    done: usize,
    variance: Variance,
    rng: Xoshiro256PlusPlus,
}

fn normal(rng: &mut Xoshiro256PlusPlus) -> f64 {
    StandardNormal.sample(rng)
}

/// `n` points of N(0, I) from `seed`: every sampler starts here (p_T ≈ N(0, I) for the VP process).
pub fn prior(n: usize, seed: u64) -> Vec<[f64; 2]> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..n).map(|_| [normal(&mut rng), normal(&mut rng)]).collect()
}

/// The timesteps of annealed Langevin's levels. NCSN perturbs x_0 by σ z (variance exploding); the VP
/// x_t divided by √ᾱ_t is x_0 + σ_t z with σ_t = √((1 − ᾱ_t)/ᾱ_t), so NCSN's geometric σ_1 > … > σ_L are
/// evenly spaced log SNRs here, from t = T to t = 1, each rounded to the nearest t.
pub fn anneal_levels(schedule: &Schedule, levels: usize) -> Vec<usize> {
    let big_t = schedule.len();
    let log_sigma = |t: usize| -0.5 * schedule.log_snr(t - 1);
    let (hi, lo) = (log_sigma(big_t), log_sigma(1));
    (0..levels)
        .map(|i| {
            let target = if levels == 1 { lo } else { hi + (lo - hi) * i as f64 / (levels - 1) as f64 };
            (1..=big_t)
                .min_by(|&a, &b| (log_sigma(a) - target).abs().total_cmp(&(log_sigma(b) - target).abs()))
                .unwrap_or(1)
        })
        .collect()
}

impl Particles {
    /// A run on the cloud `x0` (usually [`prior`]).
    pub fn new(opts: RunOptions, mixture: &Mixture, schedule: &Schedule, x0: Vec<[f64; 2]>) -> Self {
        let RunOptions { kind, t, variance, trails: trail_count, seed } = opts;
        let big_t = schedule.len();
        let level_step = |t: usize| LANGEVIN_ETA * mixture.density_at(schedule, t).min_var;
        let moves = match kind {
            SamplerKind::Ddpm | SamplerKind::ReverseSde | SamplerKind::ProbabilityFlow => (1..=big_t).rev().map(|t| Move::Reverse { t }).collect(),
            SamplerKind::AnnealedLangevin => anneal_levels(schedule, ANNEAL_LEVELS)
                .into_iter()
                .flat_map(|t| {
                    let step = level_step(t);
                    std::iter::repeat_n(Move::Langevin { t, step }, ANNEAL_STEPS)
                })
                .collect(),
            SamplerKind::Langevin => {
                let t = t.min(big_t);
                vec![Move::Langevin { t, step: level_step(t) }; LANGEVIN_STEPS]
            }
        };
        let trails = x0.iter().take(trail_count).map(|p| vec![[p[0] as f32, p[1] as f32]]).collect();
        Self { kind, x: x0, trails, moves, done: 0, variance, rng: Xoshiro256PlusPlus::seed_from_u64(seed) }
    }

    pub fn total_moves(&self) -> usize {
        self.moves.len()
    }

    pub fn moves_done(&self) -> usize {
        self.done
    }

    pub fn is_done(&self) -> bool {
        self.done >= self.moves.len()
    }

    /// The t whose density the cloud should match now (0 once a reverse chain has finished).
    pub fn current_t(&self) -> usize {
        match self.moves.get(self.done) {
            Some(Move::Reverse { t }) => *t,
            Some(Move::Langevin { t, .. }) => *t,
            None => match self.moves.last() {
                Some(Move::Reverse { .. }) | None => 0,
                Some(Move::Langevin { t, .. }) => *t,
            },
        }
    }

    /// Runs up to `n` moves; returns how many ran.
    pub fn advance(&mut self, mixture: &Mixture, schedule: &Schedule, n: usize) -> usize {
        let mut ran = 0;
        while ran < n && !self.is_done() {
            self.apply(self.moves[self.done], mixture, schedule);
            self.done += 1;
            ran += 1;
            for (trail, p) in self.trails.iter_mut().zip(&self.x) {
                trail.push([p[0] as f32, p[1] as f32]);
            }
        }
        ran
    }

    /// Runs to the end.
    pub fn finish(&mut self, mixture: &Mixture, schedule: &Schedule) {
        self.advance(mixture, schedule, usize::MAX);
    }

    fn apply(&mut self, m: Move, mixture: &Mixture, schedule: &Schedule) {
        match m {
            Move::Reverse { t } => {
                let density = mixture.density_at(schedule, t);
                let beta = beta_at(schedule, t);
                let alpha = 1.0 - beta;
                // Algorithm 2 and the SDE add no noise on the last step (z = 0 at t = 1).
                let last = t == 1;
                let sigma = match self.variance {
                    Variance::Large => beta.sqrt(),
                    Variance::Small => ((1.0 - alpha_bar_at(schedule, t - 1)) / (1.0 - alpha_bar_at(schedule, t)) * beta).sqrt(),
                };
                for p in &mut self.x {
                    let s = density.score(*p);
                    let z: [f64; 2] = if last || self.kind == SamplerKind::ProbabilityFlow {
                        [0.0, 0.0]
                    } else {
                        [normal(&mut self.rng), normal(&mut self.rng)]
                    };
                    for d in 0..2 {
                        p[d] = match self.kind {
                            // Algorithm 2 (seed 003 eqs. 15–16) with ε = −√(1 − ᾱ_t) s:
                            // x_{t−1} = (x_t − β_t/√(1 − ᾱ_t) ε) / √α_t + σ_t z = (x_t + β_t s) / √α_t + σ_t z.
                            SamplerKind::Ddpm => (p[d] + beta * s[d]) / alpha.sqrt() + sigma * z[d],
                            // The VP forward SDE dx = −½β x dt + √β dw (the chain x_t = √(1−β_t) x_{t−1} + √β_t z with
                            // dt = one step) reversed (Song et al. 2021 eq. 6; seed 003 eqs. 9–11):
                            // dx = [−½β x − β s] dt + √β dw̄, one Euler–Maruyama step with dt = −1:
                            // x_{t−1} = x_t + β_t (½ x_t + s) + √β_t z.
                            SamplerKind::ReverseSde => p[d] + beta * (0.5 * p[d] + s[d]) + beta.sqrt() * z[d],
                            // The probability-flow ODE (Song et al. 2021 eq. 13; seed 003 §2.6) for the same SDE:
                            // dx = [−½β x − ½β s] dt, Euler with dt = −1: x_{t−1} = x_t + ½β_t (x_t + s). No noise.
                            SamplerKind::ProbabilityFlow => p[d] + 0.5 * beta * (p[d] + s[d]),
                            _ => p[d],
                        };
                    }
                }
            }
            Move::Langevin { t, step } => {
                // x ← x + (δ/2) ∇ log p_t(x) + √δ z (seed 003 §2.2; seed 004 §5), which with δ = α_i is
                // the inner loop of Song & Ermon's Algorithm 1.
                let density = mixture.density_at(schedule, t);
                let root = step.sqrt();
                for p in &mut self.x {
                    let s = density.score(*p);
                    let z: [f64; 2] = [normal(&mut self.rng), normal(&mut self.rng)];
                    p[0] += 0.5 * step * s[0] + root * z[0];
                    p[1] += 0.5 * step * s[1] + root * z[1];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paper() -> Schedule {
        Schedule::linear(1000, 1e-4, 0.02)
    }

    /// Two equal, well separated modes on the x axis: the setting where mode-hopping is impossible at
    /// low noise, so only annealing can balance the two.
    fn two_modes() -> Mixture {
        let c = |m: f64| Component { weight: 1.0, mean: [m, 0.0], var: [0.04, 0.04] };
        Mixture { components: vec![c(-2.0), c(2.0)] }
    }

    fn opts(kind: SamplerKind, t: usize, trails: usize, seed: u64) -> RunOptions {
        RunOptions { kind, t, variance: Variance::Small, trails, seed }
    }

    fn cloud_mean(x: &[[f64; 2]]) -> [f64; 2] {
        let n = x.len() as f64;
        [x.iter().map(|p| p[0]).sum::<f64>() / n, x.iter().map(|p| p[1]).sum::<f64>() / n]
    }

    // Adds: the closed-form score is the gradient of the closed-form log density (central differences),
    // at several t, including points far out where the log-sum-exp shift matters.
    #[test]
    fn score_is_the_gradient_of_log_density() {
        let s = paper();
        let m = Mixture::demo();
        for t in [0, 1, 50, 300, 1000] {
            let d = m.density_at(&s, t);
            for x in [[0.1, -0.2], [-1.3, 1.0], [2.5, -2.9], [8.0, 7.0], [1.5, 1.6]] {
                let h = 1e-5;
                let g = [
                    (d.log_density([x[0] + h, x[1]]) - d.log_density([x[0] - h, x[1]])) / (2.0 * h),
                    (d.log_density([x[0], x[1] + h]) - d.log_density([x[0], x[1] - h])) / (2.0 * h),
                ];
                let sc = d.score(x);
                for k in 0..2 {
                    let tol = 1e-5 * (1.0 + g[k].abs());
                    assert!((sc[k] - g[k]).abs() < tol, "t={t} x={x:?}: score {sc:?} vs finite difference {g:?}");
                }
            }
        }
    }

    // Adds: the normalisation (weights and the 2π√det term) is right: the density integrates to 1 on a grid
    // that holds all its mass, at t = 0 (sharp modes) and at t = 500.
    #[test]
    fn density_integrates_to_one() {
        let s = paper();
        let m = Mixture::demo();
        for t in [0, 500] {
            let d = m.density_at(&s, t);
            let (lo, hi, n) = (-6.0, 6.0, 600);
            let h = (hi - lo) / n as f64;
            let mut total = 0.0;
            for i in 0..n {
                for j in 0..n {
                    total += d.density([lo + (i as f64 + 0.5) * h, lo + (j as f64 + 0.5) * h]) * h * h;
                }
            }
            assert!((total - 1.0).abs() < 1e-3, "t={t}: integral {total}");
        }
    }

    // Adds: the page's fast grid evaluation is the same density (to rounding), point by point.
    #[test]
    fn density_grid_equals_pointwise_density() {
        let d = Mixture::demo().density_at(&paper(), 20);
        let xs: Vec<f64> = (0..13).map(|i| -3.0 + 0.5 * i as f64).collect();
        let ys: Vec<f64> = (0..7).map(|j| 2.9 - 0.9 * j as f64).collect();
        let grid = d.density_grid(&xs, &ys);
        for (j, y) in ys.iter().enumerate() {
            for (i, x) in xs.iter().enumerate() {
                let want = d.density([*x, *y]);
                assert!((grid[j * xs.len() + i] - want).abs() <= 1e-12 * want.max(1e-300), "({x}, {y}): {} vs {want}", grid[j * xs.len() + i]);
            }
        }
    }

    // Adds: the two ends of the VP process — t = 0 is exactly the data mixture and t = T is N(0, I) to
    // within ᾱ_T (4e-5 for the paper's schedule) — and ε = −√(1 − ᾱ) · score is the standard normal's
    // x at t = T (the noise a perfect network predicts there is x_T itself).
    #[test]
    fn noising_runs_from_the_data_to_the_standard_normal() {
        let s = paper();
        let m = Mixture::demo();
        assert_eq!(m.noised(alpha_bar_at(&s, 0)), m);
        let d = m.density_at(&s, s.len());
        let ab = alpha_bar_at(&s, s.len());
        assert!(ab < 1e-4, "ᾱ_T = {ab}");
        for x in [[0.0, 0.0], [1.0, -2.0], [-0.5, 0.7]] {
            let std_normal = -(x[0] * x[0] + x[1] * x[1]) / 2.0 - (2.0 * std::f64::consts::PI).ln();
            // The means shrink to √ᾱ_T μ (≤ 0.016 here), which moves log p by about |x| · √ᾱ_T |μ|.
            let tol = 1e-3 + (x[0] * x[0] + x[1] * x[1]).sqrt() * ab.sqrt() * 2.5;
            assert!((d.log_density(x) - std_normal).abs() < tol, "log p_T({x:?}) = {} vs {std_normal}", d.log_density(x));
            let e = eps(&d, ab, x);
            assert!((e[0] - x[0]).abs() < 2e-2 && (e[1] - x[1]).abs() < 2e-2, "ε({x:?}) = {e:?}");
        }
    }

    /// Runs `kind` from N(0, I) to the end and checks the cloud against the mixture. The tolerances: with
    /// n = 4,000 particles a share's standard error is at most √(0.25/4000) ≈ 0.008 and the mean's about
    /// 1.5/√4000 ≈ 0.024, so 0.04 is ~5 standard errors (a fixed seed makes it reproducible), while a
    /// sampler with a wrong sign or scale misses by far more (plain Langevin below misses a share by > 0.1).
    fn check_sampler_matches_mixture(kind: SamplerKind, mean_tol: f64) {
        let s = paper();
        let m = Mixture::demo();
        let mut p = Particles::new(opts(kind, 0, 0, 2), &m, &s, prior(4000, 1));
        p.finish(&m, &s);
        let got = cloud_mean(&p.x);
        let want = m.mean();
        assert!((got[0] - want[0]).abs() < mean_tol && (got[1] - want[1]).abs() < mean_tol, "{kind:?}: mean {got:?}, mixture's {want:?}");
        let (got, want) = (m.shares(&p.x), m.proportions());
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 0.04, "{kind:?}: shares {got:?}, weights {want:?}");
        }
    }

    // Adds: Algorithm 2 with the exact ε reaches the data distribution (mean and per-mode proportions).
    #[test]
    fn ddpm_cloud_matches_the_mixture() {
        check_sampler_matches_mixture(SamplerKind::Ddpm, 0.04);
    }

    // Adds: the reverse-SDE discretisation (signs of drift and score terms) reaches the data distribution.
    #[test]
    fn reverse_sde_cloud_matches_the_mixture() {
        check_sampler_matches_mixture(SamplerKind::ReverseSde, 0.04);
    }

    // Adds: the probability-flow ODE, with no noise at all, transports N(0, I) onto the mixture.
    #[test]
    fn probability_flow_cloud_matches_the_mixture() {
        check_sampler_matches_mixture(SamplerKind::ProbabilityFlow, 0.04);
    }

    // Adds: annealed Langevin (levels and step sizes) also reaches the right proportions. With L = 10 and
    // K = 100 it moves ~0.02 of the heaviest mode's share to its neighbour (measured: 0.38 for 0.40; it
    // shrinks with more levels or steps: 0.3995 at L = 20, K = 100), which shifts the mean by ~0.07 — a
    // real bias of finite annealing, not noise, so the mean gets 0.1 here.
    #[test]
    fn annealed_langevin_cloud_matches_the_mixture() {
        check_sampler_matches_mixture(SamplerKind::AnnealedLangevin, 0.1);
    }

    // Adds: the ODE is deterministic — a particle's end depends only on its start (not on the seed, nor on
    // the other particles) — and its trail records the start, every move and the end.
    #[test]
    fn probability_flow_is_deterministic_per_particle() {
        let s = paper();
        let m = Mixture::demo();
        let start = prior(50, 9);
        let mut a = Particles::new(opts(SamplerKind::ProbabilityFlow, 0, 3, 1), &m, &s, start.clone());
        let mut b = Particles::new(opts(SamplerKind::ProbabilityFlow, 0, 3, 77), &m, &s, start[..3].to_vec());
        a.finish(&m, &s);
        b.finish(&m, &s);
        assert_eq!(a.x[..3], b.x[..]);
        assert_eq!(a.trails.len(), 3);
        assert_eq!(a.trails[0].len(), s.len() + 1);
        assert_eq!(a.trails[1].last().copied(), Some([a.x[1][0] as f32, a.x[1][1] as f32]));
        // The SDE with another seed ends elsewhere: the noise it adds matters.
        let mut c = Particles::new(opts(SamplerKind::ReverseSde, 0, 0, 1), &m, &s, start[..3].to_vec());
        let mut e = Particles::new(opts(SamplerKind::ReverseSde, 0, 0, 77), &m, &s, start[..3].to_vec());
        c.finish(&m, &s);
        e.finish(&m, &s);
        assert_ne!(c.x, e.x);
    }

    // Adds: the point the page teaches. Started on one side (every particle near the left mode), plain
    // Langevin at low noise (t = 10) keeps essentially all of them there, since crossing the e^-50 density
    // valley never happens in 1,000 steps; annealed Langevin, which starts at high noise where the modes
    // overlap, ends near the true 50/50 split.
    #[test]
    fn plain_langevin_stays_in_one_mode_annealed_does_not() {
        let s = paper();
        let m = two_modes();
        let left: Vec<[f64; 2]> = prior(2000, 5).into_iter().map(|p| [p[0] * 0.5 - 2.0, p[1] * 0.5]).collect();
        let left_share = |x: &[[f64; 2]]| x.iter().filter(|p| p[0] < 0.0).count() as f64 / x.len() as f64;
        let mut plain = Particles::new(opts(SamplerKind::Langevin, 10, 0, 3), &m, &s, left.clone());
        plain.finish(&m, &s);
        let mut annealed = Particles::new(opts(SamplerKind::AnnealedLangevin, 10, 0, 3), &m, &s, left);
        annealed.finish(&m, &s);
        let (p, a) = (left_share(&plain.x), left_share(&annealed.x));
        assert!(p > 0.99, "plain Langevin left share {p}");
        assert!((a - 0.5).abs() < 0.05, "annealed Langevin left share {a}");
        // And in the demo mixture, plain Langevin at low noise from N(0, I) gets the proportions wrong.
        let d = Mixture::demo();
        let mut q = Particles::new(opts(SamplerKind::Langevin, 10, 0, 2), &d, &s, prior(4000, 1));
        q.finish(&d, &s);
        let err = d.shares(&q.x).iter().zip(d.proportions()).map(|(g, w)| (g - w).abs()).fold(0.0, f64::max);
        assert!(err > 0.1, "plain Langevin's worst share error {err}");
    }

    // Adds: the levels run from the most noise to the least, without repeats at the top, and span the schedule.
    #[test]
    fn anneal_levels_go_from_t_big_to_one() {
        let s = paper();
        let l = anneal_levels(&s, ANNEAL_LEVELS);
        assert_eq!(l.len(), ANNEAL_LEVELS);
        assert_eq!((l[0], *l.last().unwrap()), (1000, 1));
        assert!(l.windows(2).all(|w| w[0] >= w[1]), "{l:?}");
    }

    // Adds: clicking keeps the mixture bounded and the new component is weighted like an average one.
    #[test]
    fn adding_components_is_bounded_and_fair() {
        let mut m = Mixture::demo();
        m.add([0.0, 0.0], 0.05);
        assert_eq!(m.components.len(), 5);
        assert!((m.proportions()[4] - 0.2).abs() < 1e-12);
        for _ in 0..20 {
            m.add([1.0, 1.0], 0.05);
        }
        assert_eq!(m.components.len(), MAX_COMPONENTS);
        assert_eq!(SamplerKind::from_name("ode"), Some(SamplerKind::ProbabilityFlow));
        assert!(SamplerKind::ALL.iter().all(|k| SamplerKind::from_name(k.name()) == Some(*k)));
    }
}
