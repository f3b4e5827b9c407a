//! The page. State is a handful of signals ([`Ui`]); the GPU objects, which are not `Send`, live in local
//! stored values and are only touched from event handlers and the sampling task, never from the view.

mod canvas;
mod cpu;
mod debug;
mod draw;
mod forward;
mod likelihood;
mod loader;
mod playground;
mod plot;
mod url;
mod view;

use std::cell::Cell;
use std::rc::Rc;

use leptos::prelude::*;
use leptos::task::spawn_local;

use ddpm_web::gpu::kernel::{KernelChoice, Precision, PrecisionChoice};
use ddpm_web::image::Batch;
use ddpm_web::model::unet::{Target, Tuning};
use ddpm_web::cpu::worker::JobInit;
use ddpm_web::diffusion::samplers::{Pass, Predictor, Program};
use ddpm_web::{Error, Frame, GpuContext, Init, Method, Model, Sampler, SamplerKind, SamplerOptions, Schedule, SchedulerConfig, Unet, Variance};

pub use view::App;

/// Keep at most this many bytes of frames (x_t and x̂_0 for every kept step); past it, every k-th step.
const FRAME_BUDGET: usize = 256 << 20;
/// The page's own cap on a batch (the adapter's may be lower).
const MAX_IMAGES: usize = 64;

/// What the page shows about the loaded model.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    pub url: String,
    pub adapter: String,
    pub parameters: usize,
    pub gflop: f64,
    pub dataset: String,
    pub steps: usize,
    pub image: (usize, usize, usize),
    pub max_batch: usize,
    pub log_snr: Vec<f64>,
}

/// The precision the model runs in, as the info panel states it.
pub fn describe_precision(choice: PrecisionChoice, used: Precision, has_f16: bool) -> String {
    let why = match (choice, has_f16) {
        (PrecisionChoice::Fixed(asked), _) if asked != used => "the address asks for f16, but this GPU has no shader-f16",
        (PrecisionChoice::Fixed(_), _) => "chosen in the address",
        (PrecisionChoice::Auto, true) => "this GPU has shader-f16",
        (PrecisionChoice::Auto, false) => "this GPU has no shader-f16",
    };
    let what = match used {
        Precision::F16 => "f16 weights and activations, sums in f32",
        Precision::F32 => "f32",
    };
    format!("{what} ({why})")
}

/// The convolution kernels a run uses, as the info panel states it.
pub fn describe_kernels(choice: KernelChoice, n: usize, tuning: Option<&Tuning>) -> String {
    match (choice, tuning) {
        (KernelChoice::Fixed(k), _) => format!("{} (chosen in the URL)", k.name()),
        (KernelChoice::Auto, Some(t)) if t.others_skipped => format!(
            "{} (about {:.1} s per pass at {n} images here: too slow to also time the GPU kernels)",
            t.chosen.name(),
            t.ms.iter().find(|m| m.0 == t.chosen).map_or(0.0, |m| m.1) / 1e3
        ),
        (KernelChoice::Auto, Some(t)) => {
            let times: Vec<String> = t.ms.iter().map(|(k, ms)| format!("{} {ms:.0} ms", k.name())).collect();
            format!("{}, the faster here at {n} images ({} per pass)", t.chosen.name(), times.join(", "))
        }
        (KernelChoice::Auto, None) => "measured at the first run".into(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Phase {
    /// Nothing usable loaded (start, or after a failure).
    Idle,
    Loading,
    Ready,
    Running,
}

/// The run being shown: its options, passes and progress.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    pub opts: SamplerOptions,
    pub batch: Batch,
    /// The network passes of the run (its sampler's program), first first.
    pub passes: Vec<Pass>,
    /// Passes done so far.
    pub done: usize,
    pub elapsed_ms: f64,
    pub finished: bool,
    pub cancelled: bool,
    /// A run from Philox noise alone (Generate): its images' x_T can be recomputed for a walk between them.
    pub walkable: bool,
}

/// The kept frames of a run: every `stride`-th update, plus the latest.
#[derive(Default)]
pub struct Frames {
    pub list: Vec<Frame>,
    pub stride: usize,
}

impl Frames {
    fn push(&mut self, f: Frame) {
        // Replace the previous "latest" frame when it is not on the stride.
        if let Some(last) = self.list.last() {
            if last.index % self.stride != 0 && last.index != 0 {
                self.list.pop();
            }
        }
        self.list.push(f);
    }
}

/// How a run begins.
enum Start {
    Noise,
    /// SDEdit: one image noised to network timestep `t`.
    Image { x0: Vec<f32>, t: usize },
    /// Inpainting: `known` is 1 where x0 is kept.
    Inpaint { x0: Vec<f32>, known: Vec<f32>, resample: usize },
    /// Interpolation: `count` starts between a and b, both noised to network timestep `t` with one z.
    Interpolate { a: Vec<f32>, b: Vec<f32>, t: usize, count: usize },
    /// Super-resolution: every image's 2x2 averages are `low` (one image at half the side).
    Upscale { low: Vec<f32> },
    /// A walk through latent space: `count` starts on the great circle between two images' standard normal
    /// draws `a` and `b` (x_T = init_scale · z), run by the current sampler with shared noise.
    Walk { a: Vec<f32>, b: Vec<f32>, count: usize },
}

/// Where the network runs in this page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunOn {
    Gpu,
    Cpu,
}

/// The loaded model, ready to run on one of the two paths.
#[derive(Clone)]
enum Compute {
    Gpu(Rc<GpuContext>, Rc<Unet>),
    Cpu(Rc<cpu::CpuPool>),
}

#[derive(Clone)]
struct Engine {
    compute: Compute,
    schedule: Schedule,
    scheduler: SchedulerConfig,
    /// (channels, height, width) of the model's images.
    image: (usize, usize, usize),
}

impl Engine {
    /// The GPU objects, where the model runs there.
    fn gpu(&self) -> Option<(Rc<GpuContext>, Rc<Unet>)> {
        match &self.compute {
            Compute::Gpu(g, u) => Some((g.clone(), u.clone())),
            Compute::Cpu(_) => None,
        }
    }
}

/// Images and steps the CPU path starts with when the URL gives none: a few seconds per image here.
const CPU_DEFAULTS: (usize, usize) = (4, 50);
/// The Steps field before a model says its T: the paper's (and the shipped model's) 1000.
const DEFAULT_STEPS: usize = 1000;

#[derive(Clone, Copy)]
pub struct Ui {
    pub n: RwSignal<usize>,
    pub seed: RwSignal<u64>,
    pub steps: RwSignal<usize>,
    pub variance: RwSignal<Variance>,
    pub clip: RwSignal<bool>,
    pub sampler: RwSignal<SamplerKind>,
    /// DDIM's η.
    pub eta: RwSignal<f64>,
    /// Langevin steps per level (langevin) or corrector steps (pc), and their step size's target SNR.
    pub langevin_steps: RwSignal<usize>,
    pub snr: RwSignal<f64>,
    pub model_url: RwSignal<String>,

    pub phase: RwSignal<Phase>,
    pub download: RwSignal<(u64, Option<u64>)>,
    pub error: RwSignal<Option<String>>,
    pub notice: RwSignal<Option<String>>,
    pub info: RwSignal<Option<ModelInfo>>,

    pub run: RwSignal<Option<Run>>,
    /// Frames kept so far (the slider's range), and the one shown.
    pub frame_count: RwSignal<usize>,
    pub shown: RwSignal<usize>,
    /// The slider follows the newest frame until the user moves it away.
    pub follow: RwSignal<bool>,
    /// The forward explorer's paper t (0..=T); the Timestep slider moves it too.
    pub forward_t: RwSignal<usize>,
    /// Timed steps of a benchmark, and the last benchmark's JSON (`ddpm_web::bench::BenchReport`).
    pub bench_steps: usize,
    pub bench_result: RwSignal<Option<String>>,
    bench_on_load: bool,
    /// Which convolution kernels to run (`?kernels=`), and what the info panel says about the choice.
    kernel_choice: KernelChoice,
    pub kernels_used: RwSignal<Option<String>>,
    /// `?precision=`, and what the info panel says about the precision the model runs in.
    precision_choice: PrecisionChoice,
    pub precision_used: RwSignal<Option<String>>,
    /// `?backend=`: where the person asked the model to run.
    backend: url::Backend,
    /// `?workers=`: CPU workers (None: one per core, at most 4).
    workers: Option<usize>,
    /// Where the loaded model runs, and why the CPU when that was not asked for (a `role=status` line).
    pub run_on: RwSignal<Option<RunOn>>,
    pub fallback: RwSignal<Option<String>>,
    /// The URL set the batch size or steps: the CPU defaults leave them alone.
    explicit: (bool, bool),

    gpu: StoredValue<Option<Rc<GpuContext>>, LocalStorage>,
    engine: StoredValue<Option<Engine>, LocalStorage>,
    pub frames: StoredValue<Frames, LocalStorage>,
    cancel: StoredValue<Rc<Cell<bool>>, LocalStorage>,
}

impl Ui {
    fn new() -> Self {
        let s = url::from_location();
        let ui = Self {
            n: RwSignal::new(s.n.clamp(1, MAX_IMAGES)),
            seed: RwSignal::new(s.seed),
            steps: RwSignal::new(s.steps.unwrap_or(DEFAULT_STEPS)),
            variance: RwSignal::new(s.variance),
            clip: RwSignal::new(s.clip),
            sampler: RwSignal::new(s.sampler),
            eta: RwSignal::new(s.eta),
            langevin_steps: RwSignal::new(s.langevin_steps),
            snr: RwSignal::new(s.snr),
            model_url: RwSignal::new(s.model),
            phase: RwSignal::new(Phase::Idle),
            download: RwSignal::new((0, None)),
            error: RwSignal::new(None),
            notice: RwSignal::new(None),
            info: RwSignal::new(None),
            run: RwSignal::new(None),
            frame_count: RwSignal::new(0),
            shown: RwSignal::new(0),
            follow: RwSignal::new(true),
            forward_t: RwSignal::new(300),
            bench_steps: if s.bench { s.steps.unwrap_or(url::BENCH_DEFAULTS.1) } else { url::BENCH_DEFAULTS.1 },
            bench_result: RwSignal::new(None),
            bench_on_load: s.bench,
            kernel_choice: s.kernels,
            kernels_used: RwSignal::new(None),
            precision_choice: s.precision,
            precision_used: RwSignal::new(None),
            backend: s.backend,
            workers: s.workers,
            run_on: RwSignal::new(None),
            fallback: RwSignal::new(None),
            explicit: (s.n_given, s.steps.is_some()),
            gpu: StoredValue::new_local(None),
            engine: StoredValue::new_local(None),
            frames: StoredValue::new_local(Frames::default()),
            cancel: StoredValue::new_local(Rc::new(Cell::new(false))),
        };
        if s.debug {
            debug::install(ui);
        }
        ui
    }

    fn settings(&self) -> url::Settings {
        url::Settings {
            n: self.n.get_untracked(),
            seed: self.seed.get_untracked(),
            steps: Some(self.steps.get_untracked()),
            variance: self.variance.get_untracked(),
            clip: self.clip.get_untracked(),
            sampler: self.sampler.get_untracked(),
            eta: self.eta.get_untracked(),
            langevin_steps: self.langevin_steps.get_untracked(),
            snr: self.snr.get_untracked(),
            model: self.model_url.get_untracked(),
            bench: false,
            kernels: self.kernel_choice,
            precision: self.precision_choice,
            debug: false,
            backend: self.backend,
            workers: self.workers,
            n_given: true,
        }
    }

    /// The chosen sampler with its settings.
    pub fn method(&self) -> Method {
        let (k, snr) = (self.langevin_steps.get_untracked(), self.snr.get_untracked());
        match self.sampler.get_untracked() {
            SamplerKind::Ddpm => Method::Ddpm { variance: self.variance.get_untracked(), clip: self.clip.get_untracked() },
            SamplerKind::Ddim => Method::Ddim { eta: self.eta.get_untracked() },
            SamplerKind::Euler => Method::Euler,
            SamplerKind::Heun => Method::Heun,
            SamplerKind::Sde => Method::Sde,
            SamplerKind::Langevin => Method::Langevin { steps_per_level: k, snr },
            SamplerKind::Pc => Method::Pc { predictor: Predictor::Sde, corrector_steps: k, snr },
        }
    }

    /// Shows `e` in the alert. A lost device also drops the GPU objects and makes them again (device,
    /// pipelines, the model's plan), so the next Generate works without a reload.
    fn fail(&self, e: String, lost: bool) {
        if lost {
            self.gpu.set_value(None);
            self.engine.set_value(None);
            self.info.set(None);
            self.phase.set(Phase::Idle);
            return self.load_with(Some(e));
        }
        self.error.set(Some(e));
    }

    /// Loads the model at `model_url` (creating the GPU context on first use). On failure the previous
    /// model, if any, stays usable.
    pub fn load(self) {
        self.load_with(None)
    }

    /// `lost`: the message of a lost device this load recovers from; it stays shown until the load ends.
    fn load_with(self, lost: Option<String>) {
        if self.phase.get_untracked() == Phase::Running || self.phase.get_untracked() == Phase::Loading {
            return;
        }
        self.error.set(lost.clone());
        self.notice.set(None);
        self.phase.set(Phase::Loading);
        self.download.set((0, None));
        spawn_local(async move {
            match self.load_inner().await {
                Ok(()) => {
                    self.phase.set(Phase::Ready);
                    if let Some(e) = &lost {
                        self.error.set(None);
                        self.notice.set(Some(format!("{e} A new GPU device was made and the model reloaded: Generate works again.")));
                    }
                    if self.bench_on_load {
                        self.benchmark();
                    }
                }
                Err((msg, lost_again)) => {
                    // The model loaded before, if any, stays usable (unless the device went with it).
                    self.phase.set(if self.engine.with_value(Option::is_some) { Phase::Ready } else { Phase::Idle });
                    // A device lost while recovering from a loss is not retried in a loop.
                    self.fail(msg, lost_again && lost.is_none());
                }
            }
        });
    }

    async fn load_inner(self) -> Result<(), (String, bool)> {
        let base = self.model_url.get_untracked();
        ddpm_web::model::check_model_address(&base).map_err(|e| (e.to_string(), false))?;
        let unusable = |e: Error| (format!("The model at {base} cannot be used. {e}"), false);
        let (config, scheduler) = loader::fetch_configs(&base).await.map_err(|e| (format!("The model could not be loaded: {e}."), false))?;
        let cfg = ddpm_web::UNetConfig::from_json(&config).map_err(unusable)?;
        if let Some(s) = &scheduler {
            SchedulerConfig::from_json(s).map_err(unusable)?;
        }
        let gpu = self.gpu_or_cpu().await?;
        // Checked before the weights are downloaded: a config the adapter cannot hold is refused at once.
        if let Some(gpu) = &gpu {
            ddpm_web::model::unet::check_fits(gpu, &cfg).map_err(unusable)?;
        }
        let weights = loader::fetch_weights(&base, |got, total| self.download.set((got, total)))
            .await
            .map_err(|e| (format!("The model could not be loaded: {e}."), false))?;
        let model = Model::from_bytes(&config, &weights, scheduler.as_deref()).map_err(unusable)?;
        let schedule = model.schedule();
        let dataset = model
            .config
            .provenance
            .as_ref()
            .and_then(|p| p.dataset.clone().map(|d| match p.images_seen {
                Some(n) => format!("{d}; {} training images seen", grouped(n)),
                None => d,
            }))
            .unwrap_or_else(|| "not stated in config.json".into());
        let log_snr = (0..schedule.len()).map(|t| schedule.log_snr(t)).collect();
        let Some(gpu) = gpu else {
            // The CPU path: the workers load the model themselves; the page keeps only what it shows.
            let shape = Unet::on_host(&model).map_err(unusable)?;
            let count = self.workers.unwrap_or_else(cpu::worker_count);
            let pool = Rc::new(cpu::CpuPool::new(count).map_err(|e| (e.to_string(), false))?);
            pool.load(&config, scheduler.as_deref(), &weights).await.map_err(|e| (format!("The model at {base} cannot be used on the CPU. {e}"), false))?;
            let info = ModelInfo {
                url: base,
                adapter: format!("the CPU: {count} Web Worker{} running WebAssembly", if count == 1 { "" } else { "s" }),
                parameters: shape.parameter_count(),
                gflop: shape.flops_per_image() as f64 / 1e9,
                dataset,
                steps: schedule.len(),
                image: shape.image_shape(),
                max_batch: MAX_IMAGES,
                log_snr,
            };
            if !self.explicit.0 {
                self.n.set(CPU_DEFAULTS.0);
            }
            if !self.explicit.1 {
                self.steps.set(CPU_DEFAULTS.1.min(schedule.len()));
            }
            self.finish_load(info, Engine { compute: Compute::Cpu(pool), image: shape.image_shape(), schedule, scheduler: model.scheduler.clone() }, RunOn::Cpu);
            self.kernels_used.set(Some("the CPU executor's (im2col and GEMM, WebAssembly SIMD)".into()));
            self.precision_used.set(Some("f32 (the CPU path computes in f32)".into()));
            return Ok(());
        };
        let precision = self.precision_choice.resolve(gpu.has_f16());
        let precision = if precision == Precision::F16 && !gpu.has_f16() {
            // Asked for in the address on an adapter without shader-f16: run anyway, in f32, and say so.
            self.notice.set(Some("The address asks for f16 (?precision=f16), but this GPU has no shader-f16: the model runs in f32.".into()));
            Precision::F32
        } else {
            precision
        };
        let lost = |e: &Error| matches!(e, Error::DeviceLost(_));
        gpu.enable(precision).await.map_err(|e| (e.to_string(), lost(&e)))?;
        let unet = Unet::load_as(Target::Gpu(&gpu), &model, precision).map_err(|e| (format!("The model at {base} cannot be used. {e}"), lost(&e)))?;
        self.precision_used.set(Some(describe_precision(self.precision_choice, precision, gpu.has_f16())));
        gpu.check().map_err(|e| (e.to_string(), matches!(e, Error::DeviceLost(_))))?;
        let max_batch = unet.max_batch(&gpu).min(MAX_IMAGES);
        // Reached on a software adapter only with ?backend=gpu (`gpu_or_cpu`): the panel still says so.
        let adapter = if gpu.is_software() {
            format!("{}: a software adapter, which runs on the CPU; the page's own CPU path (?backend=cpu) is usually much faster", gpu.adapter_name())
        } else {
            gpu.adapter_name()
        };
        let info = ModelInfo {
            url: base,
            adapter,
            parameters: unet.parameter_count(),
            gflop: unet.flops_per_image() as f64 / 1e9,
            dataset,
            steps: schedule.len(),
            image: unet.image_shape(),
            max_batch,
            log_snr,
        };
        if self.n.get_untracked() > max_batch {
            self.notice.set(Some(format!("This adapter runs at most {max_batch} images of this model at once; the number was lowered.")));
            self.n.set(max_batch);
        }
        // Time the kernel families now, for the batch the page will run, so the first Generate starts at once.
        let n = self.n.get_untracked().min(max_batch);
        let (_, tuning) = unet.choose(&gpu, n, self.kernel_choice).await.map_err(|e| (e.to_string(), matches!(e, Error::DeviceLost(_))))?;
        self.kernels_used.set(Some(describe_kernels(self.kernel_choice, n, tuning.as_ref())));
        let image = unet.image_shape();
        self.finish_load(info, Engine { compute: Compute::Gpu(gpu, Rc::new(unet)), image, schedule, scheduler: model.scheduler.clone() }, RunOn::Gpu);
        Ok(())
    }

    fn finish_load(&self, info: ModelInfo, engine: Engine, on: RunOn) {
        let steps = self.steps.get_untracked();
        if steps == 0 || steps > engine.schedule.len() {
            self.steps.set(engine.schedule.len());
        }
        self.engine.set_value(Some(engine));
        self.info.set(Some(info));
        self.run_on.set(Some(on));
    }

    /// The GPU context (made on first use), or None to run on the CPU: asked for with `?backend=cpu`, or
    /// with `?backend=auto` (the default) where there is no WebGPU, no adapter, or only a software one. The
    /// reason goes in `fallback`.
    async fn gpu_or_cpu(self) -> Result<Option<Rc<GpuContext>>, (String, bool)> {
        let Some(g) = self.make_gpu().await? else {
            return Ok(None);
        };
        // `auto` takes the CPU path over a software adapter; `?backend=gpu` still reaches it.
        if self.backend == url::Backend::Auto && g.is_software() {
            self.fallback.set(Some(
                "This browser's only WebGPU adapter is software, which runs on the CPU more slowly than the page's own CPU path: the model runs on the CPU (?backend=gpu uses the adapter anyway).".into(),
            ));
            return Ok(None);
        }
        Ok(Some(g))
    }

    /// The GPU context (made on first use), or None where `?backend=cpu` asks for none or `auto` finds none.
    async fn make_gpu(self) -> Result<Option<Rc<GpuContext>>, (String, bool)> {
        if let Some(g) = self.gpu.get_value() {
            return Ok(Some(g));
        }
        if self.backend == url::Backend::Cpu {
            self.fallback.set(Some("The model runs on the CPU, as the address asks (?backend=cpu).".into()));
            return Ok(None);
        }
        let made = if loader::has_webgpu() {
            GpuContext::new().await.map_err(|e| match e {
                // wgpu's own text lists backends it did not try: a person needs what is missing instead.
                Error::NoAdapter(_) => loader::NO_ADAPTER.to_string(),
                other => other.to_string(),
            })
        } else {
            Err(loader::NO_WEBGPU.to_string())
        };
        match made {
            Ok(g) => {
                let g = Rc::new(g);
                self.gpu.set_value(Some(g.clone()));
                self.fallback.set(None);
                Ok(Some(g))
            }
            Err(why) if self.backend == url::Backend::Auto => {
                self.fallback.set(Some(format!("{why} The model runs on the CPU instead: slower, so fewer images and steps to start with.")));
                Ok(None)
            }
            Err(why) => Err((format!("{why} The address asks for the GPU (?backend=gpu); without it the page runs the model on the CPU."), false)),
        }
    }

    /// Starts a run with the current settings; frames arrive as the GPU makes them.
    pub fn generate(self) {
        self.start(Start::Noise)
    }

    /// SDEdit (Meng et al. 2022): the batch is `x0` (one image, in the model's range) noised to the paper's
    /// t with a fresh draw per image, then denoised by the chosen sampler from there.
    pub fn generate_from(self, x0: Vec<f32>, t: usize) {
        if t == 0 {
            return self.notice.set(Some("At t = 0 there is no noise to take away: move Forward t up first.".into()));
        }
        self.start(Start::Image { x0, t: t - 1 })
    }

    /// Inpainting: the batch keeps `x0` (one image) where `known` is 1 and the chosen sampler generates the
    /// rest, with RePaint's resampling `resample` times (1: plain replacement) every tenth of the steps.
    pub fn inpaint(self, x0: Vec<f32>, known: Vec<f32>, resample: usize) {
        if known.iter().all(|&k| k == 1.0) {
            return self.notice.set(Some("Paint the region to fill on the mask first.".into()));
        }
        self.start(Start::Inpaint { x0, known, resample })
    }

    /// Interpolation between `a` and `b` (one image each): both noised to the paper's t with the same z,
    /// mixed spherically into a strip of `count`, denoised in one run whose images share their noise.
    pub fn interpolate(self, a: Vec<f32>, b: Vec<f32>, t: usize, count: usize) {
        if t == 0 {
            return self.notice.set(Some("At t = 0 the strip would only blend pixels: move Forward t up first.".into()));
        }
        self.start(Start::Interpolate { a, b, t: t - 1, count })
    }

    /// Super-resolution (ILVR): images whose 2x2 averages are `low` (one image at half the side), one per
    /// image of the batch, each with its own detail.
    pub fn upscale(self, low: Vec<f32>) {
        self.start(Start::Upscale { low })
    }

    /// A walk between generated images `a` and `b` (0-based) of the last run from noise: their x_T (the same
    /// Philox draws, recomputed on the host) interpolated spherically into `count` starts and denoised together
    /// with the current sampler. With a deterministic one (DDIM η = 0, Euler, Heun) and the run's settings, the
    /// walk's ends are those two images.
    pub fn walk(self, a: usize, b: usize, count: usize) {
        let Some(run) = self.run.get_untracked() else { return };
        if !run.walkable || !run.finished {
            return self.notice.set(Some("A walk starts from a finished run from noise: press Generate first.".into()));
        }
        let n = run.batch.n;
        if a == b || a >= n || b >= n {
            return self.notice.set(Some(format!("Choose two different images of the run, 1 to {n}.")));
        }
        let len = run.batch.image_len();
        let draw = |k: usize| -> Vec<f32> {
            (k * len..(k + 1) * len).map(|i| ddpm_web::gpu::kernels::update::reference_gaussian(run.opts.seed, ddpm_web::diffusion::samplers::INIT_KEY, i as u32)).collect()
        };
        self.start(Start::Walk { a: draw(a), b: draw(b), count })
    }

    /// A run from noise, from an image noised to a network timestep, an inpainting or an interpolation.
    fn start(self, how: Start) {
        if self.phase.get_untracked() != Phase::Ready {
            return;
        }
        let Some(engine) = self.engine.get_value() else { return };
        self.error.set(None);
        let info = self.info.get_untracked();
        let max = info.as_ref().map_or(1, |i| i.max_batch);
        let n = match &how {
            Start::Interpolate { count, .. } | Start::Walk { count, .. } => (*count).clamp(2, max.max(2)),
            _ => {
                let n = self.n.get_untracked().clamp(1, max);
                self.n.set(n);
                n
            }
        };
        let steps = self.steps.get_untracked().clamp(1, engine.schedule.len());
        self.steps.set(steps);
        let seed = self.seed.get_untracked();
        let method = self.method();
        // The program is cheap to make here; a bad setting is a message, not a run.
        let start_t = match &how {
            Start::Image { t, .. } | Start::Interpolate { t, .. } => Some(*t),
            _ => None,
        };
        let program = method.program(&engine.schedule, &engine.scheduler, steps).and_then(|p| match &how {
            Start::Image { t, .. } | Start::Interpolate { t, .. } => p.from_level(&engine.schedule, *t as f64),
            Start::Inpaint { resample, .. } => p.repaint(&engine.schedule, (steps / 10).max(1), *resample),
            Start::Noise | Start::Upscale { .. } | Start::Walk { .. } => Ok(p),
        });
        let program = match program {
            Ok(p) => p,
            Err(e) => return self.error.set(Some(e.to_string())),
        };
        let passes = program.passes.clone();
        url::write_location(&self.settings(), steps);
        let (c, h, w) = engine.image;
        let batch = Batch { n, c, h, w };
        let per_frame = 2 * batch.len();
        let stride = ((per_frame * (passes.len() + 1)).div_ceil(FRAME_BUDGET)).max(1);
        self.frames.set_value(Frames { list: Vec::new(), stride });
        self.frame_count.set(0);
        self.shown.set(0);
        self.follow.set(true);
        let cancel = Rc::new(Cell::new(false));
        self.cancel.set_value(cancel.clone());
        let choice = self.kernel_choice;
        let shared_noise = matches!(how, Start::Interpolate { .. } | Start::Walk { .. });
        let placeholder = SamplerOptions { n, seed, steps, method, kernels: ddpm_web::gpu::kernel::KernelFamily::Blocked, start_t, shared_noise };
        // Every image of the batch starts from (or keeps) the same x_0; each gets its own noise.
        let repeat = |v: &[f32]| -> Vec<f32> { (0..n).flat_map(|_| v.iter().copied()).collect() };
        let (image, known) = match &how {
            Start::Noise | Start::Interpolate { .. } | Start::Upscale { .. } | Start::Walk { .. } => (None, None),
            Start::Image { x0, .. } => (Some(repeat(x0)), None),
            Start::Inpaint { x0, known, .. } => (None, Some((repeat(x0), repeat(known)))),
        };
        let low: Option<Vec<f32>> = match &how {
            Start::Upscale { low } => Some(repeat(low)),
            _ => None,
        };
        // The strip's starts, with the z an image start draws for one image (so its ends are the plain runs).
        let exact = match &how {
            Start::Interpolate { a, b, .. } => {
                use ddpm_web::diffusion::interpolate::{noised, strip, Path};
                let key = ddpm_web::diffusion::sampler::IMAGE_NOISE_KEY;
                let ab = program.start_alpha_bar;
                Some(strip(&noised(a, ab, seed, key), &noised(b, ab, seed, key), n, Path::Spherical))
            }
            Start::Walk { a, b, .. } => {
                use ddpm_web::diffusion::interpolate::{strip, Path};
                let scale = |z: &[f32]| -> Vec<f32> { z.iter().map(|v| v * program.init_scale as f32).collect() };
                Some(strip(&scale(a), &scale(b), n, Path::Spherical))
            }
            _ => None,
        };
        let walkable = matches!(how, Start::Noise);
        self.run.set(Some(Run { opts: placeholder, batch, passes, done: 0, elapsed_ms: 0.0, finished: false, cancelled: false, walkable }));
        self.phase.set(Phase::Running);
        spawn_local(async move {
            let start = loader::now_ms();
            let result: Result<(), Error> = match &engine.compute {
                Compute::Gpu(gpu, _) => {
                    async {
                        let mut sampler = self.start_run(gpu, &engine, program, placeholder, choice).await?;
                        if let Some((x0, known)) = &known {
                            sampler.set_known(gpu, x0, known)?;
                        }
                        if let Some(low) = &low {
                            sampler.set_low(gpu, low)?;
                        }
                        let init = match (&image, &exact) {
                            (Some(x0), _) => Init::Image { x0, z: None },
                            (None, Some(x)) => Init::Exact(x),
                            (None, None) => Init::Philox,
                        };
                        let f = sampler.first_frame(gpu, init).await?;
                        self.add_frame(f, 0, start);
                        while !sampler.is_done() && !cancel.get() {
                            loader::next_tick().await;
                            let f = sampler.step(gpu).await?;
                            self.add_frame(f, sampler.steps_done(), start);
                        }
                        Ok(())
                    }
                    .await
                }
                Compute::Cpu(pool) => {
                    async {
                        let init = match (image, exact) {
                            (Some(x0), _) => JobInit::Image(x0),
                            (None, Some(x)) => JobInit::Exact(x),
                            (None, None) => JobInit::Philox,
                        };
                        let passes = program.passes.len();
                        let f = pool.start(&program, n, batch.image_len(), seed, shared_noise, init, known, low).await?;
                        self.add_frame(f, 0, start);
                        for done in 1..=passes {
                            if cancel.get() {
                                break;
                            }
                            let f = pool.step().await?;
                            self.add_frame(f, done, start);
                        }
                        Ok(())
                    }
                    .await
                }
            };
            self.run.update(|r| {
                if let Some(r) = r {
                    r.finished = true;
                    r.cancelled = cancel.get();
                }
            });
            match result {
                Ok(()) => {
                    self.phase.set(Phase::Ready);
                    if cancel.get() {
                        self.notice.set(Some("Cancelled; the steps made so far are kept.".into()));
                    }
                }
                Err(e) => {
                    let Some((gpu, _)) = engine.gpu() else {
                        self.phase.set(Phase::Ready);
                        return self.fail(format!("Sampling stopped: {e}"), false);
                    };
                    // A lost device fails the pending read-back before its lost promise resolves: give that
                    // promise a moment before deciding this was an ordinary error.
                    for _ in 0..20 {
                        if gpu.check().is_err() {
                            break;
                        }
                        loader::sleep_ms(50).await;
                    }
                    let fault = gpu.check().err();
                    let lost = matches!(e, Error::DeviceLost(_)) || fault.is_some();
                    // Name the loss, not the read-back it broke.
                    let shown = match fault {
                        Some(f @ Error::DeviceLost(_)) if !matches!(e, Error::DeviceLost(_)) => f,
                        _ => e,
                    };
                    self.phase.set(Phase::Ready);
                    self.fail(format!("Sampling stopped: {shown}"), lost);
                }
            }
        });
    }

    /// Chooses the kernels for this batch (timing them if not yet done) and builds the sampler.
    async fn start_run(&self, gpu: &GpuContext, engine: &Engine, program: Program, opts: SamplerOptions, choice: KernelChoice) -> Result<Sampler, Error> {
        let (_, unet) = engine.gpu().ok_or_else(|| Error::Gpu("internal: a GPU run without a GPU".into()))?;
        let (kernels, tuning) = unet.choose(gpu, opts.n, choice).await?;
        self.kernels_used.set(Some(describe_kernels(choice, opts.n, tuning.as_ref())));
        let opts = SamplerOptions { kernels, ..opts };
        self.run.update(|r| {
            if let Some(r) = r {
                r.opts = opts;
            }
        });
        Sampler::with_program(gpu, &unet, &engine.schedule, program, opts)
    }

    fn add_frame(&self, f: Frame, done: usize, start: f64) {
        let mut count = 0;
        self.frames.update_value(|fr| {
            fr.push(f);
            count = fr.list.len();
        });
        self.run.update(|r| {
            if let Some(r) = r {
                r.done = done;
                r.elapsed_ms = loader::now_ms() - start;
            }
        });
        self.frame_count.set(count);
        if self.follow.get_untracked() {
            self.shown.set(count - 1);
        }
    }

    /// Times `bench_steps` sampler steps at the current batch size after a warm-up, and shows the figures
    /// as JSON (`#bench-result`, what `?bench` runs and scripts read).
    pub fn benchmark(self) {
        if self.phase.get_untracked() != Phase::Ready {
            return;
        }
        let (Some(engine), Some(info)) = (self.engine.get_value(), self.info.get_untracked()) else { return };
        let n = self.n.get_untracked().clamp(1, info.max_batch);
        self.error.set(None);
        self.bench_result.set(None);
        self.phase.set(Phase::Running);
        spawn_local(async move {
            let result = match &engine.compute {
                Compute::Gpu(gpu, unet) => ddpm_web::bench::bench(gpu, unet, &engine.schedule, n, self.bench_steps, self.kernel_choice).await,
                Compute::Cpu(pool) => {
                    let (c, h, w) = engine.image;
                    cpu::bench(pool, &engine.schedule, c * h * w, n, self.bench_steps, info.gflop).await
                }
            };
            self.phase.set(Phase::Ready);
            match result.map(|r| serde_json::to_string_pretty(&r)) {
                Ok(Ok(json)) => self.bench_result.set(Some(json)),
                Ok(Err(e)) => self.fail(format!("The benchmark's figures could not be written: {e}"), false),
                Err(e) => {
                    let lost = matches!(e, Error::DeviceLost(_)) || engine.gpu().is_some_and(|(g, _)| g.check().is_err());
                    self.fail(format!("The benchmark stopped: {e}"), lost);
                }
            }
        });
    }

    pub fn cancel(self) {
        self.cancel.with_value(|c| c.set(true));
    }

    /// The pass (network timestep and update) that produced frame `index`; None for x_T.
    pub fn pass_of(&self, index: usize) -> Option<Pass> {
        let run = self.run.get_untracked()?;
        run.passes.get(index.checked_sub(1)?).copied()
    }
}

/// `n` with its thousands separated by commas, as the model card writes them (6,256,512).
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
