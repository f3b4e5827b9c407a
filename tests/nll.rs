//! `ddpm nll` end to end on the tiny model: what a person gets in terms.json, and the refusals they may meet.
//! (The bound's maths is checked against closed forms in src/diffusion/nll.rs and against evaluate.py in
//! training/tests/test_nll.py.)
#![cfg(not(target_arch = "wasm32"))]

use std::path::{Path, PathBuf};
use std::process::Command;

fn model() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/models/tiny").to_string()
}

fn ddpm(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ddpm")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ddpm-nll-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_npy(path: &Path, shape: &[u64], data: &[f32]) {
    use npyz::WriterBuilder;
    let file = std::fs::File::create(path).unwrap();
    let mut w = npyz::WriteOptions::new().default_dtype().shape(shape).writer(std::io::BufWriter::new(file)).begin_nd().unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
}

/// `n` 28x28 images on the 8-bit grid (k / 127.5 − 1), ends included.
fn grid_images(n: usize) -> Vec<f32> {
    (0..n * 784).map(|j| ((j * 37 % 256) as f64 / 127.5 - 1.0) as f32).collect()
}

#[test]
fn terms_json_has_the_issues_keys_and_rows_sum_to_bits_per_dim() {
    // Two images, every 100th term, σ² = β: the five keys, one row of T + 1 = 1001 entries per image with
    // nulls exactly where terms were skipped, each row summing to its bits/dim, and `estimate` set.
    let dir = temp_dir("shape");
    let x = dir.join("x0.npy");
    write_npy(&x, &[2, 1, 28, 28], &grid_images(2));
    let out = dir.join("terms.json");
    let (ok, stdout, err) = ddpm(&["nll", "--model", &model(), "--x", x.to_str().unwrap(), "--variance", "large", "--every", "100", "--seed", "4", "--out", out.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(stdout.contains("bits/dim"), "{stdout}");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let keys: Vec<&str> = json.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    assert_eq!(keys.len(), 5, "{keys:?}");
    assert_eq!(json["variance"], "large");
    assert_eq!(json["every"], 100);
    assert_eq!(json["estimate"], true);
    let bpd = json["bits_per_dim"].as_array().unwrap();
    let rows = json["terms_bits_per_dim"].as_array().unwrap();
    assert_eq!((bpd.len(), rows.len()), (2, 2));
    for (b, row) in bpd.iter().zip(rows) {
        let row = row.as_array().unwrap();
        assert_eq!(row.len(), 1001);
        let computed: Vec<usize> = (0..row.len()).filter(|&t| !row[t].is_null()).collect();
        // L_0..L_99 exactly, the middle of each stratum of 100 above (149, 249, …, 949), and L_T.
        assert_eq!(computed.len(), 100 + 9 + 1, "{computed:?}");
        assert_eq!(computed[100], 149);
        assert_eq!(*computed.last().unwrap(), 1000);
        let sum: f64 = row.iter().filter_map(|v| v.as_f64()).sum();
        let b = b.as_f64().unwrap();
        assert!((sum - b).abs() < 1e-9 * b.abs().max(1.0), "{sum} vs {b}");
        assert!(b > 0.0 && b.is_finite());
    }
}

#[test]
fn refuses_images_off_the_grid_and_a_bad_every_in_words() {
    // A user's error must come back as a sentence naming the problem, with a failing exit status, not a panic.
    let dir = temp_dir("refuse");
    let x = dir.join("x0.npy");
    let mut images = grid_images(1);
    images[3] = 0.123;
    write_npy(&x, &[1, 1, 28, 28], &images);
    let out = dir.join("terms.json");
    let (ok, _, err) = ddpm(&["nll", "--model", &model(), "--x", x.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("Pixel 3") && err.contains("8-bit"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    write_npy(&x, &[1, 1, 28, 28], &grid_images(1));
    let (ok, _, err) = ddpm(&["nll", "--model", &model(), "--x", x.to_str().unwrap(), "--every", "0", "--out", out.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("every"), "{err}");
}
