// 2-D convolution with fused bias, per-channel add and residual: three entry points over one layout.
//   general: any kernel size, stride and zero padding (the strided downsamplers)
//   conv3x3: 3x3, stride 1, one pixel of padding (about 90% of the U-Net's FLOPs)
//   conv1x1: 1x1, stride 1 (ResNet shortcuts, attention projections: a matmul over channels)
// src/gpu/kernels/conv2d.rs picks one per convolution.
//
// Layout (all f32, row-major):
//   x        [N, IC, IH, IW]
//   w        [OC, IC, KH, KW]   (PyTorch's Conv2d weight; [OC, IC] for a 1x1 or linear projection)
//   bias     [OC]
//   chan_add [N, OC]            added to every pixel of channel (n, oc) when flags & 1 (the ResNet block's
//                               projected time embedding, fused here to save a pass over the activations)
//   residual [N, OC, OH, OW]    added when flags & 2 (skip connections: ResNet shortcut, attention residual)
//   out      [N, OC, OH, OW]
// Padding may be asymmetric: (pad_y, pad_x) zeros before, and as many after as OH/OW imply (diffusers'
// downsample_padding = 0 pads only bottom and right).
//
// Why three kernels: CPU-emulated adapters (lavapipe, SwiftShader) are bound by loads per multiply-add. The
// general kernel does 4 per 5 loads; the blocked ones compute 4 pixels x 8 output channels per invocation
// (conv3x3: 96 multiply-adds per 30 loads; conv1x1: 32 per 12), and take the channel block and image from
// workgroup_id so the compiler sees that every lane reads the same weights (one load, not a gather).

struct Params {
    n: u32, ic: u32, ih: u32, iw: u32,
    oc: u32, oh: u32, ow: u32, kh: u32,
    kw: u32, stride: u32, pad_y: u32, pad_x: u32,
    flags: u32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> chan_add: array<f32>;
@group(0) @binding(5) var<storage, read> residual: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

// general: output channels per invocation. Blocked kernels: pixels and output channels per invocation.
const OCB: u32 = 4u;
const PX: u32 = 4u;
const BLOCK_OC: u32 = 8u;

// Bias, the optional per-channel add and residual, then the store of output value `o` of channel (n, oc):
// the same epilogue for every entry point.
fn finish(n: u32, oc: u32, o: u32, acc: f32) {
    var v = acc + bias[oc];
    if ((p.flags & 1u) != 0u) {
        v += chan_add[n * p.oc + oc];
    }
    if ((p.flags & 2u) != 0u) {
        v += residual[o];
    }
    out[o] = v;
}

// general grid: x covers OH*OW pixels (64 per workgroup), y covers OC in blocks of OCB, z is the image.
@compute @workgroup_size(64)
fn general(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let pix = gid.x;
    // From workgroup_id: the compiler then sees that all lanes read the same weights (no gathers on CPU adapters).
    let n = wid.z;
    let oc0 = wid.y * OCB;
    if (pix >= p.oh * p.ow || n >= p.n || oc0 >= p.oc) {
        return;
    }
    let oy = pix / p.ow;
    let ox = pix % p.ow;
    let iy0 = i32(oy * p.stride) - i32(p.pad_y);
    let ix0 = i32(ox * p.stride) - i32(p.pad_x);
    let ksize = p.kh * p.kw;
    let wstride = p.ic * ksize;  // distance between consecutive output channels in w

    var acc = vec4<f32>(0.0);
    for (var ic = 0u; ic < p.ic; ic++) {
        let xbase = (n * p.ic + ic) * p.ih * p.iw;
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
                let v = x[xbase + u32(iy) * p.iw + u32(ix)];
                let k = wbase + ky * p.kw + kx;
                // Out-of-range channels of the last block read channel oc0's weights; their sums are dropped.
                let k1 = select(k, k + wstride, oc0 + 1u < p.oc);
                let k2 = select(k, k + 2u * wstride, oc0 + 2u < p.oc);
                let k3 = select(k, k + 3u * wstride, oc0 + 3u < p.oc);
                acc += v * vec4<f32>(w[k], w[k1], w[k2], w[k3]);
            }
        }
    }
    for (var j = 0u; j < OCB; j++) {
        let oc = oc0 + j;
        if (oc >= p.oc) {
            break;
        }
        finish(n, oc, ((n * p.oc + oc) * p.oh + oy) * p.ow + ox, acc[j]);
    }
}

// Input value at (row iy, column ix) of plane `base`, zero outside the image.
fn load(base: u32, iy: i32, ix: i32) -> f32 {
    if (iy < 0 || iy >= i32(p.ih) || ix < 0 || ix >= i32(p.iw)) {
        return 0.0;
    }
    return x[base + u32(iy) * p.iw + u32(ix)];
}

// conv3x3 grid: x covers (row, run of PX pixels) pairs, 64 per workgroup; y covers OC in blocks of 8; z is the image.
@compute @workgroup_size(64)
fn conv3x3(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let runs = (p.ow + PX - 1u) / PX;
    let oy = gid.x / runs;
    let ox0 = (gid.x % runs) * PX;
    // From workgroup_id, not global_invocation_id: the compiler then knows every lane reads the same weights
    // (one load, not a gather, on SIMD CPU adapters).
    let n = wid.z;
    let oc0 = wid.y * BLOCK_OC;
    if (oy >= p.oh || n >= p.n || oc0 >= p.oc) {
        return;
    }
    let wstride = p.ic * 9u;
    // Rows of w for the 8 channels; past the last channel, repeat channel oc0 (its sums are not written).
    var wrow: array<u32, 8>;
    for (var j = 0u; j < BLOCK_OC; j++) {
        wrow[j] = select(oc0, oc0 + j, oc0 + j < p.oc) * wstride;
    }
    var acc: array<vec4<f32>, 8>;
    for (var ic = 0u; ic < p.ic; ic++) {
        let base = (n * p.ic + ic) * p.ih * p.iw;
        for (var ky = 0u; ky < 3u; ky++) {
            let iy = i32(oy + ky) - 1;
            let ix = i32(ox0) - 1;
            let v0 = load(base, iy, ix);
            let v1 = load(base, iy, ix + 1);
            let v2 = load(base, iy, ix + 2);
            let v3 = load(base, iy, ix + 3);
            let v4 = load(base, iy, ix + 4);
            let v5 = load(base, iy, ix + 5);
            let a = vec4<f32>(v0, v1, v2, v3);
            let b = vec4<f32>(v1, v2, v3, v4);
            let c = vec4<f32>(v2, v3, v4, v5);
            let k = ic * 9u + ky * 3u;
            for (var j = 0u; j < BLOCK_OC; j++) {
                let r = wrow[j] + k;
                acc[j] += w[r] * a + w[r + 1u] * b + w[r + 2u] * c;
            }
        }
    }
    for (var j = 0u; j < BLOCK_OC; j++) {
        let oc = oc0 + j;
        if (oc >= p.oc) {
            break;
        }
        let row = ((n * p.oc + oc) * p.oh + oy) * p.ow;
        for (var i = 0u; i < PX; i++) {
            if (ox0 + i >= p.ow) {
                break;
            }
            finish(n, oc, row + ox0 + i, acc[j][i]);
        }
    }
}

// conv1x1 grid: x covers OH*OW in runs of PX (64 runs per workgroup), y covers OC in blocks of 8, z is the image.
@compute @workgroup_size(64)
fn conv1x1(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let hw = p.oh * p.ow;
    let p0 = gid.x * PX;
    // From workgroup_id, so the compiler sees the weight reads are the same in every lane.
    let n = wid.z;
    let oc0 = wid.y * BLOCK_OC;
    if (p0 >= hw || n >= p.n || oc0 >= p.oc) {
        return;
    }
    var wrow: array<u32, 8>;
    for (var j = 0u; j < BLOCK_OC; j++) {
        wrow[j] = select(oc0, oc0 + j, oc0 + j < p.oc) * p.ic;
    }
    // The last run of a plane may be short: clamp its reads in bounds (those sums are not written).
    let last = hw - 1u;
    var acc: array<vec4<f32>, 8>;
    for (var ic = 0u; ic < p.ic; ic++) {
        let base = (n * p.ic + ic) * hw;
        let v = vec4<f32>(x[base + p0], x[base + min(p0 + 1u, last)], x[base + min(p0 + 2u, last)], x[base + min(p0 + 3u, last)]);
        for (var j = 0u; j < BLOCK_OC; j++) {
            acc[j] += w[wrow[j] + ic] * v;
        }
    }
    for (var j = 0u; j < BLOCK_OC; j++) {
        let oc = oc0 + j;
        if (oc >= p.oc) {
            break;
        }
        let plane = (n * p.oc + oc) * hw;
        for (var i = 0u; i < PX; i++) {
            if (p0 + i >= hw) {
                break;
            }
            finish(n, oc, plane + p0 + i, acc[j][i]);
        }
    }
}
