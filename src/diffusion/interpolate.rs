//! Interpolation through the latent space (seed 003 §1.9; Ho et al. 2020 §4.3): two images noised to the
//! same level with the same noise, mixed, and denoised by one run whose images share their per-step noise,
//! so the strip's ends are exactly the two plain runs and everything between changes smoothly.

use crate::gpu::kernels::update::reference_gaussian;

/// How the two starts are mixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// (1 − λ) a + λ b.
    Linear,
    /// Spherical (Shoemake 1985): keeps the norm of Gaussian noise, which a linear mix of two independent
    /// draws shrinks by up to √2 in the middle (the reason DDIM, Song et al. 2021 §5.3, slerps its x_T).
    Spherical,
}

impl std::str::FromStr for Path {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "lerp" | "linear" => Ok(Path::Linear),
            "slerp" | "spherical" => Ok(Path::Spherical),
            _ => Err(format!("path must be `lerp` or `slerp`, not `{s}`")),
        }
    }
}

/// `count` images from a (λ = 0) to b (λ = 1), evenly spaced, as one flat batch.
pub fn strip(a: &[f32], b: &[f32], count: usize, path: Path) -> Vec<f32> {
    assert_eq!(a.len(), b.len());
    let (a64, b64): (Vec<f64>, Vec<f64>) = (a.iter().map(|&v| v as f64).collect(), b.iter().map(|&v| v as f64).collect());
    let dot: f64 = a64.iter().zip(&b64).map(|(x, y)| x * y).sum();
    let (na, nb) = (a64.iter().map(|x| x * x).sum::<f64>().sqrt(), b64.iter().map(|x| x * x).sum::<f64>().sqrt());
    let theta = (dot / (na * nb).max(1e-30)).clamp(-1.0, 1.0).acos();
    let mut out = Vec::with_capacity(a.len() * count);
    for k in 0..count {
        let lambda = if count == 1 { 0.0 } else { k as f64 / (count - 1) as f64 };
        // The ends are the inputs exactly, whatever the path (the strip's ends must equal the plain runs).
        if lambda == 0.0 {
            out.extend_from_slice(a);
            continue;
        }
        if lambda == 1.0 {
            out.extend_from_slice(b);
            continue;
        }
        let (wa, wb) = match path {
            Path::Spherical if theta > 1e-6 => (((1.0 - lambda) * theta).sin() / theta.sin(), (lambda * theta).sin() / theta.sin()),
            _ => (1.0 - lambda, lambda),
        };
        out.extend(a64.iter().zip(&b64).map(|(x, y)| (wa * x + wb * y) as f32));
    }
    out
}

/// x_0 noised to ᾱ with the GPU generator's z for one image (counter 0..len, `key`), as `add_noise` does
/// on the GPU for an image start (the same f32 products, so within rounding of the plain run's start).
pub fn noised(x0: &[f32], alpha_bar: f64, seed: u64, key: u32) -> Vec<f32> {
    let (a, b) = (alpha_bar.sqrt() as f32, (1.0 - alpha_bar).sqrt() as f32);
    x0.iter().enumerate().map(|(i, &v)| a * v + b * reference_gaussian(seed, key, i as u32)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_are_exact_and_slerp_keeps_the_norm_of_noise() {
        // Two independent N(0, I)-like vectors: slerp's midpoint keeps their norm, lerp's shrinks it by ~√2.
        let n = 4096;
        let a: Vec<f32> = (0..n as u32).map(|i| reference_gaussian(1, 0, i)).collect();
        let b: Vec<f32> = (0..n as u32).map(|i| reference_gaussian(2, 0, i)).collect();
        let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        for path in [Path::Linear, Path::Spherical] {
            let s = strip(&a, &b, 5, path);
            assert_eq!(&s[..n], &a[..]);
            assert_eq!(&s[4 * n..], &b[..]);
            let ratio = norm(&s[2 * n..3 * n]) / norm(&a);
            match path {
                Path::Spherical => assert!((ratio - 1.0).abs() < 0.03, "{ratio}"),
                Path::Linear => assert!((ratio - 0.5f64.sqrt()).abs() < 0.03, "{ratio}"),
            }
        }
    }
}
