//! The CPU executor (one thread) against the machine's practical peak, in one run: a large square GEMM through
//! the same `matrixmultiply` call the convolutions make (the best the executor's inner loop can do here), then
//! one ε_θ pass of the shipped model at batch 1, 4 and 16, with its GFLOP/s and the share of that peak.
//!
//!     cargo bench --bench cpu
use std::time::Instant;

use ddpm_web::cpu::HostPlan;
use ddpm_web::{Model, Unet};

fn main() {
    let m = 512;
    let (a, b) = (vec![0.5f32; m * m], vec![0.25f32; m * m]);
    let mut c = vec![0.0f32; m * m];
    let gemm = |c: &mut [f32]| unsafe {
        matrixmultiply::sgemm(m, m, m, 1.0, a.as_ptr(), m as isize, 1, b.as_ptr(), m as isize, 1, 0.0, c.as_mut_ptr(), m as isize, 1)
    };
    gemm(&mut c);
    let reps = 20;
    let start = Instant::now();
    for _ in 0..reps {
        gemm(&mut c);
    }
    let peak = 2.0 * (m * m * m) as f64 * reps as f64 / start.elapsed().as_secs_f64() / 1e9;
    println!("{{\"what\": \"sgemm {m}x{m}x{m}, one thread\", \"gflops_per_s\": {peak:.1}}}");

    let model = Model::load_dir(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/www/models/fashion-mnist"))).expect("the shipped model");
    let unet = Unet::on_host(&model).expect("host weights");
    for n in [1usize, 4, 16] {
        let (g, [x, t, _]) = unet.host_graph(n).expect("graph");
        let mut plan = HostPlan::compile(&g).expect("plan");
        plan.write(x, &vec![0.1; plan.read(x).len()]).unwrap();
        plan.write(t, &vec![500.0; n]).unwrap();
        plan.run().unwrap();
        let reps = (40 / n).max(3);
        let start = Instant::now();
        for _ in 0..reps {
            plan.run().unwrap();
        }
        let ms = start.elapsed().as_secs_f64() * 1e3 / reps as f64;
        let gflops = plan.flops() as f64 / ms / 1e6;
        println!("{{\"what\": \"eps pass, shipped model\", \"batch\": {n}, \"ms_per_pass\": {ms:.2}, \"gflops_per_s\": {gflops:.1}, \"of_gemm_peak\": {:.2}}}", gflops / peak);
    }
}
