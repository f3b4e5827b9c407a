//! Page settings ↔ URL query (`?n=4&seed=7&steps=50&sampler=ddim&eta=0&model=...`), so a run is a link.

use ddpm_web::diffusion::samplers::DEFAULT_SNR;
use ddpm_web::gpu::kernel::{KernelChoice, PrecisionChoice};
use ddpm_web::{SamplerKind, Variance};

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub n: usize,
    pub seed: u64,
    pub steps: Option<usize>,
    pub variance: Variance,
    pub clip: bool,
    /// `?sampler=ddpm|ddim|euler|heun|sde|langevin|pc`, with `eta` (ddim), `langevin_steps` and `snr`.
    pub sampler: SamplerKind,
    pub eta: f64,
    pub langevin_steps: usize,
    pub snr: f64,
    pub model: String,
    /// `?bench`: benchmark the loaded model (batch `n`, `steps` timed steps) instead of waiting for Generate.
    pub bench: bool,
    /// `?kernels=auto|blocked|tiled|fused|windowed`: the kernel family (default: the fastest, measured on this adapter).
    pub kernels: KernelChoice,
    /// `?precision=auto|f32|f16`: the network's storage (default: f16 where the adapter has shader-f16).
    pub precision: PrecisionChoice,
    /// `?debug=1`: `window.ddpmDebug` with `stats()` and `destroyDevice()` (src/ui/debug.rs).
    pub debug: bool,
    /// `?backend=auto|gpu|cpu`: where the model runs (auto: the GPU, or the CPU without WebGPU).
    pub backend: Backend,
    /// `?workers=N`: Web Workers on the CPU path (default: one per core, at most 4).
    pub workers: Option<usize>,
    /// Whether the address gave `n` (the CPU path's smaller default applies only when it did not).
    pub n_given: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Auto,
    Gpu,
    Cpu,
}

impl std::str::FromStr for Backend {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "auto" => Ok(Backend::Auto),
            "gpu" => Ok(Backend::Gpu),
            "cpu" => Ok(Backend::Cpu),
            _ => Err(()),
        }
    }
}

/// Batch and timed steps of `?bench` when the URL does not give `n` or `steps`.
pub const BENCH_DEFAULTS: (usize, usize) = (16, 20);

pub const DEFAULT_MODEL: &str = "models/fashion-mnist/";

impl Default for Settings {
    fn default() -> Self {
        Self {
            n: 16,
            seed: 0,
            steps: None,
            variance: Variance::Small,
            clip: true,
            sampler: SamplerKind::Ddpm,
            eta: 0.0,
            langevin_steps: 1,
            snr: DEFAULT_SNR,
            model: DEFAULT_MODEL.into(),
            bench: false,
            kernels: KernelChoice::Auto,
            precision: PrecisionChoice::Auto,
            debug: false,
            backend: Backend::Auto,
            workers: None,
            n_given: false,
        }
    }
}

/// Reads the settings from the page's query string; unknown or malformed values keep their defaults.
pub fn from_location() -> Settings {
    let mut s = Settings::default();
    let Some(search) = web_sys::window().and_then(|w| w.location().search().ok()) else { return s };
    let Ok(params) = web_sys::UrlSearchParams::new_with_str(&search) else { return s };
    let get = |k: &str| params.get(k);
    if let Some(n) = get("n").and_then(|v| v.parse().ok()) {
        s.n = n;
        s.n_given = true;
    }
    if let Some(seed) = get("seed").and_then(|v| v.parse().ok()) {
        s.seed = seed;
    }
    s.steps = get("steps").and_then(|v| v.parse().ok());
    if let Some(v) = get("variance").and_then(|v| v.parse().ok()) {
        s.variance = v;
    }
    if let Some(c) = get("clip") {
        s.clip = !matches!(c.as_str(), "0" | "false" | "no");
    }
    if let Some(k) = get("sampler").and_then(|v| v.parse().ok()) {
        s.sampler = k;
    }
    // Out-of-range values are kept: Generate then says what is wrong with them.
    if let Some(e) = get("eta").and_then(|v| v.parse().ok()) {
        s.eta = e;
    }
    if let Some(k) = get("langevin_steps").and_then(|v| v.parse().ok()) {
        s.langevin_steps = k;
    }
    if let Some(r) = get("snr").and_then(|v| v.parse().ok()) {
        s.snr = r;
    }
    if let Some(m) = get("model").filter(|m| !m.is_empty()) {
        s.model = m;
    }
    if let Some(k) = get("kernels").and_then(|v| v.parse().ok()) {
        s.kernels = k;
    }
    if let Some(p) = get("precision").and_then(|v| v.parse().ok()) {
        s.precision = p;
    }
    if let Some(b) = get("backend").and_then(|v| v.parse().ok()) {
        s.backend = b;
    }
    s.workers = get("workers").and_then(|v| v.parse().ok()).map(|w: usize| w.clamp(1, 16));
    s.debug = get("debug").is_some_and(|d| !matches!(d.as_str(), "0" | "false" | "no"));
    if params.has("bench") {
        s.bench = true;
        if get("n").is_none() {
            s.n = BENCH_DEFAULTS.0;
        }
        s.steps = s.steps.or(Some(BENCH_DEFAULTS.1));
    }
    s
}

/// Writes the settings into the address bar without reloading, so the current run can be shared.
pub fn write_location(s: &Settings, steps: usize) {
    let Some(w) = web_sys::window() else { return };
    let variance = match s.variance {
        Variance::Small => "small",
        Variance::Large => "large",
    };
    let mut q = format!("?n={}&seed={}&steps={steps}&sampler={}", s.n, s.seed, s.sampler.name());
    match s.sampler {
        SamplerKind::Ddpm => q.push_str(&format!("&variance={variance}&clip={}", s.clip as u8)),
        SamplerKind::Ddim => q.push_str(&format!("&eta={}", s.eta)),
        SamplerKind::Langevin | SamplerKind::Pc => q.push_str(&format!("&langevin_steps={}&snr={}", s.langevin_steps, s.snr)),
        _ => {}
    }
    if let KernelChoice::Fixed(k) = s.kernels {
        q.push_str("&kernels=");
        q.push_str(k.name());
    }
    if let PrecisionChoice::Fixed(p) = s.precision {
        q.push_str("&precision=");
        q.push_str(p.name());
    }
    match s.backend {
        Backend::Auto => {}
        Backend::Gpu => q.push_str("&backend=gpu"),
        Backend::Cpu => q.push_str("&backend=cpu"),
    }
    if s.model != DEFAULT_MODEL {
        q.push_str("&model=");
        q.push_str(&String::from(js_sys::encode_uri_component(&s.model)));
    }
    if let Ok(h) = w.history() {
        let _ = h.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&q));
    }
}
