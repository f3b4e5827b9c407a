//! ddpm-web: denoising diffusion (Ho et al. 2020) on the user's own GPU.
//!
//! Data flows one way: weights file → typed config and tensors ([`model`]) → GPU buffers and a recorded
//! U-Net pass ([`model::unet`], kernels in [`gpu::kernels`]) → the Algorithm 2 update ([`diffusion::sampler`])
//! → compact frames of x_t and x̂_0 → pixels ([`image`]). The page (`src/ui`) and the `ddpm` command
//! (`src/bin/ddpm.rs`) are two front ends over the same calls.

pub mod bench;
pub mod cpu;
pub mod diffusion;
pub mod error;
pub mod gpu;
pub mod image;
pub mod model;
pub mod playground;

pub use diffusion::sampler::{Frame, Init, Sampler, SamplerOptions};
pub use diffusion::samplers::{Method, SamplerKind};
pub use diffusion::schedule::{Schedule, SchedulerConfig, StepCoeffs, Variance};
pub use error::{Error, Result};
pub use gpu::context::GpuContext;
pub use model::config::UNetConfig;
pub use model::unet::Unet;
pub use model::weights::Weights;
pub use model::Model;
