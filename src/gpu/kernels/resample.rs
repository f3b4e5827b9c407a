//! `shaders/resample.wgsl`: nearest 2x upsampling and channel concatenation.

use crate::gpu::graph::{grid_1d, Graph, TensorId};
use crate::gpu::kernel::Kernel;

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub n: u32,
    pub ca: u32,
    pub cb: u32,
    pub h: u32,
    pub w: u32,
    pub _pad: [u32; 3],
}
const _: () = assert!(std::mem::size_of::<Params>() == 32);

fn params(shape: &[usize], cb: usize) -> Params {
    let [n, ca, h, w] = shape[..] else { panic!("expected NCHW, got {shape:?}") };
    Params { n: n as u32, ca: ca as u32, cb: cb as u32, h: h as u32, w: w as u32, _pad: [0; 3] }
}

/// Records x [N, C, H, W] → out [N, C, 2H, 2W].
pub fn upsample_nearest2x(g: &mut Graph, x: TensorId, out: TensorId) {
    let [n, c, h, w] = g.shape(x)[..] else { panic!("upsample: x must be NCHW") };
    assert_eq!(g.shape(out), [n, c, 2 * h, 2 * w]);
    let groups = grid_1d(g.len(out), 64);
    g.record(Kernel::Upsample, &params(&[n, c, h, w], 0), &[("x", x), ("out", out)], groups, 0);
}

/// Records a [N, CA, H, W], b [N, CB, H, W] → out [N, CA+CB, H, W].
pub fn concat_channels(g: &mut Graph, a: TensorId, b: TensorId, out: TensorId) {
    let [n, ca, h, w] = g.shape(a)[..] else { panic!("concat: a must be NCHW") };
    let cb = g.shape(b)[1];
    assert_eq!(g.shape(b), [n, cb, h, w], "concat: b must match a's N, H, W");
    assert_eq!(g.shape(out), [n, ca + cb, h, w]);
    let groups = grid_1d(g.len(out), 64);
    g.record(Kernel::Concat, &params(&[n, ca, h, w], cb), &[("a", a), ("b", b), ("out", out)], groups, 0);
}

pub fn upsample_reference(x: &[f32], nc: usize, h: usize, w: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(4 * x.len());
    for p in 0..nc {
        for y in 0..2 * h {
            for xx in 0..2 * w {
                out.push(x[(p * h + y / 2) * w + xx / 2]);
            }
        }
    }
    out
}

pub fn concat_reference(a: &[f32], b: &[f32], n: usize) -> Vec<f32> {
    let (la, lb) = (a.len() / n, b.len() / n);
    (0..n).flat_map(|i| a[i * la..(i + 1) * la].iter().chain(&b[i * lb..(i + 1) * lb]).copied()).collect()
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::gpu::kernels::testing::*;

    #[test]
    fn upsample_odd_sizes() {
        for &(n, ch, h, w) in &[(2usize, 3usize, 7usize, 7usize), (1, 48, 14, 14), (3, 5, 1, 2)] {
            let xv = as_stored(&values(n * ch * h * w, 31));
            let mut g = Graph::new();
            let x = upload(&mut g, "x", &[n, ch, h, w], &xv);
            let out = nan_filled(&mut g, "out", &[n, ch, 2 * h, 2 * w]);
            upsample_nearest2x(&mut g, x, out);
            assert_eq!(run_and_read(&g, out), upsample_reference(&xv, n * ch, h, w), "upsample {n}x{ch}x{h}x{w}");
        }
    }

    #[test]
    fn concat_odd_channel_counts() {
        for &(n, ca, cb, h, w) in &[(2usize, 48usize, 24usize, 7usize, 7usize), (3, 1, 5, 28, 28)] {
            let (av, bv) = (as_stored(&values(n * ca * h * w, 32)), as_stored(&values(n * cb * h * w, 33)));
            let mut g = Graph::new();
            let a = upload(&mut g, "a", &[n, ca, h, w], &av);
            let b = upload(&mut g, "b", &[n, cb, h, w], &bv);
            let out = nan_filled(&mut g, "out", &[n, ca + cb, h, w]);
            concat_channels(&mut g, a, b, out);
            assert_eq!(run_and_read(&g, out), concat_reference(&av, &bv, n));
        }
    }

    #[test]
    fn large_grids_fold_into_y() {
        // 64 * 65,535 values would overflow one dimension of workgroups.
        let (n, ch, h, w) = (1usize, 2usize, 1024usize, 1100usize);
        let xv = values(n * ch * h * w, 34);
        let mut g = Graph::new();
        let x = upload(&mut g, "x", &[n, ch, h, w], &xv);
        let out = g.kept("out", &[n, ch, 2 * h, 2 * w]);
        assert!(grid_1d(g.len(out), 64)[1] > 1);
        upsample_nearest2x(&mut g, x, out);
        assert_eq!(run_and_read(&g, out), upsample_reference(&xv, n * ch, h, w));
    }

    /// f16 values are moved bit for bit.
    #[test]
    fn in_f16_storage() {
        in_f16(|| {
            upsample_odd_sizes();
            concat_odd_channel_counts();
        });
    }
}
