// 3x3 convolution, stride 1, one pixel of zero padding: the U-Net's most common operation (about 90% of its
// FLOPs), given its own kernel. Same bindings and fusions as conv2d.wgsl, which handles every other shape.
//
// Layout (all f32, row-major):
//   x        [N, IC, H, W]
//   w        [OC, IC, 3, 3]
//   bias     [OC]
//   chan_add [N, OC]            added to channel (n, oc) when flags & 1 (the ResNet's time embedding)
//   residual [N, OC, H, W]      added when flags & 2
//   out      [N, OC, H, W]
// Grid: x covers (row, 4-pixel run) pairs, 64 per workgroup; y covers OC in blocks of 8; z is the image.
// Each invocation computes 4 neighbouring pixels of one row for 8 output channels: per input channel and
// kernel row it loads 6 inputs and 24 weights for 96 multiply-adds (the general kernel does 4 per 5 loads),
// which is what CPU-emulated adapters (lavapipe, SwiftShader) are bound by.

struct Params {
    n: u32, ic: u32, ih: u32, iw: u32,
    oc: u32, oh: u32, ow: u32, kh: u32,
    kw: u32, stride: u32, pad_y: u32, pad_x: u32,
    flags: u32, _p0: u32, _p1: u32, _p2: u32,
}

const PX: u32 = 4u;
const OCB: u32 = 8u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> chan_add: array<f32>;
@group(0) @binding(5) var<storage, read> residual: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

// Input value at (row iy, column ix) of plane `base`, zero outside the image.
fn load(base: u32, iy: i32, ix: i32) -> f32 {
    if (iy < 0 || iy >= i32(p.ih) || ix < 0 || ix >= i32(p.iw)) {
        return 0.0;
    }
    return x[base + u32(iy) * p.iw + u32(ix)];
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let runs = (p.ow + PX - 1u) / PX;
    let oy = gid.x / runs;
    let ox0 = (gid.x % runs) * PX;
    // From workgroup_id, not global_invocation_id: the compiler then knows every lane reads the same weights
    // (one load, not a gather, on SIMD CPU adapters).
    let n = wid.z;
    let oc0 = wid.y * OCB;
    if (oy >= p.oh || n >= p.n || oc0 >= p.oc) {
        return;
    }
    let wstride = p.ic * 9u;
    // Rows of w for the 8 channels; past the last channel, repeat channel oc0 (its sums are not written).
    var wrow: array<u32, 8>;
    for (var j = 0u; j < OCB; j++) {
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
            for (var j = 0u; j < OCB; j++) {
                let r = wrow[j] + k;
                acc[j] += w[r] * a + w[r + 1u] * b + w[r + 2u] * c;
            }
        }
    }
    for (var j = 0u; j < OCB; j++) {
        let oc = oc0 + j;
        if (oc >= p.oc) {
            break;
        }
        var add = bias[oc];
        if ((p.flags & 1u) != 0u) {
            add += chan_add[n * p.oc + oc];
        }
        let row = ((n * p.oc + oc) * p.oh + oy) * p.ow;
        for (var i = 0u; i < PX; i++) {
            let ox = ox0 + i;
            if (ox >= p.ow) {
                break;
            }
            var v = acc[j][i] + add;
            if ((p.flags & 2u) != 0u) {
                v += residual[row + ox];
            }
            out[row + ox] = v;
        }
    }
}
