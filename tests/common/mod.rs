//! Helpers the CLI tests of the applications share: run `ddpm`, a scratch folder, .npy in and out.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use npyz::WriterBuilder;

/// Runs `ddpm` with `args`: (success, stdout, stderr); a panic fails the test whatever the exit code.
pub fn ddpm(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ddpm")).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "ddpm {args:?} panicked:\n{stderr}");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

/// A fresh folder under the system's temp dir, named for the test and this process.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ddpm-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn write_npy(path: &Path, shape: &[u64], data: &[f32]) {
    let f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut w = npyz::WriteOptions::new().default_dtype().shape(shape).writer(f).begin_nd().unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
}

pub fn read_npy(path: &Path) -> Vec<f32> {
    let f = std::fs::File::open(path).unwrap();
    npyz::NpyFile::new(std::io::BufReader::new(f)).unwrap().into_vec::<f32>().unwrap()
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The first `n` of the page's shipped Fashion-MNIST test images, bytes k as k/127.5 − 1.
pub fn shipped_images(n: usize) -> Vec<f32> {
    let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/www/data/fashion-mnist-test/images.u8")).unwrap();
    bytes[..n * 784].iter().map(|&b| b as f32 / 127.5 - 1.0).collect()
}

pub fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}
