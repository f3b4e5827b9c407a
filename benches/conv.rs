//! Every convolution algorithm that implements a shape, side by side in one run on the same adapter, at the
//! shipped model's 3x3 shapes (batch 16).
//!
//!     cargo bench --bench conv
//!     ALGOS=Blocked3x3,Tiled cargo bench --bench conv    (only those, by their Debug names)
//!
//! Each cell is wall-clock ms per run / CPU ms per run (all threads: on a CPU adapter the work done, which
//! holds still while the wall clock moves with the host's load), 20 runs after a warm-up.
use std::time::Instant;

use ddpm_web::bench::process_cpu_ms;
use ddpm_web::gpu::graph::Graph;
use ddpm_web::gpu::kernel::ConvAlgo;
use ddpm_web::gpu::kernels::conv2d::{conv2d, ConvIo, ConvSpec, Extra};
use ddpm_web::gpu::plan::Plan;
use ddpm_web::gpu::tensor::Tensor;
use ddpm_web::GpuContext;

/// Wall-clock and CPU ms per run (CPU NaN where the OS does not say).
fn time_ms(ctx: &GpuContext, plan: &Plan, reps: usize) -> (f64, f64) {
    let go = || {
        plan.run(ctx);
        ctx.poll();
    };
    go();
    let (start, cpu) = (Instant::now(), process_cpu_ms());
    for _ in 0..reps {
        go();
    }
    let cpu = cpu.zip(process_cpu_ms()).map_or(f64::NAN, |(a, b)| (b - a) / reps as f64);
    (start.elapsed().as_secs_f64() * 1e3 / reps as f64, cpu)
}

fn main() {
    let ctx = pollster::block_on(GpuContext::new()).expect("adapter");
    let spec = ConvSpec::SAME3;
    let only = std::env::var("ALGOS").ok();
    let wanted = |a: ConvAlgo| only.as_deref().is_none_or(|list| list.split(',').any(|name| name == format!("{a:?}")));
    // A windowed 3x3 runs in the form its rows allow (conv2d's choice), so Window3x3x4 and Window3x3x2 would
    // time Window3x3's kernels again: Window3x3 stands for all three.
    let form = |a: ConvAlgo| matches!(a, ConvAlgo::Window3x3x4 | ConvAlgo::Window3x3x2);
    let algos: Vec<ConvAlgo> = ConvAlgo::ALL.into_iter().filter(|&a| spec.supported_by(a) && !form(a) && wanted(a)).collect();
    println!("adapter {}", ctx.adapter_name());
    print!("{:<22}", "shape (N, IC->OC, HxW)");
    for a in &algos {
        print!(" {:>18}", format!("{a:?} ms"));
    }
    println!(" {:>12}", "best GFLOP/s");
    let mut totals = vec![(0.0, 0.0); algos.len()];
    for &(n, ic, oc, hw) in &[(16usize, 32usize, 32usize, 28usize), (16, 64, 32, 28), (16, 64, 64, 14), (16, 128, 64, 14), (16, 64, 64, 7), (16, 128, 64, 7)] {
        let gflop = 2.0 * (n * oc * hw * hw * ic * 9) as f64 / 1e9;
        print!("{:<22}", format!("{n}, {ic}->{oc}, {hw}x{hw}"));
        let mut best = f64::MAX;
        for (i, &algo) in algos.iter().enumerate() {
            let mut g = Graph::new();
            let x = g.bound("x", &Tensor::zeros(&ctx, "x", &[n, ic, hw, hw]));
            let w = g.bound("w", &Tensor::zeros(&ctx, "w", &[oc, ic, 3, 3]));
            let bias = g.bound("b", &Tensor::zeros(&ctx, "b", &[oc]));
            let out = g.kept("out", &[n, oc, hw, hw]);
            conv2d(&mut g, ConvIo { x, w, bias, extra: Extra::None, out }, spec, algo);
            let (ms, cpu) = time_ms(&ctx, &Plan::compile(&ctx, &g).expect("plan"), 20);
            totals[i].0 += ms;
            totals[i].1 += cpu;
            best = best.min(ms);
            print!(" {:>18}", format!("{ms:.1} / {cpu:.1}"));
        }
        println!(" {:>12.2}", gflop / (best / 1e3));
    }
    print!("{:<22}", "total");
    for (ms, cpu) in totals {
        print!(" {:>18}", format!("{ms:.1} / {cpu:.1}"));
    }
    println!();
}
