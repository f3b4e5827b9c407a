//! `ddpm noise` (the forward process q(x_t | x_0) with given noise) against diffusers' own
//! `DDPMScheduler.add_noise` (tests/fixtures/make_fixtures.py made `noise_t{T}.npy` from the fixtures' x and z:
//! `DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
//!  .add_noise(x, z, torch.tensor([T]))`), and its error paths.
#![cfg(not(target_arch = "wasm32"))]

use std::path::{Path, PathBuf};
use std::process::Command;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn ddpm(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ddpm")).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "ddpm {args:?} panicked:\n{stderr}");
    (out.status.success(), stderr)
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ddpm-forward-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn read_npy(path: &Path) -> (Vec<u64>, Vec<f32>) {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let npy = npyz::NpyFile::new(std::io::BufReader::new(f)).unwrap();
    let shape = npy.shape().to_vec();
    (shape, npy.into_vec::<f32>().unwrap())
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The whole path the page uses for x_t (schedule from scheduler_config.json, ᾱ_t, the forward kernel) equals
/// diffusers' `add_noise` at the start, middle and end of the schedule, for a grey and a colour fixture.
#[test]
fn noise_matches_diffusers_add_noise() {
    for name in ["attn_f16", "odd_f32"] {
        let dir = Path::new(FIXTURES).join(name);
        let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();
        let out = temp_dir(name);
        let timesteps = meta["noise_timesteps"].as_array().expect("meta.json lists noise_timesteps");
        assert!(timesteps.len() >= 3);
        for t in timesteps {
            let t = t.as_u64().unwrap().to_string();
            let got = out.join(format!("noise_t{t}.npy"));
            let (ok, err) = ddpm(&["noise", "--model", s(&dir.join("model")), "--x", s(&dir.join("x.npy")), "--t", &t, "--z", s(&dir.join("z.npy")), "--out", s(&got)]);
            assert!(ok, "{err}");
            let ((gs, g), (ws, w)) = (read_npy(&got), read_npy(&dir.join(format!("noise_t{t}.npy"))));
            assert_eq!(gs, ws);
            let e = g.iter().zip(&w).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            println!("golden {name} noise t={t}: max abs error {e:.2e}");
            assert!(e <= 1e-5, "{name} noise t={t}: {e}");
        }
    }
}

/// Bad input is a one-line message and a failure exit code: noise of another shape, a timestep past the end.
#[test]
fn noise_refuses_mismatched_z_and_a_timestep_outside_the_schedule() {
    let dir = Path::new(FIXTURES).join("odd_f32");
    let other = Path::new(FIXTURES).join("attn_f16/z.npy");
    let out = temp_dir("errors").join("xt.npy");
    let (model, x, z) = (dir.join("model"), dir.join("x.npy"), dir.join("z.npy"));
    let (ok, err) = ddpm(&["noise", "--model", s(&model), "--x", s(&x), "--t", "5", "--z", s(&other), "--out", s(&out)]);
    assert!(!ok && err.contains("z has shape"), "{err}");
    let (ok, err) = ddpm(&["noise", "--model", s(&model), "--x", s(&x), "--t", "1000", "--z", s(&z), "--out", s(&out)]);
    assert!(!ok && err.contains("outside the schedule"), "{err}");
    assert!(!out.exists());
}
