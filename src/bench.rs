//! Sampler steps per second on the loaded model: the figure the page's `?bench` and `ddpm bench` print, as
//! JSON, so that runs on different adapters (and against onnxruntime, PyTorch) compare side by side.
//!
//! A step here is what a person waits for in the page: one ε_θ pass, the update, the packing of x_t and x̂_0
//! and their read-back, with the next step already submitted while a frame is read (as `Sampler::step`
//! does). The first `warmup` steps are not timed: some drivers compile pipelines lazily on first use.

use serde::Serialize;
use web_time::Instant;

use crate::diffusion::sampler::{Init, Sampler, SamplerOptions};
use crate::diffusion::samplers::Method;
use crate::diffusion::schedule::SchedulerConfig;
use crate::diffusion::schedule::{Schedule, Variance};
use crate::error::Result;
use crate::gpu::context::GpuContext;
use crate::gpu::kernel::{Kernel, KernelChoice};
use crate::model::unet::Unet;

/// This process's CPU time so far, all threads together (a CPU adapter's workers too), in ms: utime + stime
/// of /proc/self/stat, in the kernel's 10 ms ticks (None off Linux). On a CPU adapter it is the work done,
/// steady where the wall clock also counts the time the adapter's threads wait for each other or for a core
/// (the benches print both).
#[cfg(not(target_arch = "wasm32"))]
pub fn process_cpu_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces: utime and stime are
    // the 14th and 15th of the line, the 12th and 13th after it.
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    Some((ticks(11)? + ticks(12)?) * 10.0)
}

/// Steps run before the clock starts.
pub const WARMUP_STEPS: usize = 2;

/// One benchmark's figures. Field names are the JSON the page writes into `#bench-result`.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub adapter: String,
    /// wgpu's backend ("Vulkan", "BrowserWebGpu").
    pub backend: String,
    /// wgpu's device type ("Cpu" for lavapipe and SwiftShader, "DiscreteGpu", …): a GPU run must not be a CPU one.
    pub device_type: String,
    pub batch: usize,
    pub steps: usize,
    pub ms_per_step: f64,
    pub images_per_s: f64,
    /// FLOPs of one ε_θ pass over the whole batch (2 per multiply-add, from the model's shapes), in G.
    pub gflop_per_pass: f64,
    pub gflops_per_s: f64,
    /// From the start of a run (plans compiled, x_T drawn) to its first frame on the host, ms.
    pub first_frame_ms: f64,
    /// GPU memory the run holds (`Sampler::gpu_bytes`), bytes.
    pub gpu_bytes: u64,
    /// The network's storage precision ("f32" or "f16"); the CPU path is always f32.
    pub precision: String,
    /// The kernel family the convolutions ran with.
    pub kernels: String,
    /// With `auto`: milliseconds of one ε_θ pass per candidate family, as measured to choose.
    pub kernel_ms: Option<std::collections::BTreeMap<String, f64>>,
    /// GPU milliseconds of one ε_θ pass per kernel family (each dispatch timed alone with timestamps), where
    /// the adapter has `timestamp-query`; null otherwise.
    pub gpu_ms_per_family: Option<std::collections::BTreeMap<String, f64>>,
    /// The same timings per kernel (the `Kernel` variant as Rust prints it, e.g. `Conv(Tiled, Bias)`, `AttnScores`): where a family's
    /// time goes.
    pub gpu_ms_per_kernel: Option<std::collections::BTreeMap<String, f64>>,
    /// The CPU path: one thread's GFLOP/s on a 256³ GEMM through the executor's own call (its practical
    /// peak here); null on the GPU path.
    pub cpu_gemm_peak_gflops_per_s: Option<f64>,
}

impl BenchReport {
    /// `steps` timed steps of `n` images that took `secs`, with the figures derived from them; the fields
    /// only the GPU path has are empty and the path is the CPU's until the caller says otherwise.
    pub fn timed(adapter: String, n: usize, steps: usize, secs: f64, gflop_per_pass: f64, first_frame_ms: f64) -> Self {
        Self {
            adapter,
            backend: "Cpu".into(),
            device_type: "Cpu".into(),
            batch: n,
            steps,
            ms_per_step: secs * 1e3 / steps as f64,
            images_per_s: (n * steps) as f64 / secs,
            gflop_per_pass,
            gflops_per_s: gflop_per_pass * steps as f64 / secs,
            first_frame_ms,
            gpu_bytes: 0,
            precision: "f32".into(),
            kernels: "cpu".into(),
            kernel_ms: None,
            gpu_ms_per_family: None,
            gpu_ms_per_kernel: None,
            cpu_gemm_peak_gflops_per_s: None,
        }
    }
}

/// (steps run in all, steps timed) for a benchmark asked for `steps` timed steps: [`WARMUP_STEPS`] first, all
/// within the schedule's length.
pub fn step_counts(schedule_len: usize, steps: usize) -> (usize, usize) {
    let total = (WARMUP_STEPS + steps.max(1)).min(schedule_len);
    (total, total - WARMUP_STEPS.min(total - 1))
}

/// Runs `WARMUP_STEPS` then `steps` sampler steps at batch `n` and reports the timed ones.
pub async fn bench(ctx: &GpuContext, unet: &Unet, schedule: &Schedule, n: usize, steps: usize, choice: KernelChoice) -> Result<BenchReport> {
    let (kernels, tuning) = unet.choose(ctx, n, choice).await?;
    let kernel_ms = tuning.map(|t| t.ms.into_iter().map(|(k, ms)| (k.name().to_string(), ms)).collect());
    let (total, steps) = step_counts(schedule.len(), steps);
    let method = Method::Ddpm { variance: Variance::Small, clip: false };
    // One pass more than is stepped. `step` queues the next pass before reading a frame, and natively the
    // read-back waits until the whole queue is idle; without a spare pass the last timed step would find
    // its frame already made by the step before (`--steps 2` once read half the true time per step). With
    // it every timed step waits for exactly one pass, natively as in the browser (where a read-back waits
    // only for its own submission); the report divides by the passes submitted in the window either way.
    let passes = (total + 1).min(schedule.len());
    let opts = SamplerOptions { n, seed: 0, steps: passes, method, kernels, start_t: None, shared_noise: false };
    let begun = Instant::now();
    // DDPM reads nothing from the scheduler config beyond the schedule itself.
    let mut sampler = Sampler::new(ctx, unet, schedule, &SchedulerConfig::default(), opts)?;
    sampler.first_frame(ctx, Init::Philox).await?;
    let first_frame_ms = begun.elapsed().as_secs_f64() * 1e3;
    for _ in 0..total - steps {
        sampler.step(ctx).await?;
    }
    let (start, before) = (Instant::now(), sampler.passes_submitted());
    for _ in 0..steps {
        sampler.step(ctx).await?;
    }
    let secs = start.elapsed().as_secs_f64();
    // The passes the window waited for: natively those submitted in it (each read-back drains the queue);
    // in the browser the same count while one pass is queued ahead at both ends, which the spare pass
    // ensures. `steps` as asked, fewer only where the schedule had no room for the spare.
    let steps = (sampler.passes_submitted() - before).max(1);
    let profile = unet.plan(ctx, n, kernels)?.plan.profile(ctx).await?;
    let sum_by = |name: &dyn Fn(Kernel) -> String| {
        profile.as_ref().map(|p| {
            let mut sums = std::collections::BTreeMap::new();
            for (&k, &ms) in p {
                *sums.entry(name(k)).or_insert(0.0) += ms;
            }
            sums
        })
    };
    let (gpu_ms_per_family, gpu_ms_per_kernel) = (sum_by(&|k| k.family().to_string()), sum_by(&|k| format!("{k:?}")));
    let info = &ctx.adapter_info;
    let gflop_per_pass = unet.flops_per_image() as f64 * n as f64 / 1e9;
    Ok(BenchReport {
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        gpu_bytes: sampler.gpu_bytes(),
        kernels: kernels.name().into(),
        precision: unet.precision().name().into(),
        kernel_ms,
        gpu_ms_per_family,
        gpu_ms_per_kernel,
        ..BenchReport::timed(ctx.adapter_name(), n, steps, secs, gflop_per_pass, first_frame_ms)
    })
}

/// As [`bench`], on the CPU executor ([`crate::cpu`]) with `unet` loaded by [`Unet::on_host`]: one thread,
/// the same DDPM steps, frames packed on the host.
pub fn bench_host(unet: &Unet, schedule: &Schedule, n: usize, steps: usize) -> Result<BenchReport> {
    let (total, steps) = step_counts(schedule.len(), steps);
    let method = Method::Ddpm { variance: Variance::Small, clip: false };
    let opts = SamplerOptions { n, seed: 0, steps: total, method, kernels: crate::gpu::kernel::KernelFamily::Blocked, start_t: None, shared_noise: false };
    let begun = Instant::now();
    let mut sampler = crate::cpu::sampler::HostSampler::new(unet, schedule, &SchedulerConfig::default(), opts)?;
    sampler.first_frame(Init::Philox)?;
    let first_frame_ms = begun.elapsed().as_secs_f64() * 1e3;
    for _ in 0..total - steps {
        sampler.step()?;
    }
    let start = Instant::now();
    for _ in 0..steps {
        sampler.step()?;
    }
    let secs = start.elapsed().as_secs_f64();
    let gflop_per_pass = sampler.flops_per_pass() as f64 / 1e9;
    Ok(BenchReport {
        cpu_gemm_peak_gflops_per_s: Some(crate::cpu::ops::gemm_peak_gflops()),
        ..BenchReport::timed("CPU executor (Rust, 1 thread)".into(), n, steps, secs, gflop_per_pass, first_frame_ms)
    })
}
