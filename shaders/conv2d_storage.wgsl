
// conv2d.wgsl's weights as a storage buffer: all of w [OC, IC, KH, KW] (the general, blocked and tiled kernels).
@group(0) @binding(2) var<storage, read> w: array<elem>;

fn weight(k: u32) -> f32 {
    return f32(w[k]);
}
