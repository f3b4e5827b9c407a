// 1x1 convolution (a matmul over channels at every pixel): the ResNet shortcuts and the attention
// projections. Same bindings and fusions as conv2d.wgsl.
//
// Layout (all f32, row-major): x [N, IC, HW], w [OC, IC] (or [OC, IC, 1, 1]), bias [OC], chan_add [N, OC]
// (flags & 1), residual [N, OC, HW] (flags & 2), out [N, OC, HW]. Pixels are one flat run of HW per plane.
// Grid: x covers HW in runs of 4 (64 runs per workgroup), y covers OC in blocks of 8, z is the image.
// Each invocation computes 4 pixels x 8 output channels: per input channel, 4 inputs and 8 weights feed 32
// multiply-adds.

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

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let hw = p.oh * p.ow;
    let p0 = gid.x * PX;
    // From workgroup_id, so the compiler sees the weight reads are the same in every lane.
    let n = wid.z;
    let oc0 = wid.y * OCB;
    if (p0 >= hw || n >= p.n || oc0 >= p.oc) {
        return;
    }
    var wrow: array<u32, 8>;
    for (var j = 0u; j < OCB; j++) {
        wrow[j] = select(oc0, oc0 + j, oc0 + j < p.oc) * p.ic;
    }
    // The last run of a plane may be short: clamp its reads in bounds (those sums are not written).
    let last = hw - 1u;
    var acc: array<vec4<f32>, 8>;
    for (var ic = 0u; ic < p.ic; ic++) {
        let base = (n * p.ic + ic) * hw;
        let v = vec4<f32>(x[base + p0], x[base + min(p0 + 1u, last)], x[base + min(p0 + 2u, last)], x[base + min(p0 + 3u, last)]);
        for (var j = 0u; j < OCB; j++) {
            acc[j] += w[wrow[j] + ic] * v;
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
        let plane = (n * p.oc + oc) * hw;
        for (var i = 0u; i < PX; i++) {
            if (p0 + i >= hw) {
                break;
            }
            var v = acc[j][i] + add;
            if ((p.flags & 2u) != 0u) {
                v += residual[plane + p0 + i];
            }
            out[plane + p0 + i] = v;
        }
    }
}
