//! The WGSL kernels: one Rust module per shader family, each with its named `#[repr(C)]` params (size
//! asserted against the WGSL struct), a typed function that records its op into a [`Graph`](crate::gpu::graph::Graph),
//! a plain-Rust reference, and tests comparing the two on the GPU (burn's habit). Which entry point and
//! bindings each kernel has is in the registry, `src/gpu/kernel.rs`.

pub mod attention;
pub mod conv2d;
pub mod embed;
pub mod forward;
pub mod frames;
pub mod group_norm;
pub mod linear;
pub mod resample;
pub mod update;
pub mod langevin;

#[cfg(all(test, not(target_arch = "wasm32")))]
pub(crate) mod testing {
    use std::sync::OnceLock;

    use crate::gpu::context::GpuContext;
    use crate::gpu::graph::{Graph, TensorId};
    use crate::gpu::plan::Plan;
    use crate::gpu::tensor::Tensor;

    /// One lavapipe context shared by every kernel test in the process.
    pub fn ctx() -> &'static GpuContext {
        static CTX: OnceLock<GpuContext> = OnceLock::new();
        CTX.get_or_init(|| pollster::block_on(GpuContext::new()).expect("kernel tests need a Vulkan adapter (mesa-vulkan-drivers)"))
    }

    /// Deterministic values in [-1, 1) from a seed (no RNG crate needed for test inputs).
    pub fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    pub fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        let mut worst = (0.0f32, 0usize);
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let err = (g - w).abs() / (1.0 + w.abs());
            // A NaN (an output never written, or a bad value) fails outright: `>` alone would skip it.
            if err.is_nan() {
                worst = (err, i);
                break;
            }
            if err > worst.0 {
                worst = (err, i);
            }
        }
        assert!(worst.0 <= tol, "{what}: error {} at {} (got {}, want {})", worst.0, worst.1, got[worst.1], want[worst.1]);
    }

    pub fn read(t: &Tensor) -> Vec<f32> {
        pollster::block_on(t.read(ctx())).unwrap()
    }

    /// A tensor of the graph holding `data`.
    pub fn upload(g: &mut Graph, label: &str, shape: &[usize], data: &[f32]) -> TensorId {
        g.bound(label, &Tensor::upload(ctx(), label, shape, data))
    }

    /// An output tensor that starts as NaN everywhere, so a value the kernel fails to write cannot pass as
    /// a zero that the reference happens to expect.
    pub fn nan_filled(g: &mut Graph, label: &str, shape: &[usize]) -> TensorId {
        upload(g, label, shape, &vec![f32::NAN; shape.iter().product()])
    }

    /// Compiles the graph, runs it once and reads tensor `id` (a kept or bound one).
    pub fn run_and_read(g: &Graph, id: TensorId) -> Vec<f32> {
        let plan = Plan::compile(ctx(), g).unwrap();
        plan.run(ctx());
        read(plan.tensor(id))
    }
}

/// Every params struct against its WGSL twin: naga lays out each shader's `Params` as WGSL's uniform rules
/// say, and the size must equal the Rust struct's (the const assertions in each module pin the same numbers
/// at compile time; this checks those numbers are the shader's).
#[cfg(all(test, not(target_arch = "wasm32")))]
mod layout_tests {
    use std::mem::size_of;

    use wgpu::naga;

    use crate::gpu::kernel::SOURCES;

    #[test]
    fn params_structs_match_their_wgsl_twins() {
        let rust = [
            ("conv2d.wgsl", size_of::<super::conv2d::Params>()),
            ("group_norm.wgsl", size_of::<super::group_norm::Params>()),
            ("linear.wgsl", size_of::<super::linear::Params>()),
            ("embed.wgsl", size_of::<super::embed::Params>()),
            ("attention.wgsl", size_of::<super::attention::Params>()),
            ("resample.wgsl", size_of::<super::resample::Params>()),
            ("update.wgsl", size_of::<super::update::Params>()),
            ("langevin.wgsl", size_of::<super::langevin::Params>()),
            ("frames.wgsl", size_of::<super::frames::Params>()),
            ("forward.wgsl", size_of::<super::forward::Params>()),
        ];
        for src in SOURCES {
            let (_, size) = rust.iter().find(|(f, _)| *f == src.file).unwrap_or_else(|| panic!("{} has no Rust twin listed here", src.file));
            let module = naga::front::wgsl::parse_str(src.code).unwrap_or_else(|e| panic!("{}: {e}", src.file));
            let mut layouter = naga::proc::Layouter::default();
            layouter.update(module.to_ctx()).unwrap();
            let (params, _) = module.types.iter().find(|(_, t)| t.name.as_deref() == Some("Params")).unwrap_or_else(|| panic!("{}: no struct Params", src.file));
            assert_eq!(layouter[params].size as usize, *size, "{}: WGSL Params vs Rust", src.file);
        }
    }
}
