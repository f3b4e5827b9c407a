// The forward process (Ho et al. 2020, eq. 4), sampled in one step for every value of a batch:
//   x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) z,   z ~ N(0, I)
// which is diffusers' `DDPMScheduler.add_noise(x_0, z, t)`. The two square roots come from the host
// (`forward::Params::new`), so the shader never sees ᾱ_t itself.
//
// Entry point given_noise reads z from `z` (`ddpm noise --z`, the golden test). Entry point philox_noise
// draws z from Philox4x32-10 keyed by the seed, counter (element, key, 0, 0), then Box-Muller: the samplers'
// generator (shaders/philox.wgsl, prepended by the registry). The page keeps seed and key fixed per image, so z is the same at every t and scrubbing t moves
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

fn gaussian(i: u32) -> f32 {
    return philox_gaussian(vec2<u32>(p.seed_lo, p.seed_hi), p.key, i);
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
