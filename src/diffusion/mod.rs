//! The diffusion process: the noise schedule and the Algorithm 2 sampler.

pub mod sampler;
pub mod samplers;
pub mod schedule;
