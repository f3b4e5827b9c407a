//! The diffusion process: the noise schedule, the forward process q(x_t | x_0) and the Algorithm 2 sampler.

pub mod forward;
pub mod nll;
pub mod sampler;
pub mod interpolate;
pub mod samplers;
pub mod schedule;
