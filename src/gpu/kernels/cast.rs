//! `shaders/cast.wgsl`: the f32 ↔ network-precision casts at the U-Net's input and output, so a network
//! that runs in f16 leaves the sampler's state (x_t, ε) in f32.

use crate::gpu::graph::{grid_1d, Graph, TensorId};
use crate::gpu::kernel::Kernel;

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub len: u32,
    pub _pad: [u32; 3],
}
const _: () = assert!(std::mem::size_of::<Params>() == 16);

fn record(g: &mut Graph, kernel: Kernel, x: TensorId, out: TensorId) {
    assert_eq!(g.shape(x), g.shape(out), "{kernel:?}: shapes differ");
    let len = g.len(x);
    g.record(kernel, &Params { len: len as u32, _pad: [0; 3] }, &[("x", x), ("out", out)], grid_1d(len, 64), 0);
}

/// Records out (network precision) = x (f32), rounded to nearest.
pub fn cast_in(g: &mut Graph, x: TensorId, out: TensorId) {
    record(g, Kernel::CastIn, x, out);
}

/// Records out (f32) = x (network precision), exactly.
pub fn cast_out(g: &mut Graph, x: TensorId, out: TensorId) {
    record(g, Kernel::CastOut, x, out);
}

/// What an f16 round trip does to a value: the nearest f16 (ties to even), back in f32.
pub fn reference(x: &[f32]) -> Vec<f32> {
    x.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect()
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::gpu::kernel::Precision;
    use crate::gpu::kernels::testing::*;

    /// x → f16 → f32 through both kernels equals the host's rounding bit for bit (a wrong rounding mode, a
    /// lost element or an unwritten one at an odd length all show), over a grid folded into y.
    #[test]
    fn a_round_trip_through_f16_rounds_to_nearest() {
        pollster::block_on(ctx().enable(Precision::F16)).expect("lavapipe has shader-f16");
        // Values spanning f16's range: small ones (subnormal in f16), large ones, and ties.
        let len = 64 * 65_536 + 3;
        let xv: Vec<f32> = values(len, 3).iter().enumerate().map(|(i, v)| v * [1e-6, 1.0, 3e4, 1.0 + 1.0 / 2048.0][i % 4]).collect();
        let mut g = Graph::new();
        let x = g.kept("x", &[len]);
        let half = g.activation_as("x16", &[len], Precision::F16);
        let back = g.kept("back", &[len]);
        cast_in(&mut g, x, half);
        cast_out(&mut g, half, back);
        let plan = crate::gpu::plan::Plan::compile(ctx(), &g).unwrap();
        plan.tensor(x).write(ctx(), &xv);
        plan.run(ctx());
        assert_eq!(read(plan.tensor(back)), reference(&xv));
    }
}
