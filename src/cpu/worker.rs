//! What one CPU worker does, as plain Rust: the page's Web Workers (`src/bin/cpu-worker.rs`) each hold a
//! [`WorkerState`] and pass it the [`Request`]s the page posts, posting back its [`Reply`]. The page splits a
//! batch between workers: each runs images `first_image..first_image + n` of the same [`Program`] with the
//! noise those images get in an unsplit run, and the page joins their frames.
//!
//! Messages are JSON (serde); the weights travel beside the JSON as bytes, not inside it.

use serde::{Deserialize, Serialize};

use crate::cpu::sampler::HostSampler;
use crate::diffusion::sampler::{Frame, Init, SamplerOptions};
use crate::diffusion::samplers::{Method, Program};
use crate::diffusion::schedule::{Schedule, Variance};
use crate::error::Error;
use crate::gpu::kernel::KernelFamily;
use crate::model::unet::Unet;
use crate::model::Model;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// Load a model: its config.json and scheduler_config.json; the safetensors bytes come beside.
    Load { config: String, scheduler: Option<String> },
    /// Start a run: returns its first frame.
    Start(Job),
    /// The next pass of the run: returns its frame.
    Step,
    /// ε_θ(x, t) for a batch (the likelihood bound's network calls).
    Eps { x: Vec<f32>, t: Vec<usize> },
    /// This worker's one-thread GEMM GFLOP/s ([`crate::cpu::ops::gemm_peak_gflops`]), for the benchmark.
    Peak,
}

/// One worker's share of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub program: Program,
    /// Images this worker runs, and the first one's index in the whole batch.
    pub n: usize,
    pub first_image: usize,
    pub seed: u64,
    pub shared_noise: bool,
    pub init: JobInit,
    /// Inpainting: source and mask for this worker's images.
    pub known: Option<(Vec<f32>, Vec<f32>)>,
    /// Super-resolution: the low-resolution images for this worker's images.
    pub low: Option<Vec<f32>>,
}

/// How x_T is made (the owned twin of [`Init`] that crosses to a worker).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum JobInit {
    Philox,
    /// Images noised to the program's start (SDEdit), with Philox noise.
    Image(Vec<f32>),
    /// These values exactly.
    Exact(Vec<f32>),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Reply {
    /// The worker's wasm instance is running and listening (posted once, unasked: messages sent to a worker
    /// before its handler is installed are lost).
    Ready,
    Loaded { parameters: usize },
    Frame(Frame),
    Eps(Vec<f32>),
    Peak(f64),
    /// A sentence for the page's alert.
    Failed(String),
}

/// A worker's model and run.
#[derive(Default)]
pub struct WorkerState {
    engine: Option<(Unet, Schedule)>,
    run: Option<HostSampler>,
    /// ε_θ's compiled passes by batch size, kept across `Eps` requests (the likelihood's batches).
    eps: crate::cpu::EpsPlans,
}

impl WorkerState {
    pub fn handle(&mut self, request: Request, bytes: Option<&[u8]>) -> Reply {
        match self.try_handle(request, bytes) {
            Ok(reply) => reply,
            Err(e) => Reply::Failed(e.to_string()),
        }
    }

    fn try_handle(&mut self, request: Request, bytes: Option<&[u8]>) -> Result<Reply, Error> {
        match request {
            Request::Load { config, scheduler } => {
                self.run = None;
                self.engine = None;
                self.eps = Default::default();
                let weights = bytes.ok_or_else(|| Error::Io("no weights were sent to the CPU worker".into()))?;
                let model = Model::from_bytes(&config, weights, scheduler.as_deref())?;
                let unet = Unet::on_host(&model)?;
                let parameters = unet.parameter_count();
                self.engine = Some((unet, model.schedule()));
                Ok(Reply::Loaded { parameters })
            }
            Request::Start(job) => {
                self.run = None;
                let (unet, schedule) = self.engine.as_ref().ok_or_else(|| Error::Cpu("internal: a run started before its model loaded".into()))?;
                let image_start = matches!(job.init, JobInit::Image(_));
                let opts = SamplerOptions {
                    n: job.n,
                    seed: job.seed,
                    steps: job.program.passes.len(),
                    // The program is given: the method only names it.
                    method: Method::Ddpm { variance: Variance::Small, clip: false },
                    kernels: KernelFamily::Blocked,
                    // Only whether it starts from an image: the program already starts at its level.
                    start_t: image_start.then_some(0),
                    shared_noise: job.shared_noise,
                };
                let mut run = HostSampler::with_program(unet, schedule, job.program, opts)?.starting_at(job.first_image);
                if let Some((image, mask)) = &job.known {
                    run.set_known(image, mask)?;
                }
                if let Some(low) = &job.low {
                    run.set_low(low)?;
                }
                let init = match &job.init {
                    JobInit::Philox => Init::Philox,
                    JobInit::Image(x0) => Init::Image { x0, z: None },
                    JobInit::Exact(x) => Init::Exact(x),
                };
                let frame = run.first_frame(init)?;
                self.run = Some(run);
                Ok(Reply::Frame(frame))
            }
            Request::Eps { x, t } => {
                let (unet, _) = self.engine.as_ref().ok_or_else(|| Error::Cpu("internal: ε_θ asked before the model loaded".into()))?;
                Ok(Reply::Eps(self.eps.eps(unet, &x, &t)?))
            }
            Request::Peak => Ok(Reply::Peak(crate::cpu::ops::gemm_peak_gflops())),
            Request::Step => {
                let run = self.run.as_mut().ok_or_else(|| Error::Cpu("internal: a step without a run".into()))?;
                Ok(Reply::Frame(run.step()?))
            }
        }
    }
}

/// Splits `n` images between at most `workers` workers: (first image, count) per worker, counts differing by
/// at most one, none empty.
pub fn split(n: usize, workers: usize) -> Vec<(usize, usize)> {
    let w = workers.clamp(1, n.max(1));
    let mut out = Vec::with_capacity(w);
    let mut first = 0;
    for k in 0..w {
        let count = n / w + usize::from(k < n % w);
        out.push((first, count));
        first += count;
    }
    out
}

/// Joins the workers' frames of one step (in worker order) into the whole batch's frame.
pub fn join(frames: Vec<Frame>) -> Option<Frame> {
    let mut it = frames.into_iter();
    let mut whole = it.next()?;
    for f in it {
        whole.x.extend_from_slice(&f.x);
        whole.x0.extend_from_slice(&f.x0);
    }
    Some(whole)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_covers_the_batch_evenly() {
        assert_eq!(split(7, 3), [(0, 3), (3, 2), (5, 2)]);
        assert_eq!(split(2, 4), [(0, 1), (1, 1)]);
        assert_eq!(split(1, 1), [(0, 1)]);
    }

    /// A batch split between workers gives the images of the unsplit run: each worker's noise is its
    /// images' noise in the whole batch (checked with DDPM, which draws noise at every step, and with
    /// inpainting, whose known region draws its own).
    #[test]
    fn a_split_run_equals_the_whole_run() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/models/tiny");
        let read = |f: &str| std::fs::read(format!("{dir}/{f}")).unwrap();
        let config = String::from_utf8(read("config.json")).unwrap();
        let weights = read("diffusion_pytorch_model.safetensors");
        let model = Model::from_bytes(&config, &weights, None).unwrap();
        let program = Method::Ddpm { variance: Variance::Small, clip: false }.program(&model.schedule(), &model.scheduler, 5).unwrap();
        let n = 3;
        let len = 784;
        let image: Vec<f32> = (0..n * len).map(|i| ((i % 29) as f32 / 14.0) - 1.0).collect();
        let mask: Vec<f32> = (0..n * len).map(|i| ((i % len) < len / 2) as u8 as f32).collect();
        let run = |first: usize, count: usize| -> Vec<Frame> {
            let mut w = WorkerState::default();
            assert!(matches!(w.handle(Request::Load { config: config.clone(), scheduler: None }, Some(&weights)), Reply::Loaded { .. }));
            let r = first * len..(first + count) * len;
            let job = Job { program: program.clone(), n: count, first_image: first, seed: 5, shared_noise: false, init: JobInit::Philox, known: Some((image[r.clone()].to_vec(), mask[r].to_vec())), low: None };
            let mut frames = vec![match w.handle(Request::Start(job), None) {
                Reply::Frame(f) => f,
                other => panic!("{other:?}"),
            }];
            for _ in 0..program.passes.len() {
                match w.handle(Request::Step, None) {
                    Reply::Frame(f) => frames.push(f),
                    other => panic!("{other:?}"),
                }
            }
            frames
        };
        let whole = run(0, n);
        let parts: Vec<Vec<Frame>> = split(n, 2).into_iter().map(|(first, count)| run(first, count)).collect();
        for (k, w) in whole.iter().enumerate() {
            let joined = join(parts.iter().map(|p| p[k].clone()).collect()).unwrap();
            assert_eq!(joined.x, w.x, "frame {k}: x");
            assert_eq!(joined.x0, w.x0, "frame {k}: x̂_0");
        }
        assert!(whole.last().unwrap().x.iter().any(|&b| b != whole.last().unwrap().x[0]), "the run made flat images");
    }

    #[test]
    fn bad_requests_are_sentences() {
        let mut w = WorkerState::default();
        assert!(matches!(w.handle(Request::Step, None), Reply::Failed(m) if m.contains("without a run")));
        let r = w.handle(Request::Load { config: "{".into(), scheduler: None }, Some(b"not safetensors"));
        assert!(matches!(&r, Reply::Failed(m) if m.contains("config.json")), "{r:?}");
    }
}
