// Fully connected layer over a batch, with optional SiLU before (on the input) and after.
//
// Layout (elem: f32, or f16 in an f16 pass; sums in f32): x [N, IN], w [OUT, IN] (PyTorch's Linear weight), b [OUT], out [N, OUT].
// Overrides, set per pipeline: SILU_IN, SiLU on x first (the ResNet block's `time_emb_proj(silu(temb))`);
// SILU_OUT, SiLU on the result (the time MLP's hidden layer). Grid: x covers OUT (64 per workgroup), y is n.

alias elem = f32;

struct Params {
    n: u32, inp: u32, outp: u32, _p0: u32,
}

override SILU_IN: bool;
override SILU_OUT: bool;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<elem>;
@group(0) @binding(2) var<storage, read> w: array<elem>;
@group(0) @binding(3) var<storage, read> b: array<elem>;
@group(0) @binding(4) var<storage, read_write> out: array<elem>;

fn silu(v: f32) -> f32 {
    return v / (1.0 + exp(-v));
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let o = gid.x;
    let n = gid.y;
    if (o >= p.outp || n >= p.n) {
        return;
    }
    var acc = f32(b[o]);
    for (var i = 0u; i < p.inp; i++) {
        var v = f32(x[n * p.inp + i]);
        if (SILU_IN) {
            v = silu(v);
        }
        acc += v * f32(w[o * p.inp + i]);
    }
    if (SILU_OUT) {
        acc = silu(acc);
    }
    out[n * p.outp + o] = elem(acc);
}
