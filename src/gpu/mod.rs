//! GPU plumbing: the context, tensors, and the WGSL kernels.

pub mod context;
pub mod kernels;
pub mod tensor;
