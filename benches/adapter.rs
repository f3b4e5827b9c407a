//! What this machine's adapter charges for the shapes of work the kernels can choose between: figures that
//! decide kernel designs on CPU adapters (lavapipe natively; SwiftShader with
//! `VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json`).
//!
//!     cargo bench --bench adapter
//!
//! 1. Dispatches: the same work (2,000 workgroups of a fixed loop) as 1, 25 or 250 dispatches in one
//!    compute pass, and 250 near-empty ones: what a dispatch costs beyond its work. On lavapipe every
//!    dispatch wakes the driver's worker threads and waits for the last one.
//! 2. Branches: a loop of uniform-buffer loads behind a branch that a whole workgroup takes or skips, a
//!    four-way switch on the workgroup, and the choice between five uniform buffers made per load or once
//!    around the loop: whether a branch no lane takes costs anything, and whether a kernel may pick one of
//!    several bound windows per workgroup.
//!
//! Each row is wall-clock ms per submit (mean of 10 after a warm-up) and CPU ms (all threads).
use std::time::Instant;

use ddpm_web::bench::process_cpu_ms;

struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    name: String,
}

fn gpu() -> Gpu {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::VULKAN;
    let instance = wgpu::Instance::new(desc);
    let adapter = pollster::block_on(instance.request_adapter(&Default::default())).expect("a Vulkan adapter");
    let name = adapter.get_info().name;
    let (device, queue) = pollster::block_on(adapter.request_device(&Default::default())).expect("device");
    Gpu { device, queue, name }
}

/// A pipeline of `main` in `src` and its bind group, through one explicit layout whatever the shader uses:
/// binding 0 a storage buffer written, 1..=5 uniform buffers of 64 KiB, 6 a storage buffer read.
fn pipeline(g: &Gpu, src: &str) -> (wgpu::ComputePipeline, wgpu::BindGroup) {
    let entry = |binding, ty| wgpu::BindGroupLayoutEntry { binding, visibility: wgpu::ShaderStages::COMPUTE, ty, count: None };
    let storage = |read_only| wgpu::BindingType::Buffer { ty: wgpu::BufferBindingType::Storage { read_only }, has_dynamic_offset: false, min_binding_size: None };
    let uniform = wgpu::BindingType::Buffer { ty: wgpu::BufferBindingType::Uniform, has_dynamic_offset: false, min_binding_size: None };
    let mut entries = vec![entry(0, storage(false)), entry(6, storage(true))];
    entries.extend((1..=5).map(|i| entry(i, uniform)));
    let layout = g.device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: None, entries: &entries });
    let pipeline_layout = g.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor { label: None, bind_group_layouts: &[Some(&layout)], immediate_size: 0 });
    let module = g.device.create_shader_module(wgpu::ShaderModuleDescriptor { label: None, source: wgpu::ShaderSource::Wgsl(src.into()) });
    let pipe = g.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor { label: None, layout: Some(&pipeline_layout), module: &module, entry_point: Some("main"), compilation_options: Default::default(), cache: None });
    let buffer = |size: u64, usage| g.device.create_buffer(&wgpu::BufferDescriptor { label: None, size, usage, mapped_at_creation: false });
    let (out, input) = (buffer(1 << 22, wgpu::BufferUsages::STORAGE), buffer(1 << 16, wgpu::BufferUsages::STORAGE));
    let windows: Vec<wgpu::Buffer> = (0..5).map(|_| buffer(1 << 16, wgpu::BufferUsages::UNIFORM)).collect();
    let mut bindings = vec![wgpu::BindGroupEntry { binding: 0, resource: out.as_entire_binding() }, wgpu::BindGroupEntry { binding: 6, resource: input.as_entire_binding() }];
    bindings.extend(windows.iter().enumerate().map(|(i, w)| wgpu::BindGroupEntry { binding: i as u32 + 1, resource: w.as_entire_binding() }));
    let bind_group = g.device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout: &layout, entries: &bindings });
    (pipe, bind_group)
}

/// Wall-clock and CPU ms per submit of `dispatches` dispatches of `groups` workgroups each.
fn time(g: &Gpu, pipe: &wgpu::ComputePipeline, bind_group: &wgpu::BindGroup, dispatches: u32, groups: [u32; 3]) -> (f64, f64) {
    let go = || {
        let mut enc = g.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_pipeline(pipe);
            pass.set_bind_group(0, bind_group, &[]);
            for _ in 0..dispatches {
                pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
            }
        }
        g.queue.submit([enc.finish()]);
        g.device.poll(wgpu::PollType::wait_indefinitely()).expect("poll");
    };
    go();
    let reps = 10;
    let (start, cpu) = (Instant::now(), process_cpu_ms());
    for _ in 0..reps {
        go();
    }
    let cpu = cpu.zip(process_cpu_ms()).map_or(f64::NAN, |(a, b)| (b - a) / reps as f64);
    (start.elapsed().as_secs_f64() * 1e3 / reps as f64, cpu)
}

const WINDOWS: &str = "
@group(0) @binding(0) var<storage, read_write> o: array<f32>;
@group(0) @binding(1) var<uniform> w0: array<vec4<f32>, 4096>;
@group(0) @binding(2) var<uniform> w1: array<vec4<f32>, 4096>;
@group(0) @binding(3) var<uniform> w2: array<vec4<f32>, 4096>;
@group(0) @binding(4) var<uniform> w3: array<vec4<f32>, 4096>;
@group(0) @binding(5) var<uniform> w4: array<vec4<f32>, 4096>;
";

fn main() {
    let g = gpu();
    println!("adapter {}", g.name);

    println!("\n1. The same work as 1, 25 or 250 dispatches (ms per submit: wall / CPU)");
    let (pipe, bg) = pipeline(&g, "@group(0) @binding(0) var<storage, read_write> o: array<f32>;
        @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3<u32>) {
            var s = 0.0;
            for (var i = 0u; i < ITERSu; i++) { s += f32(i) * 1.0001; }
            o[id.x % 65536u] = s;
        }".replace("ITERS", "200").as_str());
    for (dispatches, groups) in [(1u32, 2000u32), (25, 80), (250, 8)] {
        let (ms, cpu) = time(&g, &pipe, &bg, dispatches, [groups, 1, 1]);
        println!("  {dispatches:>4} x {groups:>5} workgroups: {ms:8.2} / {cpu:6.1}");
    }
    let (ms, cpu) = time(&g, &pipe, &bg, 250, [1, 1, 1]);
    println!("   250 x     1 workgroup:   {ms:8.2} / {cpu:6.1}   ({:.0} us per dispatch)", ms * 1e3 / 250.0);

    println!("\n2. Branches on the workgroup around a loop of uniform loads (64 workgroups, ms: wall / CPU)");
    let work = "fn work(seed: u32) -> f32 {
            var s = 0.0;
            for (var i = 0u; i < 4000u; i++) { s += w0[(i + seed) & 4095u].x * 1.0001 + s * 0.5; }
            return s;
        }";
    let bodies = [
        ("no branch", "o[g.x] = work(wid.y);"),
        ("a branch every workgroup takes", "var s = 1.0; if (wid.y < 100000u) { s = work(wid.y); } o[g.x] = s;"),
        ("a branch no workgroup takes", "var s = 1.0; if (wid.y == 100000u) { s = work(wid.y); } o[g.x] = s;"),
        ("if/else on the workgroup's parity", "var s = 1.0; if ((wid.y & 1u) == 0u) { s = work(wid.y); } else { s = work(wid.y + 7u); } o[g.x] = s;"),
        ("a 4-way switch on the workgroup", "var s = 1.0; switch (wid.y & 3u) { case 0u: { s = work(1u); } case 1u: { s = work(2u); } case 2u: { s = work(3u); } default: { s = work(4u); } } o[g.x] = s;"),
    ];
    for (name, body) in bodies {
        let src = format!("{WINDOWS}{work}
            @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {{ {body} }}");
        let (pipe, bg) = pipeline(&g, &src);
        let (ms, cpu) = time(&g, &pipe, &bg, 1, [1, 64, 1]);
        println!("  {name:<36} {ms:8.2} / {cpu:6.1}");
    }

    println!("\n3. Weights from one of five windows, chosen per workgroup (8 channels x vec4, 160 workgroups, ms: wall / CPU)");
    // The weight `fn` each multiply-add calls: one window; a switch per load; or a switch around the
    // whole loop, one copy of it per window.
    let madds = |weight: &str| {
        format!(
            "var a = array<vec4<f32>, 8>();
            for (var i = 0u; i < 1000u; i++) {{
                let v = xs[(g.x + i) & 4095u];
                let k = i * 8u;
                a[0] += {weight}(k) * v; a[1] += {weight}(k + 1u) * v; a[2] += {weight}(k + 2u) * v; a[3] += {weight}(k + 3u) * v;
                a[4] += {weight}(k + 4u) * v; a[5] += {weight}(k + 5u) * v; a[6] += {weight}(k + 6u) * v; a[7] += {weight}(k + 7u) * v;
            }}
            return a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];"
        )
    };
    let per_window: String = (0..5).map(|i| format!("fn one{i}(r: u32) -> f32 {{ return w{i}[r >> 2u][r & 3u]; }}\nfn loop{i}(g: vec3<u32>) -> vec4<f32> {{ {} }}\n", madds(&format!("one{i}")))).collect();
    let head = format!(
        "{WINDOWS}@group(0) @binding(6) var<storage, read> xs: array<vec4<f32>>;
        var<private> chunk: u32;
        fn per_load(r: u32) -> f32 {{
            switch (chunk) {{
                case 0u: {{ return w0[r >> 2u][r & 3u]; }}
                case 1u: {{ return w1[r >> 2u][r & 3u]; }}
                case 2u: {{ return w2[r >> 2u][r & 3u]; }}
                case 3u: {{ return w3[r >> 2u][r & 3u]; }}
                default: {{ return w4[r >> 2u][r & 3u]; }}
            }}
        }}
        fn loop_per_load(g: vec3<u32>) -> vec4<f32> {{ {} }}
        {per_window}",
        madds("per_load")
    );
    let variants = [
        ("one window", "let r = loop0(g);".to_string()),
        ("a switch per load", "let r = loop_per_load(g);".to_string()),
        // A real switch, so that each workgroup runs one copy of the loop.
        ("a switch around the loop", "var r = vec4<f32>(); switch (chunk) { case 0u: { r = loop0(g); } case 1u: { r = loop1(g); } case 2u: { r = loop2(g); } case 3u: { r = loop3(g); } default: { r = loop4(g); } }".to_string()),
    ];
    for (name, body) in variants {
        let src = format!("{head}
            @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {{
                chunk = wid.y % 5u;
                {body}
                o[g.x % 65536u] = r.x + r.y + r.z + r.w;
            }}");
        let (pipe, bg) = pipeline(&g, &src);
        let (ms, cpu) = time(&g, &pipe, &bg, 1, [4, 40, 1]);
        println!("  {name:<36} {ms:8.2} / {cpu:6.1}");
    }
}
