// The forward process (Ho et al. 2020, eq. 4), sampled in one step for every value of a batch:
//   x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) z,   z ~ N(0, I)
// which is diffusers' `DDPMScheduler.add_noise(x_0, z, t)`. The two square roots come from the host
// (`forward::Params::new`), so the shader never sees ᾱ_t itself.
//
// Entry point given_noise reads z from `z` (`ddpm noise --z`, the golden test). Entry point philox_noise
// draws z from Philox4x32-10 keyed by the seed, counter (element, key, 0, 0), then Box-Muller: the same
// generator as ddpm_step.wgsl (copied here: WGSL has no includes and the registry loads one file per
// module). The page keeps seed and key fixed per image, so z is the same at every t and scrubbing t moves
// x_t continuously from x_0 to noise.
//
// Layout (f32, flat, len values): x0 (read), z (read, given_noise only), xt (written).
// Grid: one invocation per value, 64 per workgroup, folded into y past 65,535 workgroups.

struct Params {
    signal: f32, noise: f32, seed_lo: u32, seed_hi: u32,
    key: u32, len: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x0: array<f32>;
@group(0) @binding(2) var<storage, read> z: array<f32>;
@group(0) @binding(3) var<storage, read_write> xt: array<f32>;

// 32x32 -> 64-bit product as (hi, lo); WGSL has no wide multiply.
fn mul_hi_lo(a: u32, b: u32) -> vec2<u32> {
    let a_lo = a & 0xffffu;
    let a_hi = a >> 16u;
    let b_lo = b & 0xffffu;
    let b_hi = b >> 16u;
    let ll = a_lo * b_lo;
    let hl = a_hi * b_lo;
    let lh = a_lo * b_hi;
    let hh = a_hi * b_hi;
    let mid = (ll >> 16u) + (hl & 0xffffu) + lh;  // < 2^32: no carry lost
    return vec2<u32>(hh + (hl >> 16u) + (mid >> 16u), (mid << 16u) | (ll & 0xffffu));
}

fn philox4x32_10(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var c = counter;
    var k = key;
    for (var r = 0u; r < 10u; r++) {
        let p0 = mul_hi_lo(0xD2511F53u, c.x);
        let p1 = mul_hi_lo(0xCD9E8D57u, c.z);
        c = vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
        k += vec2<u32>(0x9E3779B9u, 0xBB67AE85u);
    }
    return c;
}

fn gaussian(i: u32) -> f32 {
    let r = philox4x32_10(vec4<u32>(i, p.key, 0u, 0u), vec2<u32>(p.seed_lo, p.seed_hi));
    // u1 in (0, 1] so the log is finite; 24 bits each, exactly representable in f32.
    let u1 = (f32(r.x >> 8u) + 1.0) / 16777216.0;
    let u2 = f32(r.y >> 8u) / 16777216.0;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

@compute @workgroup_size(64)
fn given_noise(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.len) {
        return;
    }
    xt[i] = p.signal * x0[i] + p.noise * z[i];
}

@compute @workgroup_size(64)
fn philox_noise(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.len) {
        return;
    }
    xt[i] = p.signal * x0[i] + p.noise * gaussian(i);
}
