// 2-D convolution with a fused epilogue: five algorithms x three epilogues = fifteen entry points.
//   general*: any kernel size, stride and zero padding
//   conv3x3*: 3x3, stride 1, one pixel of padding (about 90% of the U-Net's FLOPs)
//   conv3x3s2*: 3x3, stride 2, any padding (the downsamplers)
//   conv1x1*: 1x1, stride 1 (ResNet shortcuts, attention projections: a matmul over channels)
//   tiled*:   any geometry, as an implicit GEMM tiled through workgroup memory (for real GPUs)
// Epilogues (entry-point suffix): none = + bias; _chan_add = + bias + chan_add; _residual = + bias + residual.
// conv1x1_pair, tiled_pair (1x1, + bias): the input is the channel concatenation of x [N, IC_A, H, W] and
// x_b [N, IC - IC_A, H, W] (the U-Net's skip connection into a ResNet's shortcut), read in place so the
// concatenation is never written.
// Each entry point touches only its own bindings, so the bind-group layouts in src/gpu/kernel.rs bind no
// unused buffer. src/gpu/kernels/conv2d.rs picks the algorithm per convolution.
// The weights (binding 2) and `weight(k)`, which reads element k of w, are declared by the file appended to
// this one (src/gpu/kernel.rs): conv2d_storage.wgsl, a storage buffer of all of w; or conv2d_window.wgsl, a
// 64 KiB uniform-buffer window of w from output channel oc_first on, for the `windowed` kernels. Those
// dispatch a convolution in chunks of output channels whose weights fit a window: a chunk's blocks start at
// oc_first (0 for every other kernel, which covers all channels in one dispatch).
//
// Layout (row-major; elem is f32, or f16 in a pass that runs in f16: every sum is accumulated in f32):
//   x        [N, IC, IH, IW]
//   w        [OC, IC, KH, KW]   (PyTorch's Conv2d weight; [OC, IC] for a 1x1 or linear projection)
//   bias     [OC]
//   chan_add [N, add_stride]    _chan_add: element n*add_stride + add_offset + oc is added to every pixel of
//                               channel (n, oc) (the ResNet block's columns of the time embedding projected
//                               for every block at once, fused here to save a pass over the activations)
//   residual [N, OC, OH, OW]    _residual: added elementwise (ResNet shortcut, attention residual)
//   out      [N, OC, OH, OW]
// Padding may be asymmetric: (pad_y, pad_x) zeros before, and as many after as OH/OW imply (diffusers'
// downsample_padding = 0 pads only bottom and right).
//
// Why three kernels: CPU-emulated adapters (lavapipe, SwiftShader) are bound by loads per multiply-add. The
// general kernel does 4 per 5 loads; the blocked ones compute 4 pixels x 8 output channels per invocation
// (conv3x3: 96 multiply-adds per 30 loads; conv1x1: 32 per 12), and take the channel block and image from
// workgroup_id so the compiler sees that every lane reads the same weights. lavapipe (Mesa 22.3) still
// reads such a storage value lane by lane in a loop; from a uniform buffer it is one load and a broadcast,
// hence the windowed form.

alias elem = f32;

struct Params {
    n: u32, ic: u32, ih: u32, iw: u32,
    oc: u32, oh: u32, ow: u32, kh: u32,
    kw: u32, stride: u32, pad_y: u32, pad_x: u32,
    add_stride: u32, add_offset: u32, ic_a: u32, oc_first: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<elem>;
@group(0) @binding(3) var<storage, read> bias: array<elem>;
@group(0) @binding(4) var<storage, read> chan_add: array<elem>;
@group(0) @binding(5) var<storage, read> residual: array<elem>;
@group(0) @binding(6) var<storage, read_write> out: array<elem>;
@group(0) @binding(7) var<storage, read> x_b: array<elem>;  // _pair: input channels IC_A..

// general: output channels per invocation. Blocked kernels: pixels and output channels per invocation.
const OCB: u32 = 4u;
const PX: u32 = 4u;
const BLOCK_OC: u32 = 8u;

// A block of outputs, every entry point's unit of work: output channels oc0 .. oc0+ocs-1 of image n, pixels
// pix0 .. pix0+count-1 of each channel's plane (row-major). `acc[j][i]` is channel oc0+j, pixel pix0+i.
// count = 0: the invocation has nothing to do.
struct Block {
    n: u32, oc0: u32, ocs: u32, pix0: u32, count: u32,
}

const NONE = Block(0u, 0u, 0u, 0u, 0u);

// Index of output value (j, i) of block b, or -1 if it is past the last channel or the plane's run.
fn out_index(b: Block, j: u32, i: u32) -> i32 {
    if (j >= b.ocs || b.oc0 + j >= p.oc || i >= b.count) {
        return -1;
    }
    return i32((b.n * p.oc + b.oc0 + j) * p.oh * p.ow + b.pix0 + i);
}

// The three epilogues, one per entry-point suffix (each touches only its own extra binding). They hand each
// channel's vec4 on whole: indexing the accumulator array twice with loop variables (acc[j][i]) kept it in
// memory on lavapipe, so every multiply-add of the main loop loaded and stored its sum (a 3x3 convolution
// ran 2.4x slower; examples in BENCHMARKS.md).
fn store_chan(b: Block, j: u32, v: vec4<f32>) {
    for (var i = 0u; i < PX; i++) {
        let o = out_index(b, j, i);
        if (o >= 0) {
            out[o] = elem(v[i]);
        }
    }
}
fn finish(b: Block, acc: array<vec4<f32>, 8>) {
    for (var j = 0u; j < BLOCK_OC; j++) {
        if (j < b.ocs && b.oc0 + j < p.oc) {
            store_chan(b, j, acc[j] + f32(bias[b.oc0 + j]));
        }
    }
}
fn finish_chan_add(b: Block, acc: array<vec4<f32>, 8>) {
    for (var j = 0u; j < BLOCK_OC; j++) {
        if (j < b.ocs && b.oc0 + j < p.oc) {
            store_chan(b, j, acc[j] + f32(bias[b.oc0 + j]) + f32(chan_add[b.n * p.add_stride + p.add_offset + b.oc0 + j]));
        }
    }
}
fn store_chan_residual(b: Block, j: u32, v: vec4<f32>) {
    for (var i = 0u; i < PX; i++) {
        let o = out_index(b, j, i);
        if (o >= 0) {
            out[o] = elem(v[i] + f32(residual[o]));
        }
    }
}
fn finish_residual(b: Block, acc: array<vec4<f32>, 8>) {
    for (var j = 0u; j < BLOCK_OC; j++) {
        if (j < b.ocs && b.oc0 + j < p.oc) {
            store_chan_residual(b, j, acc[j] + f32(bias[b.oc0 + j]));
        }
    }
}

// general: one pixel x OCB output channels per invocation. Grid: x covers OH*OW pixels (64 per workgroup),
// y covers OC in blocks of OCB, z is the image.
fn general_block(gid: vec3<u32>, wid: vec3<u32>) -> Block {
    // From workgroup_id: the compiler then sees that all lanes read the same weights (no gathers on CPU adapters).
    let b = Block(wid.z, p.oc_first + wid.y * OCB, OCB, gid.x, 1u);
    if (b.pix0 >= p.oh * p.ow || b.n >= p.n || b.oc0 >= p.oc) {
        return NONE;
    }
    return b;
}

fn general_acc(b: Block) -> array<vec4<f32>, 8> {
    let oy = b.pix0 / p.ow;
    let ox = b.pix0 % p.ow;
    let iy0 = i32(oy * p.stride) - i32(p.pad_y);
    let ix0 = i32(ox * p.stride) - i32(p.pad_x);
    let ksize = p.kh * p.kw;
    let wstride = p.ic * ksize;  // distance between consecutive output channels in w
    let oc0 = b.oc0;

    var acc = vec4<f32>(0.0);
    for (var ic = 0u; ic < p.ic; ic++) {
        let xbase = (b.n * p.ic + ic) * p.ih * p.iw;
        let wbase = oc0 * wstride + ic * ksize;
        for (var ky = 0u; ky < p.kh; ky++) {
            let iy = iy0 + i32(ky);
            if (iy < 0 || iy >= i32(p.ih)) {
                continue;
            }
            for (var kx = 0u; kx < p.kw; kx++) {
                let ix = ix0 + i32(kx);
                if (ix < 0 || ix >= i32(p.iw)) {
                    continue;
                }
                let v = f32(x[xbase + u32(iy) * p.iw + u32(ix)]);
                let k = wbase + ky * p.kw + kx;
                // Out-of-range channels of the last block read channel oc0's weights; their sums are dropped.
                let k1 = select(k, k + wstride, oc0 + 1u < p.oc);
                let k2 = select(k, k + 2u * wstride, oc0 + 2u < p.oc);
                let k3 = select(k, k + 3u * wstride, oc0 + 3u < p.oc);
                acc += v * vec4<f32>(weight(k), weight(k1), weight(k2), weight(k3));
            }
        }
    }
    // The block has OCB channels (b.ocs) of one pixel, so only column 0 of rows 0..OCB is ever stored.
    let z = vec4<f32>(0.0);
    return array<vec4<f32>, 8>(vec4<f32>(acc.x, 0.0, 0.0, 0.0), vec4<f32>(acc.y, 0.0, 0.0, 0.0), vec4<f32>(acc.z, 0.0, 0.0, 0.0), vec4<f32>(acc.w, 0.0, 0.0, 0.0), z, z, z, z);
}

@compute @workgroup_size(64)
fn general(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let b = general_block(gid, wid);
    if (b.count > 0u) {
        finish(b, general_acc(b));
    }
}
@compute @workgroup_size(64)
fn general_chan_add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let b = general_block(gid, wid);
    if (b.count > 0u) {
        finish_chan_add(b, general_acc(b));
    }
}
@compute @workgroup_size(64)
fn general_residual(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let b = general_block(gid, wid);
    if (b.count > 0u) {
        finish_residual(b, general_acc(b));
    }
}

// The blocked kernels' inner step: acc[j] += weight(wr[j] + k) * v for the block's 8 channels. Written out, not
// looped: SwiftShader keeps a dynamically indexed array in memory (the loop made it 1.3x slower there).
fn madd8(acc: ptr<function, array<vec4<f32>, 8>>, wr: ptr<function, array<u32, 8>>, k: u32, v: vec4<f32>) {
    (*acc)[0] += weight((*wr)[0] + k) * v;
    (*acc)[1] += weight((*wr)[1] + k) * v;
    (*acc)[2] += weight((*wr)[2] + k) * v;
    (*acc)[3] += weight((*wr)[3] + k) * v;
    (*acc)[4] += weight((*wr)[4] + k) * v;
    (*acc)[5] += weight((*wr)[5] + k) * v;
    (*acc)[6] += weight((*wr)[6] + k) * v;
    (*acc)[7] += weight((*wr)[7] + k) * v;
}

// Offsets in w of the block's 8 output channels (rows of `stride` weights); past the last channel, channel
// oc0's again (those sums are not written).
fn weight_rows(b: Block, stride: u32) -> array<u32, 8> {
    var wr: array<u32, 8>;
    for (var j = 0u; j < BLOCK_OC; j++) {
        wr[j] = select(b.oc0, b.oc0 + j, b.oc0 + j < p.oc) * stride;
    }
    return wr;
}

// conv3x3: PX pixels of one row x BLOCK_OC channels per invocation. Grid: x covers (row, run of PX pixels)
// pairs, 64 per workgroup; y covers OC in blocks of 8; z is the image.
fn block3x3(gid: vec3<u32>, wid: vec3<u32>) -> Block {
    let runs = (p.ow + PX - 1u) / PX;
    let oy = gid.x / runs;
    let ox0 = (gid.x % runs) * PX;
    // From workgroup_id, not global_invocation_id: the compiler then knows every lane reads the same weights
    // (one load, not a gather, on SIMD CPU adapters).
    let b = Block(wid.z, p.oc_first + wid.y * BLOCK_OC, BLOCK_OC, oy * p.ow + ox0, min(PX, p.ow - ox0));
    if (oy >= p.oh || b.n >= p.n || b.oc0 >= p.oc) {
        return NONE;
    }
    return b;
}

// Where a run of PX outputs reads its input: the six columns ox0-1 .. ox0+4, clamped inside the image, and
// which of them are inside (outside reads count as zero). Fixed for the whole loop, so the loop only selects.
struct Cols {
    x0: u32, x1: u32, x2: u32, x3: u32, x4: u32, x5: u32,
    in0: bool, in2: bool, in3: bool, in4: bool, in5: bool,  // column ox0 (x1) is always inside
}

fn cols_of(ox0: u32) -> Cols {
    let ix = i32(ox0) - 1;
    let last = i32(p.iw) - 1;
    return Cols(
        u32(max(ix, 0)), ox0, u32(min(ix + 2, last)), u32(min(ix + 3, last)), u32(min(ix + 4, last)), u32(min(ix + 5, last)),
        ix >= 0, ix + 2 <= last, ix + 3 <= last, ix + 4 <= last, ix + 5 <= last,
    );
}

// One input row (plane offset `plane`, row iy) against weight taps k .. k+2 of the 8 channels' rows `wr`.
fn row3x3(acc: ptr<function, array<vec4<f32>, 8>>, wr: ptr<function, array<u32, 8>>, c: Cols, plane: u32, iy: i32, k: u32) {
    let inside = iy >= 0 && iy < i32(p.ih);
    let row = plane + u32(clamp(iy, 0, i32(p.ih) - 1)) * p.iw;
    let v0 = select(0.0, f32(x[row + c.x0]), inside && c.in0);
    let v1 = select(0.0, f32(x[row + c.x1]), inside);
    let v2 = select(0.0, f32(x[row + c.x2]), inside && c.in2);
    let v3 = select(0.0, f32(x[row + c.x3]), inside && c.in3);
    let v4 = select(0.0, f32(x[row + c.x4]), inside && c.in4);
    let v5 = select(0.0, f32(x[row + c.x5]), inside && c.in5);
    let a = vec4<f32>(v0, v1, v2, v3);
    let c1 = vec4<f32>(v1, v2, v3, v4);
    let c2 = vec4<f32>(v2, v3, v4, v5);
    madd8(acc, wr, k, a);
    madd8(acc, wr, k + 1u, c1);
    madd8(acc, wr, k + 2u, c2);
}

fn acc3x3(b: Block) -> array<vec4<f32>, 8> {
    let oy = i32(b.pix0 / p.ow);
    let c = cols_of(b.pix0 % p.ow);
    var wr = weight_rows(b, p.ic * 9u);
    var acc: array<vec4<f32>, 8>;
    for (var ic = 0u; ic < p.ic; ic++) {
        let plane = (b.n * p.ic + ic) * p.ih * p.iw;
        let k = ic * 9u;
        row3x3(&acc, &wr, c, plane, oy - 1, k);
        row3x3(&acc, &wr, c, plane, oy, k + 3u);
        row3x3(&acc, &wr, c, plane, oy + 1, k + 6u);
    }
    return acc;
}

@compute @workgroup_size(64)
fn conv3x3(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let b = block3x3(gid, wid);
    if (b.count > 0u) {
        finish(b, acc3x3(b));
    }
}
@compute @workgroup_size(64)
fn conv3x3_chan_add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let b = block3x3(gid, wid);
    if (b.count > 0u) {
        finish_chan_add(b, acc3x3(b));
    }
}
@compute @workgroup_size(64)
fn conv3x3_residual(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let b = block3x3(gid, wid);
    if (b.count > 0u) {
        finish_residual(b, acc3x3(b));
    }
}

// conv3x3s2: 3x3 with stride 2 (the downsamplers), PX outputs of one row x BLOCK_OC channels per invocation,
// as conv3x3 (same grid, same blocks). A run reads 2*PX+1 = 9 input columns of each row, where the general
// kernel reads 36 values for the same outputs. Padding: (pad_y, pad_x) before, and whatever OH/OW imply after.
struct Cols9 {
    x0: u32, x1: u32, x2: u32, x3: u32, x4: u32, x5: u32, x6: u32, x7: u32, x8: u32,
    in0: bool, in1: bool, in2: bool, in3: bool, in4: bool, in5: bool, in6: bool, in7: bool, in8: bool,
}

fn cols9_of(ox0: u32) -> Cols9 {
    let ix = i32(ox0 * 2u) - i32(p.pad_x);
    let last = i32(p.iw) - 1;
    return Cols9(
        u32(clamp(ix, 0, last)), u32(clamp(ix + 1, 0, last)), u32(clamp(ix + 2, 0, last)),
        u32(clamp(ix + 3, 0, last)), u32(clamp(ix + 4, 0, last)), u32(clamp(ix + 5, 0, last)),
        u32(clamp(ix + 6, 0, last)), u32(clamp(ix + 7, 0, last)), u32(clamp(ix + 8, 0, last)),
        ix >= 0 && ix <= last, ix + 1 >= 0 && ix + 1 <= last, ix + 2 >= 0 && ix + 2 <= last,
        ix + 3 >= 0 && ix + 3 <= last, ix + 4 >= 0 && ix + 4 <= last, ix + 5 >= 0 && ix + 5 <= last,
        ix + 6 >= 0 && ix + 6 <= last, ix + 7 >= 0 && ix + 7 <= last, ix + 8 >= 0 && ix + 8 <= last,
    );
}

// One input row (plane offset `plane`, row iy) against weight taps k .. k+2: output i reads columns 2i + kx.
fn row3x3s2(acc: ptr<function, array<vec4<f32>, 8>>, wr: ptr<function, array<u32, 8>>, c: Cols9, plane: u32, iy: i32, k: u32) {
    let inside = iy >= 0 && iy < i32(p.ih);
    let row = plane + u32(clamp(iy, 0, i32(p.ih) - 1)) * p.iw;
    let v0 = select(0.0, f32(x[row + c.x0]), inside && c.in0);
    let v1 = select(0.0, f32(x[row + c.x1]), inside && c.in1);
    let v2 = select(0.0, f32(x[row + c.x2]), inside && c.in2);
    let v3 = select(0.0, f32(x[row + c.x3]), inside && c.in3);
    let v4 = select(0.0, f32(x[row + c.x4]), inside && c.in4);
    let v5 = select(0.0, f32(x[row + c.x5]), inside && c.in5);
    let v6 = select(0.0, f32(x[row + c.x6]), inside && c.in6);
    let v7 = select(0.0, f32(x[row + c.x7]), inside && c.in7);
    let v8 = select(0.0, f32(x[row + c.x8]), inside && c.in8);
    madd8(acc, wr, k, vec4<f32>(v0, v2, v4, v6));
    madd8(acc, wr, k + 1u, vec4<f32>(v1, v3, v5, v7));
    madd8(acc, wr, k + 2u, vec4<f32>(v2, v4, v6, v8));
}

fn acc3x3s2(b: Block) -> array<vec4<f32>, 8> {
    let iy = i32((b.pix0 / p.ow) * 2u) - i32(p.pad_y);
    let c = cols9_of(b.pix0 % p.ow);
    var wr = weight_rows(b, p.ic * 9u);
    var acc: array<vec4<f32>, 8>;
    for (var ic = 0u; ic < p.ic; ic++) {
        let plane = (b.n * p.ic + ic) * p.ih * p.iw;
        let k = ic * 9u;
        row3x3s2(&acc, &wr, c, plane, iy, k);
        row3x3s2(&acc, &wr, c, plane, iy + 1, k + 3u);
        row3x3s2(&acc, &wr, c, plane, iy + 2, k + 6u);
    }
    return acc;
}

@compute @workgroup_size(64)
fn conv3x3s2(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let b = block3x3(gid, wid);
    if (b.count > 0u) {
        finish(b, acc3x3s2(b));
    }
}
@compute @workgroup_size(64)
fn conv3x3s2_chan_add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let b = block3x3(gid, wid);
    if (b.count > 0u) {
        finish_chan_add(b, acc3x3s2(b));
    }
}
@compute @workgroup_size(64)
fn conv3x3s2_residual(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let b = block3x3(gid, wid);
    if (b.count > 0u) {
        finish_residual(b, acc3x3s2(b));
    }
}

// conv1x1: PX consecutive pixels x BLOCK_OC channels per invocation. Grid: x covers OH*OW in runs of PX
// (64 runs per workgroup), y covers OC in blocks of 8, z is the image.
fn block1x1(gid: vec3<u32>, wid: vec3<u32>) -> Block {
    let hw = p.oh * p.ow;
    let p0 = gid.x * PX;
    // From workgroup_id, so the compiler sees the weight reads are the same in every lane.
    let b = Block(wid.z, p.oc_first + wid.y * BLOCK_OC, BLOCK_OC, p0, min(PX, hw - min(p0, hw)));
    if (p0 >= hw || b.n >= p.n || b.oc0 >= p.oc) {
        return NONE;
    }
    return b;
}

fn acc1x1(b: Block) -> array<vec4<f32>, 8> {
    var wr = weight_rows(b, p.ic);
    // The last run of a plane may be short: clamp its reads in bounds (those sums are not written).
    let hw = p.oh * p.ow;
    let last = hw - 1u;
    let p0 = b.pix0;
    var acc: array<vec4<f32>, 8>;
    for (var ic = 0u; ic < p.ic; ic++) {
        let base = (b.n * p.ic + ic) * hw;
        let v = vec4<f32>(f32(x[base + p0]), f32(x[base + min(p0 + 1u, last)]), f32(x[base + min(p0 + 2u, last)]), f32(x[base + min(p0 + 3u, last)]));
        madd8(&acc, &wr, ic, v);
    }
    return acc;
}

// Input channel ic of image n at pixel `pix` of a pair input (1x1: input and output planes coincide).
// The _pair entry points repeat their single-input twins' loops around this load, because a WGSL entry
// point binds every buffer its call graph names: a shared body would make the single ones bind x_b too.
fn pair_value(n: u32, ic: u32, pix: u32) -> f32 {
    let hw = p.ih * p.iw;
    if (ic < p.ic_a) {
        return f32(x[(n * p.ic_a + ic) * hw + pix]);
    }
    return f32(x_b[(n * (p.ic - p.ic_a) + ic - p.ic_a) * hw + pix]);
}

fn acc1x1_pair(b: Block) -> array<vec4<f32>, 8> {
    var wr = weight_rows(b, p.ic);
    let last = p.oh * p.ow - 1u;
    let p0 = b.pix0;
    var acc: array<vec4<f32>, 8>;
    for (var ic = 0u; ic < p.ic; ic++) {
        let v = vec4<f32>(pair_value(b.n, ic, p0), pair_value(b.n, ic, min(p0 + 1u, last)), pair_value(b.n, ic, min(p0 + 2u, last)), pair_value(b.n, ic, min(p0 + 3u, last)));
        madd8(&acc, &wr, ic, v);
    }
    return acc;
}

@compute @workgroup_size(64)
fn conv1x1_pair(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let b = block1x1(gid, wid);
    if (b.count > 0u) {
        finish(b, acc1x1_pair(b));
    }
}

@compute @workgroup_size(64)
fn conv1x1(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let b = block1x1(gid, wid);
    if (b.count > 0u) {
        finish(b, acc1x1(b));
    }
}
@compute @workgroup_size(64)
fn conv1x1_chan_add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let b = block1x1(gid, wid);
    if (b.count > 0u) {
        finish_chan_add(b, acc1x1(b));
    }
}
@compute @workgroup_size(64)
fn conv1x1_residual(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let b = block1x1(gid, wid);
    if (b.count > 0u) {
        finish_residual(b, acc1x1(b));
    }
}

// tiled: implicit GEMM for real GPUs (onnxruntime-web's Conv2dMM tiling). C[oc, p] = sum_k W[oc, k] X[k, p]
// with k = (ic, ky, kx) running over IC*KH*KW and p = (n, oy, ox) over the whole batch, so small planes
// (7x7) still fill tiles. A workgroup of 8x8 invocations computes a TILE x TILE block of C (each invocation
// TPT = 4 consecutive channels x 4 consecutive pixels), staging K in slices of KT through workgroup memory:
// each loaded value is used TILE times from there. The tiles hold vec4s along oc and p, so the inner loop
// reads one vec4 of each per k for 16 multiply-adds (scalar tiles: 8 loads per 16).
// Grid: x covers P = N*OH*OW in tiles of TILE, y covers OC in tiles of TILE.
const TILE: u32 = 32u;
const KT: u32 = 32u;
const TPT: u32 = 4u;

var<workgroup> w_tile: array<array<vec4<f32>, 8>, KT>;  // [k][oc / 4][oc % 4]
var<workgroup> x_tile: array<array<vec4<f32>, 8>, KT>;  // [k][p / 4][p % 4]

// Input value X[k, p] of the implicit im2col matrix for pixel (n, oy, ox); zero in the padding.
fn im2col(k: u32, n: u32, oy: u32, ox: u32) -> f32 {
    let ksize = p.kh * p.kw;
    let ic = k / ksize;
    let r = k % ksize;
    let iy = i32(oy * p.stride + r / p.kw) - i32(p.pad_y);
    let ix = i32(ox * p.stride + r % p.kw) - i32(p.pad_x);
    if (iy < 0 || iy >= i32(p.ih) || ix < 0 || ix >= i32(p.iw)) {
        return 0.0;
    }
    return f32(x[((n * p.ic + ic) * p.ih + u32(iy)) * p.iw + u32(ix)]);
}

// What one invocation stages each K-slice: column `col` of both tiles, rows `row0`, `row0 + 2`, ...; and the
// pixel its x column is (p = n*plane + oy*OW + ox over the whole batch).
struct Stage {
    col: u32, row0: u32, lp_ok: bool, n: u32, oy: u32, ox: u32,
}

fn stage_of(lid: u32, wid: vec3<u32>) -> Stage {
    let plane = p.oh * p.ow;
    let col = lid % TILE;
    let lp = wid.x * TILE + col;
    return Stage(col, lid / TILE, lp < p.n * plane, lp / plane, (lp % plane) / p.ow, lp % p.ow);
}

// w_tile[kk][mm] for a K-slice: slice row kk is element first + kk*step of each weight row (of kdim), for
// kk < count, zero past it and past the last output channel.
fn stage_w(s: Stage, wid: vec3<u32>, first: u32, step: u32, count: u32, kdim: u32) {
    for (var r = s.row0; r < KT; r += 64u / TILE) {
        let wm = wid.y * TILE + r;
        let ok = wm < p.oc && s.col < count;
        w_tile[s.col][r / 4u][r % 4u] = select(0.0, weight(select(0u, wm * kdim + first + s.col * step, ok)), ok);
    }
}

// acc[j] += the slice's products: channel wid.y*TILE + ty*TPT + j, pixels wid.x*TILE + tx*TPT + i.
fn multiply_slice(lid: u32, acc: ptr<function, array<vec4<f32>, TPT>>) {
    let tx = lid % 8u;
    let ty = lid / 8u;
    for (var kk = 0u; kk < KT; kk++) {
        let b = x_tile[kk][tx];
        let a = w_tile[kk][ty];
        (*acc)[0] += a.x * b;
        (*acc)[1] += a.y * b;
        (*acc)[2] += a.z * b;
        (*acc)[3] += a.w * b;
    }
}

// acc[j][i]: channel wid.y*TILE + ty*TPT + j, pixel wid.x*TILE + tx*TPT + i.
fn tiled_acc(lid: u32, wid: vec3<u32>) -> array<vec4<f32>, TPT> {
    if (p.ic >= KT) {
        return tiled_acc_taps(lid, wid);
    }
    let kdim = p.ic * p.kh * p.kw;
    let s = stage_of(lid, wid);
    var acc: array<vec4<f32>, TPT>;
    for (var k0 = 0u; k0 < kdim; k0 += KT) {
        stage_w(s, wid, k0, 1u, kdim - k0, kdim);
        for (var r = s.row0; r < KT; r += 64u / TILE) {
            let xk = k0 + r;
            var v = 0.0;
            if (s.lp_ok && xk < kdim) {
                v = im2col(xk, s.n, s.oy, s.ox);
            }
            x_tile[r][s.col / 4u][s.col % 4u] = v;
        }
        workgroupBarrier();
        multiply_slice(lid, &acc);
        workgroupBarrier();
    }
    return acc;
}

// tiled_acc with K in tap-major order: for each of the KH*KW taps, the input channels in slices of KT. A
// slice's x rows are then one tap at KT consecutive channels of the invocation's pixel: one bounds check per
// tap and an address that steps by a plane, where im2col's order costs four divisions by runtime values per
// staged element (k / (KH*KW), k % (KH*KW), r / KW, r % KW): on an H200 dropping them took the tiled
// convolutions of a batch-256 pass from 34.4 to 26.9 ms (BENCHMARKS.md, "The first real-GPU figures"). For
// IC >= KT only: below it a tap's slice would be mostly zero rows (the first convolution has one channel).
fn tiled_acc_taps(lid: u32, wid: vec3<u32>) -> array<vec4<f32>, TPT> {
    let ksize = p.kh * p.kw;
    let kdim = p.ic * ksize;
    let in_plane = p.ih * p.iw;
    let s = stage_of(lid, wid);
    var acc: array<vec4<f32>, TPT>;
    for (var tap = 0u; tap < ksize; tap++) {
        let iy = i32(s.oy * p.stride + tap / p.kw) - i32(p.pad_y);
        let ix = i32(s.ox * p.stride + tap % p.kw) - i32(p.pad_x);
        let inside = s.lp_ok && iy >= 0 && iy < i32(p.ih) && ix >= 0 && ix < i32(p.iw);
        let at = s.n * p.ic * in_plane + select(0u, u32(iy) * p.iw + u32(ix), inside);
        for (var ic0 = 0u; ic0 < p.ic; ic0 += KT) {
            stage_w(s, wid, ic0 * ksize + tap, ksize, p.ic - ic0, kdim);
            for (var r = s.row0; r < KT; r += 64u / TILE) {
                let ic = ic0 + r;
                var v = 0.0;
                if (inside && ic < p.ic) {
                    v = f32(x[at + ic * in_plane]);
                }
                x_tile[r][s.col / 4u][s.col % 4u] = v;
            }
            workgroupBarrier();
            multiply_slice(lid, &acc);
            workgroupBarrier();
        }
    }
    return acc;
}

// tiled_acc for a 1x1 convolution of a pair input (K = IC: input channel k at the output's own pixel).
fn tiled_acc_pair(lid: u32, wid: vec3<u32>) -> array<vec4<f32>, TPT> {
    let kdim = p.ic;
    let s = stage_of(lid, wid);
    var acc: array<vec4<f32>, TPT>;
    for (var k0 = 0u; k0 < kdim; k0 += KT) {
        stage_w(s, wid, k0, 1u, kdim - k0, kdim);
        for (var r = s.row0; r < KT; r += 64u / TILE) {
            let xk = k0 + r;
            var v = 0.0;
            if (s.lp_ok && xk < kdim) {
                v = pair_value(s.n, xk, s.oy * p.ow + s.ox);
            }
            x_tile[r][s.col / 4u][s.col % 4u] = v;
        }
        workgroupBarrier();
        multiply_slice(lid, &acc);
        workgroupBarrier();
    }
    return acc;
}

// Where tiled value (j, i) goes: (image, channel, output index), or index -1 outside C.
fn tiled_index(lid: u32, wid: vec3<u32>, j: u32, i: u32) -> vec3<i32> {
    let oc = wid.y * TILE + (lid / 8u) * TPT + j;
    let pp = wid.x * TILE + (lid % 8u) * TPT + i;
    let plane = p.oh * p.ow;
    if (oc >= p.oc || pp >= p.n * plane) {
        return vec3<i32>(-1);
    }
    let n = pp / plane;
    return vec3<i32>(i32(n), i32(oc), i32((n * p.oc + oc) * plane + pp % plane));
}

// The tiled epilogues, one channel's vec4 at a time (as the blocked ones, for the same reason).
fn tiled_store(lid: u32, wid: vec3<u32>, j: u32, v: vec4<f32>) {
    for (var i = 0u; i < TPT; i++) {
        let at = tiled_index(lid, wid, j, i);
        if (at.z >= 0) {
            out[at.z] = elem(v[i] + f32(bias[at.y]));
        }
    }
}
fn tiled_store_chan_add(lid: u32, wid: vec3<u32>, j: u32, v: vec4<f32>) {
    for (var i = 0u; i < TPT; i++) {
        let at = tiled_index(lid, wid, j, i);
        if (at.z >= 0) {
            out[at.z] = elem(v[i] + f32(bias[at.y]) + f32(chan_add[u32(at.x) * p.add_stride + p.add_offset + u32(at.y)]));
        }
    }
}
fn tiled_store_residual(lid: u32, wid: vec3<u32>, j: u32, v: vec4<f32>) {
    for (var i = 0u; i < TPT; i++) {
        let at = tiled_index(lid, wid, j, i);
        if (at.z >= 0) {
            out[at.z] = elem(v[i] + f32(bias[at.y]) + f32(residual[at.z]));
        }
    }
}

@compute @workgroup_size(64)
fn tiled(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let acc = tiled_acc(lid, wid);
    for (var j = 0u; j < TPT; j++) {
        tiled_store(lid, wid, j, acc[j]);
    }
}
@compute @workgroup_size(64)
fn tiled_chan_add(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let acc = tiled_acc(lid, wid);
    for (var j = 0u; j < TPT; j++) {
        tiled_store_chan_add(lid, wid, j, acc[j]);
    }
}
@compute @workgroup_size(64)
fn tiled_residual(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let acc = tiled_acc(lid, wid);
    for (var j = 0u; j < TPT; j++) {
        tiled_store_residual(lid, wid, j, acc[j]);
    }
}
@compute @workgroup_size(64)
fn tiled_pair(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let acc = tiled_acc_pair(lid, wid);
    for (var j = 0u; j < TPT; j++) {
        tiled_store(lid, wid, j, acc[j]);
    }
}
