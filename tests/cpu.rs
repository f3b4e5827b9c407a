//! The CPU executor through the `ddpm` command: the same seed gives the GPU path's images with every sampler
//! (the same programs and the same Philox noise, drawn on the host), and `--backend auto` falls back to it
//! when there is no Vulkan adapter while `--backend gpu` then says why. Its goldens against diffusers are in
//! tests/golden.rs (ε_θ) and tests/samplers.rs (whole DDIM, Euler and Heun runs).
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::*;

const TINY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/models/tiny");

#[test]
fn every_sampler_gives_the_gpu_images_from_the_same_seed() {
    let tmp = temp_dir("cpu-vs-gpu");
    for (sampler, extra) in [("ddpm", &[][..]), ("ddim", &["--eta", "0.3"][..]), ("euler", &[]), ("heun", &[]), ("sde", &[]), ("langevin", &["--langevin-steps", "2"]), ("pc", &["--predictor", "sde"])] {
        let run = |backend: &str| {
            let out = tmp.join(format!("{sampler}-{backend}.npy"));
            let mut args = vec!["sample", "--backend", backend, "--model", TINY, "--sampler", sampler, "--steps", "6", "--n", "3", "--seed", "11", "--out-npy", s(&out)];
            args.extend_from_slice(extra);
            let (ok, stdout, err) = ddpm(&args);
            assert!(ok, "{sampler} on {backend}: {err}");
            assert_eq!(stdout.contains("the CPU executor"), backend == "cpu", "{stdout}");
            read_npy(&out)
        };
        let (gpu, cpu) = (run("gpu"), run("cpu"));
        let e = max_diff(&gpu, &cpu);
        println!("{sampler}: CPU executor vs GPU, max abs difference {e:.2e}");
        assert!(gpu.iter().all(|v| v.is_finite()) && gpu.iter().any(|&v| v != 0.0), "{sampler}: the GPU run is degenerate");
        // Both draw the same noise; what differs is float rounding in the network, amplified by the steps.
        assert!(e <= 2e-3, "{sampler}: the CPU run differs from the GPU's by {e}");
    }
}

/// Inpainting (with RePaint's resampling), super-resolution, interpolation and DDIM inversion take the
/// same programs and guidance on the CPU as on the GPU: the same images.
#[test]
fn applications_give_the_gpu_images() {
    let tmp = temp_dir("cpu-apps");
    let x = shipped_images(2);
    let mask: Vec<f32> = (0..784).map(|i| ((i % 28) < 14) as u8 as f32).collect();
    let low: Vec<f32> = (0..2 * 196).map(|b| x[(b / 196) * 784 + 2 * ((b % 196) / 14) * 28 + 2 * (b % 14)]).collect();
    let (xp, mp, lp, ap) = (tmp.join("x.npy"), tmp.join("mask.npy"), tmp.join("low.npy"), tmp.join("a.npy"));
    write_npy(&xp, &[2, 1, 28, 28], &x);
    write_npy(&mp, &[1, 1, 28, 28], &mask);
    write_npy(&lp, &[2, 1, 14, 14], &low);
    write_npy(&ap, &[1, 1, 28, 28], &x[..784]);
    let bp = tmp.join("b.npy");
    write_npy(&bp, &[1, 1, 28, 28], &x[784..]);
    let cases: [(&str, Vec<&str>); 4] = [
        ("inpaint", vec!["inpaint", "--x", s(&xp), "--mask", s(&mp), "--steps", "6", "--jump", "2", "--resample", "2", "--seed", "3"]),
        ("upscale", vec!["upscale", "--x", s(&lp), "--steps", "5", "--sampler", "ddpm", "--seed", "3"]),
        ("interpolate", vec!["interpolate", "--a", s(&ap), "--b", s(&bp), "--t", "600", "--count", "3", "--steps", "5", "--sampler", "ddpm", "--seed", "3"]),
        ("invert", vec!["invert", "--x", s(&xp), "--steps", "5"]),
    ];
    for (name, args) in cases {
        let run = |backend: &str| {
            let out = tmp.join(format!("{name}-{backend}.npy"));
            let mut all = vec![args[0], "--backend", backend, "--model", TINY];
            all.extend_from_slice(&args[1..]);
            all.extend_from_slice(&[if name == "invert" { "--out" } else { "--out-npy" }, s(&out)]);
            let (ok, _, err) = ddpm(&all);
            assert!(ok, "{name} on {backend}: {err}");
            read_npy(&out)
        };
        let (gpu, cpu) = (run("gpu"), run("cpu"));
        let e = max_diff(&gpu, &cpu);
        println!("{name}: CPU executor vs GPU, max abs difference {e:.2e}");
        assert!(!gpu.is_empty() && gpu.iter().all(|v| v.is_finite()), "{name}: the GPU run is degenerate");
        assert!(e <= 2e-3, "{name}: the CPU run differs from the GPU's by {e}");
    }
}

/// The likelihood bound on the CPU executor: the GPU's figures from the same seed (ε_θ within float
/// rounding, so the bits/dim agree to a few parts in a million).
#[test]
fn likelihood_gives_the_gpus_bits_per_dim() {
    let tmp = temp_dir("cpu-nll");
    let xp = tmp.join("x.npy");
    write_npy(&xp, &[2, 1, 28, 28], &shipped_images(2));
    let bits = |backend: &str| -> Vec<f64> {
        let out = tmp.join(format!("{backend}.json"));
        let (ok, _, err) = ddpm(&["nll", "--backend", backend, "--model", TINY, "--x", s(&xp), "--every", "100", "--out", s(&out)]);
        assert!(ok, "nll on {backend}: {err}");
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        v["bits_per_dim"].as_array().unwrap().iter().map(|b| b.as_f64().unwrap()).collect()
    };
    let (gpu, cpu) = (bits("gpu"), bits("cpu"));
    println!("nll bits/dim: GPU {gpu:?}, CPU executor {cpu:?}");
    assert_eq!(gpu.len(), 2);
    for (g, c) in gpu.iter().zip(&cpu) {
        assert!(g.is_finite() && *g > 0.0 && (g - c).abs() <= 1e-4 * g, "GPU {g} vs CPU {c}");
    }
}

#[test]
fn no_adapter_falls_back_to_the_cpu_and_gpu_says_why() {
    let tmp = temp_dir("cpu-fallback");
    let out = tmp.join("x.npy");
    // The Vulkan loader reads its drivers from these variables: pointing them nowhere hides lavapipe.
    let hidden = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_ddpm"))
            .args(args)
            .env("VK_ICD_FILENAMES", "/nonexistent.json")
            .env("VK_DRIVER_FILES", "/nonexistent.json")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(!err.contains("panicked"), "{err}");
        (o.status.success(), String::from_utf8_lossy(&o.stdout).into_owned(), err)
    };
    let sample = ["sample", "--model", TINY, "--steps", "3", "--n", "1", "--out-npy", s(&out)];
    let (ok, stdout, err) = hidden(&sample);
    assert!(ok, "{err}");
    assert!(err.contains("no GPU adapter") && err.contains("running on the CPU"), "{err}");
    assert!(stdout.contains("the CPU executor"), "{stdout}");
    assert_eq!(read_npy(&out).len(), 784);

    let (ok, _, err) = hidden(&["sample", "--backend", "gpu", "--model", TINY, "--steps", "3", "--n", "1", "--out-npy", s(&out)]);
    assert!(!ok && err.contains("No GPU adapter"), "{err}");
    // A command the CPU executor does not run names the ones it does.
    let (ok, _, err) = hidden(&["step", "--model", TINY, "--x", s(&out), "--t", "5", "--z", s(&out), "--out", s(&tmp.join("s.npy"))]);
    assert!(!ok && err.contains("needs a GPU adapter") && err.contains("sample"), "{err}");
}
