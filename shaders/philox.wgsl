// Shared by the kernels that draw noise (prepended to their source by src/gpu/kernel.rs, WGSL has no
// includes): z ~ N(0, 1) from Philox4x32-10 (Salmon et al. 2011, Random123) keyed by the 64-bit seed, counter
// (element, step key, 0, 0), then Box-Muller. The same seed gives the same noise however the work is split;
// `reference_gaussian` in src/gpu/kernels/update.rs is its CPU twin.

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

fn philox_gaussian(seed: vec2<u32>, step_key: u32, i: u32) -> f32 {
    let r = philox4x32_10(vec4<u32>(i, step_key, 0u, 0u), seed);
    // u1 in (0, 1] so the log is finite; 24 bits each, exactly representable in f32.
    let u1 = (f32(r.x >> 8u) + 1.0) / 16777216.0;
    let u2 = f32(r.y >> 8u) / 16777216.0;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
