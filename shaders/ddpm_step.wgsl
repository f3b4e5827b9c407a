// One update of Algorithm 2 (Ho et al. 2020) for every value of the batch, in place:
//   x̂_0     = (x_t - sqrt(1 - ᾱ_t) ε) / sqrt(ᾱ_t)
//   clip=0:  x_{t-1} = (x_t - β_t / sqrt(1 - ᾱ_t) ε) / sqrt(α_t) + σ_t z          (the paper's line 4)
//   clip=1:  x_{t-1} = μ̃_t(clamp(x̂_0, -1, 1), x_t) + σ_t z                      (the official code)
// The coefficients come from `Schedule::step_coeffs` (src/diffusion/schedule.rs), in the same order.
//
// z ~ N(0, 1) from Philox4x32-10 (Salmon et al. 2011) keyed by the seed, counter (element, step key, 0, 0),
// then Box-Muller: the same seed gives the same noise however the work is split (entry point philox_noise).
// Entry point given_noise reads z from `z` instead (golden tests feed diffusers' noise).
//
// Layout (f32, flat, len values): eps, z, x (read and overwritten with x_{t-1}), x0 (written with x̂_0).
// Grid: one invocation per value, 64 per workgroup, folded into y past 65,535 workgroups.

struct Coeffs {
    x0_x: f32, x0_eps: f32, mean_x0: f32, mean_xt: f32,
    paper_x: f32, paper_eps: f32, sigma: f32, clip: u32,
}

struct Params {
    k: Coeffs,
    seed_lo: u32, seed_hi: u32, step_key: u32, len: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> eps: array<f32>;
@group(0) @binding(2) var<storage, read> z: array<f32>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> x0: array<f32>;

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
    let r = philox4x32_10(vec4<u32>(i, p.step_key, 0u, 0u), vec2<u32>(p.seed_lo, p.seed_hi));
    // u1 in (0, 1] so the log is finite; 24 bits each, exactly representable in f32.
    let u1 = (f32(r.x >> 8u) + 1.0) / 16777216.0;
    let u2 = f32(r.y >> 8u) / 16777216.0;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

// x[i] <- x_{t-1}, x0[i] <- x̂_0, with noise value `noise`.
fn update(i: u32, noise: f32) {
    let xt = x[i];
    let e = eps[i];
    var pred = p.k.x0_x * xt - p.k.x0_eps * e;
    var mean: f32;
    if (p.k.clip != 0u) {
        pred = clamp(pred, -1.0, 1.0);
        mean = p.k.mean_x0 * pred + p.k.mean_xt * xt;
    } else {
        mean = p.k.paper_x * xt - p.k.paper_eps * e;
    }
    x[i] = mean + p.k.sigma * noise;
    x0[i] = pred;
}

@compute @workgroup_size(64)
fn philox_noise(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.len) {
        return;
    }
    // The last step adds no noise: skip drawing it.
    var noise = 0.0;
    if (p.k.sigma != 0.0) {
        noise = gaussian(i);
    }
    update(i, noise);
}

@compute @workgroup_size(64)
fn given_noise(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.len) {
        return;
    }
    update(i, z[i]);
}

// x_T ~ N(0, I): the same generator with the params' seed and step key (the coefficients are not read).
@compute @workgroup_size(64)
fn draw_noise(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.len) {
        return;
    }
    x[i] = gaussian(i);
}
