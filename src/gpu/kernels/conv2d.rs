//! `shaders/conv2d.wgsl`: convolution with a fused epilogue (bias, plus a per-channel add or a residual); a
//! general algorithm and two register-blocked ones for the common shapes.

use crate::gpu::graph::{Graph, TensorId};
use crate::gpu::kernel::{ConvAlgo, Epilogue, Kernel, KernelFamily, Precision, WINDOW_BYTES};

/// Uniform of `conv2d.wgsl` (48 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub n: u32,
    pub ic: u32,
    pub ih: u32,
    pub iw: u32,
    pub oc: u32,
    pub oh: u32,
    pub ow: u32,
    pub kh: u32,
    pub kw: u32,
    pub stride: u32,
    pub pad_y: u32,
    pub pad_x: u32,
    /// Channel add: values of image n start at `n·add_stride + add_offset` (one projection for every ResNet).
    pub add_stride: u32,
    pub add_offset: u32,
    /// `ConvPair`: input channels in the first input (0 otherwise).
    pub ic_a: u32,
    /// The first output channel this dispatch computes: a windowed kernel's chunk (0 otherwise).
    pub oc_first: u32,
}
const _: () = assert!(std::mem::size_of::<Params>() == 64);

impl Params {
    /// The params of a convolution of x [N, IC, IH, IW] into OC channels with `spec`; no channel add, one input.
    fn new([n, ic, ih, iw]: [usize; 4], oc: usize, spec: ConvSpec) -> Self {
        Self {
            n: n as u32,
            ic: ic as u32,
            ih: ih as u32,
            iw: iw as u32,
            oc: oc as u32,
            oh: spec.out_size(ih) as u32,
            ow: spec.out_size(iw) as u32,
            kh: spec.k as u32,
            kw: spec.k as u32,
            stride: spec.stride as u32,
            pad_y: spec.pad_before as u32,
            pad_x: spec.pad_before as u32,
            add_stride: 0,
            add_offset: 0,
            ic_a: 0,
            oc_first: 0,
        }
    }
}

/// Workgroups of `algo` for an output [N, OC, OH, OW] (each entry point's grid, as conv2d.wgsl states it).
fn grid(algo: ConvAlgo, n: usize, oc: usize, oh: usize, ow: usize) -> [u32; 3] {
    match algo {
        ConvAlgo::Blocked3x3 | ConvAlgo::Window3x3 | ConvAlgo::Window3x3x4 | ConvAlgo::Window3x3x2 | ConvAlgo::Blocked3x3s2 | ConvAlgo::Window3x3s2 => [(oh * ow.div_ceil(4)).div_ceil(64) as u32, oc.div_ceil(8) as u32, n as u32],
        ConvAlgo::Blocked1x1 | ConvAlgo::Window1x1 | ConvAlgo::Window1x1x4 => [(oh * ow).div_ceil(4).div_ceil(64) as u32, oc.div_ceil(8) as u32, n as u32],
        ConvAlgo::General | ConvAlgo::WindowGeneral => [(oh * ow).div_ceil(64) as u32, oc.div_ceil(4) as u32, n as u32],
        ConvAlgo::Tiled => [(n * oh * ow).div_ceil(32) as u32, oc.div_ceil(32) as u32, 1],
    }
}

/// Geometry of one convolution: kernel `k`×`k`, `stride`, zeros `pad_before` above/left and `pad_after`
/// below/right (diffusers' `downsample_padding = 0` is `pad_before = 0, pad_after = 1`).
#[derive(Clone, Copy, Debug)]
pub struct ConvSpec {
    pub k: usize,
    pub stride: usize,
    pub pad_before: usize,
    pub pad_after: usize,
}

impl ConvSpec {
    pub const SAME3: ConvSpec = ConvSpec { k: 3, stride: 1, pad_before: 1, pad_after: 1 };
    pub const POINT: ConvSpec = ConvSpec { k: 1, stride: 1, pad_before: 0, pad_after: 0 };

    pub fn out_size(&self, size: usize) -> usize {
        (size + self.pad_before + self.pad_after - self.k) / self.stride + 1
    }

    /// Whether `algo` implements this geometry.
    pub fn supported_by(&self, algo: ConvAlgo) -> bool {
        match algo {
            ConvAlgo::General | ConvAlgo::Tiled | ConvAlgo::WindowGeneral => true,
            ConvAlgo::Blocked3x3 | ConvAlgo::Window3x3 | ConvAlgo::Window3x3x4 | ConvAlgo::Window3x3x2 => self.k == 3 && self.stride == 1 && self.pad_before == 1 && self.pad_after == 1,
            ConvAlgo::Blocked1x1 | ConvAlgo::Window1x1 | ConvAlgo::Window1x1x4 => self.k == 1 && self.stride == 1 && self.pad_before == 0 && self.pad_after == 0,
            ConvAlgo::Blocked3x3s2 | ConvAlgo::Window3x3s2 => self.k == 3 && self.stride == 2,
        }
    }

    /// Output channels per dispatch of a windowed kernel with `ic` input channels: as many blocks of 8 (the
    /// blocked kernels' block; two of the general kernel's 4) as have their f32 weights fit one window (0
    /// where not even one block does: from 228 input channels for a 3x3, so the CIFAR-10 model's
    /// 256-channel convolutions stay blocked).
    pub fn window_channels(&self, ic: usize) -> usize {
        channels_per_window(ic * self.k * self.k)
    }

    /// Whether `algo` runs this convolution of `ic` input channels: its geometry, and for a windowed one a
    /// window that holds a block's weights.
    pub fn supports(&self, algo: ConvAlgo, ic: usize) -> bool {
        self.supported_by(algo) && (!algo.is_windowed() || self.window_channels(ic) > 0)
    }

    /// The algorithm `family` uses for this geometry, `ic` input channels and `precision`.
    pub fn algo(&self, family: KernelFamily, ic: usize, precision: Precision) -> ConvAlgo {
        use ConvAlgo::*;
        let candidates: &[ConvAlgo] = match family {
            KernelFamily::Windowed if precision == Precision::F32 => &[Window3x3, Window1x1, Window3x3s2, Blocked3x3, Blocked1x1, Blocked3x3s2, WindowGeneral],
            KernelFamily::Blocked | KernelFamily::Windowed => &[Blocked3x3, Blocked1x1, Blocked3x3s2],
            KernelFamily::Tiled | KernelFamily::Fused => return Tiled,
        };
        candidates.iter().copied().find(|&a| self.supports(a, ic)).unwrap_or(General)
    }
}

/// What is added after the bias.
#[derive(Clone, Copy, Debug)]
pub enum Extra {
    None,
    /// Columns offset .. offset + OC of t [N, W]: one value per image and output channel.
    ChannelAdd { t: TensorId, offset: usize },
    /// The output's shape.
    Residual(TensorId),
}

/// The tensors of one convolution: x [N, IC, H, W], w [OC, IC, k, k], bias [OC], out [N, OC, OH, OW].
#[derive(Clone, Copy, Debug)]
pub struct ConvIo {
    pub x: TensorId,
    pub w: TensorId,
    pub bias: TensorId,
    pub extra: Extra,
    pub out: TensorId,
}

/// Records out = conv(x, w) + bias [+ extra] with `algo` (which must support `spec`); a windowed one as one
/// dispatch per chunk of [`ConvSpec::window_channels`] output channels.
pub fn conv2d(g: &mut Graph, io: ConvIo, spec: ConvSpec, algo: ConvAlgo) {
    let [n, ic, ih, iw] = g.shape(io.x)[..] else { panic!("conv2d: x must be NCHW, got {:?}", g.shape(io.x)) };
    assert!(spec.supports(algo, ic), "{algo:?} does not implement {spec:?} with {ic} input channels");
    let oc = g.shape(io.w)[0];
    let (oh, ow) = (spec.out_size(ih), spec.out_size(iw));
    let algo = for_plane(algo, oh, ow);
    assert_eq!(g.shape(io.w), [oc, ic, spec.k, spec.k], "conv2d weight");
    assert_eq!(g.shape(io.out), [n, oc, oh, ow], "conv2d output");
    let mut params = Params::new([n, ic, ih, iw], oc, spec);
    let mut args = vec![("x", io.x), ("bias", io.bias), ("out", io.out)];
    let epilogue = match io.extra {
        Extra::None => Epilogue::Bias,
        Extra::ChannelAdd { t, offset } => {
            let [tn, width] = g.shape(t)[..] else { panic!("conv2d channel add: t must be [N, W]") };
            assert!(tn == n && offset + oc <= width, "conv2d channel add: {:?} has no columns {offset}..{}", g.shape(t), offset + oc);
            (params.add_stride, params.add_offset) = (width as u32, offset as u32);
            args.push(("chan_add", t));
            Epilogue::ChannelAdd
        }
        Extra::Residual(t) => {
            assert_eq!(g.shape(t), [n, oc, oh, ow], "conv2d residual");
            args.push(("residual", t));
            Epilogue::Residual
        }
    };
    if algo.is_windowed() {
        record_chunks(g, Kernel::Conv(algo, epilogue), algo, params, &args, io.w);
    } else {
        args.push(("w", io.w));
        g.record(Kernel::Conv(algo, epilogue), &params, &args, grid(algo, n, oc, oh, ow), flops(&params, oc));
    }
}

/// The windowed 1x1's and 3x3's pipelines for an output plane of `oh` x `ow`: vec4 reads of x where every
/// run of 4 outputs starts on a vec4 (a 1x1: the plane a multiple of 4 pixels; a same-padded 3x3: each row,
/// which is the input's too), for the 3x3 vec2 reads where rows start on a vec2 (an even width: 14x14),
/// scalar reads elsewhere (7x7). Each set is one algorithm to the families and the tuning; the recorder
/// picks.
fn for_plane(algo: ConvAlgo, oh: usize, ow: usize) -> ConvAlgo {
    use ConvAlgo::*;
    match algo {
        Window1x1 | Window1x1x4 if (oh * ow) % 4 == 0 => Window1x1x4,
        Window1x1x4 => Window1x1,
        Window3x3 | Window3x3x4 | Window3x3x2 if ow % 4 == 0 => Window3x3x4,
        Window3x3 | Window3x3x4 | Window3x3x2 if ow % 2 == 0 => Window3x3x2,
        Window3x3x4 | Window3x3x2 => Window3x3,
        other => other,
    }
}

/// FLOPs of `channels` output channels of the convolution `p` describes.
fn flops(p: &Params, channels: usize) -> u64 {
    2 * (p.n * p.oh * p.ow * p.ic * p.kh * p.kw) as u64 * channels as u64
}

/// Output channels per window when each takes `per_oc` f32 weights: whole blocks of 8 (the blocked
/// kernels' block; two of the general kernel's 4).
fn channels_per_window(per_oc: usize) -> usize {
    (WINDOW_BYTES as usize / 4 / per_oc.max(1)) / 8 * 8
}

/// Records the windowed convolution `p` describes as one dispatch per chunk of output channels whose
/// weights fit a window (the last may be short): each gets the chunk's rows of w as its window and its
/// first channel as `oc_first`, and covers only the chunk's blocks.
fn record_chunks(g: &mut Graph, kernel: Kernel, algo: ConvAlgo, p: Params, args: &[(&str, TensorId)], w: TensorId) {
    assert_eq!(g.dtype(w), Precision::F32, "{kernel:?}: windows hold f32 weights; a network in f16 uses the blocked kernels");
    let per_oc = (p.ic * p.kh * p.kw) as usize;
    let chunk = channels_per_window(per_oc);
    let oc = p.oc as usize;
    for first in (0..oc).step_by(chunk) {
        let count = chunk.min(oc - first);
        let chunk_params = Params { oc_first: first as u32, ..p };
        let groups = grid(algo, p.n as usize, count, p.oh as usize, p.ow as usize);
        g.record_windowed(kernel, &chunk_params, args, &[("w", w, first * per_oc..(first + count) * per_oc)], groups, flops(&p, count));
    }
}

/// Records out = conv1x1(cat(a, b), w) + bias without writing the concatenation: a [N, CA, H, W],
/// b [N, CB, H, W], w [OC, CA + CB, 1, 1], out [N, OC, H, W]. `algo`: `Blocked1x1`, `Window1x1` or `Tiled`.
pub fn conv1x1_pair(g: &mut Graph, a: TensorId, b: TensorId, w: TensorId, bias: TensorId, out: TensorId, algo: ConvAlgo) {
    assert!(matches!(algo, ConvAlgo::Blocked1x1 | ConvAlgo::Window1x1 | ConvAlgo::Window1x1x4 | ConvAlgo::Tiled), "{algo:?} has no pair form");
    let [n, ca, h, wd] = g.shape(a)[..] else { panic!("conv1x1_pair: a must be NCHW") };
    let algo = for_plane(algo, h, wd);
    let cb = g.shape(b)[1];
    assert_eq!(g.shape(b), [n, cb, h, wd], "conv1x1_pair: b must match a's N, H, W");
    let oc = g.shape(w)[0];
    assert_eq!(g.shape(w), [oc, ca + cb, 1, 1], "conv1x1_pair weight");
    assert_eq!(g.shape(out), [n, oc, h, wd], "conv1x1_pair output");
    let ic = ca + cb;
    let params = Params { ic_a: ca as u32, ..Params::new([n, ic, h, wd], oc, ConvSpec::POINT) };
    if algo.is_windowed() {
        assert!(ConvSpec::POINT.supports(algo, ic), "{algo:?}: {ic} input channels do not fit a window");
        let args = [("a", a), ("b", b), ("bias", bias), ("out", out)];
        record_chunks(g, Kernel::ConvPair(algo), algo, params, &args, w);
    } else {
        let args = [("a", a), ("b", b), ("w", w), ("bias", bias), ("out", out)];
        g.record(Kernel::ConvPair(algo), &params, &args, grid(algo, n, oc, h, wd), flops(&params, oc));
    }
}

/// Plain-Rust reference with the same semantics.
#[allow(clippy::too_many_arguments)]
pub fn reference(
    x: &[f32],
    xs: [usize; 4],
    w: &[f32],
    oc: usize,
    bias: &[f32],
    spec: ConvSpec,
    chan_add: Option<&[f32]>,
    residual: Option<&[f32]>,
) -> Vec<f32> {
    let [n, ic, ih, iw] = xs;
    let (oh, ow) = (spec.out_size(ih), spec.out_size(iw));
    let k = spec.k;
    let mut out = vec![0.0f32; n * oc * oh * ow];
    for b in 0..n {
        for o in 0..oc {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = bias[o];
                    for c in 0..ic {
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = (oy * spec.stride + ky) as isize - spec.pad_before as isize;
                                let ix = (ox * spec.stride + kx) as isize - spec.pad_before as isize;
                                if iy < 0 || ix < 0 || iy >= ih as isize || ix >= iw as isize {
                                    continue;
                                }
                                acc += x[((b * ic + c) * ih + iy as usize) * iw + ix as usize] * w[((o * ic + c) * k + ky) * k + kx];
                            }
                        }
                    }
                    if let Some(a) = chan_add {
                        acc += a[b * oc + o];
                    }
                    let idx = ((b * oc + o) * oh + oy) * ow + ox;
                    if let Some(r) = residual {
                        acc += r[idx];
                    }
                    out[idx] = acc;
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

    /// Every algorithm that implements `spec` and every epilogue, each into a fresh NaN-filled output, against
    /// the reference.
    fn check(n: usize, ic: usize, oc: usize, h: usize, w: usize, spec: ConvSpec) {
        let xs = [n, ic, h, w];
        let (oh, ow) = (spec.out_size(h), spec.out_size(w));
        let xv = as_stored(&values(n * ic * h * w, 1));
        let wv = as_stored(&values(oc * ic * spec.k * spec.k, 2));
        let bv = as_stored(&values(oc, 3));
        // The channel add reads columns 2 .. 2 + OC of a wider [N, OC + 5] tensor, as the U-Net's stacked
        // time-embedding projection is read.
        let av_wide = as_stored(&values(n * (oc + 5), 4));
        let av: Vec<f32> = (0..n).flat_map(|b| av_wide[b * (oc + 5) + 2..b * (oc + 5) + 2 + oc].to_vec()).collect();
        let rv = as_stored(&values(n * oc * oh * ow, 5));
        // The windowed kernels have no f16 form.
        for algo in ConvAlgo::ALL.into_iter().filter(|&a| spec.supports(a, ic) && (precision() == Precision::F32 || !a.is_windowed())) {
            for epilogue in Epilogue::ALL {
                let mut g = Graph::new();
                let x = upload(&mut g, "x", &xs, &xv);
                let wt = upload(&mut g, "w", &[oc, ic, spec.k, spec.k], &wv);
                let b = upload(&mut g, "b", &[oc], &bv);
                let out = nan_filled(&mut g, "out", &[n, oc, oh, ow]);
                let (extra, add, res) = match epilogue {
                    Epilogue::Bias => (Extra::None, None, None),
                    Epilogue::ChannelAdd => (Extra::ChannelAdd { t: upload(&mut g, "a", &[n, oc + 5], &av_wide), offset: 2 }, Some(&av[..]), None),
                    Epilogue::Residual => (Extra::Residual(upload(&mut g, "r", &[n, oc, oh, ow], &rv)), None, Some(&rv[..])),
                };
                conv2d(&mut g, ConvIo { x, w: wt, bias: b, extra, out }, spec, algo);
                let want = reference(&xv, xs, &wv, oc, &bv, spec, add, res);
                assert_close(&run_and_read(&g, out), &want, tol(1e-5), &format!("{algo:?} {epilogue:?} {xs:?}->{oc} {spec:?}"));
            }
        }
    }

    #[test]
    fn same_padding_3x3_odd_sizes() {
        check(2, 3, 5, 7, 7, ConvSpec::SAME3);
        check(1, 24, 48, 28, 28, ConvSpec::SAME3);
    }

    #[test]
    fn blocked_3x3_edges() {
        // Channel counts around the block of 8, widths around the run of 4, batch 3.
        for &(n, ic, oc, h, w) in &[(3usize, 2usize, 1usize, 5usize, 5usize), (1, 7, 7, 6, 9), (2, 9, 9, 3, 1), (1, 16, 17, 14, 14), (2, 3, 8, 1, 4)] {
            check(n, ic, oc, h, w, ConvSpec::SAME3);
        }
    }

    /// The windowed 3x3's vec4 form (rows of a multiple of 4 pixels): a single run per row (4 wide: no
    /// neighbour inside on either side), two and three runs (a run with both neighbours inside), one row and
    /// one column of runs (every input row but the middle one is padding), the first plane at the buffer's
    /// start, batch 3 and channel counts around the block of 8, against the reference. Swapping the middle
    /// vec4's lanes or taking a neighbour from the wrong side fails these.
    #[test]
    fn windowed_3x3_vec4_rows() {
        for &(n, ic, oc, h, w) in &[(1usize, 1usize, 1usize, 1usize, 4usize), (3, 2, 9, 4, 4), (2, 5, 7, 3, 8), (1, 9, 17, 5, 12), (1, 3, 8, 12, 4), (2, 24, 8, 28, 28)] {
            check(n, ic, oc, h, w, ConvSpec::SAME3);
        }
    }

    /// The vec2 form (even widths that are not multiples of 4): rows of 2 (one short run, no vec2 after
    /// it), 6 and 10 (a full run, then a short one ending inside the row's last vec2), 14 (the U-Net's
    /// 14x14), one row, batch 3, against the reference.
    #[test]
    fn windowed_3x3_vec2_rows() {
        for &(n, ic, oc, h, w) in &[(1usize, 1usize, 1usize, 1usize, 2usize), (3, 2, 9, 3, 2), (2, 5, 7, 4, 6), (1, 9, 17, 1, 10), (2, 16, 8, 14, 14)] {
            check(n, ic, oc, h, w, ConvSpec::SAME3);
        }
    }

    /// Where rows are a multiple of 4 pixels the windowed 3x3 reads x as vec4s (28x28, 3x8), where they are
    /// even as vec2s (14x14, 8x6), as scalars elsewhere (7x7, 4x5); whichever is asked for, the width decides.
    /// The stride-2 3x3 keeps its own kernel.
    #[test]
    fn windowed_3x3_reads_vec4s_where_the_rows_allow() {
        for (h, w, want) in [(28, 28, ConvAlgo::Window3x3x4), (3, 8, ConvAlgo::Window3x3x4), (14, 14, ConvAlgo::Window3x3x2), (8, 6, ConvAlgo::Window3x3x2), (7, 7, ConvAlgo::Window3x3), (4, 5, ConvAlgo::Window3x3)] {
            for asked in [ConvAlgo::Window3x3, ConvAlgo::Window3x3x4, ConvAlgo::Window3x3x2] {
                assert_eq!(recorded_algo(ConvSpec::SAME3, asked, h, w), want, "{asked:?} on {h}x{w}");
            }
        }
        assert_eq!(for_plane(ConvAlgo::Window3x3s2, 14, 16), ConvAlgo::Window3x3s2);
    }

    #[test]
    fn pointwise() {
        check(3, 48, 24, 14, 14, ConvSpec::POINT);
        // Planes of 1, 5, 7 and 49 pixels (short last runs), channel counts around the block of 8.
        for &(n, ic, oc, h, w) in &[(2usize, 3usize, 1usize, 1usize, 1usize), (1, 9, 7, 1, 5), (3, 5, 9, 7, 1), (2, 64, 17, 7, 7)] {
            check(n, ic, oc, h, w, ConvSpec::POINT);
        }
    }

    /// The algorithm `conv2d` records for `asked` on an 8 -> 8 channel convolution of an h x w plane.
    fn recorded_algo(spec: ConvSpec, asked: ConvAlgo, h: usize, w: usize) -> ConvAlgo {
        let mut g = Graph::new();
        let x = upload(&mut g, "x", &[1, 8, h, w], &values(8 * h * w, 1));
        let wt = upload(&mut g, "w", &[8, 8, spec.k, spec.k], &values(64 * spec.k * spec.k, 2));
        let bias = upload(&mut g, "b", &[8], &values(8, 3));
        let out = nan_filled(&mut g, "out", &[1, 8, spec.out_size(h), spec.out_size(w)]);
        conv2d(&mut g, ConvIo { x, w: wt, bias, extra: Extra::None, out }, spec, asked);
        match g.ops()[0].kernel {
            Kernel::Conv(algo, Epilogue::Bias) => algo,
            other => panic!("{asked:?} on {h}x{w} recorded {other:?}"),
        }
    }

    /// The windowed 1x1 reads x as vec4s where a plane is a multiple of 4 pixels (14x14 above, 8x4 and 2x2
    /// below), as scalars elsewhere (7x7, 1x5): whichever of the two is asked for, the plane decides.
    #[test]
    fn windowed_pointwise_reads_vec4s_where_the_plane_allows() {
        for (h, w, want) in [(14, 14, ConvAlgo::Window1x1x4), (2, 2, ConvAlgo::Window1x1x4), (7, 7, ConvAlgo::Window1x1), (1, 5, ConvAlgo::Window1x1)] {
            for asked in [ConvAlgo::Window1x1, ConvAlgo::Window1x1x4] {
                assert_eq!(recorded_algo(ConvSpec::POINT, asked, h, w), want, "{asked:?} on {h}x{w}");
            }
        }
    }

    #[test]
    fn tiled_across_tile_edges_and_images() {
        // Channels, pixels (N·OH·OW) and K = IC·9 around the tiles of 32, planes that straddle a tile.
        for &(n, ic, oc, h, w) in &[(1usize, 1usize, 1usize, 1usize, 1usize), (2, 3, 33, 7, 7), (3, 4, 31, 5, 6), (1, 36, 32, 8, 4), (2, 11, 65, 9, 3)] {
            check(n, ic, oc, h, w, ConvSpec::SAME3);
            check(n, ic, oc, h, w, ConvSpec::POINT);
        }
    }

    /// From 32 input channels the tiled kernel stages K tap by tap (channels in slices of 32, no im2col
    /// division): channel counts at, across and past a slice, with both paddings of the stride-2 3x3 and a
    /// 5x5 (a tap's bounds at two pixels from the edge), against the reference.
    #[test]
    fn tiled_tap_major_slices() {
        let s2 = |pad_before| ConvSpec { k: 3, stride: 2, pad_before, pad_after: 1 };
        check(2, 32, 9, 5, 5, ConvSpec::SAME3);
        check(1, 70, 33, 6, 7, ConvSpec::SAME3);
        check(2, 40, 8, 7, 7, s2(0));
        check(1, 33, 5, 9, 8, s2(1));
        check(2, 64, 7, 3, 5, ConvSpec::POINT);
        check(1, 34, 6, 6, 5, ConvSpec { k: 5, stride: 1, pad_before: 2, pad_after: 2 });
    }

    /// The pair form of both algorithms against the reference on the concatenation (channel splits around
    /// the blocks of 8 and the K-slices of 32, planes with short last runs).
    #[test]
    fn pair_inputs_equal_the_concatenation() {
        // 14x14 and 2x2 take the windowed vec4 form.
        for &(n, ca, cb, oc, h, w) in &[(2usize, 3usize, 5usize, 9usize, 7usize, 7usize), (1, 64, 32, 32, 14, 14), (3, 33, 1, 7, 1, 5), (2, 300, 400, 20, 2, 2)] {
            let (av, bv) = (as_stored(&values(n * ca * h * w, 41)), as_stored(&values(n * cb * h * w, 42)));
            let (wv, biasv) = (as_stored(&values(oc * (ca + cb), 43)), as_stored(&values(oc, 44)));
            let cat = crate::gpu::kernels::resample::concat_reference(&av, &bv, n);
            let want = reference(&cat, [n, ca + cb, h, w], &wv, oc, &biasv, ConvSpec::POINT, None, None);
            for algo in [ConvAlgo::Blocked1x1, ConvAlgo::Window1x1, ConvAlgo::Tiled].into_iter().filter(|a| precision() == Precision::F32 || !a.is_windowed()) {
                let mut g = Graph::new();
                let a = upload(&mut g, "a", &[n, ca, h, w], &av);
                let b = upload(&mut g, "b", &[n, cb, h, w], &bv);
                let wt = upload(&mut g, "w", &[oc, ca + cb, 1, 1], &wv);
                let bias = upload(&mut g, "bias", &[oc], &biasv);
                let out = nan_filled(&mut g, "out", &[n, oc, h, w]);
                conv1x1_pair(&mut g, a, b, wt, bias, out, algo);
                assert_close(&run_and_read(&g, out), &want, tol(1e-5), &format!("{algo:?} pair {ca}+{cb}->{oc} {h}x{w}"));
            }
        }
    }

    /// Windowed convolutions whose weights take several windows: one dispatch per chunk of output channels,
    /// each reading its own window from `oc_first` on (a 3x3 of 64 channels takes 24 per window: 40 = 24 +
    /// 16; a 1x1 of 700 takes 16: 40 = 16 + 16 + 8), against the reference; and the pair form likewise. A
    /// 3x3 of 228 input channels does not fit one block in a window.
    #[test]
    fn windowed_chunks_cover_every_output_channel() {
        let (s3, s1) = (ConvSpec::SAME3, ConvSpec::POINT);
        assert_eq!((s3.window_channels(64), s1.window_channels(700)), (24, 16));
        assert!(s3.supports(ConvAlgo::Window3x3, 227) && !s3.supports(ConvAlgo::Window3x3, 228));
        check(2, 64, 40, 5, 5, ConvSpec::SAME3);
        check(1, 700, 40, 3, 2, ConvSpec::POINT);
        check(1, 700, 40, 2, 2, ConvSpec::POINT); // the vec4 form's chunks
        let mut g = Graph::new();
        let x = upload(&mut g, "x", &[1, 64, 3, 3], &values(64 * 9, 1));
        let w = upload(&mut g, "w", &[40, 64, 3, 3], &values(40 * 64 * 9, 2));
        let bias = upload(&mut g, "b", &[40], &values(40, 3));
        let out = nan_filled(&mut g, "out", &[1, 40, 3, 3]);
        conv2d(&mut g, ConvIo { x, w, bias, extra: Extra::None, out }, ConvSpec::SAME3, ConvAlgo::Window3x3);
        let firsts: Vec<u32> = g.ops().iter().map(|op| bytemuck::pod_read_unaligned::<Params>(match &op.params { crate::gpu::graph::Params::Inline(p) => p, _ => unreachable!() }).oc_first).collect();
        assert_eq!(firsts, [0, 24]);
        let (ca, cb, oc, h, wd) = (300usize, 400usize, 40usize, 2usize, 3usize);
        let (av, bv) = (values(ca * h * wd, 5), values(cb * h * wd, 6));
        let (wv, biasv) = (values(oc * (ca + cb), 7), values(oc, 8));
        let want = reference(&crate::gpu::kernels::resample::concat_reference(&av, &bv, 1), [1, ca + cb, h, wd], &wv, oc, &biasv, ConvSpec::POINT, None, None);
        let mut g = Graph::new();
        let (a, b) = (upload(&mut g, "a", &[1, ca, h, wd], &av), upload(&mut g, "b", &[1, cb, h, wd], &bv));
        let (w, bias) = (upload(&mut g, "w", &[oc, ca + cb, 1, 1], &wv), upload(&mut g, "bias", &[oc], &biasv));
        let out = nan_filled(&mut g, "out", &[1, oc, h, wd]);
        conv1x1_pair(&mut g, a, b, w, bias, out, ConvAlgo::Window1x1);
        assert_eq!(g.ops().len(), 3);
        assert_close(&run_and_read(&g, out), &want, tol(1e-5), "Window1x1 pair 300+400->40");
    }

    #[test]
    fn strided_downsample_both_paddings() {
        // downsample_padding = 1 (symmetric) and 0 (diffusers pads only bottom/right by one).
        check(2, 8, 8, 28, 28, ConvSpec { k: 3, stride: 2, pad_before: 1, pad_after: 1 });
        check(2, 8, 8, 7, 7, ConvSpec { k: 3, stride: 2, pad_before: 0, pad_after: 1 });
        check(1, 4, 6, 32, 32, ConvSpec { k: 3, stride: 2, pad_before: 0, pad_after: 1 });
        // The blocked stride-2 kernel's runs of 4 outputs around the edges (input widths 1, 3, 9 and 15),
        // channel counts around the block of 8, batch 3.
        check(3, 3, 9, 5, 9, ConvSpec { k: 3, stride: 2, pad_before: 1, pad_after: 1 });
        check(1, 9, 17, 15, 3, ConvSpec { k: 3, stride: 2, pad_before: 0, pad_after: 1 });
        check(2, 5, 7, 2, 15, ConvSpec { k: 3, stride: 2, pad_before: 1, pad_after: 1 });
        check(1, 4, 8, 1, 1, ConvSpec { k: 3, stride: 2, pad_before: 1, pad_after: 1 });
    }

    /// Every case above with x, w, bias, the added tensors and out in f16 (sums in f32).
    #[test]
    fn every_algorithm_and_epilogue_in_f16() {
        in_f16(|| {
            same_padding_3x3_odd_sizes();
            blocked_3x3_edges();
            pointwise();
            tiled_across_tile_edges_and_images();
            strided_downsample_both_paddings();
            pair_inputs_equal_the_concatenation();
        });
    }
}
