//! The CPU executor (one thread) against the machine's practical peak, in one run: a 256³ GEMM through the
//! same `matrixmultiply` call the convolutions make (`cpu::ops::gemm_peak_gflops`, what `?bench` reports in the
//! browser too), the crate's convolution against a plain loop (the WGSL kernel's reference) on the shipped
//! model's widest 3x3 shape, then one ε_θ pass of the shipped model at batch 1, 4 and 16 with its GFLOP/s and
//! the share of that peak.
//!
//!     cargo bench --bench cpu
use std::time::Instant;

use ddpm_web::cpu::ops::{conv2d, gemm_peak_gflops, ConvAdd};
use ddpm_web::cpu::EpsPlan;
use ddpm_web::gpu::kernels::conv2d::{reference, ConvSpec, Params};
use ddpm_web::{Model, Unet};

fn ms(mut f: impl FnMut(), reps: usize) -> f64 {
    f();
    let start = Instant::now();
    for _ in 0..reps {
        f();
    }
    start.elapsed().as_secs_f64() * 1e3 / reps as f64
}

fn main() {
    let peak = gemm_peak_gflops();
    println!("{{\"what\": \"sgemm 256x256x256, one thread\", \"gflops_per_s\": {peak:.1}}}");

    // The up path's first 3x3 convolution at 28x28 (96 -> 32 channels), batch 4.
    let (n, ic, oc, hw) = (4usize, 96usize, 32usize, 28usize);
    let x = vec![0.1f32; n * ic * hw * hw];
    let w = vec![0.01f32; oc * ic * 9];
    let bias = vec![0.0f32; oc];
    let p = Params { n: n as u32, ic: ic as u32, ih: hw as u32, iw: hw as u32, oc: oc as u32, oh: hw as u32, ow: hw as u32, kh: 3, kw: 3, stride: 1, pad_y: 1, pad_x: 1, add_stride: 0, add_offset: 0, ic_a: 0, oc_first: 0 };
    let mut out = vec![0.0f32; n * oc * hw * hw];
    let mut col = Vec::new();
    let gflop = 2.0 * (n * oc * hw * hw * ic * 9) as f64 / 1e9;
    let ours = ms(|| conv2d(&p, &x, &w, &bias, ConvAdd::None, &mut out, &mut col), 10);
    let plain = ms(|| drop(reference(&x, [n, ic, hw, hw], &w, oc, &bias, ConvSpec::SAME3, None, None)), 2);
    println!("{{\"what\": \"3x3 conv {ic}->{oc} at {hw}x{hw}, batch {n}\", \"im2col_gemm_ms\": {ours:.2}, \"plain_loop_ms\": {plain:.1}, \"gemm_gflops_per_s\": {:.1}, \"plain_gflops_per_s\": {:.2}}}", gflop / ours * 1e3, gflop / plain * 1e3);

    let model = Model::load_dir(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/www/models/fashion-mnist"))).expect("the shipped model");
    let unet = Unet::on_host(&model).expect("host weights");
    for n in [1usize, 4, 16] {
        let mut pass = EpsPlan::new(&unet, n).expect("plan");
        let (x, t) = (vec![0.1; n * 784], vec![500.0; n]);
        let per = ms(|| assert!(!pass.eps(&x, &t).unwrap().is_empty()), (40 / n).max(3));
        let gflops = pass.flops() as f64 / per / 1e6;
        println!("{{\"what\": \"eps pass, shipped model\", \"batch\": {n}, \"ms_per_pass\": {per:.2}, \"gflops_per_s\": {gflops:.1}, \"of_gemm_peak\": {:.2}}}", gflops / peak);
    }
}
