// Sinusoidal timestep embedding (diffusers' `get_timestep_embedding`, the paper's Transformer-style encoding):
//   freq_j = exp(-ln(10000) * j / (half - shift)),  j = 0 .. half-1
//   out[n] = [sin(t_n * freq), cos(t_n * freq)]   (cos first when flip != 0)
//
// Layout: t [N] timesteps (integers stored as f32), out [N, 2*half] (elem: f32, or f16 in an f16 pass). Grid: x covers half, y is n.
// t * freq reaches ~1000 rad; WGSL's sin/cos are only specified on [-pi, pi], so the argument is reduced first
// with 2*pi split in two parts (Cody-Waite): k * TWO_PI_HI is exact for k < 2^16.

alias elem = f32;

struct Params {
    n: u32, half: u32, flip: u32, _p0: u32,
    shift: f32, _p1: u32, _p2: u32, _p3: u32,
}

const TWO_PI_HI: f32 = 6.28125;
const TWO_PI_LO: f32 = 0.0019353071795864769;
const LN_MAX_PERIOD: f32 = 9.210340371976184;  // ln(10000)

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> t: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<elem>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    let n = gid.y;
    if (j >= p.half || n >= p.n) {
        return;
    }
    let freq = exp(-LN_MAX_PERIOD * f32(j) / (f32(p.half) - p.shift));
    let arg = t[n] * freq;
    let k = round(arg / (TWO_PI_HI + TWO_PI_LO));
    let r = (arg - k * TWO_PI_HI) - k * TWO_PI_LO;
    let s = sin(r);
    let c = cos(r);
    let row = n * 2u * p.half;
    if (p.flip != 0u) {
        out[row + j] = elem(c);
        out[row + p.half + j] = elem(s);
    } else {
        out[row + j] = elem(s);
        out[row + p.half + j] = elem(c);
    }
}
