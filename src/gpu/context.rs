//! One `GpuContext` per page load (wgpu's `repeated_compute` habit): adapter, device, queue and every compute
//! pipeline, compiled once. The app, the `ddpm` command and the tests all run work through it.

use std::sync::{Arc, Mutex, OnceLock};

use crate::error::{Error, Result};
use crate::gpu::kernel::{Access, Kernel, Precision, SOURCES, WINDOW_BYTES};

pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter_info: wgpu::AdapterInfo,
    /// Every kernel in f32.
    pub pipelines: Pipelines,
    /// The network's kernels in f16, compiled on first use ([`GpuContext::enable`]): a page that never runs
    /// f16 does not pay for compiling them twice.
    f16: OnceLock<Pipelines>,
    /// Set by the device-lost callback or an uncaptured error; checked between steps.
    fault: Arc<Mutex<Option<Error>>>,
}

impl GpuContext {
    /// Finds an adapter (WebGPU in the browser, Vulkan natively), opens a device with the largest storage
    /// buffers the adapter allows, and compiles every kernel.
    pub async fn new() -> Result<Self> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        #[cfg(target_arch = "wasm32")]
        {
            desc.backends = wgpu::Backends::BROWSER_WEBGPU;
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            desc.backends = wgpu::Backends::VULKAN;
        }
        let instance = wgpu::Instance::new(desc);
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::NoAdapter(no_adapter_hint(&e.to_string())))?;
        let available = adapter.limits();
        let limits = wgpu::Limits {
            max_storage_buffer_binding_size: available.max_storage_buffer_binding_size,
            max_buffer_size: available.max_buffer_size,
            ..wgpu::Limits::default()
        };
        // Timestamps only feed the benchmark's per-family GPU times; f16 is used only when a run asks for it.
        let required_features = adapter.features() & (wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SHADER_F16);
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("ddpm-web"),
                required_limits: limits,
                required_features,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Device(e.to_string()))?;
        let fault = Arc::new(Mutex::new(None));
        {
            let fault = fault.clone();
            device.set_device_lost_callback(move |reason, message| {
                let mut f = fault.lock().unwrap_or_else(|p| p.into_inner());
                f.get_or_insert(Error::DeviceLost(format!("{reason:?}: {message}")));
            });
        }
        {
            // Without a handler wgpu panics on an uncaptured error natively; keep the first for the user.
            let fault = fault.clone();
            device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                let mut f = fault.lock().unwrap_or_else(|p| p.into_inner());
                let err = match e {
                    wgpu::Error::OutOfMemory { .. } => Error::Gpu("the GPU ran out of memory; try fewer images".into()),
                    other => Error::Gpu(other.to_string()),
                };
                f.get_or_insert(err);
            }));
        }
        let pipelines = Pipelines::compile(&device, Precision::F32).await?;
        Ok(Self { device, queue, adapter_info: adapter.get_info(), pipelines, f16: OnceLock::new(), fault })
    }

    /// The adapter as a person would name it ("llvmpipe (Vulkan)"). Browsers often hide the name
    /// (fingerprinting), so fall back to what the backend says.
    pub fn adapter_name(&self) -> String {
        let i = &self.adapter_info;
        let name = [&i.name, &i.driver, &i.driver_info].into_iter().find(|s| !s.is_empty()).cloned();
        match (name, i.backend) {
            (Some(n), wgpu::Backend::BrowserWebGpu) => format!("{n} (WebGPU)"),
            (None, wgpu::Backend::BrowserWebGpu) => "WebGPU adapter (the browser does not name it)".to_string(),
            (Some(n), b) => format!("{n} ({b:?})"),
            (None, b) => format!("{b:?} adapter"),
        }
    }

    /// Whether this is a software adapter (lavapipe natively, SwiftShader as WebGPU's fallback in
    /// Chromium), which runs the shaders on the CPU: there the page's CPU path ran a step 8x faster with
    /// one worker (163 vs 1,310 ms at batch 4, BENCHMARKS.md), and a pass costs about one image's time per
    /// image, which [`crate::model::unet::Unet::tune`] relies on.
    pub fn is_software(&self) -> bool {
        self.adapter_info.device_type == wgpu::DeviceType::Cpu
    }

    pub fn limits(&self) -> wgpu::Limits {
        self.device.limits()
    }

    /// The first device loss or uncaptured GPU error since the context was made, if any.
    pub fn check(&self) -> Result<()> {
        match &*self.fault.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Whether the device can run the network in f16 (the adapter has `shader-f16`).
    pub fn has_f16(&self) -> bool {
        self.device.features().contains(wgpu::Features::SHADER_F16)
    }

    /// Makes the kernels of `precision` ready: for f16, compiles the network's kernels in f16 once per
    /// context, or refuses where the adapter has no `shader-f16`.
    pub async fn enable(&self, precision: Precision) -> Result<()> {
        if self.is_enabled(precision) {
            return Ok(());
        }
        if !self.has_f16() {
            return Err(Error::NoShaderF16 { adapter: self.adapter_name() });
        }
        let compiled = Pipelines::compile(&self.device, Precision::F16).await?;
        let _ = self.f16.set(compiled);
        Ok(())
    }

    /// Whether [`GpuContext::enable`] has made `precision`'s kernels ready.
    pub fn is_enabled(&self, precision: Precision) -> bool {
        precision == Precision::F32 || self.f16.get().is_some()
    }

    fn entry(&self, k: Kernel, precision: Precision) -> &(wgpu::BindGroupLayout, wgpu::ComputePipeline) {
        let set = match precision {
            Precision::F16 if k.is_network() => self.f16.get().expect("f16 kernels are enabled before a plan uses them (Plan::compile checks)"),
            _ => &self.pipelines,
        };
        set.list[k.index()].as_ref().expect("every kernel of a compiled precision has a pipeline")
    }

    /// Kernel `k`'s pipeline in `precision` (kernels outside the network have only f32).
    pub fn pipeline(&self, k: Kernel, precision: Precision) -> &wgpu::ComputePipeline {
        &self.entry(k, precision).1
    }

    /// The explicit bind-group layout of kernel `k` in `precision`.
    pub fn layout(&self, k: Kernel, precision: Precision) -> &wgpu::BindGroupLayout {
        &self.entry(k, precision).0
    }

    /// Waits for submitted work natively; in the browser the event loop drives the GPU instead.
    pub fn poll(&self) {
        #[cfg(not(target_arch = "wasm32"))]
        {
            let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
        }
    }

    /// Waits until the GPU has finished everything submitted so far (natively by polling, in the browser by
    /// awaiting the queue's promise).
    pub async fn finish(&self) -> Result<()> {
        let (tx, rx) = futures_channel::oneshot::channel();
        self.queue.on_submitted_work_done(move || {
            let _ = tx.send(());
        });
        self.poll();
        rx.await.map_err(|_| self.check().err().unwrap_or_else(|| Error::DeviceLost("the GPU stopped answering".into())))?;
        self.check()
    }

    /// Copies `bytes` of `src` (from offset 0) back to the host.
    pub async fn read_bytes(&self, src: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>> {
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: bytes.max(4).next_multiple_of(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(src, 0, &staging, 0, bytes.next_multiple_of(4));
        self.queue.submit([enc.finish()]);
        map_read(self, &staging).await?;
        let out = {
            let view = staging.slice(..).get_mapped_range().map_err(|e| Error::Gpu(e.to_string()))?;
            view[..bytes as usize].to_vec()
        };
        staging.unmap();
        Ok(out)
    }
}

/// Maps a MAP_READ buffer and waits for it (natively by polling, in the browser by awaiting the promise).
pub async fn map_read(ctx: &GpuContext, buffer: &wgpu::Buffer) -> Result<()> {
    let (tx, rx) = futures_channel::oneshot::channel();
    buffer.slice(..).map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    ctx.poll();
    match rx.await {
        Ok(Ok(())) => ctx.check(),
        Ok(Err(e)) => Err(ctx.check().err().unwrap_or_else(|| Error::Gpu(format!("reading back from the GPU failed: {e}")))),
        Err(_) => Err(ctx.check().err().unwrap_or_else(|| Error::DeviceLost("the read-back was dropped".into()))),
    }
}

/// Every kernel's bind-group layout and pipeline in one precision, in [`Kernel::ALL`]'s order (None for a
/// kernel that has no form in that precision).
pub struct Pipelines {
    list: Vec<Option<(wgpu::BindGroupLayout, wgpu::ComputePipeline)>>,
}

impl Pipelines {
    /// Compiles each WGSL module once and every kernel's pipeline against its explicit layout; a shader the
    /// adapter rejects, or one whose bindings disagree with the registry, is an error naming the file. In
    /// f16 only the kernels that run in f16 ([`Kernel::runs_in`]: the network's, less the windowed ones).
    pub async fn compile(device: &wgpu::Device, precision: Precision) -> Result<Self> {
        let mut list: Vec<Option<_>> = (0..Kernel::ALL.len()).map(|_| None).collect();
        for src in SOURCES {
            let kernels: Vec<Kernel> = Kernel::ALL.into_iter().filter(|k| k.source().file == src.file && k.runs_in(precision)).collect();
            if kernels.is_empty() {
                continue;
            }
            let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor { label: Some(src.file), source: wgpu::ShaderSource::Wgsl(src.code_for(precision)) });
            let mut made = Vec::new();
            for kernel in kernels {
                let entries: Vec<wgpu::BindGroupLayoutEntry> = kernel
                    .bindings()
                    .iter()
                    .map(|b| wgpu::BindGroupLayoutEntry {
                        binding: b.number,
                        visibility: wgpu::ShaderStages::COMPUTE,
                        ty: wgpu::BindingType::Buffer {
                            ty: match b.access {
                                Access::Uniform | Access::Window => wgpu::BufferBindingType::Uniform,
                                Access::Read => wgpu::BufferBindingType::Storage { read_only: true },
                                Access::ReadWrite => wgpu::BufferBindingType::Storage { read_only: false },
                            },
                            has_dynamic_offset: false,
                            min_binding_size: match b.access {
                                Access::Window => wgpu::BufferSize::new(WINDOW_BYTES),
                                _ => None,
                            },
                        },
                        count: None,
                    })
                    .collect();
                let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(kernel.entry()), entries: &entries });
                let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor { label: Some(kernel.entry()), bind_group_layouts: &[Some(&layout)], immediate_size: 0 });
                let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(kernel.entry()),
                    layout: Some(&pipeline_layout),
                    module: &module,
                    entry_point: Some(kernel.entry()),
                    compilation_options: wgpu::PipelineCompilationOptions { constants: kernel.constants(), ..Default::default() },
                    cache: None,
                });
                made.push((kernel, layout, pipeline));
            }
            if let Some(e) = scope.pop().await {
                return Err(Error::Shader { name: src.file, message: format!("({precision}) {e}") });
            }
            for (kernel, layout, pipeline) in made {
                list[kernel.index()] = Some((layout, pipeline));
            }
        }
        Ok(Self { list })
    }
}

fn no_adapter_hint(e: &str) -> String {
    if cfg!(target_arch = "wasm32") {
        format!(
            "{e}. This page needs WebGPU: use a recent Chrome or Edge (113+) on desktop or Android, Safari 26+, or \
             Firefox 141+ on Windows; in Chromium on Linux start it with --enable-unsafe-webgpu."
        )
    } else {
        format!("{e}. Install a Vulkan driver (on Debian: `apt-get install mesa-vulkan-drivers` for the CPU driver lavapipe).")
    }
}
