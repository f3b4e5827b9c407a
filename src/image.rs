//! Frames (u8 NCHW in model range [−1, 1] ↦ [0, 255]) → RGBA pixels, one image or a grid. Shared by the page's
//! canvases and the `ddpm` command's PNGs.

/// Geometry of a batch of images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl Batch {
    pub fn image_len(&self) -> usize {
        self.c * self.h * self.w
    }
    pub fn len(&self) -> usize {
        self.n * self.image_len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The `i`-th image of `frame` as RGBA rows (grey models repeat the one channel; extra channels beyond three
/// are not shown).
pub fn image_rgba(frame: &[u8], b: Batch, i: usize) -> Vec<u8> {
    let plane = b.h * b.w;
    let img = &frame[i * b.image_len()..(i + 1) * b.image_len()];
    let mut out = Vec::with_capacity(4 * plane);
    for p in 0..plane {
        let ch = |c: usize| img[c.min(b.c - 1) * plane + p];
        let (r, g, bl) = if b.c >= 3 { (ch(0), ch(1), ch(2)) } else { (ch(0), ch(0), ch(0)) };
        out.extend_from_slice(&[r, g, bl, 255]);
    }
    out
}

/// All images in a grid of `cols` columns with a `gap`-pixel white border; returns (width, height, RGBA).
pub fn grid_rgba(frame: &[u8], b: Batch, cols: usize, gap: usize) -> (usize, usize, Vec<u8>) {
    let cols = cols.clamp(1, b.n.max(1));
    let rows = b.n.div_ceil(cols);
    let (gw, gh) = (cols * (b.w + gap) + gap, rows * (b.h + gap) + gap);
    let mut out = vec![255u8; 4 * gw * gh];
    for i in 0..b.n {
        let (ox, oy) = (gap + (i % cols) * (b.w + gap), gap + (i / cols) * (b.h + gap));
        let img = image_rgba(frame, b, i);
        for y in 0..b.h {
            let dst = 4 * ((oy + y) * gw + ox);
            out[dst..dst + 4 * b.w].copy_from_slice(&img[4 * y * b.w..4 * (y + 1) * b.w]);
        }
    }
    (gw, gh, out)
}

/// Model range to a display byte, as the frame kernel does it (WGSL `pack4x8unorm` rounding).
pub fn to_byte(v: f32) -> u8 {
    (255.0 * (v * 0.5 + 0.5).clamp(0.0, 1.0) + 0.5).floor() as u8
}

/// A square-ish number of columns for `n` images.
pub fn default_cols(n: usize) -> usize {
    (n as f64).sqrt().ceil().max(1.0) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_places_images_in_rows() {
        let b = Batch { n: 3, c: 1, h: 1, w: 2 };
        let frame = [10, 11, 20, 21, 30, 31];
        let (w, h, px) = grid_rgba(&frame, b, 2, 1);
        assert_eq!((w, h), (7, 5));
        let at = |x: usize, y: usize| px[4 * (y * w + x)];
        assert_eq!((at(1, 1), at(2, 1), at(4, 1), at(1, 3), at(4, 3)), (10, 11, 20, 30, 255));
        assert_eq!(to_byte(-1.0), 0);
        assert_eq!(to_byte(1.0), 255);
        assert_eq!(to_byte(0.0), 128);
    }
}
