
// conv2d.wgsl's weights through a uniform-buffer window (the `windowed` kernels): binding 2 holds w from
// output channel p.oc_first on, as many channels as 64 KiB takes, copied there once when the plan is
// compiled (src/gpu/plan.rs). Always f32: these kernels do not run in f16.
// Why: lavapipe (Mesa 22.3) reads a storage value lane by lane in a loop with a bounds check per lane, even
// where every lane reads the same address; a uniform value at an address the same in every lane is one
// load and a broadcast. A blocked 3x3 convolution ran 2.2x faster reading its weights here (BENCHMARKS.md).
// Uniform arrays take 16-byte elements, hence vec4s.
@group(0) @binding(2) var<uniform> w: array<vec4<f32>, 4096>;

fn weight(k: u32) -> f32 {
    let r = k - p.oc_first * p.ic * p.kh * p.kw;
    return w[r >> 2u][r & 3u];
}
