//! `ddpm interpolate` (issue 17): the strip's ends equal the plain SDEdit runs from A and from B with the same
//! seed (its images share their start noise and per-step noise), the middle is neither, and the latent walk
//! (--latents, DDIM η = 0) runs.
#![cfg(not(target_arch = "wasm32"))]

use std::path::{Path, PathBuf};
use std::process::Command;

use npyz::WriterBuilder;

fn ddpm(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ddpm")).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "ddpm {args:?} panicked:\n{stderr}");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ddpm-interpolate-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_npy(path: &Path, data: &[f32]) {
    let f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut w = npyz::WriteOptions::new().default_dtype().shape(&[1, 1, 28, 28]).writer(f).begin_nd().unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
}

fn read_npy(path: &Path) -> Vec<f32> {
    let f = std::fs::File::open(path).unwrap();
    npyz::NpyFile::new(std::io::BufReader::new(f)).unwrap().into_vec::<f32>().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

const TINY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/models/tiny");

#[test]
fn the_strips_ends_are_the_plain_runs_from_a_and_b() {
    let tmp = temp_dir("ends");
    let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/www/data/fashion-mnist-test/images.u8")).unwrap();
    let img = |k: usize| -> Vec<f32> { bytes[k * 784..(k + 1) * 784].iter().map(|&b| b as f32 / 127.5 - 1.0).collect() };
    let (a, b) = (tmp.join("a.npy"), tmp.join("b.npy"));
    write_npy(&a, &img(0));
    write_npy(&b, &img(5));
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
    write_npy(&za, &(0..784u32).map(|i| ddpm_web::gpu::kernels::update::reference_gaussian(1, 0, i)).collect::<Vec<_>>());
    write_npy(&zb, &(0..784u32).map(|i| ddpm_web::gpu::kernels::update::reference_gaussian(2, 0, i)).collect::<Vec<_>>());
    let png = tmp.join("walk.png");
    let (ok, out, err) = ddpm(&["interpolate", "--model", TINY, "--a", s(&za), "--b", s(&zb), "--latents", "--sampler", "ddim", "--steps", "5", "--count", "5", "--out", s(&png)]);
    assert!(ok && out.contains("5 images from A to B"), "{err}");
    assert!(png.exists());
}
