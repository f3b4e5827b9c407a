// Fully connected layer over a batch, with optional SiLU before (on the input) and after.
//
// Layout (f32): x [N, IN], w [OUT, IN] (PyTorch's Linear weight), b [OUT], out [N, OUT].
// flags & 1: SiLU on x first (the ResNet block's `time_emb_proj(silu(temb))`); flags & 2: SiLU on the result
// (the time MLP's hidden layer). Grid: x covers OUT (64 per workgroup), y is the row n.

struct Params {
    n: u32, inp: u32, outp: u32, flags: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

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
    var acc = b[o];
    for (var i = 0u; i < p.inp; i++) {
        var v = x[n * p.inp + i];
        if ((p.flags & 1u) != 0u) {
            v = silu(v);
        }
        acc += v * w[o * p.inp + i];
    }
    if ((p.flags & 2u) != 0u) {
        acc = silu(acc);
    }
    out[n * p.outp + o] = acc;
}
