// One Langevin corrector step per image, in place (Song et al. 2021, "Score-based generative modeling through
// stochastic differential equations", Algorithm 5, the VP corrector; seed 003 §2.2 and seed 004 §5 give
// the plain Langevin update x ← x + (δ/2) ∇log p(x) + √δ z):
//   s    = score_eps · ε                    (∇ log p_t(x) ≈ −ε_θ(x, t)/√(1−ᾱ_t): score_eps = −1/√(1−ᾱ_t))
//   step = 2 α (snr · ‖z‖ / ‖s‖)²           (norms over this image; 0 where ‖s‖ = 0)
//   x'   = x + step · s + √(2 step) · z
// and x0 ← x̂_0 = x0_x · x − x0_eps · ε at the input x (what the page shows beside x_t).
// The step size needs both norms before any value moves, so one workgroup owns one image: it reduces Σz²
// and Σε² in workgroup memory, then updates. Philox noise (shaders/philox.wgsl, prepended) is drawn twice
// rather than stored: the generator is counter-based, so the second draw is the first.
//
// Layout (f32, flat, n images of image_len values): eps, z (langevin_given), x (read and overwritten), x0.
// Grid: n workgroups of 256.

struct Params {
    score_eps: f32, snr: f32, alpha: f32, x0_x: f32,
    x0_eps: f32, image_len: u32, n: u32, seed_lo: u32,
    seed_hi: u32, step_key: u32, period: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> eps: array<f32>;
@group(0) @binding(2) var<storage, read> z: array<f32>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> x0: array<f32>;

const WG: u32 = 256u;
var<workgroup> partial: array<vec2<f32>, WG>;

fn gaussian(i: u32) -> f32 {
    // `period`: as update.wgsl's (one image's size when the batch shares its noise).
    return philox_gaussian(vec2<u32>(p.seed_lo, p.seed_hi), p.step_key, i % p.period);
}

// (Σz², Σε²) over the image, the same in every invocation of the workgroup.
fn reduce(li: u32, mine: vec2<f32>) -> vec2<f32> {
    partial[li] = mine;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s /= 2u) {
        if (li < s) {
            partial[li] += partial[li + s];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

fn step_size(sums: vec2<f32>) -> f32 {
    let score_norm = abs(p.score_eps) * sqrt(sums.y);
    if (score_norm == 0.0) {
        return 0.0;
    }
    let r = p.snr * sqrt(sums.x) / score_norm;
    return 2.0 * p.alpha * r * r;
}

fn apply(i: u32, noise: f32, step: f32) {
    let xt = x[i];
    let e = eps[i];
    x0[i] = p.x0_x * xt - p.x0_eps * e;
    x[i] = xt + step * p.score_eps * e + sqrt(2.0 * step) * noise;
}

@compute @workgroup_size(256)
fn langevin_philox(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    if (wg.x >= p.n) {
        return;
    }
    let base = wg.x * p.image_len;
    var mine = vec2<f32>(0.0);
    for (var j = li; j < p.image_len; j += WG) {
        let zi = gaussian(base + j);
        let e = eps[base + j];
        mine += vec2<f32>(zi * zi, e * e);
    }
    let step = step_size(reduce(li, mine));
    for (var j = li; j < p.image_len; j += WG) {
        apply(base + j, gaussian(base + j), step);
    }
}

@compute @workgroup_size(256)
fn langevin_given(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    if (wg.x >= p.n) {
        return;
    }
    let base = wg.x * p.image_len;
    var mine = vec2<f32>(0.0);
    for (var j = li; j < p.image_len; j += WG) {
        let zi = z[base + j];
        let e = eps[base + j];
        mine += vec2<f32>(zi * zi, e * e);
    }
    let step = step_size(reduce(li, mine));
    for (var j = li; j < p.image_len; j += WG) {
        apply(base + j, z[base + j], step);
    }
}
