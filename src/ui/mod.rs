//! The page. State is a handful of signals ([`Ui`]); the GPU objects, which are not `Send`, live in local
//! stored values and are only touched from event handlers and the sampling task, never from the view.

mod canvas;
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

use ddpm_web::gpu::kernel::KernelChoice;
use ddpm_web::image::Batch;
use ddpm_web::model::unet::Tuning;
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

/// The convolution kernels a run uses, as the info panel states it.
pub fn describe_kernels(choice: KernelChoice, n: usize, tuning: Option<&Tuning>) -> String {
    match (choice, tuning) {
        (KernelChoice::Fixed(k), _) => format!("{} (chosen in the URL)", k.name()),
        (KernelChoice::Auto, Some(t)) if t.others_skipped => format!(
            "{} (about {:.1} s per pass at {n} images here: too slow to also time the GPU kernels)",
            t.chosen.name(),
            t.ms.first().map_or(0.0, |m| m.1) / 1e3
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
}

#[derive(Clone)]
struct Engine {
    unet: Rc<Unet>,
    schedule: Schedule,
    scheduler: SchedulerConfig,
}

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
            steps: RwSignal::new(s.steps.unwrap_or(0)),
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
            debug: false,
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
        if !loader::has_webgpu() {
            return Err((loader::NO_WEBGPU.to_string(), false));
        }
        let gpu = match self.gpu.get_value() {
            Some(g) => g,
            None => {
                let g = Rc::new(GpuContext::new().await.map_err(|e| (e.to_string(), false))?);
                self.gpu.set_value(Some(g.clone()));
                g
            }
        };
        let base = self.model_url.get_untracked();
        ddpm_web::model::check_model_address(&base).map_err(|e| (e.to_string(), false))?;
        let unusable = |e: Error| (format!("The model at {base} cannot be used. {e}"), false);
        let (config, scheduler) = loader::fetch_configs(&base).await.map_err(|e| (format!("The model could not be loaded: {e}."), false))?;
        // Checked before the weights are downloaded: a config the adapter cannot hold is refused at once.
        let cfg = ddpm_web::UNetConfig::from_json(&config).map_err(unusable)?;
        ddpm_web::model::unet::check_fits(&gpu, &cfg).map_err(unusable)?;
        if let Some(s) = &scheduler {
            SchedulerConfig::from_json(s).map_err(unusable)?;
        }
        let weights = loader::fetch_weights(&base, |got, total| self.download.set((got, total)))
            .await
            .map_err(|e| (format!("The model could not be loaded: {e}."), false))?;
        let model = Model::from_bytes(&config, &weights, scheduler.as_deref()).map_err(unusable)?;
        let unet = Unet::new(&gpu, &model).map_err(|e| (format!("The model at {base} cannot be used. {e}"), matches!(e, Error::DeviceLost(_))))?;
        gpu.check().map_err(|e| (e.to_string(), matches!(e, Error::DeviceLost(_))))?;
        let schedule = model.schedule();
        let max_batch = unet.max_batch(&gpu).min(MAX_IMAGES);
        let info = ModelInfo {
            url: base,
            adapter: gpu.adapter_name(),
            parameters: unet.parameter_count(),
            gflop: unet.flops_per_image() as f64 / 1e9,
            dataset: model
                .config
                .provenance
                .as_ref()
                .and_then(|p| p.dataset.clone().map(|d| match p.images_seen {
                    Some(n) => format!("{d}; {n} training images seen"),
                    None => d,
                }))
                .unwrap_or_else(|| "not stated in config.json".into()),
            steps: schedule.len(),
            image: unet.image_shape(),
            max_batch,
            log_snr: (0..schedule.len()).map(|t| schedule.log_snr(t)).collect(),
        };
        if self.n.get_untracked() > max_batch {
            self.notice.set(Some(format!("This adapter runs at most {max_batch} images of this model at once; the number was lowered.")));
            self.n.set(max_batch);
        }
        let steps = self.steps.get_untracked();
        if steps == 0 || steps > schedule.len() {
            self.steps.set(schedule.len());
        }
        // Time the kernel families now, for the batch the page will run, so the first Generate starts at once.
        let n = self.n.get_untracked().min(max_batch);
        let (_, tuning) = unet.choose(&gpu, n, self.kernel_choice).await.map_err(|e| (e.to_string(), matches!(e, Error::DeviceLost(_))))?;
        self.kernels_used.set(Some(describe_kernels(self.kernel_choice, n, tuning.as_ref())));
        self.engine.set_value(Some(Engine { unet: Rc::new(unet), schedule, scheduler: model.scheduler.clone() }));
        self.info.set(Some(info));
        Ok(())
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

    /// A run from noise, from an image noised to a network timestep, an inpainting or an interpolation.
    fn start(self, how: Start) {
        if self.phase.get_untracked() != Phase::Ready {
            return;
        }
        let (Some(gpu), Some(engine)) = (self.gpu.get_value(), self.engine.get_value()) else { return };
        self.error.set(None);
        let info = self.info.get_untracked();
        let max = info.as_ref().map_or(1, |i| i.max_batch);
        let n = match &how {
            Start::Interpolate { count, .. } => (*count).clamp(2, max.max(2)),
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
            Start::Noise | Start::Upscale { .. } => Ok(p),
        });
        let program = match program {
            Ok(p) => p,
            Err(e) => return self.error.set(Some(e.to_string())),
        };
        let passes = program.passes.clone();
        url::write_location(&self.settings(), steps);
        let (c, h, w) = engine.unet.image_shape();
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
        let shared_noise = matches!(how, Start::Interpolate { .. });
        let placeholder = SamplerOptions { n, seed, steps, method, kernels: ddpm_web::gpu::kernel::KernelFamily::Blocked, start_t, shared_noise };
        // Every image of the batch starts from (or keeps) the same x_0; each gets its own noise.
        let repeat = |v: &[f32]| -> Vec<f32> { (0..n).flat_map(|_| v.iter().copied()).collect() };
        let (image, known) = match &how {
            Start::Noise | Start::Interpolate { .. } | Start::Upscale { .. } => (None, None),
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
            _ => None,
        };
        self.run.set(Some(Run { opts: placeholder, batch, passes, done: 0, elapsed_ms: 0.0, finished: false, cancelled: false }));
        self.phase.set(Phase::Running);
        spawn_local(async move {
            let start = loader::now_ms();
            let result: Result<(), Error> = async {
                let mut sampler = self.start_run(&gpu, &engine, program, placeholder, choice).await?;
                if let Some((x0, known)) = &known {
                    sampler.set_known(&gpu, x0, known)?;
                }
                if let Some(low) = &low {
                    sampler.set_low(&gpu, low)?;
                }
                let init = match (&image, &exact) {
                    (Some(x0), _) => Init::Image { x0, z: None },
                    (None, Some(x)) => Init::Exact(x),
                    (None, None) => Init::Philox,
                };
                let f = sampler.first_frame(&gpu, init).await?;
                self.add_frame(f, 0, start);
                while !sampler.is_done() && !cancel.get() {
                    loader::next_tick().await;
                    let f = sampler.step(&gpu).await?;
                    self.add_frame(f, sampler.steps_done(), start);
                }
                Ok(())
            }
            .await;
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
        let (kernels, tuning) = engine.unet.choose(gpu, opts.n, choice).await?;
        self.kernels_used.set(Some(describe_kernels(choice, opts.n, tuning.as_ref())));
        let opts = SamplerOptions { kernels, ..opts };
        self.run.update(|r| {
            if let Some(r) = r {
                r.opts = opts;
            }
        });
        Sampler::with_program(gpu, &engine.unet, &engine.schedule, program, opts)
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
        let (Some(gpu), Some(engine)) = (self.gpu.get_value(), self.engine.get_value()) else { return };
        let n = self.n.get_untracked().clamp(1, self.info.get_untracked().map_or(1, |i| i.max_batch));
        self.error.set(None);
        self.bench_result.set(None);
        self.phase.set(Phase::Running);
        spawn_local(async move {
            let result = ddpm_web::bench::bench(&gpu, &engine.unet, &engine.schedule, n, self.bench_steps, self.kernel_choice).await;
            self.phase.set(Phase::Ready);
            match result.map(|r| serde_json::to_string_pretty(&r)) {
                Ok(Ok(json)) => self.bench_result.set(Some(json)),
                Ok(Err(e)) => self.fail(format!("The benchmark's figures could not be written: {e}"), false),
                Err(e) => {
                    let lost = matches!(e, Error::DeviceLost(_)) || gpu.check().is_err();
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
