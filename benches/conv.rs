//! The register-blocked 3x3 kernel (entry point `conv3x3` of shaders/conv2d.wgsl) against the general one (`general`), side
//! by side in one run on the same adapter, at the shipped model's shapes (batch 16).
//!
//!     cargo bench --bench conv
use std::time::Instant;

use ddpm_web::gpu::kernels::conv2d::{conv2d, conv2d_general, ConvSpec};
use ddpm_web::gpu::kernels::Dispatch;
use ddpm_web::gpu::tensor::Tensor;
use ddpm_web::GpuContext;

fn time_ms(ctx: &GpuContext, d: &Dispatch, reps: usize) -> f64 {
    let go = || {
        ddpm_web::gpu::kernels::run(ctx, std::slice::from_ref(d));
        ctx.poll();
    };
    go();
    let start = Instant::now();
    for _ in 0..reps {
        go();
    }
    start.elapsed().as_secs_f64() * 1e3 / reps as f64
}

fn main() {
    let ctx = pollster::block_on(GpuContext::new()).expect("adapter");
    println!("adapter {}", ctx.adapter_name());
    println!("{:<22} {:>10} {:>10} {:>8} {:>10}", "shape (N, IC->OC, HxW)", "general ms", "blocked ms", "speedup", "GFLOP/s");
    let (mut tg, mut tb) = (0.0, 0.0);
    for &(n, ic, oc, hw) in &[(16usize, 32usize, 32usize, 28usize), (16, 64, 32, 28), (16, 64, 64, 14), (16, 128, 64, 14), (16, 64, 64, 7), (16, 128, 64, 7)] {
        let x = Tensor::zeros(&ctx, "x", &[n, ic, hw, hw]);
        let w = Tensor::zeros(&ctx, "w", &[oc, ic, 3, 3]);
        let b = Tensor::zeros(&ctx, "b", &[oc]);
        let out = Tensor::zeros(&ctx, "out", &[n, oc, hw, hw]);
        let general = conv2d_general(&ctx, &x, &w, &b, ConvSpec::SAME3, None, None, &out);
        let blocked = conv2d(&ctx, &x, &w, &b, ConvSpec::SAME3, None, None, &out);
        let (g, bl) = (time_ms(&ctx, &general, 5), time_ms(&ctx, &blocked, 5));
        let gflop = 2.0 * (n * oc * hw * hw * ic * 9) as f64 / 1e9;
        tg += g;
        tb += bl;
        println!("{:<22} {g:>10.1} {bl:>10.1} {:>7.1}x {:>10.2}", format!("{n}, {ic}->{oc}, {hw}x{hw}"), g / bl, gflop / (bl / 1e3));
    }
    println!("{:<22} {tg:>10.1} {tb:>10.1} {:>7.1}x", "total", tg / tb);
}
