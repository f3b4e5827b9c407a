
// conv2d.wgsl's weights through a uniform-buffer window (the `windowed` kernels): binding 2 holds w from
// output channel p.oc_first on, as many channels as 64 KiB takes, copied there once when the plan is
// compiled (src/gpu/plan.rs). Always f32: these kernels do not run in f16.
// Why: lavapipe (Mesa 22.3) reads a storage value lane by lane in a loop with a bounds check per lane, even
// where every lane reads the same address; a uniform value at an address the same in every lane is one
// load and a broadcast. A blocked 3x3 convolution ran 2.2x faster reading its weights here (BENCHMARKS.md).
// Uniform arrays take 16-byte elements, hence vec4s.
@group(0) @binding(2) var<uniform> w: array<vec4<f32>, 4096>;

fn weight(k: u32) -> f32 {
    let r = k - p.oc_first * p.ic * p.kh * p.kw;
    return w[r >> 2u][r & 3u];
}

// Window1x1x4: the windowed 1x1 kernels where a plane's pixel count is a multiple of 4 (28x28, 14x14), so
// an invocation's run of 4 pixels is one aligned vec4 of x: one lane loop on lavapipe instead of four.
@group(0) @binding(8) var<storage, read> x4: array<vec4<f32>>;    // x; the pair form: a
@group(0) @binding(9) var<storage, read> x_b4: array<vec4<f32>>;  // the pair form: b, channels IC_A..

fn acc1x1_x4(b: Block) -> array<vec4<f32>, 8> {
    var wr = weight_rows(b, p.ic);
    let hw4 = (p.oh * p.ow) >> 2u;
    let at = b.n * p.ic * hw4 + (b.pix0 >> 2u);
    var acc: array<vec4<f32>, 8>;
    for (var ic = 0u; ic < p.ic; ic++) {
        madd8(&acc, &wr, ic, x4[at + ic * hw4]);
    }
    return acc;
}

// Two loops, one per input, rather than a branch per channel (gallivm would run both sides).
fn acc1x1_pair_x4(b: Block) -> array<vec4<f32>, 8> {
    var wr = weight_rows(b, p.ic);
    let hw4 = (p.oh * p.ow) >> 2u;
    let q = b.pix0 >> 2u;
    let cb = p.ic - p.ic_a;
    var acc: array<vec4<f32>, 8>;
    for (var ic = 0u; ic < p.ic_a; ic++) {
        madd8(&acc, &wr, ic, x4[(b.n * p.ic_a + ic) * hw4 + q]);
    }
    for (var ic = 0u; ic < cb; ic++) {
        madd8(&acc, &wr, p.ic_a + ic, x_b4[(b.n * cb + ic) * hw4 + q]);
    }
    return acc;
}

@compute @workgroup_size(64)
fn conv1x1_x4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let b = block1x1(gid, wid);
    if (b.count > 0u) {
        finish(b, acc1x1_x4(b));
    }
}
@compute @workgroup_size(64)
fn conv1x1_x4_chan_add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let b = block1x1(gid, wid);
    if (b.count > 0u) {
        finish_chan_add(b, acc1x1_x4(b));
    }
}
@compute @workgroup_size(64)
fn conv1x1_x4_residual(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let b = block1x1(gid, wid);
    if (b.count > 0u) {
        finish_residual(b, acc1x1_x4(b));
    }
}
@compute @workgroup_size(64)
fn conv1x1_pair_x4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let b = block1x1(gid, wid);
    if (b.count > 0u) {
        finish(b, acc1x1_pair_x4(b));
    }
}

// Window3x3x4: the windowed 3x3 where a row's width is a multiple of 4 (28x28), so an invocation's run of 4
// outputs reads its row's middle four inputs as one aligned vec4 of x, and the two neighbours as a lane of
// the vec4s either side: 3 lane loops per input row on lavapipe instead of 6. The run never straddles a
// row, and a neighbour past the row's edge is a zero of the padding.
fn row3x3_x4(acc: ptr<function, array<vec4<f32>, 8>>, wr: ptr<function, array<u32, 8>>, ox0: u32, plane: u32, iy: i32, k: u32) {
    let inside = iy >= 0 && iy < i32(p.ih);
    let row = plane + u32(clamp(iy, 0, i32(p.ih) - 1)) * p.iw;
    let q = (row + ox0) >> 2u;
    let has_prev = ox0 > 0u;
    let has_next = ox0 + 4u < p.iw;
    // Past an edge, read the middle vec4 again (always in bounds) and select the padding's zero.
    let m = select(vec4<f32>(), x4[q], inside);
    let v0 = select(0.0, x4[select(q, q - 1u, has_prev)].w, inside && has_prev);
    let v5 = select(0.0, x4[select(q, q + 1u, has_next)].x, inside && has_next);
    madd8(acc, wr, k, vec4<f32>(v0, m.x, m.y, m.z));
    madd8(acc, wr, k + 1u, m);
    madd8(acc, wr, k + 2u, vec4<f32>(m.y, m.z, m.w, v5));
}

fn acc3x3_x4(b: Block) -> array<vec4<f32>, 8> {
    let oy = i32(b.pix0 / p.ow);
    let ox0 = b.pix0 % p.ow;
    var wr = weight_rows(b, p.ic * 9u);
    var acc: array<vec4<f32>, 8>;
    for (var ic = 0u; ic < p.ic; ic++) {
        let plane = (b.n * p.ic + ic) * p.ih * p.iw;
        let k = ic * 9u;
        row3x3_x4(&acc, &wr, ox0, plane, oy - 1, k);
        row3x3_x4(&acc, &wr, ox0, plane, oy, k + 3u);
        row3x3_x4(&acc, &wr, ox0, plane, oy + 1, k + 6u);
    }
    return acc;
}

@compute @workgroup_size(64)
fn conv3x3_x4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let b = block3x3(gid, wid);
    if (b.count > 0u) {
        finish(b, acc3x3_x4(b));
    }
}
@compute @workgroup_size(64)
fn conv3x3_x4_chan_add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let b = block3x3(gid, wid);
    if (b.count > 0u) {
        finish_chan_add(b, acc3x3_x4(b));
    }
}
@compute @workgroup_size(64)
fn conv3x3_x4_residual(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let b = block3x3(gid, wid);
    if (b.count > 0u) {
        finish_residual(b, acc3x3_x4(b));
    }
}

// Window3x3x2: the windowed 3x3 where a row's width is even but not a multiple of 4 (14x14): every row
// starts on a vec2, so a run's six inputs ox0-1 .. ox0+4 are lanes of the four vec2s from ox0-2 on: 4 lane
// loops per input row instead of 6. A run may end inside the last vec2 of its row (14 = 4+4+4+2); a vec2
// past the row's edge is padding.
@group(0) @binding(10) var<storage, read> x2: array<vec2<f32>>;

fn row3x3_x2(acc: ptr<function, array<vec4<f32>, 8>>, wr: ptr<function, array<u32, 8>>, ox0: u32, plane: u32, iy: i32, k: u32) {
    let inside = iy >= 0 && iy < i32(p.ih);
    let row = plane + u32(clamp(iy, 0, i32(p.ih) - 1)) * p.iw;
    let h = (row + ox0) >> 1u;
    let has_prev = ox0 > 0u;
    let has_c = ox0 + 2u < p.iw;
    let has_d = ox0 + 4u < p.iw;
    // Past an edge, read the run's first vec2 again (always in bounds) and select the padding's zero.
    let a = select(vec2<f32>(), x2[select(h, h - 1u, has_prev)], inside && has_prev);
    let b2 = select(vec2<f32>(), x2[h], inside);
    let c2 = select(vec2<f32>(), x2[select(h, h + 1u, has_c)], inside && has_c);
    let d = select(vec2<f32>(), x2[select(h, h + 2u, has_d)], inside && has_d);
    madd8(acc, wr, k, vec4<f32>(a.y, b2.x, b2.y, c2.x));
    madd8(acc, wr, k + 1u, vec4<f32>(b2.x, b2.y, c2.x, c2.y));
    madd8(acc, wr, k + 2u, vec4<f32>(b2.y, c2.x, c2.y, d.x));
}

fn acc3x3_x2(b: Block) -> array<vec4<f32>, 8> {
    let oy = i32(b.pix0 / p.ow);
    let ox0 = b.pix0 % p.ow;
    var wr = weight_rows(b, p.ic * 9u);
    var acc: array<vec4<f32>, 8>;
    for (var ic = 0u; ic < p.ic; ic++) {
        let plane = (b.n * p.ic + ic) * p.ih * p.iw;
        let k = ic * 9u;
        row3x3_x2(&acc, &wr, ox0, plane, oy - 1, k);
        row3x3_x2(&acc, &wr, ox0, plane, oy, k + 3u);
        row3x3_x2(&acc, &wr, ox0, plane, oy + 1, k + 6u);
    }
    return acc;
}

@compute @workgroup_size(64)
fn conv3x3_x2(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let b = block3x3(gid, wid);
    if (b.count > 0u) {
        finish(b, acc3x3_x2(b));
    }
}
@compute @workgroup_size(64)
fn conv3x3_x2_chan_add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let b = block3x3(gid, wid);
    if (b.count > 0u) {
        finish_chan_add(b, acc3x3_x2(b));
    }
}
@compute @workgroup_size(64)
fn conv3x3_x2_residual(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let b = block3x3(gid, wid);
    if (b.count > 0u) {
        finish_residual(b, acc3x3_x2(b));
    }
}
