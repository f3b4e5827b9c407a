//! The WGSL kernels: one Rust module per shader family, each with its named `#[repr(C)]` params (size
//! asserted against the WGSL struct), a typed function that records its op into a [`Graph`](crate::gpu::graph::Graph),
//! a plain-Rust reference, and tests comparing the two on the GPU (burn's habit). Which entry point and
//! bindings each kernel has is in the registry, `src/gpu/kernel.rs`.

pub mod attention;
pub mod cast;
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
    use std::cell::Cell;
    use std::sync::OnceLock;

    use crate::gpu::context::GpuContext;
    use crate::gpu::graph::{Graph, TensorId};
    use crate::gpu::kernel::Precision;
    use crate::gpu::plan::Plan;
    use crate::gpu::tensor::Tensor;

    thread_local! {
        /// The precision `upload` and `nan_filled` make network tensors in (each test runs on its own thread).
        static PRECISION: Cell<Precision> = const { Cell::new(Precision::F32) };
    }

    /// Worst error (as [`assert_close`] measures it) a kernel's f16 form may show against its f32 reference
    /// computed from the same (f16-rounded, [`as_stored`]) inputs: the output rounded to 11 significant bits
    /// is at most 2^-12 = 2.4e-4 relative, sums being in f32; attention's three passes also store their
    /// scores and probabilities in f16.
    pub const F16_TOL: f32 = 1e-3;

    /// Runs `f` with the network's tensors in f16 (the kernels' f16 pipelines enabled on lavapipe).
    pub fn in_f16(f: impl FnOnce()) {
        pollster::block_on(ctx().enable(Precision::F16)).expect("lavapipe has shader-f16");
        PRECISION.with(|p| p.set(Precision::F16));
        f();
        PRECISION.with(|p| p.set(Precision::F32));
    }

    pub fn precision() -> Precision {
        PRECISION.with(|p| p.get())
    }

    /// `v` as a tensor of the test's precision stores it (rounded to f16 in an f16 test), so a reference
    /// computed from it sees the kernel's own inputs and only the kernel's own rounding is measured.
    pub fn as_stored(v: &[f32]) -> Vec<f32> {
        match precision() {
            Precision::F32 => v.to_vec(),
            Precision::F16 => crate::gpu::kernels::cast::reference(v),
        }
    }

    /// `f32_tol` in an f32 test, at least [`F16_TOL`] in an f16 one.
    pub fn tol(f32_tol: f32) -> f32 {
        match precision() {
            Precision::F32 => f32_tol,
            Precision::F16 => f32_tol.max(F16_TOL),
        }
    }

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

    /// A tensor of the graph holding `data`, in the test's precision (see [`in_f16`]).
    pub fn upload(g: &mut Graph, label: &str, shape: &[usize], data: &[f32]) -> TensorId {
        g.bound(label, &Tensor::upload_as(ctx(), label, shape, data, precision()))
    }

    /// An f32 tensor of the graph holding `data`, whatever the test's precision (timesteps, the sampler's
    /// buffers).
    pub fn upload_f32(g: &mut Graph, label: &str, shape: &[usize], data: &[f32]) -> TensorId {
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

    /// Each storage binding's element type in the f16 text of its module is what the registry says: f16
    /// for the network's (`Elem::Net`), f32 for the rest. A binding the registry calls f32 but the shader
    /// declares through `elem` would otherwise bind an f32 buffer to f16 code.
    #[test]
    fn registry_element_types_match_the_f16_shaders() {
        use crate::gpu::kernel::{Access, Elem, Kernel, Precision};
        for k in Kernel::ALL {
            let src = k.source();
            let precision = if k.runs_in(Precision::F16) && src.is_network() { Precision::F16 } else { Precision::F32 };
            let module = naga::front::wgsl::parse_str(&src.code_for(precision)).unwrap_or_else(|e| panic!("{} ({precision}): {e}", src.file));
            for b in k.bindings().iter().filter(|b| b.access != Access::Uniform) {
                let (_, var) = module
                    .global_variables
                    .iter()
                    .find(|(_, v)| v.binding.as_ref().is_some_and(|r| r.binding == b.number))
                    .unwrap_or_else(|| panic!("{k:?}: no binding {} in {}", b.number, src.file));
                if b.access == Access::Window {
                    // A window: WINDOW_BYTES of f32 as the vec4s a uniform array needs.
                    let mut layouter = naga::proc::Layouter::default();
                    layouter.update(module.to_ctx()).unwrap();
                    assert_eq!(layouter[var.ty].size as u64, crate::gpu::kernel::WINDOW_BYTES, "{k:?}: window binding {}", b.number);
                    assert_eq!(var.space, naga::AddressSpace::Uniform, "{k:?}: window binding {}", b.number);
                    continue;
                }
                let naga::TypeInner::Array { base, .. } = module.types[var.ty].inner else { panic!("{k:?}: binding {} is not an array", b.number) };
                // Scalars, or vectors (the windowed attention reads four queries at once, the windowed 3x3
                // two or four pixels).
                let scalar = match module.types[base].inner {
                    naga::TypeInner::Scalar(scalar) | naga::TypeInner::Vector { scalar, .. } => scalar,
                    _ => panic!("{k:?}: binding {} is not an array of scalars or vectors", b.number),
                };
                let want = match (b.elem, precision) {
                    (Elem::Net, Precision::F16) => 2,
                    _ => 4,
                };
                assert_eq!(scalar.width, want, "{k:?}: binding {} (`{}`) in {} ({precision})", b.number, b.name, src.file);
            }
            let has_net = k.bindings().iter().any(|b| b.elem == Elem::Net);
            assert!(!has_net || k.is_network(), "{k:?}: network bindings in a module without `elem`");
        }
    }

    #[test]
    fn params_structs_match_their_wgsl_twins() {
        let rust = [
            ("conv2d.wgsl + conv2d_storage.wgsl", size_of::<super::conv2d::Params>()),
            ("conv2d.wgsl + conv2d_window.wgsl", size_of::<super::conv2d::Params>()),
            ("group_norm.wgsl", size_of::<super::group_norm::Params>()),
            ("linear.wgsl", size_of::<super::linear::Params>()),
            ("embed.wgsl", size_of::<super::embed::Params>()),
            ("attention.wgsl", size_of::<super::attention::Params>()),
            ("resample.wgsl", size_of::<super::resample::Params>()),
            ("update.wgsl", size_of::<super::update::Params>()),
            ("langevin.wgsl", size_of::<super::langevin::Params>()),
            ("frames.wgsl", size_of::<super::frames::Params>()),
            ("forward.wgsl", size_of::<super::forward::Params>()),
            ("cast.wgsl", size_of::<super::cast::Params>()),
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
