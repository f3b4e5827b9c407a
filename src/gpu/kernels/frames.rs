//! `shaders/frames.wgsl`: f32 images → bytes, four per word, for display and the trajectory.

use crate::gpu::graph::{grid_1d, Graph, TensorId};
use crate::gpu::kernel::Kernel;

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub len: u32,
    pub offset: u32,
    pub _pad: [u32; 2],
}
const _: () = assert!(std::mem::size_of::<Params>() == 16);

/// Words a packed frame of `len` values takes.
pub fn words(len: usize) -> usize {
    len.div_ceil(4)
}

/// Records the packing of `src` into `out` (u32 words) from word `offset_words` on.
pub fn pack(g: &mut Graph, src: TensorId, out: TensorId, offset_words: usize) {
    let len = g.len(src);
    assert!(g.len(out) >= offset_words + words(len), "frame buffer too small");
    let params = Params { len: len as u32, offset: offset_words as u32, _pad: [0; 2] };
    g.record(Kernel::PackFrame, &params, &[("src", src), ("out", out)], grid_1d(words(len), 64), 0);
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::gpu::kernels::testing::*;
    use crate::gpu::plan::Plan;
    use crate::image::to_byte;

    #[test]
    fn packs_like_to_byte_at_an_offset() {
        let c = ctx();
        let n = 1003; // not a multiple of 4
        let xv: Vec<f32> = values(n, 51).iter().map(|v| 1.3 * v).collect();
        let mut g = Graph::new();
        let x = upload(&mut g, "x", &[n], &xv);
        let out = g.kept("frame", &[3 + words(n)]);
        pack(&mut g, x, out, 3);
        let plan = Plan::compile(c, &g).unwrap();
        plan.run(c);
        let out = plan.tensor(out);
        let bytes = pollster::block_on(c.read_bytes(&out.buffer, out.bytes())).unwrap();
        let got = &bytes[12..12 + n];
        let want: Vec<u8> = xv.iter().map(|&v| to_byte(v)).collect();
        let off_by_more_than_one = got.iter().zip(&want).filter(|(a, b)| (**a as i32 - **b as i32).abs() > 1).count();
        let exact = got.iter().zip(&want).filter(|(a, b)| a == b).count();
        assert_eq!(off_by_more_than_one, 0);
        assert!(exact > n * 99 / 100, "only {exact} of {n} bytes exact");
        assert_eq!(&bytes[..12], &[0; 12], "words before the offset are untouched");
    }
}
