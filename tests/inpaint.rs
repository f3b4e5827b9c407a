//! `ddpm inpaint` and `ddpm upscale` (issue 17): the known region of an inpainting is the source bit for bit, the masked region is
//! generated (it differs from the source), with plain replacement and with RePaint's resampling, for the
//! samplers that step one level per pass; and its bad inputs are messages.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::{ddpm, read_npy, s, temp_dir, write_npy};

const TINY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/models/tiny");

#[test]
fn known_region_is_the_source_bit_for_bit_and_the_hole_is_generated() {
    let tmp = temp_dir("inpaint-known");
    // Two shipped test images; the mask keeps the left half of each (one image's mask, broadcast).
    let x = common::shipped_images(2);
    let mask: Vec<f32> = (0..784).map(|i| ((i % 28) < 14) as u8 as f32).collect();
    let (xp, mp) = (tmp.join("x.npy"), tmp.join("mask.npy"));
    write_npy(&xp, &[2, 1, 28, 28], &x);
    write_npy(&mp, &[1, 1, 28, 28], &mask);
    for (sampler, extra) in [("ddpm", &["--jump", "2", "--resample", "3"][..]), ("ddim", &[][..]), ("sde", &["--resample", "2", "--jump", "3"][..])] {
        let out = tmp.join(format!("{sampler}.npy"));
        let mut args = vec!["inpaint", "--model", TINY, "--x", s(&xp), "--mask", s(&mp), "--steps", "5", "--seed", "4", "--sampler", sampler, "--out-npy", s(&out)];
        args.extend_from_slice(extra);
        let (ok, stdout, err) = ddpm(&args);
        assert!(ok, "{sampler}: {err}");
        let got = read_npy(&out);
        for (i, (g, w)) in got.iter().zip(&x).enumerate() {
            if mask[i % 784] == 1.0 {
                assert_eq!(g.to_bits(), w.to_bits(), "{sampler}: known value {i} changed");
            }
        }
        let changed = (0..got.len()).filter(|&i| mask[i % 784] == 0.0 && (got[i] - x[i]).abs() > 0.05).count();
        assert!(changed > 500, "{sampler}: only {changed} of 784 generated values differ from the source");
        println!("inpaint {sampler} {extra:?}: {stdout}");
    }
}

#[test]
fn bad_masks_and_resampling_settings_are_messages() {
    let tmp = temp_dir("inpaint-bad");
    let xp = tmp.join("x.npy");
    write_npy(&xp, &[1, 1, 28, 28], &vec![0.0; 784]);
    let (wrong, half) = (tmp.join("wrong.npy"), tmp.join("half.npy"));
    write_npy(&wrong, &[1, 1, 14, 14], &vec![1.0; 196]);
    write_npy(&half, &[1, 1, 28, 28], &vec![0.5; 784]);
    let out = tmp.join("o.npy");
    for (mask, extra, says) in [
        (&wrong, &[][..], "the mask has shape"),
        (&half, &[][..], "only 0 (generate) and 1 (keep)"),
        (&xp, &["--sampler", "heun", "--resample", "2"][..], "RePaint's resampling needs"),
    ] {
        let mut args = vec!["inpaint", "--model", TINY, "--x", s(&xp), "--mask", s(mask), "--steps", "3", "--out-npy", s(&out)];
        args.extend_from_slice(extra);
        let (ok, _, err) = ddpm(&args);
        assert!(!ok && err.contains(says), "{extra:?}: {err}");
    }
}

/// `ddpm upscale` (ILVR): from 14x14 images, 28x28 ones whose 2x2 averages equal the input within 1e-5 and
/// which are more than the input blown up (the detail inside the blocks is generated); a wrong shape is refused.
#[test]
fn upscale_pools_back_to_its_input() {
    let tmp = temp_dir("inpaint-upscale");
    // Two shipped test images pooled 2x2 to 14x14.
    let images = common::shipped_images(2);
    let low: Vec<f32> = (0..2)
        .flat_map(|k| {
            let img = &images[k * 784..(k + 1) * 784];
            (0..196).map(move |b| {
                let (r, c) = (2 * (b / 14), 2 * (b % 14));
                (img[r * 28 + c] + img[r * 28 + c + 1] + img[(r + 1) * 28 + c] + img[(r + 1) * 28 + c + 1]) / 4.0
            })
        })
        .collect();
    let (lp, out) = (tmp.join("low.npy"), tmp.join("high.npy"));
    write_npy(&lp, &[2, 1, 14, 14], &low);
    let (ok, _, err) = ddpm(&["upscale", "--model", TINY, "--x", s(&lp), "--steps", "5", "--sampler", "ddim", "--out-npy", s(&out)]);
    assert!(ok, "{err}");
    let high = read_npy(&out);
    let mut worst = 0.0f32;
    let mut detail = 0.0f32;
    for (b, want) in low.iter().enumerate() {
        let (k, r) = (b / 196, b % 196);
        let (row, col) = (2 * (r / 14), 2 * (r % 14));
        let idx = [0, 1, 28, 29].map(|o| k * 784 + row * 28 + col + o);
        let mean = idx.iter().map(|&i| high[i]).sum::<f32>() / 4.0;
        worst = worst.max((mean - want).abs());
        detail = detail.max(idx.iter().map(|&i| (high[i] - mean).abs()).fold(0.0, f32::max));
    }
    assert!(worst < 1e-5, "pooled output off the input by {worst}");
    assert!(detail > 0.05, "no detail inside the blocks ({detail})");
    let (ok, _, err) = ddpm(&["upscale", "--model", TINY, "--x", s(&out), "--steps", "2", "--out-npy", s(&out)]);
    assert!(!ok && err.contains("takes [N, 1, 14, 14]"), "{err}");
}
