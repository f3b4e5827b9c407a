// Moving values between layouts: nearest-neighbour 2x upsampling (diffusers' Upsample2D before its conv) and
// channel concatenation (the U-Net's skip connections, torch.cat(dim=1)).
//
// Layout (NCHW; elem: f32, or f16 in an f16 pass, copied as is):
//   upsample_nearest2x: a [N, CA, H, W] -> out [N, CA, 2H, 2W]
//   concat_channels:    a [N, CA, H, W], b [N, CB, H, W] -> out [N, CA+CB, H, W]
// Grid: one invocation per output value, 64 per workgroup, folded into y past 65,535 workgroups
// (index = gid.x + gid.y * num_workgroups.x * 64).

alias elem = f32;

struct Params {
    n: u32, ca: u32, cb: u32, h: u32,
    w: u32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<elem>;
@group(0) @binding(2) var<storage, read> b: array<elem>;
@group(0) @binding(3) var<storage, read_write> out: array<elem>;

@compute @workgroup_size(64)
fn upsample_nearest2x(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    let ow = 2u * p.w;
    let oh = 2u * p.h;
    if (i >= p.n * p.ca * oh * ow) {
        return;
    }
    let x = i % ow;
    let y = (i / ow) % oh;
    let nc = i / (ow * oh);
    out[i] = a[(nc * p.h + y / 2u) * p.w + x / 2u];
}

@compute @workgroup_size(64)
fn concat_channels(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    let hw = p.h * p.w;
    let c = p.ca + p.cb;
    if (i >= p.n * c * hw) {
        return;
    }
    let px = i % hw;
    let ch = (i / hw) % c;
    let n = i / (hw * c);
    if (ch < p.ca) {
        out[i] = a[(n * p.ca + ch) * hw + px];
    } else {
        out[i] = b[(n * p.cb + ch - p.ca) * hw + px];
    }
}
