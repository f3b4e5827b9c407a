// GroupNorm (PyTorch semantics: biased variance over each group's channels and pixels, then a per-channel
// affine), optionally followed by SiLU, which every GroupNorm in the U-Net but attention's is.
//
// Layout (elem: f32, or f16 in an f16 pass; statistics in f32): x, out [N, C, HW] (NCHW flattened);
// gamma, beta [C]. Channels c of group g are g*C/G .. (g+1)*C/G - 1, so a group is one contiguous run of
// (C/G)*HW values.
// Grid: one workgroup of 64 per (group, image): x = group, y = image. The statistics take one pass over
// the group: each invocation keeps Welford's running (count, mean, M2) over its values, and one invocation
// merges the 64 partials by Chan, Golub & LeVeque's pairwise formula. That is as precise as mean-then-
// deviations (no E[x^2] - E[x]^2 cancellation), with one read of the group. The second pass normalises
// channel by channel, so the affine is one multiply-add per value and no index is divided per value (CPU
// adapters have no vector integer division: SwiftShader's GroupNorm 1.4x faster than with i / HW).
// 64 invocations and two barriers: a CPU adapter runs a workgroup's invocations in turn and switches between
// all of them at every barrier (SwiftShader: 4.5x faster than with 256); a GPU still gets G x N workgroups
// per GroupNorm (128 for the shipped model at batch 4).
// main_pair: the input is the channel concatenation of x [N, CA, HW] and x_b [N, C - CA, HW] (the U-Net's
// skip connection), read in place so the concatenation is never written; a group may straddle the two.
// main_x4, main_pair_x4: the same where HW is a multiple of 4 (28x28, 14x14), so every channel's plane
// starts on a vec4: x, x_b and out are read and written four values at a time (one lane loop per four on
// lavapipe, which reads a storage value lane by lane), with one division per four values in the
// statistics. src/gpu/kernels/group_norm.rs picks the form by HW.

alias elem = f32;

struct Params {
    n: u32, c: u32, hw: u32, groups: u32,
    eps: f32, ca: u32, _p1: u32, _p2: u32,
}

// SiLU after the affine (every GroupNorm of the U-Net but attention's): set per pipeline.
override SILU: bool;

const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<elem>;
@group(0) @binding(2) var<storage, read> gamma: array<elem>;
@group(0) @binding(3) var<storage, read> beta: array<elem>;
@group(0) @binding(4) var<storage, read_write> out: array<elem>;
@group(0) @binding(5) var<storage, read> x_b: array<elem>;  // main_pair: channels CA.. of the input
// The x4 entry points' views of x, out and x_b.
@group(0) @binding(6) var<storage, read> x4: array<vec4<elem>>;
@group(0) @binding(7) var<storage, read_write> out4: array<vec4<elem>>;
@group(0) @binding(8) var<storage, read> x_b4: array<vec4<elem>>;

// Every invocation's (count, mean, M2 = sum of squared deviations from the mean), then the group's (mean,
// biased variance).
var<workgroup> partial: array<vec3<f32>, WG>;
var<workgroup> group_stats: vec2<f32>;

// Welford's update of (count, mean, M2) with one value.
fn welford(st: ptr<function, vec3<f32>>, v: f32) {
    let n = (*st).x + 1.0;
    let d = v - (*st).y;
    let mean = (*st).y + d / n;
    *st = vec3<f32>(n, mean, (*st).z + d * (v - mean));
}

// Welford's update with four values: their own (count 4, mean, M2) merged into the running one by Chan et
// al.'s formula, as reduce_stats merges the invocations'.
fn welford4(st: ptr<function, vec3<f32>>, v: vec4<f32>) {
    let m = (v.x + v.y + v.z + v.w) * 0.25;
    let dv = v - vec4<f32>(m);
    let n = (*st).x + 4.0;
    let d = m - (*st).y;
    let f = 4.0 / n;
    *st = vec3<f32>(n, (*st).y + d * f, (*st).z + dot(dv, dv) + d * d * (*st).x * f);
}

// The workgroup's (mean, biased variance) from every invocation's (count, mean, M2), merged in turn by one
// invocation (Chan et al.'s pairwise update).
fn reduce_stats(lid: u32, st: vec3<f32>) -> vec2<f32> {
    partial[lid] = st;
    workgroupBarrier();
    if (lid == 0u) {
        var a = partial[0];
        for (var i = 1u; i < WG; i++) {
            let b = partial[i];
            let n = a.x + b.x;
            if (b.x > 0.0) {
                let d = b.y - a.y;
                let f = b.x / n;
                a = vec3<f32>(n, a.y + d * f, a.z + b.z + d * d * a.x * f);
            }
        }
        group_stats = vec2<f32>(a.y, a.z / a.x);
    }
    workgroupBarrier();
    return group_stats;
}

// Channel ch's (scale, shift): the normalisation and the affine as one multiply-add.
fn affine(ch: u32, stats: vec2<f32>) -> vec2<f32> {
    let scale = inverseSqrt(stats.y + p.eps) * f32(gamma[ch]);
    return vec2<f32>(scale, f32(beta[ch]) - stats.x * scale);
}

fn activate(v: f32) -> f32 {
    if (SILU) {
        return v / (1.0 + exp(-v));
    }
    return v;
}

fn activate4(v: vec4<f32>) -> vec4<f32> {
    if (SILU) {
        return v / (1.0 + exp(-v));
    }
    return v;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = wid.x;
    let n = wid.y;
    let cpg = p.c / p.groups;
    let count = cpg * p.hw;
    let base = (n * p.c + g * cpg) * p.hw;

    var st = vec3<f32>(0.0);
    for (var i = lid; i < count; i += WG) {
        welford(&st, f32(x[base + i]));
    }
    let stats = reduce_stats(lid, st);

    for (var c = 0u; c < cpg; c++) {
        let ab = affine(g * cpg + c, stats);
        let plane = base + c * p.hw;
        for (var i = lid; i < p.hw; i += WG) {
            out[plane + i] = elem(activate(f32(x[plane + i]) * ab.x + ab.y));
        }
    }
}

// Pixel i of channel c (of the whole input) of image n in main_pair's split input. main_pair duplicates
// main's loops because a WGSL entry point binds every buffer its call graph names: one shared body would
// make main bind x_b too.
fn pair_value(n: u32, c: u32, i: u32) -> f32 {
    if (c < p.ca) {
        return f32(x[(n * p.ca + c) * p.hw + i]);
    }
    return f32(x_b[(n * (p.c - p.ca) + c - p.ca) * p.hw + i]);
}

@compute @workgroup_size(64)
fn main_pair(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = wid.x;
    let n = wid.y;
    let cpg = p.c / p.groups;
    let c0 = g * cpg;

    var st = vec3<f32>(0.0);
    for (var c = c0; c < c0 + cpg; c++) {
        for (var i = lid; i < p.hw; i += WG) {
            welford(&st, pair_value(n, c, i));
        }
    }
    let stats = reduce_stats(lid, st);

    for (var c = c0; c < c0 + cpg; c++) {
        let ab = affine(c, stats);
        let plane = (n * p.c + c) * p.hw;
        for (var i = lid; i < p.hw; i += WG) {
            out[plane + i] = elem(activate(pair_value(n, c, i) * ab.x + ab.y));
        }
    }
}

@compute @workgroup_size(64)
fn main_x4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = wid.x;
    let n = wid.y;
    let cpg = p.c / p.groups;
    let hw4 = p.hw / 4u;
    let base = (n * p.c + g * cpg) * hw4;

    var st = vec3<f32>(0.0);
    for (var i = lid; i < cpg * hw4; i += WG) {
        welford4(&st, vec4<f32>(x4[base + i]));
    }
    let stats = reduce_stats(lid, st);

    for (var c = 0u; c < cpg; c++) {
        let ab = affine(g * cpg + c, stats);
        let plane = base + c * hw4;
        for (var i = lid; i < hw4; i += WG) {
            out4[plane + i] = vec4<elem>(activate4(vec4<f32>(x4[plane + i]) * ab.x + ab.y));
        }
    }
}

// pair_value's vec4 of pixels 4*i4 .. 4*i4+3.
fn pair_value4(n: u32, c: u32, i4: u32) -> vec4<f32> {
    let hw4 = p.hw / 4u;
    if (c < p.ca) {
        return vec4<f32>(x4[(n * p.ca + c) * hw4 + i4]);
    }
    return vec4<f32>(x_b4[(n * (p.c - p.ca) + c - p.ca) * hw4 + i4]);
}

@compute @workgroup_size(64)
fn main_pair_x4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = wid.x;
    let n = wid.y;
    let cpg = p.c / p.groups;
    let c0 = g * cpg;
    let hw4 = p.hw / 4u;

    var st = vec3<f32>(0.0);
    for (var c = c0; c < c0 + cpg; c++) {
        for (var i = lid; i < hw4; i += WG) {
            welford4(&st, pair_value4(n, c, i));
        }
    }
    let stats = reduce_stats(lid, st);

    for (var c = c0; c < c0 + cpg; c++) {
        let ab = affine(c, stats);
        let plane = (n * p.c + c) * hw4;
        for (var i = lid; i < hw4; i += WG) {
            out4[plane + i] = vec4<elem>(activate4(pair_value4(n, c, i) * ab.x + ab.y));
        }
    }
}
