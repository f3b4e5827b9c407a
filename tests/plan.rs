//! The compiled plan of real U-Nets, checked directly (not only through the goldens): every activation is
//! written before it is read, no buffer is reused while its tensor is live, and the pool is close to the
//! least memory any assignment could use.
#![cfg(not(target_arch = "wasm32"))]

use ddpm_web::gpu::graph::{Graph, Storage};
use ddpm_web::gpu::kernel::KernelFamily;
use ddpm_web::gpu::plan::Assignment;
use ddpm_web::{GpuContext, Model, Unet};

fn model(dir: &str) -> Model {
    Model::load_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)).unwrap()
}

/// The most activation bytes live at any one op: a lower bound for every assignment.
fn live_bound(g: &Graph, a: &Assignment) -> u64 {
    (0..g.ops().len())
        .map(|i| {
            g.tensors()
                .iter()
                .enumerate()
                .filter(|(t, d)| matches!(d.storage, Storage::Activation) && a.live[*t].is_some_and(|(f, l)| f <= i && i <= l))
                .map(|(_, d)| d.bytes())
                .sum::<u64>()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn unet_plans_are_sound_and_share_buffers() {
    let ctx = pollster::block_on(GpuContext::new()).expect("a Vulkan adapter (lavapipe)");
    for dir in ["tests/models/tiny", "www/models/fashion-mnist", "tests/fixtures/attn_f16/model"] {
        let unet = Unet::new(&ctx, &model(dir)).unwrap();
        // Windowed: attention's K and V windows bound in place make their buffers a window longer.
        for (n, kernels) in [(1, KernelFamily::Blocked), (3, KernelFamily::Fused), (4, KernelFamily::Windowed)] {
            let (g, _) = unet.graph(&ctx, n, kernels).unwrap();
            let a = Assignment::new(&g);
            a.check(&g).unwrap_or_else(|e| panic!("{dir}, batch {n}: {e}"));
            let all: u64 = g.tensors().iter().filter(|d| matches!(d.storage, Storage::Activation)).map(|d| d.bytes()).sum();
            let bound = live_bound(&g, &a);
            let pool = a.pool_bytes();
            println!("plan {dir} batch {n}: {} ops, {} activations, {} pooled buffers; pool {pool} bytes = {:.2}x the live bound {bound}, {:.1}% of one buffer each", g.ops().len(), g.tensors().iter().filter(|d| matches!(d.storage, Storage::Activation)).count(), a.slot_bytes.len(), pool as f64 / bound as f64, 100.0 * pool as f64 / all as f64);
            assert!(pool >= bound, "{dir}: the pool cannot hold what is live at once");
            assert!(pool < all / 3, "{dir}: buffers are barely shared ({pool} of {all} bytes)");
            assert!(pool as f64 <= 1.5 * bound as f64, "{dir}: the greedy assignment wastes memory ({pool} vs {bound})");
        }
    }
}
