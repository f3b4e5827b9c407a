//! The original DDPM CIFAR-10 checkpoint's layout (`google/ddpm-cifar10-32` in diffusers format: widths
//! [128, 256, 256, 256], attention at 16x16, downsample_padding 0, norm_eps 1e-6, freq_shift 1, 35.7 M
//! parameters, attention saved under the old names query/key/value/proj_attn) loads and matches diffusers.
//! The weights are a formula of name and index (see tests/cifar_layout/make_golden.py, which made the
//! golden output with diffusers), so the 143 MB file is rebuilt here instead of committed.
#![cfg(not(target_arch = "wasm32"))]

use ddpm_web::gpu::kernel::KernelFamily;
use ddpm_web::{GpuContext, Model, Unet};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cifar_layout");

/// Same as `fill` in make_golden.py.
fn fill(name: &str, shape: &[usize]) -> Vec<f32> {
    let n: usize = shape.iter().product();
    let phase = (name.bytes().map(|b| b as u64).sum::<u64>() % 997) as f64 * 0.01;
    let fan_in: usize = shape[1..].iter().product();
    (0..n)
        .map(|i| {
            let base = (i as f64 * 0.7 + phase).sin();
            let v = if name.ends_with("weight") && shape.len() >= 2 {
                base / (fan_in as f64).sqrt()
            } else if name.ends_with("weight") {
                1.0 + 0.1 * base
            } else {
                0.1 * base
            };
            v as f32
        })
        .collect()
}

/// diffusers' current attention names → the names the original checkpoint was saved with.
fn old_name(name: &str) -> String {
    name.replace(".to_q.", ".query.").replace(".to_k.", ".key.").replace(".to_v.", ".value.").replace(".to_out.0.", ".proj_attn.")
}

fn read_npy(path: &str) -> Vec<f32> {
    let f = std::fs::File::open(path).unwrap();
    npyz::NpyFile::new(std::io::BufReader::new(f)).unwrap().into_vec::<f32>().unwrap()
}

#[test]
fn original_cifar10_layout_loads_and_matches_diffusers() {
    let config = std::fs::read_to_string(format!("{DIR}/config.json")).unwrap();
    let tensors: Vec<(String, Vec<usize>)> = serde_json::from_str(&std::fs::read_to_string(format!("{DIR}/tensors.json")).unwrap()).unwrap();
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, shape)| (old_name(name), shape.clone(), bytemuck::cast_slice(&fill(name, shape)).to_vec()))
        .collect();
    assert!(data.iter().any(|(n, _, _)| n.contains(".proj_attn.")), "the file uses the old attention names");
    let views: Vec<(String, safetensors::tensor::TensorView)> = data
        .iter()
        .map(|(n, s, b)| (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap()))
        .collect();
    let file = safetensors::serialize(views, None).unwrap();

    let model = Model::from_bytes(&config, &file, None).expect("the CIFAR-10 config and weights load");
    let ctx = pollster::block_on(GpuContext::new()).expect("a Vulkan adapter (mesa-vulkan-drivers)");
    let unet = Unet::new(&ctx, &model).unwrap();
    assert_eq!(unet.parameter_count(), 35_746_307);

    let x: Vec<f32> = (0..3 * 32 * 32).map(|i| ((i as f64) * 0.3).sin() as f32).collect();
    let want = read_npy(&format!("{DIR}/eps_t500.npy"));
    // Every convolution family: the tiled one here meets K = 256·9 and 512-wide inputs; the windowed one
    // chunks the 128-channel convolutions and leaves the 256-channel 3x3s (too wide for a window) blocked.
    for kernels in KernelFamily::ALL {
        let eps = pollster::block_on(unet.eps(&ctx, &x, &[500], kernels)).unwrap();
        let err = eps.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, |m, e| if e.is_nan() { f32::NAN } else { m.max(e) });
        println!("CIFAR-10 layout ({}): max |eps - diffusers| = {err:.2e} (eps std ~2)", kernels.name());
        assert!(err <= 1e-3, "{}: max abs error {err}", kernels.name());
    }
}
