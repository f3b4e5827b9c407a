//! Where a U-Net pass spends its time, per kernel family, on this machine's adapter.
//!
//!     cargo bench --bench unet -- [MODEL_DIR] [BATCH] [blocked|tiled|fused|windowed]   (default: www/models/fashion-mnist, 16, blocked)
//!
//! Replays the compiled plan whole, then each kernel family's dispatches alone (same shapes, same order), and
//! prints milliseconds per pass, share of the whole, and GFLOP/s; for the whole pass also the CPU time (on a CPU
//! adapter, the work, which the wall clock mixes with waits). Figures, not pass/fail: compare runs on one
//! machine and adapter, side by side.
use std::time::Instant;

use ddpm_web::bench::process_cpu_ms as cpu_ms;
use ddpm_web::gpu::kernel::{KernelFamily, Kernel};
use ddpm_web::gpu::plan::{encode, Dispatch};
use ddpm_web::{GpuContext, Model, Unet};

/// Wall-clock ms per replay of `dispatches`, and CPU ms per replay where the OS says (on a CPU adapter, the
/// work done: steady where the wall clock is not, since it does not count the time the adapter's threads
/// wait for each other or for a core).
fn time_ms(ctx: &GpuContext, dispatches: &[&Dispatch], reps: usize) -> (f64, Option<f64>) {
    let go = || {
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        encode(ctx, &mut enc, dispatches.iter().copied());
        ctx.queue.submit([enc.finish()]);
        ctx.poll();
    };
    go(); // warm-up: first use compiles lazily on some drivers
    let (start, cpu) = (Instant::now(), cpu_ms());
    for _ in 0..reps {
        go();
    }
    let cpu = cpu.zip(cpu_ms()).map(|(a, b)| (b - a) / reps as f64);
    (start.elapsed().as_secs_f64() * 1e3 / reps as f64, cpu)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let dir = args.first().cloned().unwrap_or_else(|| "www/models/fashion-mnist".into());
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(16);
    let model = Model::load_dir(std::path::Path::new(&dir)).expect("model folder");
    let ctx = pollster::block_on(GpuContext::new()).expect("adapter");
    let unet = Unet::new(&ctx, &model).expect("weights");
    let kernels = KernelFamily::ALL.into_iter().find(|k| args.get(2).is_some_and(|a| a == k.name())).unwrap_or(KernelFamily::Blocked);
    let p = unet.plan(&ctx, n, kernels).expect("plan");
    let reps = 3;
    let all: Vec<&Dispatch> = p.plan.dispatches().iter().collect();
    let (total, cpu) = time_ms(&ctx, &all, reps);
    let gflop = unet.flops_per_image() as f64 * n as f64 / 1e9;
    println!("model {dir}: {} parameters, {:.3} GFLOP per image; batch {n}; {} kernels; adapter {}", unet.parameter_count(), gflop / n as f64, kernels.name(), ctx.adapter_name());
    println!("whole pass: {total:.1} ms = {:.2} GFLOP/s, {:.1} images/s; activation pool {:.1} MiB", gflop / (total / 1e3), n as f64 / (total / 1e3), p.plan.pool_bytes() as f64 / (1 << 20) as f64);
    if let Some(cpu) = cpu {
        println!("CPU time: {cpu:.0} ms per pass, all threads (a CPU adapter's work; 10 ms ticks over {reps} passes)");
    }
    println!("{:<12} {:>10} {:>10} {:>8}", "family", "dispatches", "ms/pass", "share");
    // Each family once, in the order of its first kernel (`Kernel::ALL` interleaves them).
    let mut families: Vec<&str> = Vec::new();
    for family in Kernel::ALL.iter().map(|k| k.family()) {
        if !families.contains(&family) {
            families.push(family);
        }
    }
    for family in families {
        let subset: Vec<&Dispatch> = p.plan.dispatches().iter().filter(|d| d.kernel.family() == family).collect();
        if subset.is_empty() {
            continue;
        }
        let (ms, _) = time_ms(&ctx, &subset, reps);
        println!("{:<12} {:>10} {:>10.1} {:>7.0}%", family, subset.len(), ms, 100.0 * ms / total);
    }
}
