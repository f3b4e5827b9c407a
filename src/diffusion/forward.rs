//! The forward process q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I) (Ho et al. 2020, eq. 4) on the GPU: a
//! compiled two-op plan (the forward kernel, then packing x_t to display bytes) over one uploaded x_0 and one
//! z that never change, so a caller asks for x_t at any t and gets the same draw's point on the way to noise.
//! The page's forward explorer runs it once per slider move; `ddpm noise` once.

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::graph::{Graph, TensorId};
use crate::gpu::kernels::forward::{forward, params_buffer, ForwardIo, NoiseSource, Params};
use crate::gpu::kernels::frames;
use crate::gpu::plan::Plan;
use crate::gpu::tensor::Tensor;

use super::schedule::Schedule;

/// Where z comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum ForwardNoise {
    /// Philox on the GPU with this seed (counter key 0): the sampler's generator, never read back.
    Seed(u64),
    /// These values, of x_0's length (diffusers' noise for the golden test).
    Given(Vec<f32>),
}

/// x_0 and z on the GPU, ready to give x_t for any ᾱ_t.
pub struct Noiser {
    plan: Plan,
    params: wgpu::Buffer,
    x0: Tensor,
    xt: TensorId,
    frame: TensorId,
    len: usize,
    seed: u64,
    _live: crate::gpu::live::Live,
}

impl Noiser {
    pub fn new(ctx: &GpuContext, x0: &[f32], noise: ForwardNoise) -> Result<Self> {
        let len = x0.len();
        if len == 0 {
            return Err(Error::Image("it has no pixels".into()));
        }
        let mut g = Graph::new();
        let x0 = Tensor::upload(ctx, "x0", &[len], x0);
        let x0_id = g.bound("x0", &x0);
        let xt = g.kept("xt", &[len]);
        let frame = g.kept("xt bytes", &[frames::words(len)]);
        let (source, seed) = match noise {
            ForwardNoise::Seed(seed) => (NoiseSource::Philox, seed),
            ForwardNoise::Given(z) => {
                if z.len() != len {
                    return Err(Error::NoiseShape { expected: len, found: z.len() });
                }
                (NoiseSource::Given(g.bound("z", &Tensor::upload(ctx, "z", &[len], &z))), 0)
            }
        };
        let params = params_buffer(ctx);
        forward(&mut g, &params, ForwardIo { x0: x0_id, xt }, source);
        frames::pack(&mut g, xt, frame, 0);
        let plan = Plan::compile(ctx, &g)?;
        let (n, bytes) = plan.owned_buffers();
        let _live = crate::gpu::live::Live::new(n + 2, bytes + params.size() + x0.bytes());
        Ok(Self { plan, params, x0, xt, frame, len, seed, _live })
    }

    /// Replaces x_0 (same length), keeping z: the page's drawing pad changes x_0 while z stays one draw.
    pub fn set_x0(&self, ctx: &GpuContext, x0: &[f32]) -> Result<()> {
        if x0.len() != self.len {
            return Err(Error::Image(format!("it has {} values where {} were expected", x0.len(), self.len)));
        }
        self.x0.write(ctx, x0);
        Ok(())
    }

    fn run(&self, ctx: &GpuContext, alpha_bar: f64) {
        ctx.queue.write_buffer(&self.params, 0, bytemuck::bytes_of(&Params::new(alpha_bar, self.seed, 0, self.len)));
        self.plan.run(ctx);
    }

    /// x_t for ᾱ_t = `alpha_bar`, as f32 values.
    pub async fn x_t(&self, ctx: &GpuContext, alpha_bar: f64) -> Result<Vec<f32>> {
        self.run(ctx, alpha_bar);
        self.plan.tensor(self.xt).read(ctx).await
    }

    /// x_t for ᾱ_t = `alpha_bar` as display bytes (model range [−1, 1] to 0..255), 4x less to read back.
    pub async fn frame(&self, ctx: &GpuContext, alpha_bar: f64) -> Result<Vec<u8>> {
        self.run(ctx, alpha_bar);
        let words = self.plan.tensor(self.frame);
        let mut bytes = ctx.read_bytes(&words.buffer, words.bytes()).await?;
        bytes.truncate(self.len);
        Ok(bytes)
    }
}

/// ᾱ at the paper's t in 0..=T, as the page counts: t = 0 is x_0 itself (ᾱ = 1), t ≥ 1 is the network's index
/// t − 1.
pub fn alpha_bar_at(schedule: &Schedule, paper_t: usize) -> f64 {
    schedule.alpha_bar(paper_t.min(schedule.len()) as isize - 1)
}

/// x_t's frame bytes computed on the host, as [`Noiser::frame`] computes them on the GPU with
/// `ForwardNoise::Seed(seed)` (the same Philox z): the forward explorer where there is no GPU.
pub fn frame_on_host(x0: &[f32], alpha_bar: f64, seed: u64) -> Vec<u8> {
    use crate::gpu::kernels::forward::reference;
    use crate::gpu::kernels::update::reference_gaussian;
    let p = Params::new(alpha_bar, seed, 0, x0.len());
    x0.iter().enumerate().map(|(i, &x)| crate::image::to_byte(reference(&p, x, reference_gaussian(seed, 0, i as u32)))).collect()
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::gpu::kernels::testing::{assert_close, ctx, values};
    use crate::image::to_byte;

    /// The runner reuses one plan across t: the values and the packed bytes both follow the formula for each
    /// ᾱ in turn (a stale params buffer or a frame packed before the update would fail here).
    #[test]
    fn one_noiser_gives_x_t_and_its_bytes_at_each_t() {
        let c = ctx();
        let n = 2 * 28 * 28 + 3;
        let (x0, z) = (values(n, 71), values(n, 72));
        let noiser = Noiser::new(c, &x0, ForwardNoise::Given(z.clone())).unwrap();
        let s = Schedule::linear(1000, 1e-4, 0.02);
        for t in [1000, 0, 250] {
            let ab = alpha_bar_at(&s, t);
            let p = Params::new(ab, 0, 0, n);
            let want: Vec<f32> = x0.iter().zip(&z).map(|(&x, &z)| p.signal * x + p.noise * z).collect();
            assert_close(&pollster::block_on(noiser.x_t(c, ab)).unwrap(), &want, 1e-6, &format!("t={t}"));
            let bytes = pollster::block_on(noiser.frame(c, ab)).unwrap();
            assert_eq!(bytes.len(), n);
            let off = bytes.iter().zip(&want).filter(|(b, w)| (**b as i32 - to_byte(**w) as i32).abs() > 1).count();
            assert_eq!(off, 0, "t={t}: bytes differ from the values");
        }
        // A new x_0 in the same noiser: x_t at t = 0 is that image.
        let other = values(n, 73);
        noiser.set_x0(c, &other).unwrap();
        assert_eq!(pollster::block_on(noiser.x_t(c, 1.0)).unwrap(), other);
        assert!(noiser.set_x0(c, &other[1..]).is_err());
        assert_eq!(alpha_bar_at(&s, 0), 1.0);
        assert_eq!(alpha_bar_at(&s, 1000), s.alphas_cumprod[999]);
    }

    /// The CPU path's x_t: the GPU noiser's bytes from the same seed (the same Philox z), at three t.
    #[test]
    fn host_frames_equal_the_gpu_noisers() {
        let c = ctx();
        let x0 = values(784, 74);
        let noiser = Noiser::new(c, &x0, ForwardNoise::Seed(9)).unwrap();
        let s = Schedule::linear(1000, 1e-4, 0.02);
        for t in [0, 300, 1000] {
            let ab = alpha_bar_at(&s, t);
            let (gpu, host) = (pollster::block_on(noiser.frame(c, ab)).unwrap(), frame_on_host(&x0, ab, 9));
            let off = gpu.iter().zip(&host).map(|(a, b)| (*a as i32 - *b as i32).abs()).max().unwrap();
            assert!(off <= 1, "t={t}: host bytes differ from the GPU's by {off}");
            assert!(t == 0 || gpu != frame_on_host(&x0, ab, 10), "t={t}: the seed does not matter");
        }
    }

    /// Mismatched noise is an error sentence, not a panic.
    #[test]
    fn noise_of_another_length_is_refused() {
        let err = Noiser::new(ctx(), &[0.0; 4], ForwardNoise::Given(vec![0.0; 3])).err().unwrap();
        assert_eq!(err, Error::NoiseShape { expected: 4, found: 3 });
    }
}
