//! The engine's tally of live GPU buffers (`gpu::live`, what the page's `ddpmDebug.stats()` shows). Its own
//! binary: the tally is process-wide, so no other test may make GPU objects while this one counts.
#![cfg(not(target_arch = "wasm32"))]

use ddpm_web::gpu::kernel::KernelFamily;
use ddpm_web::gpu::live::totals;
use ddpm_web::model::unet::check_fits;
use ddpm_web::{Error, GpuContext, Init, Method, Model, Sampler, SamplerOptions, UNetConfig, Unet, Variance};

const TINY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/models/tiny");

#[test]
fn objects_add_their_buffers_and_take_them_back_when_dropped() {
    // Adds: the tally rises by exactly a sampler's bytes (Sampler::gpu_bytes, computed separately) and falls
    // back when a run ends, cancelled or not; a model's weights leave it with the model.
    let ctx = pollster::block_on(GpuContext::new()).expect("a Vulkan adapter (mesa-vulkan-drivers)");
    let model = Model::load_dir(std::path::Path::new(TINY)).unwrap();
    let empty = totals();
    let unet = Unet::new(&ctx, &model).unwrap();
    let loaded = totals();
    assert_eq!(loaded.0 - empty.0, unet_tensors(), "one buffer per weight tensor the network uses");
    assert_eq!(loaded.1 - empty.1, unet.parameter_count() as u64 * 4);
    for steps in [4, 10] {
        let opts = SamplerOptions { n: 2, seed: 1, steps, method: Method::Ddpm { variance: Variance::Small, clip: true }, kernels: KernelFamily::Blocked, start_t: None, shared_noise: false };
        let mut s = Sampler::new(&ctx, &unet, &model.schedule(), &model.scheduler, opts).unwrap();
        let running = totals();
        assert!(running.0 > loaded.0);
        // gpu_bytes leaves out the two small uniform buffers of the update's parameters.
        let params = running.1 - loaded.1 - s.gpu_bytes();
        assert!(params > 0 && params <= 1024, "{params}");
        pollster::block_on(s.first_frame(&ctx, Init::Philox)).unwrap();
        pollster::block_on(s.step(&ctx)).unwrap();
        assert_eq!(totals(), running, "steps allocate nothing");
        drop(s);
        assert_eq!(totals(), loaded, "a dropped run gives everything back");
    }
    drop(unet);
    assert_eq!(totals(), empty);
}

fn unet_tensors() -> u64 {
    // The tiny model's file holds exactly the tensors the network uses, less the ResNets' time projections,
    // which are stacked into one matrix and one bias at load.
    let st = std::fs::read(std::path::Path::new(TINY).join("diffusion_pytorch_model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&st).unwrap();
    let names = st.names();
    let temb = names.iter().filter(|n| n.contains("time_emb_proj")).count() as u64;
    names.len() as u64 - temb + 2
}

#[test]
fn a_config_too_large_for_the_adapter_is_refused_before_any_upload() {
    // Adds: check_fits against a real adapter's limits, before Unet::new makes a buffer.
    let ctx = pollster::block_on(GpuContext::new()).expect("a Vulkan adapter");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(format!("{TINY}/config.json")).unwrap()).unwrap();
    v["sample_size"] = 4096.into();
    let cfg = UNetConfig::from_json(&v.to_string()).unwrap();
    let e = check_fits(&ctx, &cfg).unwrap_err();
    assert!(matches!(e, Error::ModelTooLarge { .. }) && e.to_string().contains("too large for this GPU"), "{e}");
    let tiny = UNetConfig::from_json(&std::fs::read_to_string(format!("{TINY}/config.json")).unwrap()).unwrap();
    assert!(check_fits(&ctx, &tiny).is_ok());
}
