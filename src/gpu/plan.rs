//! The plan compiler: a [`Graph`] in, a [`Plan`] out, everything about buffers decided here and nowhere else.
//!
//! 1. Lifetimes: each activation lives from the op that first writes it to the last op that touches it.
//! 2. Buffers: activations share pooled buffers when their live ranges (inclusive) do not meet, assigned
//!    greedily largest first (ratchet's and TFLite's "greedy by size"). An op's outputs and inputs are both
//!    live at that op, so an op never writes a buffer it also reads through another tensor.
//!    [`Assignment::check`] verifies all of this afterwards.
//! 3. Bind groups against each kernel's explicit layout, all inline params packed into one uniform buffer, and
//!    the windows (slices read as uniforms) of weights copied once into another; windows of activations
//!    are bound in place, their pooled buffers a window longer and readable as uniforms.
//! 4. The dispatch list, replayed in one compute pass per run (wgpu orders dispatches and puts the barriers).

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::graph::{Graph, Params, Storage, TensorId, Window};
use crate::gpu::kernel::{Access, Kernel, Precision, WINDOW_BYTES};
use crate::gpu::tensor::{Tensor, STORAGE};

/// Which pooled buffer ("slot") each activation uses, and when it is live. Computed without a GPU, so the
/// invariants are tested directly.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// Per tensor: its slot, for activations.
    pub slot: Vec<Option<usize>>,
    /// Per slot: its size in bytes.
    pub slot_bytes: Vec<u64>,
    /// Per tensor: (first op, last op) that touch it, for every tensor some op touches.
    pub live: Vec<Option<(usize, usize)>>,
}

impl Assignment {
    /// Assigns pooled buffers to the graph's activations.
    pub fn new(graph: &Graph) -> Self {
        let tensors = graph.tensors();
        let mut live: Vec<Option<(usize, usize)>> = vec![None; tensors.len()];
        for (i, op) in graph.ops().iter().enumerate() {
            for t in op.uses() {
                let r = live[t.0].get_or_insert((i, i));
                r.1 = i;
            }
        }
        // Greedy by size (Pisarchyk & Lee 2020, "shared objects"): largest tensors first, each into the
        // smallest existing buffer whose tenants are never live at the same op, else a new buffer of its size.
        let mut order: Vec<usize> = (0..tensors.len()).filter(|&t| matches!(tensors[t].storage, Storage::Activation) && live[t].is_some()).collect();
        let needed = needed_bytes(graph);
        order.sort_by_key(|&t| (std::cmp::Reverse(needed[t]), live[t]));
        let mut slot = vec![None; tensors.len()];
        let mut slot_bytes: Vec<u64> = Vec::new();
        let mut tenants: Vec<Vec<(usize, usize)>> = Vec::new();
        for t in order {
            let (first, last) = live[t].expect("filtered above");
            let fits = |s: &usize| tenants[*s].iter().all(|&(f, l)| l < first || last < f);
            let s = match (0..slot_bytes.len()).filter(fits).min_by_key(|&s| slot_bytes[s]) {
                Some(s) => s,
                None => {
                    slot_bytes.push(needed[t]);
                    tenants.push(Vec::new());
                    slot_bytes.len() - 1
                }
            };
            tenants[s].push((first, last));
            slot[t] = Some(s);
        }
        Self { slot, slot_bytes, live }
    }

    /// Bytes of all pooled buffers: the most activation memory the pass holds at once.
    pub fn pool_bytes(&self) -> u64 {
        self.slot_bytes.iter().sum()
    }

    /// Checks what the pass relies on: every activation is written by its first op before anything reads it,
    /// fits its slot (with room for any window bound in place), and no two activations sharing a slot are live
    /// at the same op (so no buffer is read after another tensor has reused it). Returns the first violation
    /// as a sentence.
    pub fn check(&self, graph: &Graph) -> std::result::Result<(), String> {
        let tensors = graph.tensors();
        let needed = needed_bytes(graph);
        for (t, desc) in tensors.iter().enumerate() {
            let Some(s) = self.slot[t] else {
                if matches!(desc.storage, Storage::Activation) && self.live[t].is_some() {
                    return Err(format!("activation `{}` has no buffer", desc.label));
                }
                continue;
            };
            if self.slot_bytes[s] < needed[t] {
                return Err(format!("`{}` needs {} bytes, its buffer has {}", desc.label, needed[t], self.slot_bytes[s]));
            }
            let (first, _) = self.live[t].ok_or_else(|| format!("`{}` has a buffer but no op uses it", desc.label))?;
            let op = &graph.ops()[first];
            if !op.writes().any(|w| w.0 == t) {
                return Err(format!("`{}` is read by op {first} ({:?}) before anything writes it", desc.label, op.kernel));
            }
        }
        for a in 0..tensors.len() {
            for b in a + 1..tensors.len() {
                if self.slot[a].is_none() || self.slot[a] != self.slot[b] {
                    continue;
                }
                let (ra, rb) = (self.live[a].expect("checked above"), self.live[b].expect("checked above"));
                if ra.0 <= rb.1 && rb.0 <= ra.1 {
                    return Err(format!(
                        "`{}` (ops {}..={}) and `{}` (ops {}..={}) share buffer {} while both are live",
                        tensors[a].label, ra.0, ra.1, tensors[b].label, rb.0, rb.1, self.slot[a].unwrap()
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Per tensor, the bytes its pooled buffer must have: its own, and where a window is bound in place, room for
/// a whole [`WINDOW_BYTES`] binding from the window's start (its last bytes are never read).
fn needed_bytes(graph: &Graph) -> Vec<u64> {
    let mut needed: Vec<u64> = graph.tensors().iter().map(|d| d.bytes()).collect();
    let in_place = |w: &&Window| matches!(graph.tensors()[w.tensor.0].storage, Storage::Activation);
    for w in graph.ops().iter().flat_map(|op| &op.windows).filter(in_place) {
        let end = (w.start * graph.dtype(w.tensor).size()) as u64 + WINDOW_BYTES;
        needed[w.tensor.0] = needed[w.tensor.0].max(end);
    }
    needed
}

/// The plan's copies of its ops' windows, in one uniform buffer: each distinct window once, at an offset the
/// adapter accepts for a uniform binding. A window binding spans [`WINDOW_BYTES`] from its offset, so the
/// buffer runs that far past the last one (the bytes after a window's own are never read).
struct Windows {
    buffer: Option<wgpu::Buffer>,
    offset: std::collections::HashMap<(TensorId, usize, usize), u64>,
}

impl Windows {
    fn new(ctx: &GpuContext, graph: &Graph, tensors: &[Option<Tensor>], owned: &mut Vec<u64>) -> Self {
        let align = ctx.limits().min_uniform_buffer_offset_alignment as u64;
        let mut offset = std::collections::HashMap::new();
        let mut copies = Vec::new();
        let mut end = 0u64;
        let constant = |w: &&Window| !matches!(graph.tensors()[w.tensor.0].storage, Storage::Activation);
        for w in graph.ops().iter().flat_map(|op| &op.windows).filter(constant) {
            offset.entry((w.tensor, w.start, w.len)).or_insert_with(|| {
                let size = graph.dtype(w.tensor).size() as u64;
                let at = end.next_multiple_of(align);
                let bytes = (w.len as u64 * size).next_multiple_of(4);
                copies.push((w.tensor, w.start as u64 * size, at, bytes));
                end = at + bytes;
                at
            });
        }
        let Some(&(.., last, _)) = copies.last() else { return Self { buffer: None, offset } };
        let bytes = last + WINDOW_BYTES;
        owned.push(bytes);
        let buffer = ctx.device.create_buffer(&wgpu::BufferDescriptor { label: Some("windows"), size: bytes, usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST, mapped_at_creation: false });
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        for (t, from, to, bytes) in copies {
            let src = tensors[t.0].as_ref().expect("a window's tensor is a constant, which has a buffer");
            enc.copy_buffer_to_buffer(&src.buffer, from, &buffer, to, bytes);
        }
        ctx.queue.submit([enc.finish()]);
        Self { buffer: Some(buffer), offset }
    }

    /// Where window `w` is read from: its copy, or for an activation the tensor's own buffer (`tensor`).
    fn binding<'a>(&'a self, w: &Window, tensor: &'a Tensor) -> wgpu::BufferBinding<'a> {
        let size = wgpu::BufferSize::new(WINDOW_BYTES);
        match self.offset.get(&(w.tensor, w.start, w.len)) {
            Some(&offset) => wgpu::BufferBinding { buffer: self.buffer.as_ref().expect("a plan with windows has their buffer"), offset, size },
            None => wgpu::BufferBinding { buffer: &tensor.buffer, offset: w.start as u64 * tensor.dtype.size() as u64, size },
        }
    }
}

/// One recorded kernel launch, replayed every run.
pub struct Dispatch {
    pub kernel: Kernel,
    pub precision: Precision,
    pub bind_group: wgpu::BindGroup,
    pub groups: [u32; 3],
}

/// A compiled pass: its buffers, bind groups and dispatches. Dropping it frees its pooled, kept and params
/// buffers; bound buffers belong to the caller.
pub struct Plan {
    dispatches: Vec<Dispatch>,
    /// Per tensor of the graph: its buffer and shape (None for tensors no op touches and that are not bound).
    tensors: Vec<Option<Tensor>>,
    /// Pooled activation memory, bytes.
    pool_bytes: u64,
    /// Buffers this plan made (pool, kept tensors, the params), and their bytes.
    owned: Vec<u64>,
    flops: u64,
}

impl Plan {
    /// Compiles `graph` for `ctx`: assigns buffers, checks the assignment, creates the bind groups.
    pub fn compile(ctx: &GpuContext, graph: &Graph) -> Result<Self> {
        if let Some(op) = graph.ops().iter().find(|op| !ctx.is_enabled(op.precision)) {
            return Err(Error::Gpu(format!("internal: {:?} runs in {} but those kernels were not enabled (GpuContext::enable)", op.kernel, op.precision)));
        }
        let assignment = Assignment::new(graph);
        assignment.check(graph).map_err(|e| Error::Gpu(format!("internal: the compiled plan is unsound: {e}")))?;
        let mut owned = Vec::new();
        let new_buffer = |label: &str, bytes: u64, usage: wgpu::BufferUsages, owned: &mut Vec<u64>| {
            owned.push(bytes);
            ctx.device.create_buffer(&wgpu::BufferDescriptor { label: Some(label), size: bytes, usage, mapped_at_creation: false })
        };
        // A slot whose tenants include a window bound in place is read as a uniform buffer too.
        let mut usage = vec![STORAGE; assignment.slot_bytes.len()];
        for w in graph.ops().iter().flat_map(|op| &op.windows) {
            if let Some(s) = assignment.slot[w.tensor.0] {
                usage[s] |= wgpu::BufferUsages::UNIFORM;
            }
        }
        let pool: Vec<wgpu::Buffer> = assignment.slot_bytes.iter().zip(&usage).map(|(&b, &u)| new_buffer("activation", b, u, &mut owned)).collect();
        let tensors: Vec<Option<Tensor>> = graph
            .tensors()
            .iter()
            .enumerate()
            .map(|(t, desc)| {
                let buffer = match &desc.storage {
                    Storage::Bound(b) => b.clone(),
                    Storage::Kept => new_buffer(&desc.label, desc.bytes(), STORAGE, &mut owned),
                    // The host's values, uploaded once into a buffer of the plan's own.
                    Storage::Host(values) => {
                        owned.push(desc.bytes());
                        Tensor::upload_as(ctx, &desc.label, &desc.shape, values, desc.dtype).buffer
                    }
                    Storage::Activation => pool[assignment.slot[t]?].clone(),
                };
                Some(Tensor { buffer, shape: desc.shape.clone(), dtype: desc.dtype })
            })
            .collect();

        // Inline params, each at an offset the adapter accepts for a uniform binding.
        let align = ctx.limits().min_uniform_buffer_offset_alignment as usize;
        let mut offsets = Vec::with_capacity(graph.ops().len());
        let mut bytes: Vec<u8> = Vec::new();
        for op in graph.ops() {
            if let Params::Inline(p) = &op.params {
                bytes.resize(bytes.len().next_multiple_of(align), 0);
                offsets.push(bytes.len() as u64);
                bytes.extend_from_slice(p);
            } else {
                offsets.push(0);
            }
        }
        let uniforms = {
            use wgpu::util::DeviceExt;
            let mut contents = bytes;
            contents.resize(contents.len().max(16).next_multiple_of(16), 0);
            owned.push(contents.len() as u64);
            ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: Some("params"), contents: &contents, usage: wgpu::BufferUsages::UNIFORM })
        };

        let windows = Windows::new(ctx, graph, &tensors, &mut owned);
        let dispatches = graph
            .ops()
            .iter()
            .zip(offsets)
            .map(|(op, offset)| {
                let params = match &op.params {
                    Params::Inline(p) => wgpu::BufferBinding { buffer: &uniforms, offset, size: wgpu::BufferSize::new(p.len() as u64) },
                    Params::Buffer(b) => b.as_entire_buffer_binding(),
                };
                let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: wgpu::BindingResource::Buffer(params) }];
                for (binding, t) in &op.args {
                    debug_assert_ne!(binding.access, Access::Uniform);
                    let tensor = tensors[t.0].as_ref().expect("every tensor an op touches has a buffer");
                    entries.push(wgpu::BindGroupEntry { binding: binding.number, resource: tensor.buffer.as_entire_binding() });
                }
                for w in &op.windows {
                    let tensor = tensors[w.tensor.0].as_ref().expect("every tensor an op touches has a buffer");
                    entries.push(wgpu::BindGroupEntry { binding: w.binding.number, resource: wgpu::BindingResource::Buffer(windows.binding(w, tensor)) });
                }
                let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout: ctx.layout(op.kernel, op.precision), entries: &entries });
                Dispatch { kernel: op.kernel, precision: op.precision, bind_group, groups: op.groups }
            })
            .collect();
        Ok(Self { dispatches, tensors, pool_bytes: assignment.pool_bytes(), owned, flops: graph.flops() })
    }

    /// The buffer (and shape) tensor `id` lives in. Only kept and bound tensors hold their values after a run.
    pub fn tensor(&self, id: TensorId) -> &Tensor {
        self.tensors[id.0].as_ref().expect("tensor is used by the plan")
    }

    pub fn dispatches(&self) -> &[Dispatch] {
        &self.dispatches
    }

    /// Pooled activation bytes: the plan's peak activation memory.
    pub fn pool_bytes(&self) -> u64 {
        self.pool_bytes
    }

    /// Buffers this plan created and their total bytes (pool, kept tensors, params).
    pub fn owned_buffers(&self) -> (usize, u64) {
        (self.owned.len(), self.owned.iter().sum())
    }

    pub fn flops(&self) -> u64 {
        self.flops
    }

    /// Records every dispatch in one compute pass.
    pub fn encode(&self, ctx: &GpuContext, enc: &mut wgpu::CommandEncoder) {
        encode(ctx, enc, &self.dispatches);
    }

    /// Runs the pass once with a timestamp before and after every dispatch (each in its own compute pass)
    /// and returns the GPU milliseconds per kernel (entry point and precision's pipeline, summed over its
    /// dispatches), or None where the adapter has no `timestamp-query`. Separate passes add barriers, so the
    /// sum can exceed a normal run's time.
    pub async fn profile(&self, ctx: &GpuContext) -> Result<Option<std::collections::HashMap<Kernel, f64>>> {
        if !ctx.device.features().contains(wgpu::Features::TIMESTAMP_QUERY) || self.dispatches.is_empty() {
            return Ok(None);
        }
        // WebGPU caps a query set at 4,096 queries: two per dispatch, in chunks.
        const PER_SET: usize = 2048;
        let mut kernels = std::collections::HashMap::new();
        let period_ns = ctx.queue.get_timestamp_period() as f64;
        for chunk in self.dispatches.chunks(PER_SET) {
            let count = 2 * chunk.len() as u32;
            let set = ctx.device.create_query_set(&wgpu::QuerySetDescriptor { label: Some("profile"), ty: wgpu::QueryType::Timestamp, count });
            let resolved = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamps"),
                size: 8 * count as u64,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            for (i, d) in chunk.iter().enumerate() {
                let writes = wgpu::ComputePassTimestampWrites { query_set: &set, beginning_of_pass_write_index: Some(2 * i as u32), end_of_pass_write_index: Some(2 * i as u32 + 1) };
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("profile"), timestamp_writes: Some(writes) });
                pass.set_pipeline(ctx.pipeline(d.kernel, d.precision));
                pass.set_bind_group(0, &d.bind_group, &[]);
                pass.dispatch_workgroups(d.groups[0], d.groups[1], d.groups[2]);
            }
            enc.resolve_query_set(&set, 0..count, &resolved, 0);
            ctx.queue.submit([enc.finish()]);
            let bytes = ctx.read_bytes(&resolved, 8 * count as u64).await?;
            let ticks: &[u64] = bytemuck::cast_slice(&bytes);
            for (i, d) in chunk.iter().enumerate() {
                let ms = ticks[2 * i + 1].saturating_sub(ticks[2 * i]) as f64 * period_ns / 1e6;
                *kernels.entry(d.kernel).or_insert(0.0) += ms;
            }
        }
        Ok(Some(kernels))
    }

    /// Submits the pass.
    pub fn run(&self, ctx: &GpuContext) {
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        self.encode(ctx, &mut enc);
        ctx.queue.submit([enc.finish()]);
    }
}

/// Records `dispatches` in one compute pass, in order.
pub fn encode<'a>(ctx: &GpuContext, enc: &mut wgpu::CommandEncoder, dispatches: impl IntoIterator<Item = &'a Dispatch>) {
    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("ddpm"), timestamp_writes: None });
    for d in dispatches {
        pass.set_pipeline(ctx.pipeline(d.kernel, d.precision));
        pass.set_bind_group(0, &d.bind_group, &[]);
        pass.dispatch_workgroups(d.groups[0], d.groups[1], d.groups[2]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::graph::grid_1d;
    use crate::gpu::kernel::Kernel;

    /// A chain of upsample ops a → b → c → …, each reading the previous activation.
    fn chain(g: &mut Graph, input: TensorId, len: usize) -> TensorId {
        let mut cur = input;
        for i in 0..len {
            let next = g.activation(&format!("a{i}"), &[1, 1, 4, 4]);
            g.record(Kernel::Upsample, &[0u32; 8], &[("x", cur), ("out", next)], grid_1d(16, 64), 0);
            cur = next;
        }
        cur
    }

    #[test]
    fn a_chain_needs_two_buffers_whatever_its_length() {
        let mut g = Graph::new();
        let x = g.kept("x", &[1, 1, 4, 4]);
        chain(&mut g, x, 10);
        let a = Assignment::new(&g);
        a.check(&g).unwrap();
        assert_eq!(a.slot_bytes.len(), 2, "ping-pong between two buffers");
        assert_eq!(a.pool_bytes(), 2 * 64);
    }

    #[test]
    fn a_tensor_read_later_keeps_its_buffer() {
        // s is written first and read by the last op (a skip connection): no activation in between may take
        // its buffer.
        let mut g = Graph::new();
        let x = g.kept("x", &[1, 1, 4, 4]);
        let s = chain(&mut g, x, 1);
        let h = chain(&mut g, s, 5);
        let out = g.kept("out", &[1, 2, 4, 4]);
        g.record(Kernel::Concat, &[0u32; 8], &[("a", h), ("b", s), ("out", out)], grid_1d(32, 64), 0);
        let a = Assignment::new(&g);
        a.check(&g).unwrap();
        let s_slot = a.slot[s.0];
        for t in 0..g.tensors().len() {
            if t != s.0 && a.slot[t] == s_slot {
                panic!("`{}` reuses the skip's buffer", g.tensors()[t].label);
            }
        }
        assert_eq!(a.slot_bytes.len(), 3);
    }

    #[test]
    fn check_finds_a_buffer_reused_while_live_and_a_read_before_write() {
        let mut g = Graph::new();
        let x = g.kept("x", &[1, 1, 4, 4]);
        let s = chain(&mut g, x, 1);
        let h = chain(&mut g, s, 2);
        let out = g.kept("out", &[1, 2, 4, 4]);
        g.record(Kernel::Concat, &[0u32; 8], &[("a", h), ("b", s), ("out", out)], grid_1d(32, 64), 0);
        let mut a = Assignment::new(&g);
        // Put the last chain tensor in the skip's buffer: the checker must object.
        a.slot[h.0] = a.slot[s.0];
        let e = a.check(&g).unwrap_err();
        assert!(e.contains("share buffer"), "{e}");

        let mut g = Graph::new();
        let never_written = g.activation("ghost", &[1, 1, 4, 4]);
        chain(&mut g, never_written, 1);
        let e = Assignment::new(&g).check(&g).unwrap_err();
        assert!(e.contains("before anything writes it"), "{e}");
    }

    #[test]
    fn smaller_tensors_reuse_a_larger_free_buffer() {
        let mut g = Graph::new();
        let x = g.kept("x", &[1, 1, 8, 8]);
        let big = g.activation("big", &[1, 1, 8, 8]);
        g.record(Kernel::Upsample, &[0u32; 8], &[("x", x), ("out", big)], [1, 1, 1], 0);
        let small = g.activation("small", &[1, 1, 2, 2]);
        g.record(Kernel::Upsample, &[0u32; 8], &[("x", big), ("out", small)], [1, 1, 1], 0);
        let smaller = g.activation("smaller", &[1, 1, 1, 1]);
        g.record(Kernel::Upsample, &[0u32; 8], &[("x", small), ("out", smaller)], [1, 1, 1], 0);
        let a = Assignment::new(&g);
        a.check(&g).unwrap();
        assert_eq!(a.slot[smaller.0], a.slot[big.0], "best fit from the freed 256-byte buffer");
        assert_eq!(a.pool_bytes(), 256 + 16);
    }

    /// A graph whose activation `k` [1, 4, 8, 8] (256 values) is read by attention's scores through a window
    /// bound in place over `range` of it.
    fn window_of_an_activation(range: std::ops::Range<usize>) -> (Graph, TensorId) {
        use crate::gpu::kernels::attention::Params;
        let mut g = Graph::new();
        let x = g.kept("x", &[1, 4, 8, 8]);
        let k = g.activation("k", &[1, 4, 8, 8]);
        g.record(Kernel::Upsample, &[0u32; 8], &[("x", x), ("out", k)], [1, 1, 1], 0);
        let scores = g.activation("scores", &[1, 1, 64, 64]);
        let p = Params { n: 1, c: 4, l: 64, heads: 1, dh: 4, scale: 0.5, nh: 0, win: 0 };
        g.record_windowed(Kernel::AttnScoresWindow, &p, &[("q", x), ("scores", scores)], &[("k", k, range)], [1, 1, 1], 0);
        (g, k)
    }

    /// An activation read through a window bound in place gets a buffer that a whole window binding fits
    /// from the window's start (wgpu refuses a binding past a buffer's end), and the checker objects to one
    /// without that room.
    #[test]
    fn an_activation_windowed_in_place_has_room_for_the_binding() {
        // A window from element 192 (768 bytes, on the 256-byte alignment) of k's 256.
        let (g, k) = window_of_an_activation(192..256);
        let mut a = Assignment::new(&g);
        a.check(&g).unwrap();
        let slot = a.slot[k.0].unwrap();
        assert_eq!(a.slot_bytes[slot], 768 + WINDOW_BYTES, "k's own 1,024 bytes would not hold the binding");
        a.slot_bytes[slot] -= 4;
        let e = a.check(&g).unwrap_err();
        assert!(e.contains("needs"), "{e}");
    }

    /// A window bound in place starts where WebGPU accepts a uniform binding's offset; the recorder refuses
    /// any other start rather than let the plan fail to bind it.
    #[test]
    #[should_panic(expected = "starts off the 256-byte alignment")]
    fn an_in_place_window_off_the_alignment_is_refused() {
        window_of_an_activation(4..68);
    }
}
