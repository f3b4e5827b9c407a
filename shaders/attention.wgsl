// Multi-head self-attention over the pixels of a feature map, in three passes (diffusers' `Attention` with
// `AttnProcessor`: softmax(Q K^T * scale) V per head). The projections (to_q/to_k/to_v/to_out) are 1x1
// convolutions in conv2d.wgsl; these kernels only do the products and the softmax.
//
// Layout (f32): q, k, v, out [N, C, L] with C = heads * dh (channel h*dh + d is dimension d of head h) and
// L = H*W tokens; scores [N, heads, L, L] (row i: query token i, column j: key token j).
//   scores  grid: x = key j (64 per workgroup), y = query i, z = n*heads + h
//   softmax grid: one workgroup of 64 per row: x = i, y = n*heads + h; rows are normalised in place
//   apply   grid: x = query i (64 per workgroup), y = d, z = n*heads + h

struct Params {
    n: u32, c: u32, l: u32, heads: u32,
    dh: u32, scale: f32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;        // scores: q; apply: scores (probabilities)
@group(0) @binding(2) var<storage, read> b: array<f32>;        // scores: k; apply: v
@group(0) @binding(3) var<storage, read_write> out: array<f32>;  // scores: scores; apply: out

@compute @workgroup_size(64)
fn scores(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    let i = gid.y;
    let nh = gid.z;
    if (j >= p.l || i >= p.l) {
        return;
    }
    let n = nh / p.heads;
    let h = nh % p.heads;
    let base = (n * p.c + h * p.dh) * p.l;
    var acc = 0.0;
    for (var d = 0u; d < p.dh; d++) {
        acc += a[base + d * p.l + i] * b[base + d * p.l + j];
    }
    out[(nh * p.l + i) * p.l + j] = acc * p.scale;
}

var<workgroup> red: array<f32, 64>;

fn row_reduce(lid: u32, v: f32, is_max: bool) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red[lid] = select(red[lid] + red[lid + s], max(red[lid], red[lid + s]), is_max);
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

// Entry point for the softmax pass: binding 3 holds the scores, rewritten as probabilities.
@compute @workgroup_size(64)
fn softmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = (wid.y * p.l + wid.x) * p.l;
    var m = -3.0e38;
    for (var j = lid; j < p.l; j += 64u) {
        m = max(m, out[row + j]);
    }
    m = row_reduce(lid, m, true);
    var s = 0.0;
    for (var j = lid; j < p.l; j += 64u) {
        let e = exp(out[row + j] - m);
        out[row + j] = e;
        s += e;
    }
    let inv = 1.0 / row_reduce(lid, s, false);
    for (var j = lid; j < p.l; j += 64u) {
        out[row + j] *= inv;
    }
}

@compute @workgroup_size(64)
fn apply(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    let d = gid.y;
    let nh = gid.z;
    if (i >= p.l || d >= p.dh) {
        return;
    }
    let n = nh / p.heads;
    let h = nh % p.heads;
    let vrow = ((n * p.c + h * p.dh) + d) * p.l;
    let prow = (nh * p.l + i) * p.l;
    var acc = 0.0;
    for (var j = 0u; j < p.l; j++) {
        acc += a[prow + j] * b[vrow + j];
    }
    out[vrow + i] = acc;
}
