//! `shaders/attention.wgsl`: softmax(QKᵀ·scale)·V per head, in three dispatches.

use crate::gpu::graph::{Graph, TensorId};
use crate::gpu::kernel::{Kernel, Precision, WINDOW_ALIGN, WINDOW_BYTES};

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub n: u32,
    pub c: u32,
    pub l: u32,
    pub heads: u32,
    pub dh: u32,
    pub scale: f32,
    /// The windowed products' (image, head): n * heads + h, one per dispatch.
    pub nh: u32,
    /// Where that head's K or V block starts inside its window, in elements.
    pub win: u32,
}
const _: () = assert!(std::mem::size_of::<Params>() == 32);

/// q, k, v, out: [N, C, H, W] (L = H·W tokens).
#[derive(Clone, Copy, Debug)]
pub struct AttentionIo {
    pub q: TensorId,
    pub k: TensorId,
    pub v: TensorId,
    pub out: TensorId,
}

/// Widest head the fused kernel takes (`DMAX` in attention.wgsl: its tiles fill 16 KiB of workgroup memory).
pub const FUSED_MAX_HEAD: usize = 64;

/// How softmax(QKᵀ/√dh)·V is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttentionImpl {
    /// Scores, softmax and the weighted sum as three ops through an L×L scores activation; any head width.
    ThreePass,
    /// One op, no scores in memory; heads up to [`FUSED_MAX_HEAD`] wide.
    Fused,
    /// As `ThreePass`, the two products one dispatch per (image, head) reading K or V through a uniform
    /// window bound in place (for lavapipe, whose storage loads loop over the lanes): f32 only, where L is a
    /// multiple of 4 and a head's block fits a window; elsewhere three passes.
    Windowed,
}

/// Elements of one window (f32).
const WINDOW_ELEMS: usize = (WINDOW_BYTES / 4) as usize;
/// Elements a window's start is aligned to (f32).
const ALIGN_ELEMS: usize = (WINDOW_ALIGN / 4) as usize;

/// Whether the windowed products take this shape: a (image, head) block of dh x L f32 values, plus up to
/// one alignment's worth before it, in one window, and four queries to a vec4.
pub fn windowed_fits(l: usize, dh: usize) -> bool {
    l % 4 == 0 && dh * l + ALIGN_ELEMS - 1 <= WINDOW_ELEMS
}

/// Records softmax(QKᵀ/√dh)·V per head, with dh = C / heads. `Fused` falls back to three passes for heads
/// wider than [`FUSED_MAX_HEAD`].
pub fn attention(g: &mut Graph, io: AttentionIo, heads: usize, how: AttentionImpl) {
    let shape = g.shape(io.q).to_vec();
    let (n, c) = (shape[0], shape[1]);
    let l: usize = shape[2..].iter().product();
    let dh = c / heads;
    assert_eq!(c % heads, 0);
    let p = Params { n: n as u32, c: c as u32, l: l as u32, heads: heads as u32, dh: dh as u32, scale: 1.0 / (dh as f32).sqrt(), nh: 0, win: 0 };
    let nh = (n * heads) as u32;
    let product_flops = 2 * (n * heads * l * l * dh) as u64;
    if how == AttentionImpl::Fused && dh <= FUSED_MAX_HEAD {
        let args = [("q", io.q), ("k", io.k), ("v", io.v), ("out", io.out)];
        g.record(Kernel::AttnFused, &p, &args, [l.div_ceil(16) as u32, nh, 1], 2 * product_flops);
        return;
    }
    // f32 whatever the network's precision (attention.wgsl says why).
    let scores = g.activation("attention scores", &[n, heads, l, l]);
    let windowed = how == AttentionImpl::Windowed && g.dtype(io.q) == Precision::F32 && windowed_fits(l, dh);
    let per_head = product_flops / nh as u64;
    // Each (image, head)'s block of k or v: its window from the aligned start before it.
    let window = |nh: usize| {
        let start = nh / heads * c * l + nh % heads * dh * l;
        let from = start - start % ALIGN_ELEMS;
        (Params { nh: nh as u32, win: (start - from) as u32, ..p }, from..from + (start - from) + dh * l)
    };
    // Both forms of each product take the same grid; the windowed one has one (image, head) per dispatch.
    let scores_groups = |z: u32| [l.div_ceil(4).div_ceil(64) as u32, l.div_ceil(8) as u32, z];
    let apply_groups = |z: u32| [l.div_ceil(4).div_ceil(64) as u32, dh.div_ceil(8) as u32, z];
    if windowed {
        for i in 0..nh as usize {
            let (p, range) = window(i);
            g.record_windowed(Kernel::AttnScoresWindow, &p, &[("q", io.q), ("scores", scores)], &[("k", io.k, range)], scores_groups(1), per_head);
        }
    } else {
        g.record(Kernel::AttnScores, &p, &[("q", io.q), ("k", io.k), ("scores", scores)], scores_groups(nh), product_flops);
    }
    g.record(Kernel::AttnSoftmax, &p, &[("scores", scores)], [(nh as usize * l).div_ceil(64) as u32, 1, 1], 0);
    if windowed {
        for i in 0..nh as usize {
            let (p, range) = window(i);
            g.record_windowed(Kernel::AttnApplyWindow, &p, &[("probs", scores), ("out", io.out)], &[("v", io.v, range)], apply_groups(1), per_head);
        }
    } else {
        g.record(Kernel::AttnApply, &p, &[("probs", scores), ("v", io.v), ("out", io.out)], apply_groups(nh), product_flops);
    }
}

/// Reference: per image and head, softmax over keys in f64.
pub fn reference(q: &[f32], k: &[f32], v: &[f32], n: usize, c: usize, l: usize, heads: usize) -> Vec<f32> {
    let dh = c / heads;
    let scale = 1.0 / (dh as f64).sqrt();
    let mut out = vec![0.0; n * c * l];
    for b in 0..n {
        for h in 0..heads {
            let at = |t: &[f32], d: usize, i: usize| t[(b * c + h * dh + d) * l + i] as f64;
            for i in 0..l {
                let s: Vec<f64> = (0..l).map(|j| (0..dh).map(|d| at(q, d, i) * at(k, d, j)).sum::<f64>() * scale).collect();
                let m = s.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for d in 0..dh {
                    out[(b * c + h * dh + d) * l + i] = ((0..l).map(|j| e[j] * at(v, d, j)).sum::<f64>() / z) as f32;
                }
            }
        }
    }
    out
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::gpu::kernels::testing::*;

    #[test]
    fn one_and_many_heads_odd_token_counts() {
        // Token counts around the 4x4 blocks and the fused kernel's tiles of 16 (49, 64, 15, 1, 6, 196, 17);
        // head dims 48, 16, 8, 3, 5, 64 (the fused kernel's widest) and 80 (three passes only). The windowed
        // products take L = 64, 196, 4 and 20; the last two put heads off the window alignment (starts 16,
        // 32, 48, ... and 200, 400, 600 values in), and every last head's window runs past its tensor.
        let shapes = [(2usize, 48usize, 7usize, 7usize, 1usize), (1, 64, 8, 8, 4), (3, 16, 5, 3, 2), (2, 6, 1, 1, 2), (1, 10, 2, 3, 2), (2, 64, 14, 14, 1), (1, 80, 17, 1, 1), (3, 12, 2, 2, 3), (2, 20, 4, 5, 2)];
        for &(n, c, h, w, heads) in &shapes {
            let l = h * w;
            let scale_up = |s: u64| -> Vec<f32> { as_stored(&values(n * c * l, s).iter().map(|x| 3.0 * x).collect::<Vec<_>>()) };
            let (qv, kv, vv) = (scale_up(21), scale_up(22), as_stored(&values(n * c * l, 23)));
            let want = reference(&qv, &kv, &vv, n, c, l, heads);
            for how in [AttentionImpl::ThreePass, AttentionImpl::Fused, AttentionImpl::Windowed] {
                let mut g = Graph::new();
                // q, k and v as the U-Net has them: activations, written by an op of the pass (here a cast),
                // so that the windowed products bind k and v in place, as they do there.
                let mut activation = |label: &str, values: &[f32]| {
                    let x = upload_f32(&mut g, label, &[n, c, h, w], values);
                    let a = g.activation_as(label, &[n, c, h, w], precision());
                    crate::gpu::kernels::cast::cast_in(&mut g, x, a);
                    a
                };
                let (q, k, v) = (activation("q", &qv), activation("k", &kv), activation("v", &vv));
                let out = nan_filled(&mut g, "out", &[n, c, h, w]);
                attention(&mut g, AttentionIo { q, k, v, out }, heads, how);
                let fused = g.ops().iter().any(|op| op.kernel == Kernel::AttnFused);
                assert_eq!(fused, how == AttentionImpl::Fused && c / heads <= FUSED_MAX_HEAD, "which kernel ran");
                let windowed = g.ops().iter().filter(|op| matches!(op.kernel, Kernel::AttnScoresWindow | Kernel::AttnApplyWindow)).count();
                let f32 = g.dtype(q) == Precision::F32;
                assert_eq!(windowed, if how == AttentionImpl::Windowed && f32 && windowed_fits(l, c / heads) { 2 * n * heads } else { 0 }, "windowed dispatches");
                assert_close(&run_and_read(&g, out), &want, tol(1e-5), &format!("{how:?} attention n{n} c{c} l{l} heads{heads}"));
            }
        }
    }

    /// Both implementations with q, k, v and out in f16 (the three passes' scores too).
    #[test]
    fn in_f16_storage() {
        in_f16(one_and_many_heads_odd_token_counts);
    }
}

