//! `shaders/linear.wgsl`: y = W·x + b with optional SiLU on the input and on the output.

use crate::gpu::graph::{Graph, TensorId};
use crate::gpu::kernel::Kernel;
use crate::gpu::kernels::group_norm::silu;

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub n: u32,
    pub inp: u32,
    pub outp: u32,
    pub _pad: u32,
}
const _: () = assert!(std::mem::size_of::<Params>() == 16);

/// x [N, IN], w [OUT, IN], b [OUT] → out [N, OUT].
#[derive(Clone, Copy, Debug)]
pub struct LinearIo {
    pub x: TensorId,
    pub w: TensorId,
    pub b: TensorId,
    pub out: TensorId,
}

/// Records out = W·silu?(x) + b, then silu?.
pub fn linear(g: &mut Graph, io: LinearIo, silu_in: bool, silu_out: bool) {
    let [n, inp] = g.shape(io.x)[..] else { panic!("linear: x must be [N, IN], got {:?}", g.shape(io.x)) };
    let outp = g.shape(io.w)[0];
    assert_eq!(g.shape(io.w), [outp, inp], "linear weight");
    assert_eq!(g.shape(io.out), [n, outp], "linear output");
    let params = Params { n: n as u32, inp: inp as u32, outp: outp as u32, _pad: 0 };
    let args = [("x", io.x), ("w", io.w), ("b", io.b), ("out", io.out)];
    g.record(Kernel::Linear { silu_in, silu_out }, &params, &args, [outp.div_ceil(64) as u32, n as u32, 1], 2 * (n * inp * outp) as u64);
}

pub fn reference(x: &[f32], n: usize, w: &[f32], b: &[f32], outp: usize, silu_in: bool, silu_out: bool) -> Vec<f32> {
    let inp = x.len() / n;
    let mut out = vec![0.0; n * outp];
    for r in 0..n {
        for o in 0..outp {
            let mut acc = b[o];
            for i in 0..inp {
                let v = x[r * inp + i];
                acc += if silu_in { silu(v) } else { v } * w[o * inp + i];
            }
            out[r * outp + o] = if silu_out { silu(acc) } else { acc };
        }
    }
    out
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::gpu::kernels::testing::*;

    #[test]
    fn matches_reference_with_each_activation() {
        for &(n, inp, outp, si, so) in &[(3usize, 32usize, 128usize, false, true), (2, 128, 70, true, false), (1, 5, 3, false, false), (2, 7, 9, true, true)] {
            let (xv, wv, bv) = (as_stored(&values(n * inp, 11)), as_stored(&values(outp * inp, 12)), as_stored(&values(outp, 13)));
            let mut g = Graph::new();
            let x = upload(&mut g, "x", &[n, inp], &xv);
            let w = upload(&mut g, "w", &[outp, inp], &wv);
            let b = upload(&mut g, "b", &[outp], &bv);
            let out = nan_filled(&mut g, "out", &[n, outp]);
            linear(&mut g, LinearIo { x, w, b, out }, si, so);
            assert_close(&run_and_read(&g, out), &reference(&xv, n, &wv, &bv, outp, si, so), tol(1e-5), "linear");
        }
    }

    #[test]
    fn in_f16_storage() {
        in_f16(matches_reference_with_each_activation);
    }
}
