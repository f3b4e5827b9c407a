//! The WGSL kernels: one Rust module per shader family, each with the function that records a dispatch, a
//! plain-Rust reference, and tests comparing the two on the GPU (burn's habit). Shapes travel in named
//! uniform structs (`bytemuck`), never in positional arrays.

pub mod attention;
pub mod conv2d;
pub mod embed;
pub mod frames;
pub mod group_norm;
pub mod linear;
pub mod resample;
pub mod step;

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;

/// Every compute entry point, with its shader file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    Conv2d,
    Conv3x3,
    Conv1x1,
    GroupNorm,
    Linear,
    TimeEmbed,
    AttnScores,
    AttnSoftmax,
    AttnApply,
    Upsample,
    Concat,
    DdpmStep,
    PackFrame,
}

struct Source {
    name: &'static str,
    code: &'static str,
    entries: &'static [(Kernel, &'static str)],
}

const SOURCES: &[Source] = &[
    Source {
        name: "conv2d.wgsl",
        code: include_str!("../../../shaders/conv2d.wgsl"),
        entries: &[(Kernel::Conv2d, "general"), (Kernel::Conv3x3, "conv3x3"), (Kernel::Conv1x1, "conv1x1")],
    },
    Source { name: "group_norm.wgsl", code: include_str!("../../../shaders/group_norm.wgsl"), entries: &[(Kernel::GroupNorm, "main")] },
    Source { name: "linear.wgsl", code: include_str!("../../../shaders/linear.wgsl"), entries: &[(Kernel::Linear, "main")] },
    Source { name: "embed.wgsl", code: include_str!("../../../shaders/embed.wgsl"), entries: &[(Kernel::TimeEmbed, "main")] },
    Source {
        name: "attention.wgsl",
        code: include_str!("../../../shaders/attention.wgsl"),
        entries: &[(Kernel::AttnScores, "scores"), (Kernel::AttnSoftmax, "softmax"), (Kernel::AttnApply, "apply")],
    },
    Source {
        name: "resample.wgsl",
        code: include_str!("../../../shaders/resample.wgsl"),
        entries: &[(Kernel::Upsample, "upsample_nearest2x"), (Kernel::Concat, "concat_channels")],
    },
    Source { name: "ddpm_step.wgsl", code: include_str!("../../../shaders/ddpm_step.wgsl"), entries: &[(Kernel::DdpmStep, "main")] },
    Source { name: "frames.wgsl", code: include_str!("../../../shaders/frames.wgsl"), entries: &[(Kernel::PackFrame, "main")] },
];

pub struct Pipelines {
    list: Vec<(Kernel, wgpu::ComputePipeline)>,
}

impl Pipelines {
    /// Compiles every shader once; a shader the adapter rejects is an error naming the file.
    pub async fn compile(device: &wgpu::Device) -> Result<Self> {
        let mut list = Vec::new();
        for src in SOURCES {
            let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(src.name),
                source: wgpu::ShaderSource::Wgsl(src.code.into()),
            });
            let mut made = Vec::new();
            for &(kernel, entry) in src.entries {
                let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(entry),
                    layout: None,
                    module: &module,
                    entry_point: Some(entry),
                    compilation_options: Default::default(),
                    cache: None,
                });
                made.push((kernel, pipeline));
            }
            if let Some(e) = scope.pop().await {
                return Err(Error::Shader { name: src.name, message: e.to_string() });
            }
            list.extend(made);
        }
        Ok(Self { list })
    }

    pub fn get(&self, k: Kernel) -> &wgpu::ComputePipeline {
        &self.list.iter().find(|(kk, _)| *kk == k).expect("every kernel is compiled in Pipelines::compile").1
    }
}

/// One recorded kernel launch: pipeline, bindings and grid, replayed every time the plan runs.
pub struct Dispatch {
    pub kernel: Kernel,
    pub bind_group: wgpu::BindGroup,
    pub groups: [u32; 3],
}

/// Workgroups are capped at 65,535 per dimension; 1-D kernels fold the rest into y and rebuild the index
/// as `gid.x + gid.y * num_workgroups.x * WG`.
pub fn grid_1d(items: usize, wg: usize) -> [u32; 3] {
    let groups = items.div_ceil(wg).max(1);
    let x = groups.min(65_535);
    [x as u32, groups.div_ceil(x) as u32, 1]
}

/// Binds a uniform `params` at binding 0 and `buffers` at 1.. in order, as every shader here lays them out.
pub fn dispatch<P: bytemuck::Pod>(ctx: &GpuContext, kernel: Kernel, params: &P, buffers: &[&wgpu::Buffer], groups: [u32; 3]) -> Dispatch {
    let numbered: Vec<(u32, &wgpu::Buffer)> = buffers.iter().enumerate().map(|(i, b)| (i as u32 + 1, *b)).collect();
    dispatch_at(ctx, kernel, params, &numbered, groups)
}

/// As `dispatch`, with explicit binding numbers, for entry points that use only some of a shared layout's
/// bindings (wgpu derives each pipeline's layout from what its entry point touches).
pub fn dispatch_at<P: bytemuck::Pod>(ctx: &GpuContext, kernel: Kernel, params: &P, buffers: &[(u32, &wgpu::Buffer)], groups: [u32; 3]) -> Dispatch {
    use wgpu::util::DeviceExt;
    let uniform = ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("params"),
        contents: bytemuck::bytes_of(params),
        usage: wgpu::BufferUsages::UNIFORM,
    });
    uniform_dispatch(ctx, kernel, &uniform, buffers, groups)
}

/// Binds a uniform buffer the caller may rewrite between runs (the sampler's step coefficients).
pub fn uniform_dispatch(ctx: &GpuContext, kernel: Kernel, uniform: &wgpu::Buffer, buffers: &[(u32, &wgpu::Buffer)], groups: [u32; 3]) -> Dispatch {
    let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: uniform.as_entire_binding() }];
    for (binding, b) in buffers {
        entries.push(wgpu::BindGroupEntry { binding: *binding, resource: b.as_entire_binding() });
    }
    let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &ctx.pipeline(kernel).get_bind_group_layout(0),
        entries: &entries,
    });
    Dispatch { kernel, bind_group, groups }
}

/// Records `dispatches` in one compute pass, in order (wgpu puts the barriers between them).
pub fn encode(ctx: &GpuContext, enc: &mut wgpu::CommandEncoder, dispatches: &[Dispatch]) {
    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("ddpm"), timestamp_writes: None });
    for d in dispatches {
        pass.set_pipeline(ctx.pipeline(d.kernel));
        pass.set_bind_group(0, &d.bind_group, &[]);
        pass.dispatch_workgroups(d.groups[0], d.groups[1], d.groups[2]);
    }
}

/// Submits `dispatches` and waits for them (tests and one-off passes).
pub fn run(ctx: &GpuContext, dispatches: &[Dispatch]) {
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    encode(ctx, &mut enc, dispatches);
    ctx.queue.submit([enc.finish()]);
}

#[cfg(all(test, not(target_arch = "wasm32")))]
pub(crate) mod testing {
    use std::sync::OnceLock;

    use super::*;

    /// One lavapipe context shared by every kernel test in the process.
    pub fn ctx() -> &'static GpuContext {
        static CTX: OnceLock<GpuContext> = OnceLock::new();
        CTX.get_or_init(|| pollster::block_on(GpuContext::new()).expect("kernel tests need a Vulkan adapter (mesa-vulkan-drivers)"))
    }

    /// Deterministic values in [-1, 1) from a seed (no RNG crate needed for test inputs).
    pub fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    pub fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        let mut worst = (0.0f32, 0usize);
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let err = (g - w).abs() / (1.0 + w.abs());
            if !(err <= worst.0) {
                worst = (err, i);
            }
        }
        assert!(worst.0 <= tol, "{what}: error {} at {} (got {}, want {})", worst.0, worst.1, got[worst.1], want[worst.1]);
    }

    pub fn read(t: &crate::gpu::tensor::Tensor) -> Vec<f32> {
        pollster::block_on(t.read(ctx())).unwrap()
    }
}
