// Multi-head self-attention over the pixels of a feature map, in three passes (diffusers' `Attention` with
// `AttnProcessor`: softmax(Q K^T * scale) V per head). The projections (to_q/to_k/to_v/to_out) are 1x1
// convolutions in conv2d.wgsl; these kernels only do the products and the softmax.
//
// Layout: q, k, v, out [N, C, L] in elem (f32, or f16 in an f16 pass; products, softmax and sums in f32)
// with C = heads * dh (channel h*dh + d is dimension d of head h) and L = H*W tokens; scores [N, heads, L, L]
// in f32, key-major (row j: key token j, column i: query token i), so that every pass's neighbouring
// invocations, which take neighbouring queries, touch neighbouring addresses: the softmax of query i is
// column i (a row per invocation was 64 rows apart per workgroup, every load its own cache line on a GPU),
// and apply reads four queries' probabilities as one run.
//   scores  grid: x = runs of 4 queries i (64 per workgroup), y = runs of 8 keys j, z = n*heads + h
//   softmax grid: one invocation per query (n*heads + h)*L + i, 64 per workgroup; columns normalised in place
//   apply   grid: x = runs of 4 queries i (64 per workgroup), y = runs of 8 dimensions d, z = n*heads + h
// The two products compute an 8x4 block of outputs per invocation (12 loads per 32 multiply-adds; a 4x4
// block, 8 per 16, was 1.2-1.4x slower on lavapipe, where every load is a loop over the lanes), with the
// run that is the same for every lane of a workgroup taken from workgroup_id.

alias elem = f32;

// nh, win: the windowed products' (image, head) and where its K or V block starts in the window (elements).
struct Params {
    n: u32, c: u32, l: u32, heads: u32,
    dh: u32, scale: f32, nh: u32, win: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<elem>;        // scores, fused: q
@group(0) @binding(2) var<storage, read> b: array<elem>;        // scores, fused: k; apply: v
@group(0) @binding(3) var<storage, read_write> out: array<elem>;  // apply, fused: out
@group(0) @binding(4) var<storage, read> v_in: array<elem>;      // fused: v
// The L x L scores stay f32 in an f16 pass too (a score near 20 stored in f16 moves its probability by 0.5%):
@group(0) @binding(5) var<storage, read_write> scores_rw: array<f32>;  // scores: written; softmax: in place
@group(0) @binding(6) var<storage, read> probs: array<f32>;            // apply: the probabilities
// The windowed products (below):
@group(0) @binding(8) var<uniform> kv_window: array<vec4<f32>, 4096>;  // scores_window: K; apply_window: V
@group(0) @binding(9) var<storage, read> q4: array<vec4<f32>>;          // scores_window: q
@group(0) @binding(10) var<storage, read> probs4: array<vec4<f32>>;     // apply_window: the probabilities

// Four consecutive values of row `row` (length p.l) from column c0, clamped in bounds (extra lanes unused).
fn four(buf_is_a: bool, row: u32, c0: u32) -> vec4<f32> {
    let last = p.l - 1u;
    let c = vec4<u32>(c0, min(c0 + 1u, last), min(c0 + 2u, last), min(c0 + 3u, last));
    if (buf_is_a) {
        return vec4<f32>(f32(a[row + c.x]), f32(a[row + c.y]), f32(a[row + c.z]), f32(a[row + c.w]));
    }
    return vec4<f32>(f32(b[row + c.x]), f32(b[row + c.y]), f32(b[row + c.z]), f32(b[row + c.w]));
}

@compute @workgroup_size(64)
fn scores(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let i0 = gid.x * 4u;
    let j0 = wid.y * 8u;
    let nh = wid.z;
    if (i0 >= p.l || j0 >= p.l) {
        return;
    }
    let n = nh / p.heads;
    let h = nh % p.heads;
    let base = (n * p.c + h * p.dh) * p.l;
    var acc: array<vec4<f32>, 8>;  // acc[r][c]: key j0+r, query i0+c
    for (var d = 0u; d < p.dh; d++) {
        let ka = four(false, base + d * p.l, j0);
        let kb = four(false, base + d * p.l, min(j0 + 4u, p.l - 1u));
        let qv = four(true, base + d * p.l, i0);
        acc[0] += ka.x * qv;
        acc[1] += ka.y * qv;
        acc[2] += ka.z * qv;
        acc[3] += ka.w * qv;
        acc[4] += kb.x * qv;
        acc[5] += kb.y * qv;
        acc[6] += kb.z * qv;
        acc[7] += kb.w * qv;
    }
    for (var r = 0u; r < 8u; r++) {
        if (j0 + r < p.l) {
            store_scores(nh, j0 + r, i0, acc[r] * p.scale);
        }
    }
}

// Scores of key j against queries i0 .. i0+3 (those inside). The epilogues take one vec4 of the accumulator
// array at a time: indexing it twice with loop variables keeps it in memory on lavapipe (conv2d.wgsl).
fn store_scores(nh: u32, j: u32, i0: u32, v: vec4<f32>) {
    for (var c = 0u; c < 4u; c++) {
        if (i0 + c < p.l) {
            scores_rw[(nh * p.l + j) * p.l + i0 + c] = v[c];
        }
    }
}

// Entry point for the softmax pass: the scores, rewritten as probabilities, one query (a column) per
// invocation. No workgroup memory and no barriers: CPU adapters switch between all 64 invocations at every
// barrier (SwiftShader, shipped model at batch 4: 10–12 ms per pass, against 97–103 for a workgroup of 64
// per query). A GPU still has N*heads*L queries to spread (784 per attention at batch 4), each a few
// hundred values.
@compute @workgroup_size(64)
fn softmax(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= p.n * p.heads * p.l) {
        return;
    }
    // Query i of (image, head) nh: column i of that head's L x L block.
    let col = (gid.x / p.l) * p.l * p.l + gid.x % p.l;
    var m = -3.0e38;
    for (var j = 0u; j < p.l; j++) {
        m = max(m, scores_rw[col + j * p.l]);
    }
    var s = 0.0;
    for (var j = 0u; j < p.l; j++) {
        let e = exp(scores_rw[col + j * p.l] - m);
        scores_rw[col + j * p.l] = e;
        s += e;
    }
    let inv = 1.0 / s;
    for (var j = 0u; j < p.l; j++) {
        scores_rw[col + j * p.l] *= inv;
    }
}

@compute @workgroup_size(64)
fn apply(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let i0 = gid.x * 4u;
    let d0 = wid.y * 8u;
    let nh = wid.z;
    if (i0 >= p.l || d0 >= p.dh) {
        return;
    }
    let n = nh / p.heads;
    let h = nh % p.heads;
    let vbase = (n * p.c + h * p.dh) * p.l;
    let last_i = p.l - 1u;
    let last_d = p.dh - 1u;
    // Columns of the probabilities for the 4 queries, and rows of v for the 8 dimensions (clamped; extras
    // unused).
    let pcol = vec4<u32>(i0, min(i0 + 1u, last_i), min(i0 + 2u, last_i), min(i0 + 3u, last_i)) + nh * p.l * p.l;
    let va = vec4<u32>(d0, min(d0 + 1u, last_d), min(d0 + 2u, last_d), min(d0 + 3u, last_d)) * p.l + vbase;
    let vb = vec4<u32>(min(d0 + 4u, last_d), min(d0 + 5u, last_d), min(d0 + 6u, last_d), min(d0 + 7u, last_d)) * p.l + vbase;
    var acc: array<vec4<f32>, 8>;  // acc[dd][r]: dimension d0+dd of query i0+r
    for (var j = 0u; j < p.l; j++) {
        let pj = pcol + j * p.l;
        let pv = vec4<f32>(probs[pj.x], probs[pj.y], probs[pj.z], probs[pj.w]);
        acc[0] += f32(b[va.x + j]) * pv;
        acc[1] += f32(b[va.y + j]) * pv;
        acc[2] += f32(b[va.z + j]) * pv;
        acc[3] += f32(b[va.w + j]) * pv;
        acc[4] += f32(b[vb.x + j]) * pv;
        acc[5] += f32(b[vb.y + j]) * pv;
        acc[6] += f32(b[vb.z + j]) * pv;
        acc[7] += f32(b[vb.w + j]) * pv;
    }
    for (var dd = 0u; dd < 8u; dd++) {
        if (d0 + dd < p.dh) {
            store_out(vbase + (d0 + dd) * p.l, i0, acc[dd]);
        }
    }
}

// Dimension row `row` of out at queries i0 .. i0+3 (those inside).
fn store_out(row: u32, i0: u32, v: vec4<f32>) {
    for (var r = 0u; r < 4u; r++) {
        if (i0 + r < p.l) {
            out[row + i0 + r] = elem(v[r]);
        }
    }
}

// fused: the whole softmax(Q K^T * scale) V in one kernel, flash-attention style (Dao et al. 2022): no L x L
// scores in memory. A workgroup of 64 takes BQ queries of one (image, head), loops over the keys in tiles of
// BK through workgroup memory, and keeps per query a running max m, a running sum l and the unnormalised
// output, rescaled by exp(m_old - m_new) when the max grows ("online softmax"). Needs dh <= DMAX (the tiles
// must fit 16 KiB of workgroup memory); wider heads use the three-pass kernels.
// Grid: x = query blocks of BQ, y = n*heads + h. Invocation lid owns output dimension d = lid for all BQ queries.
const BQ: u32 = 16u;
const BK: u32 = 16u;
const DMAX: u32 = 64u;
const NEG: f32 = -1.0e30;

var<workgroup> q_t: array<f32, 1024>;   // [d][i], DMAX x BQ
var<workgroup> k_t: array<f32, 1024>;   // [d][j], DMAX x BK
var<workgroup> v_t: array<f32, 1024>;   // [d][j]
var<workgroup> p_t: array<f32, 256>;    // [i][j]: scores, then exp(score - m)
var<workgroup> row_m: array<f32, BQ>;
var<workgroup> row_l: array<f32, BQ>;
var<workgroup> row_alpha: array<f32, BQ>;

@compute @workgroup_size(64)
fn fused(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let nh = wid.y;
    let n = nh / p.heads;
    let h = nh % p.heads;
    let base = (n * p.c + h * p.dh) * p.l;
    let q0 = wid.x * BQ;
    // Q block, zero past dh or the last query (those rows are never written).
    for (var e = lid; e < DMAX * BQ; e += 64u) {
        let d = e / BQ;
        let i = e % BQ;
        q_t[e] = select(0.0, f32(a[base + min(d, p.dh - 1u) * p.l + min(q0 + i, p.l - 1u)]), d < p.dh && q0 + i < p.l);
    }
    if (lid < BQ) {
        row_m[lid] = NEG;
        row_l[lid] = 0.0;
    }
    var o: array<f32, BQ>;
    workgroupBarrier();
    for (var j0 = 0u; j0 < p.l; j0 += BK) {
        for (var e = lid; e < DMAX * BK; e += 64u) {
            let d = e / BK;
            let j = e % BK;
            let ok = d < p.dh && j0 + j < p.l;
            let at = base + min(d, p.dh - 1u) * p.l + min(j0 + j, p.l - 1u);
            k_t[e] = select(0.0, f32(b[at]), ok);
            v_t[e] = select(0.0, f32(v_in[at]), ok);
        }
        workgroupBarrier();
        for (var e = lid; e < BQ * BK; e += 64u) {
            let i = e / BK;
            let j = e % BK;
            var s = 0.0;
            for (var d = 0u; d < p.dh; d++) {
                s += q_t[d * BQ + i] * k_t[d * BK + j];
            }
            p_t[e] = select(NEG, s * p.scale, j0 + j < p.l);
        }
        workgroupBarrier();
        if (lid < BQ) {
            let m_old = row_m[lid];
            var m_new = m_old;
            for (var j = 0u; j < BK; j++) {
                m_new = max(m_new, p_t[lid * BK + j]);
            }
            var sum = 0.0;
            for (var j = 0u; j < BK; j++) {
                let e = exp(p_t[lid * BK + j] - m_new);
                p_t[lid * BK + j] = e;
                sum += e;
            }
            let alpha = exp(m_old - m_new);
            row_alpha[lid] = alpha;
            row_l[lid] = alpha * row_l[lid] + sum;
            row_m[lid] = m_new;
        }
        workgroupBarrier();
        let d = lid;
        for (var i = 0u; i < BQ; i++) {
            var acc = o[i] * row_alpha[i];
            for (var j = 0u; j < BK; j++) {
                acc += p_t[i * BK + j] * v_t[d * BK + j];
            }
            o[i] = acc;
        }
        workgroupBarrier();
    }
    if (lid < p.dh) {
        for (var i = 0u; i < BQ; i++) {
            if (q0 + i < p.l) {
                out[base + lid * p.l + q0 + i] = elem(o[i] / row_l[i]);
            }
        }
    }
}

// The windowed products (the `windowed` family: f32, L a multiple of 4): scores and apply for one (image,
// head) per dispatch, p.nh, with that head's K (scores) or V (apply) block [dh, L] bound in place as a
// uniform window from element p.win on (src/gpu/plan.rs binds an activation's slice so). The keys (values)
// an invocation reads depend only on its workgroup, so on lavapipe each is one load and a broadcast from the
// uniform buffer, where a storage load is a loop over the 8 lanes (conv2d_window.wgsl); the lane-varying
// operand, four queries' q or probabilities, is one vec4 load (one lane loop for four values). Per
// dimension (key) 1 lane loop per 32 multiply-adds, against the storage kernels' 12. Same grids as scores
// and apply with z = 1, same block per invocation, same stores.
fn kv(k: u32) -> f32 {
    let r = p.win + k;
    return kv_window[r >> 2u][r & 3u];
}

@compute @workgroup_size(64)
fn scores_window(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let i0 = gid.x * 4u;
    let j0 = wid.y * 8u;
    if (i0 >= p.l || j0 >= p.l) {
        return;
    }
    let n = p.nh / p.heads;
    let h = p.nh % p.heads;
    let q_at = ((n * p.c + h * p.dh) * p.l + i0) >> 2u;  // i0 and L are multiples of 4
    let q_row = p.l >> 2u;
    // The 8 keys' columns (clamped; extras unused), the same for every lane.
    let last = p.l - 1u;
    let ja = vec4<u32>(j0, min(j0 + 1u, last), min(j0 + 2u, last), min(j0 + 3u, last));
    let jb = vec4<u32>(min(j0 + 4u, last), min(j0 + 5u, last), min(j0 + 6u, last), min(j0 + 7u, last));
    var acc: array<vec4<f32>, 8>;  // acc[r][c]: key j0+r, query i0+c
    for (var d = 0u; d < p.dh; d++) {
        let qv = q4[q_at + d * q_row];
        let row = d * p.l;
        acc[0] += kv(row + ja.x) * qv;
        acc[1] += kv(row + ja.y) * qv;
        acc[2] += kv(row + ja.z) * qv;
        acc[3] += kv(row + ja.w) * qv;
        acc[4] += kv(row + jb.x) * qv;
        acc[5] += kv(row + jb.y) * qv;
        acc[6] += kv(row + jb.z) * qv;
        acc[7] += kv(row + jb.w) * qv;
    }
    for (var r = 0u; r < 8u; r++) {
        if (j0 + r < p.l) {
            store_scores(p.nh, j0 + r, i0, acc[r] * p.scale);
        }
    }
}

@compute @workgroup_size(64)
fn apply_window(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let i0 = gid.x * 4u;
    let d0 = wid.y * 8u;
    if (i0 >= p.l || d0 >= p.dh) {
        return;
    }
    let n = p.nh / p.heads;
    let h = p.nh % p.heads;
    let vbase = (n * p.c + h * p.dh) * p.l;
    // The 8 dimensions' rows of V in the window (clamped; extras unused), the same for every lane.
    let last_d = p.dh - 1u;
    let ra = vec4<u32>(d0, min(d0 + 1u, last_d), min(d0 + 2u, last_d), min(d0 + 3u, last_d)) * p.l;
    let rb = vec4<u32>(min(d0 + 4u, last_d), min(d0 + 5u, last_d), min(d0 + 6u, last_d), min(d0 + 7u, last_d)) * p.l;
    let p_at = (p.nh * p.l * p.l + i0) >> 2u;  // key-major: row j holds the queries' probabilities
    let p_row = p.l >> 2u;
    var acc: array<vec4<f32>, 8>;  // acc[dd][r]: dimension d0+dd of query i0+r
    for (var j = 0u; j < p.l; j++) {
        let pv = probs4[p_at + j * p_row];
        acc[0] += kv(ra.x + j) * pv;
        acc[1] += kv(ra.y + j) * pv;
        acc[2] += kv(ra.z + j) * pv;
        acc[3] += kv(ra.w + j) * pv;
        acc[4] += kv(rb.x + j) * pv;
        acc[5] += kv(rb.y + j) * pv;
        acc[6] += kv(rb.z + j) * pv;
        acc[7] += kv(rb.w + j) * pv;
    }
    for (var dd = 0u; dd < 8u; dd++) {
        if (d0 + dd < p.dh) {
            store_out(vbase + (d0 + dd) * p.l, i0, acc[dd]);
        }
    }
}
