//! `ddpm interpolate` (issue 17): the strip's ends equal the plain SDEdit runs from A and from B with the same
//! seed (its images share their start noise and per-step noise), the middle is neither, and the latent walk
//! (--latents, DDIM η = 0) runs.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::{ddpm, max_diff, read_npy, s, temp_dir, write_npy};

const TINY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/models/tiny");

#[test]
fn the_strips_ends_are_the_plain_runs_from_a_and_b() {
    let tmp = temp_dir("interpolate-ends");
    let images = common::shipped_images(6);
    let img = |k: usize| -> Vec<f32> { images[k * 784..(k + 1) * 784].to_vec() };
    let (a, b) = (tmp.join("a.npy"), tmp.join("b.npy"));
    write_npy(&a, &[1, 1, 28, 28], &img(0));
    write_npy(&b, &[1, 1, 28, 28], &img(5));
    for (sampler, path) in [("ddpm", "slerp"), ("ddim", "lerp")] {
        let strip = tmp.join(format!("strip-{sampler}.npy"));
        let common = ["--model", TINY, "--seed", "3", "--steps", "10", "--sampler", sampler];
        let mut args = vec!["interpolate", "--a", s(&a), "--b", s(&b), "--t", "500", "--count", "4", "--path", path, "--out-npy", s(&strip)];
        args.extend_from_slice(&common);
        let (ok, _, err) = ddpm(&args);
        assert!(ok, "{err}");
        let x = read_npy(&strip);
        assert_eq!(x.len(), 4 * 784);
        let mut ends = vec![];
        for (src, k) in [(&a, 0), (&b, 3)] {
            let plain = tmp.join("plain.npy");
            let mut args = vec!["sample", "--from", s(src), "--start-t", "500", "--out-npy", s(&plain)];
            args.extend_from_slice(&common);
            let (ok, _, err) = ddpm(&args);
            assert!(ok, "{err}");
            let e = max_diff(&x[k * 784..(k + 1) * 784], &read_npy(&plain));
            assert!(e < 1e-3, "{sampler}: strip member {k} differs from the plain run by {e}");
            ends.push(read_npy(&plain));
        }
        let mid = &x[784..2 * 784];
        assert!(max_diff(mid, &ends[0]) > 0.1 && max_diff(mid, &ends[1]) > 0.1, "{sampler}: the middle is one of the ends");
    }
    // The latent walk between two x_T draws.
    let (za, zb) = (tmp.join("za.npy"), tmp.join("zb.npy"));
    write_npy(&za, &[1, 1, 28, 28], &(0..784u32).map(|i| ddpm_web::gpu::kernels::update::reference_gaussian(1, 0, i)).collect::<Vec<_>>());
    write_npy(&zb, &[1, 1, 28, 28], &(0..784u32).map(|i| ddpm_web::gpu::kernels::update::reference_gaussian(2, 0, i)).collect::<Vec<_>>());
    let png = tmp.join("walk.png");
    let (ok, out, err) = ddpm(&["interpolate", "--model", TINY, "--a", s(&za), "--b", s(&zb), "--latents", "--sampler", "ddim", "--steps", "5", "--count", "5", "--out", s(&png)]);
    assert!(ok && out.contains("5 images from A to B"), "{err}");
    assert!(png.exists());
}
