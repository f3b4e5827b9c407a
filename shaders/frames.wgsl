// Packs f32 images in model range [-1, 1] into bytes (0..255, four per u32, little-endian) for display and
// for the trajectory the page's Timestep slider scrubs through: 4x less to read back and keep than f32.
//
// Layout: src [len] f32; out array<u32>, written at words offset .. offset + ceil(len / 4).
// Grid: one invocation per output word, 64 per workgroup, folded into y past 65,535 workgroups.

struct Params {
    len: u32, offset: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

fn at(i: u32) -> f32 {
    if (i >= p.len) {
        return 0.0;
    }
    return src[i] * 0.5 + 0.5;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let wi = gid.x + gid.y * nwg.x * 64u;
    if (wi * 4u >= p.len) {
        return;
    }
    let b = wi * 4u;
    // pack4x8unorm clamps to [0, 1] and rounds to nearest, as image::to_byte does.
    out[p.offset + wi] = pack4x8unorm(vec4<f32>(at(b), at(b + 1u), at(b + 2u), at(b + 3u)));
}
