//! The CPU executor's kernels: the same maths as the WGSL kernels (each module's plain-Rust `reference` is the
//! specification; `tests` below compare against them), written for speed on a CPU. Convolutions are
//! im2col + one GEMM per image through `matrixmultiply` (ndarray's matrix product: packed panels and a
//! register-blocked micro-kernel, AVX/FMA chosen at run time natively); attention is two GEMMs per head.
//!
//! Every function writes each element of its output (outputs come in as reused buffers holding anything).

use crate::gpu::kernels::group_norm::silu;
use crate::gpu::kernels::{attention, conv2d, embed, group_norm, linear, resample};

/// C[m×n] = A[m×k]·B[k×n] (+ C when `accumulate`), each matrix given by its row and column strides.
#[allow(clippy::too_many_arguments)]
fn gemm(m: usize, k: usize, n: usize, a: &[f32], (rsa, csa): (usize, usize), b: &[f32], (rsb, csb): (usize, usize), c: &mut [f32], rsc: usize, accumulate: bool) {
    if m == 0 || n == 0 {
        return;
    }
    // The largest index each matrix is read or written at, so the unsafe call below stays in bounds.
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs;
    if k > 0 {
        assert!(last(m, k, rsa, csa) < a.len() && last(k, n, rsb, csb) < b.len(), "gemm: operand too short");
    }
    assert!(last(m, n, rsc, 1) < c.len(), "gemm: output too short");
    // SAFETY: the strides and sizes above keep every access inside `a`, `b` and `c`, which do not overlap
    // (`c` is borrowed mutably).
    unsafe {
        matrixmultiply::sgemm(
            m, k, n, 1.0,
            a.as_ptr(), rsa as isize, csa as isize,
            b.as_ptr(), rsb as isize, csb as isize,
            if accumulate { 1.0 } else { 0.0 },
            c.as_mut_ptr(), rsc as isize, 1,
        );
    }
}

/// GFLOP/s of one thread on a 256x256x256 product through the same GEMM call the convolutions make: the
/// practical peak the executor's figures are read against (natively and in a browser's wasm alike).
pub fn gemm_peak_gflops() -> f64 {
    let m = 256;
    let (a, b) = (vec![0.5f32; m * m], vec![0.25f32; m * m]);
    let mut c = vec![0.0f32; m * m];
    gemm(m, m, m, &a, (m, 1), &b, (m, 1), &mut c, m, false);
    let reps = 8;
    let start = web_time::Instant::now();
    for _ in 0..reps {
        gemm(m, m, m, &a, (m, 1), &b, (m, 1), &mut c, m, false);
    }
    2.0 * (m * m * m * reps) as f64 / start.elapsed().as_secs_f64().max(1e-9) / 1e9
}

/// What a convolution adds after its bias (`Epilogue` in the registry).
pub enum ConvAdd<'a> {
    None,
    /// t [N, stride]: image n's channel o adds t[n·stride + offset + o].
    Channel { t: &'a [f32], stride: usize, offset: usize },
    Residual(&'a [f32]),
}

/// `conv2d.wgsl` for any geometry: out = conv(x, w) + bias (+ add). `col` is scratch, grown as needed.
pub fn conv2d(p: &conv2d::Params, x: &[f32], w: &[f32], bias: &[f32], add: ConvAdd, out: &mut [f32], col: &mut Vec<f32>) {
    let [n, ic, ih, iw, oc, oh, ow, kh, kw, stride, pad_y, pad_x] =
        [p.n, p.ic, p.ih, p.iw, p.oc, p.oh, p.ow, p.kh, p.kw, p.stride, p.pad_y, p.pad_x].map(|v| v as usize);
    let (k, pixels) = (ic * kh * kw, oh * ow);
    let pointwise = kh == 1 && kw == 1 && stride == 1 && pad_y == 0 && pad_x == 0 && (oh, ow) == (ih, iw);
    for b in 0..n {
        let image = &x[b * ic * ih * iw..(b + 1) * ic * ih * iw];
        let dst = &mut out[b * oc * pixels..(b + 1) * oc * pixels];
        // The GEMM's right operand [K, pixels]: the image itself for a 1x1 convolution, else its patches.
        let patches: &[f32] = if pointwise {
            image
        } else {
            col.resize(k * pixels, 0.0);
            im2col(image, [ic, ih, iw], [kh, kw], stride, [pad_y, pad_x], [oh, ow], col);
            col
        };
        gemm(oc, k, pixels, w, (k, 1), patches, (pixels, 1), dst, pixels, false);
        for (o, row) in dst.chunks_exact_mut(pixels).enumerate() {
            let shift = bias[o]
                + match add {
                    ConvAdd::Channel { t, stride, offset } => t[b * stride + offset + o],
                    _ => 0.0,
                };
            match add {
                ConvAdd::Residual(r) => {
                    let r = &r[(b * oc + o) * pixels..(b * oc + o + 1) * pixels];
                    row.iter_mut().zip(r).for_each(|(v, r)| *v += shift + r);
                }
                _ => row.iter_mut().for_each(|v| *v += shift),
            }
        }
    }
}

/// Patches of one image as a [ic·kh·kw, oh·ow] matrix, zeros where the window leaves the image (padding
/// before is `pad`; padding after follows from the output size).
fn im2col(image: &[f32], [ic, ih, iw]: [usize; 3], [kh, kw]: [usize; 2], stride: usize, [pad_y, pad_x]: [usize; 2], [oh, ow]: [usize; 2], col: &mut [f32]) {
    let pixels = oh * ow;
    for c in 0..ic {
        let plane = &image[c * ih * iw..(c + 1) * ih * iw];
        for ky in 0..kh {
            for kx in 0..kw {
                let row = &mut col[((c * kh + ky) * kw + kx) * pixels..][..pixels];
                for oy in 0..oh {
                    let dst = &mut row[oy * ow..(oy + 1) * ow];
                    let iy = (oy * stride + ky) as isize - pad_y as isize;
                    if iy < 0 || iy >= ih as isize {
                        dst.fill(0.0);
                        continue;
                    }
                    let src = &plane[iy as usize * iw..(iy as usize + 1) * iw];
                    if stride == 1 {
                        // The row of inputs under this output row is one shifted slice.
                        let shift = kx as isize - pad_x as isize;
                        for (ox, d) in dst.iter_mut().enumerate() {
                            let ix = ox as isize + shift;
                            *d = if ix >= 0 && ix < iw as isize { src[ix as usize] } else { 0.0 };
                        }
                    } else {
                        for (ox, d) in dst.iter_mut().enumerate() {
                            let ix = (ox * stride + kx) as isize - pad_x as isize;
                            *d = if ix >= 0 && ix < iw as isize { src[ix as usize] } else { 0.0 };
                        }
                    }
                }
            }
        }
    }
}

/// `group_norm.wgsl`: statistics per (image, group) accumulated in f64, then the affine map and SiLU.
pub fn group_norm(p: &group_norm::Params, x: &[f32], gamma: &[f32], beta: &[f32], act: bool, out: &mut [f32]) {
    let [n, c, hw, groups] = [p.n, p.c, p.hw, p.groups].map(|v| v as usize);
    let cpg = c / groups;
    for b in 0..n {
        for g in 0..groups {
            let base = (b * c + g * cpg) * hw;
            let vals = &x[base..base + cpg * hw];
            let (mut sum, mut sq) = (0.0f64, 0.0f64);
            for &v in vals {
                sum += v as f64;
                sq += (v as f64) * (v as f64);
            }
            let count = vals.len() as f64;
            let mean = sum / count;
            let var = (sq / count - mean * mean).max(0.0);
            let inv = (1.0 / (var + p.eps as f64).sqrt()) as f32;
            let mean = mean as f32;
            for ch in 0..cpg {
                let (scale, shift) = (gamma[g * cpg + ch] * inv, beta[g * cpg + ch]);
                let range = base + ch * hw..base + (ch + 1) * hw;
                for (o, &v) in out[range.clone()].iter_mut().zip(&x[range]) {
                    let y = (v - mean) * scale + shift;
                    *o = if act { silu(y) } else { y };
                }
            }
        }
    }
}

/// `linear.wgsl`: out [N, OUT] = silu?(x) [N, IN] · Wᵀ + b, then silu?.
pub fn linear(p: &linear::Params, x: &[f32], w: &[f32], b: &[f32], silu_in: bool, silu_out: bool, out: &mut [f32]) {
    let [n, inp, outp] = [p.n, p.inp, p.outp].map(|v| v as usize);
    let activated: Vec<f32>;
    let x = if silu_in {
        activated = x[..n * inp].iter().map(|&v| silu(v)).collect();
        &activated
    } else {
        x
    };
    for row in out[..n * outp].chunks_exact_mut(outp) {
        row.copy_from_slice(&b[..outp]);
    }
    gemm(n, inp, outp, x, (inp, 1), w, (1, inp), out, outp, true);
    if silu_out {
        out[..n * outp].iter_mut().for_each(|v| *v = silu(*v));
    }
}

/// `embed.wgsl`: the sinusoidal timestep embedding (a few hundred values: its reference is fast enough).
pub fn time_embedding(p: &embed::Params, t: &[f32], out: &mut [f32]) {
    let values = embed::reference(&t[..p.n as usize], 2 * p.half as usize, p.flip != 0, p.shift as f64);
    out[..values.len()].copy_from_slice(&values);
}

#[allow(clippy::too_many_arguments)]
/// softmax(QᵀK·scale)·Vᵀ for one image and head: q, k, v [dh, L] (one token per column), out [dh, L];
/// `scores` is [L, L] scratch.
fn attention_head(dh: usize, l: usize, scale: f32, q: &[f32], k: &[f32], v: &[f32], out: &mut [f32], scores: &mut [f32]) {
    gemm(l, dh, l, q, (1, l), k, (l, 1), scores, l, false);
    for row in scores.chunks_exact_mut(l) {
        softmax_row(row, scale);
    }
    // out[d, i] = Σ_j v[d, j] · P[i, j].
    gemm(dh, l, l, v, (l, 1), scores, (1, l), out, l, false);
}

/// Scales a row of raw scores and turns it into probabilities (max subtracted first, as the shader does).
fn softmax_row(row: &mut [f32], scale: f32) {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v * scale));
    let mut sum = 0.0f32;
    for v in row.iter_mut() {
        *v = (*v * scale - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|v| *v *= inv);
}

/// The head's slice of an [N, C, L] tensor.
fn head(p: &attention::Params, b: usize, h: usize) -> std::ops::Range<usize> {
    let (c, l, dh) = (p.c as usize, p.l as usize, p.dh as usize);
    let start = (b * c + h * dh) * l;
    start..start + dh * l
}

/// `attention.wgsl`'s fused kernel: the whole attention, one image and head at a time.
pub fn attention_fused(p: &attention::Params, q: &[f32], k: &[f32], v: &[f32], out: &mut [f32]) {
    let (l, dh) = (p.l as usize, p.dh as usize);
    let mut scores = vec![0.0; l * l];
    for b in 0..p.n as usize {
        for h in 0..p.heads as usize {
            let r = head(p, b, h);
            attention_head(dh, l, p.scale, &q[r.clone()], &k[r.clone()], &v[r.clone()], &mut out[r], &mut scores);
        }
    }
}

/// The three-pass form's first op: scores [N, heads, L, L] = QᵀK·scale.
pub fn attention_scores(p: &attention::Params, q: &[f32], k: &[f32], scores: &mut [f32]) {
    let (l, dh) = (p.l as usize, p.dh as usize);
    for b in 0..p.n as usize {
        for h in 0..p.heads as usize {
            let r = head(p, b, h);
            let s = &mut scores[(b * p.heads as usize + h) * l * l..][..l * l];
            gemm(l, dh, l, &q[r.clone()], (1, l), &k[r], (l, 1), s, l, false);
            s.iter_mut().for_each(|v| *v *= p.scale);
        }
    }
}

/// The second op: every row of scores turned into probabilities, in place.
pub fn attention_softmax(p: &attention::Params, scores: &mut [f32]) {
    let (rows, l) = ((p.n * p.heads * p.l) as usize, p.l as usize);
    scores[..rows * l].chunks_exact_mut(l).for_each(|row| softmax_row(row, 1.0));
}

/// The third op: out = probabilities · V, per head.
pub fn attention_apply(p: &attention::Params, probs: &[f32], v: &[f32], out: &mut [f32]) {
    let (l, dh) = (p.l as usize, p.dh as usize);
    for b in 0..p.n as usize {
        for h in 0..p.heads as usize {
            let r = head(p, b, h);
            let s = &probs[(b * p.heads as usize + h) * l * l..][..l * l];
            gemm(dh, l, l, &v[r.clone()], (l, 1), s, (1, l), &mut out[r], l, false);
        }
    }
}

/// `resample.wgsl`'s nearest-neighbour 2x upsampling of [N·C, H, W].
pub fn upsample_nearest2x(p: &resample::Params, x: &[f32], out: &mut [f32]) {
    let (planes, h, w) = ((p.n * p.ca) as usize, p.h as usize, p.w as usize);
    for plane in 0..planes {
        for y in 0..2 * h {
            let src = &x[(plane * h + y / 2) * w..][..w];
            let dst = &mut out[(plane * 2 * h + y) * 2 * w..][..2 * w];
            for (xx, d) in dst.iter_mut().enumerate() {
                *d = src[xx / 2];
            }
        }
    }
}

/// `resample.wgsl`'s channel concatenation: per image, a's channels then b's.
pub fn concat_channels(p: &resample::Params, a: &[f32], b: &[f32], out: &mut [f32]) {
    let hw = (p.h * p.w) as usize;
    let (la, lb) = (p.ca as usize * hw, p.cb as usize * hw);
    for i in 0..p.n as usize {
        out[i * (la + lb)..][..la].copy_from_slice(&a[i * la..][..la]);
        out[i * (la + lb) + la..][..lb].copy_from_slice(&b[i * lb..][..lb]);
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::gpu::kernels::conv2d::ConvSpec;
    use crate::gpu::kernels::testing::values;

    fn close(got: &[f32], want: &[f32], tol: f32, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= tol * (1.0 + w.abs()), "{what}: {g} vs {w} at {i}");
        }
    }

    #[test]
    fn convolutions_of_every_geometry_match_the_reference() {
        // 3x3 same, 1x1, strided 3x3 with diffusers' two paddings, and an odd size; every epilogue. The
        // output starts as NaN, so a value never written fails.
        let geometries = [(ConvSpec::SAME3, 7, 5), (ConvSpec::POINT, 6, 6), (ConvSpec { k: 3, stride: 2, pad_before: 1, pad_after: 1 }, 8, 6), (ConvSpec { k: 3, stride: 2, pad_before: 0, pad_after: 1 }, 7, 7)];
        for (spec, ih, iw) in geometries {
            let (n, ic, oc) = (2, 5, 6);
            let (oh, ow) = (spec.out_size(ih), spec.out_size(iw));
            let x = values(n * ic * ih * iw, 1);
            let w = values(oc * ic * spec.k * spec.k, 2);
            let bias = values(oc, 3);
            let t = values(n * 10, 4);
            let r = values(n * oc * oh * ow, 5);
            let p = conv2d::Params {
                n: n as u32, ic: ic as u32, ih: ih as u32, iw: iw as u32, oc: oc as u32, oh: oh as u32, ow: ow as u32,
                kh: spec.k as u32, kw: spec.k as u32, stride: spec.stride as u32, pad_y: spec.pad_before as u32,
                pad_x: spec.pad_before as u32, add_stride: 10, add_offset: 3, ic_a: 0, oc_first: 0,
            };
            for which in 0..3 {
                let (add, want_add, want_res) = match which {
                    0 => (ConvAdd::None, None, None),
                    1 => (ConvAdd::Channel { t: &t, stride: 10, offset: 3 }, Some((0..n).flat_map(|b| t[b * 10 + 3..b * 10 + 3 + oc].to_vec()).collect::<Vec<_>>()), None),
                    _ => (ConvAdd::Residual(&r), None, Some(&r[..])),
                };
                let want = conv2d::reference(&x, [n, ic, ih, iw], &w, oc, &bias, spec, want_add.as_deref(), want_res);
                let mut out = vec![f32::NAN; want.len()];
                conv2d(&p, &x, &w, &bias, add, &mut out, &mut Vec::new());
                close(&out, &want, 1e-5, &format!("{spec:?} epilogue {which}"));
            }
        }
    }

    #[test]
    fn norm_linear_attention_and_resampling_match_their_references() {
        let (n, c, hw, groups) = (2, 8, 12, 4);
        let x: Vec<f32> = values(n * c * hw, 6).iter().map(|v| 3.0 * v + 0.5).collect();
        let (gamma, beta) = (values(c, 7), values(c, 8));
        for act in [false, true] {
            let mut out = vec![f32::NAN; x.len()];
            group_norm(&group_norm::Params { n: n as u32, c: c as u32, hw: hw as u32, groups: groups as u32, eps: 1e-6, ca: 0, _pad: [0; 2] }, &x, &gamma, &beta, act, &mut out);
            close(&out, &group_norm::reference(&x, n, c, hw, groups, &gamma, &beta, 1e-6, act), 1e-5, "group norm");
        }

        let (inp, outp) = (10, 7);
        let (xl, w, b) = (values(n * inp, 9), values(outp * inp, 10), values(outp, 11));
        for (si, so) in [(false, false), (true, false), (false, true), (true, true)] {
            let mut out = vec![f32::NAN; n * outp];
            linear(&linear::Params { n: n as u32, inp: inp as u32, outp: outp as u32, _pad: 0 }, &xl, &w, &b, si, so, &mut out);
            close(&out, &linear::reference(&xl, n, &w, &b, outp, si, so), 1e-5, "linear");
        }

        for (c, l, heads) in [(8, 9, 2), (6, 1, 1), (16, 49, 1)] {
            let q: Vec<f32> = values(n * c * l, 12).iter().map(|v| 3.0 * v).collect();
            let (k, v) = (values(n * c * l, 13), values(n * c * l, 14));
            let dh = c / heads;
            let p = attention::Params { n: n as u32, c: c as u32, l: l as u32, heads: heads as u32, dh: dh as u32, scale: 1.0 / (dh as f32).sqrt(), nh: 0, win: 0 };
            let want = attention::reference(&q, &k, &v, n, c, l, heads);
            let mut fused = vec![f32::NAN; want.len()];
            attention_fused(&p, &q, &k, &v, &mut fused);
            close(&fused, &want, 1e-5, "fused attention");
            let mut scores = vec![f32::NAN; n * heads * l * l];
            let mut three = vec![f32::NAN; want.len()];
            attention_scores(&p, &q, &k, &mut scores);
            attention_softmax(&p, &mut scores);
            attention_apply(&p, &scores, &v, &mut three);
            close(&three, &want, 1e-5, "three-pass attention");
        }

        let (h, w) = (3, 5);
        let a = values(n * 2 * h * w, 15);
        let bb = values(n * 3 * h * w, 16);
        let rp = resample::Params { n: n as u32, ca: 2, cb: 3, h: h as u32, w: w as u32, _pad: [0; 3] };
        let mut up = vec![f32::NAN; 4 * a.len()];
        upsample_nearest2x(&rp, &a, &mut up);
        close(&up, &resample::upsample_reference(&a, n * 2, h, w), 0.0, "upsample");
        let mut cat = vec![f32::NAN; a.len() + bb.len()];
        concat_channels(&rp, &a, &bb, &mut cat);
        close(&cat, &resample::concat_reference(&a, &bb, n), 0.0, "concat");
    }
}
