// One sampler update for every value of the batch, in place. Every sampler of ddpm-web (DDPM's Algorithm 2,
// DDIM, the probability-flow ODE by Euler or Heun, the reverse SDE by Euler–Maruyama, DDIM inversion) is one
// affine map of (x̂_0, x_t, ε, z) whose coefficients the CPU computes per step in f64
// (src/diffusion/samplers.rs; `StepCoeffs` in src/diffusion/schedule.rs is this `Coeffs`, field for field):
//   x̂_0  = clamp(x0_x · x_t − x0_eps · ε, −clip, clip)          (clip = f32 max when the sampler does not clip)
//   x'   = to_x0 · x̂_0 + to_x · x_t + to_eps · ε + to_z · z
// Heun's second-order update needs the state at the start of its step and the first derivative:
//   heun_predict also writes saved ← x_t, deriv ← deriv_x · x_t + deriv_x0 · x̂_0
//   heun_correct adds to_saved · saved + to_deriv · deriv to x'
// add_noise_* draw or add noise without the network: x ← to_x · x + to_z · z (x_T, noising an image to t,
// and RePaint's jumps back up the chain).
// project_low_* (super-resolution, ILVR: Choi et al. 2021): one invocation per 2x2 block; the block's mean is
// set to the low-resolution source noised to x's level, to_x · low + to_z · z / 2 (the mean of four
// independent unit normals has standard deviation 1/2), and the detail within the block is kept.
// replace_known_* (inpainting): where mask > 0.5, x ← to_x · known + to_z · z, the source noised to x's level;
// elsewhere x stays. At the clean level (to_x = 1, to_z = 0) the known region is the source bit for bit.
//
// z ~ N(0, 1) from Philox (shaders/philox.wgsl, prepended) keyed by the params' seed and step key (the
// *_philox entry points).
// The *_given entry points read z from `z` instead (golden tests feed diffusers' noise).
//
// Layout (f32, flat, len values): eps, z, x (read and overwritten), x0 (written with x̂_0), saved, deriv,
// known and mask (inpainting: the source image and 1 where it is kept).
// Grid: one invocation per value, 64 per workgroup, folded into y past 65,535 workgroups.

struct Coeffs {
    x0_x: f32, x0_eps: f32, clip: f32,
    to_x0: f32, to_x: f32, to_eps: f32, to_z: f32,
    to_saved: f32, to_deriv: f32,
    deriv_x: f32, deriv_x0: f32,
    _pad: f32,
}

struct Params {
    k: Coeffs,
    seed_lo: u32, seed_hi: u32, step_key: u32, len: u32,
    // The noise repeats every `period` values: len for independent images, one image's size when every
    // image of the batch shares its noise (interpolation strips).
    period: u32,
    // project_low_*: the full image's width and height (even), for the 2x2 blocks.
    width: u32, height: u32, _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> eps: array<f32>;
@group(0) @binding(2) var<storage, read> z: array<f32>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> x0: array<f32>;
@group(0) @binding(5) var<storage, read_write> saved: array<f32>;
@group(0) @binding(6) var<storage, read_write> deriv: array<f32>;
@group(0) @binding(7) var<storage, read> known: array<f32>;
@group(0) @binding(8) var<storage, read> mask: array<f32>;
@group(0) @binding(9) var<storage, read> low: array<f32>;

fn gaussian(i: u32) -> f32 {
    return philox_gaussian(vec2<u32>(p.seed_lo, p.seed_hi), p.step_key, i % p.period);
}

// Steps that add no noise (the last of a chain, the ODE samplers) skip drawing it.
fn philox_z(i: u32) -> f32 {
    if (p.k.to_z == 0.0) {
        return 0.0;
    }
    return gaussian(i);
}

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

fn predict_x0(xt: f32, e: f32) -> f32 {
    return clamp(p.k.x0_x * xt - p.k.x0_eps * e, -p.k.clip, p.k.clip);
}

fn affine(xt: f32, e: f32, pred: f32, noise: f32) -> f32 {
    return p.k.to_x0 * pred + p.k.to_x * xt + p.k.to_eps * e + p.k.to_z * noise;
}

fn update(i: u32, noise: f32) {
    let xt = x[i];
    let e = eps[i];
    let pred = predict_x0(xt, e);
    x[i] = affine(xt, e, pred, noise);
    x0[i] = pred;
}

@compute @workgroup_size(64)
fn affine_philox(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.len) {
        return;
    }
    update(i, philox_z(i));
}

@compute @workgroup_size(64)
fn affine_given(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.len) {
        return;
    }
    update(i, z[i]);
}

// Heun's first stage: an Euler step that keeps what the second stage averages with.
@compute @workgroup_size(64)
fn heun_predict(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.len) {
        return;
    }
    let xt = x[i];
    let e = eps[i];
    let pred = predict_x0(xt, e);
    saved[i] = xt;
    deriv[i] = p.k.deriv_x * xt + p.k.deriv_x0 * pred;
    x[i] = affine(xt, e, pred, 0.0);
    x0[i] = pred;
}

@compute @workgroup_size(64)
fn heun_correct(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.len) {
        return;
    }
    let xt = x[i];
    let e = eps[i];
    let pred = predict_x0(xt, e);
    x[i] = affine(xt, e, pred, 0.0) + p.k.to_saved * saved[i] + p.k.to_deriv * deriv[i];
    x0[i] = pred;
}

@compute @workgroup_size(64)
fn add_noise_philox(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.len) {
        return;
    }
    x[i] = p.k.to_x * x[i] + p.k.to_z * gaussian(i);
}

@compute @workgroup_size(64)
fn add_noise_given(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.len) {
        return;
    }
    x[i] = p.k.to_x * x[i] + p.k.to_z * z[i];
}

fn replace(i: u32, noise: f32) {
    if (mask[i] > 0.5) {
        x[i] = p.k.to_x * known[i] + p.k.to_z * noise;
    }
}

@compute @workgroup_size(64)
fn replace_known_philox(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.len) {
        return;
    }
    replace(i, philox_z(i));
}

@compute @workgroup_size(64)
fn replace_known_given(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.len) {
        return;
    }
    replace(i, z[i]);
}

fn project(b: u32, noise: f32) {
    let half_w = p.width / 2u;
    let per_image = (p.width / 2u) * (p.height / 2u);
    let plane = b / per_image;            // image and channel
    let r = b % per_image;
    let row = (r / half_w) * 2u;
    let col = (r % half_w) * 2u;
    let base = plane * p.width * p.height + row * p.width + col;
    let i = array<u32, 4>(base, base + 1u, base + p.width, base + p.width + 1u);
    let mean = (x[i[0]] + x[i[1]] + x[i[2]] + x[i[3]]) * 0.25;
    let shift = p.k.to_x * low[b] + p.k.to_z * 0.5 * noise - mean;
    for (var k = 0u; k < 4u; k++) {
        x[i[k]] = x[i[k]] + shift;
    }
}

@compute @workgroup_size(64)
fn project_low_philox(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let b = index(gid, nwg);
    if (b >= p.len) {
        return;
    }
    project(b, philox_z(b));
}
