// The network's boundary casts: the sampler's state is f32 whatever the network runs in, so an f16 pass
// begins by casting x_t to f16 and ends by casting ε back (in an f32 pass neither is recorded).
//
// Layout: x32 [len] f32 -> x_net [len] elem (cast_in); eps_net [len] elem -> eps32 [len] f32 (cast_out).
// Grid: one invocation per value, 64 per workgroup, folded into y past 65,535 workgroups
// (index = gid.x + gid.y * num_workgroups.x * 64).

alias elem = f32;

struct Params {
    len: u32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x32: array<f32>;
@group(0) @binding(2) var<storage, read_write> x_net: array<elem>;
@group(0) @binding(3) var<storage, read> eps_net: array<elem>;
@group(0) @binding(4) var<storage, read_write> eps32: array<f32>;

@compute @workgroup_size(64)
fn cast_in(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i < p.len) {
        x_net[i] = elem(x32[i]);
    }
}

@compute @workgroup_size(64)
fn cast_out(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i < p.len) {
        eps32[i] = f32(eps_net[i]);
    }
}
