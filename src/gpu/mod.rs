//! GPU plumbing. Dependencies point one way: `kernel` (the registry, a leaf) ← `context` (pipelines) and
//! `graph` (typed ops) ← `kernels/*` (each records its ops) ← `plan` (buffers, bind groups, dispatches).

pub mod context;
pub mod graph;
pub mod kernel;
pub mod kernels;
pub mod live;
pub mod plan;
pub mod tensor;
