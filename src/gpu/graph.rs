//! A pass recorded as typed ops over tensor ids, before any buffer is chosen (ratchet's habit). Kernel modules
//! record ops; [`crate::gpu::plan`] then decides, in one place, which buffer each tensor lives in and for how
//! long, and builds the bind groups and the dispatch list. Nothing here frees a buffer: a tensor's lifetime
//! is computed from the ops that touch it.

use crate::gpu::kernel::{Access, Binding, Elem, Kernel, Precision, WINDOW_ALIGN, WINDOW_BYTES};
use crate::gpu::tensor::{buffer_bytes, Tensor};

/// A tensor of one graph (an index into its table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(pub(crate) usize);

/// Where a tensor's values live.
#[derive(Debug, Clone)]
pub enum Storage {
    /// Only inside the pass: the plan compiler gives it a pooled buffer for its live range, shared with
    /// tensors whose ranges do not overlap.
    Activation,
    /// Its own buffer, made by the compiler, that outlives the pass: what the caller writes before a run or
    /// reads after it (x_t, t, ε).
    Kept,
    /// A buffer the caller owns and passes in (weights, buffers shared between plans).
    Bound(wgpu::Buffer),
    /// Values on the host that the pass only reads: the weights of a U-Net loaded for the CPU executor
    /// ([`crate::cpu::HostPlan`]). Shared, not copied, between the graphs of every batch size.
    Host(std::sync::Arc<[f32]>),
}

#[derive(Debug, Clone)]
pub struct TensorDesc {
    pub label: String,
    /// Elements, row-major; NCHW for activations.
    pub shape: Vec<usize>,
    /// The element type: f16 only for a network that runs in f16, between its casts.
    pub dtype: Precision,
    pub storage: Storage,
}

impl TensorDesc {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of its buffer (a multiple of 4, at least 4: wgpu refuses empty bindings).
    pub fn bytes(&self) -> u64 {
        buffer_bytes(self.len(), self.dtype)
    }
}

/// Where an op's params struct (binding 0) comes from.
#[derive(Debug, Clone)]
pub enum Params {
    /// Fixed when recorded; the compiler packs all of a plan's into one uniform buffer.
    Inline(Vec<u8>),
    /// A uniform buffer the caller rewrites between runs (the sampler's step coefficients).
    Buffer(wgpu::Buffer),
}

/// A [`crate::gpu::kernel::Access::Window`] binding's contents: elements `start .. start + len` of a
/// constant tensor (copied) or an activation (bound in place).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub binding: Binding,
    pub tensor: TensorId,
    pub start: usize,
    pub len: usize,
}

/// One kernel launch: which kernel, its params, which tensor each of its storage bindings reads or writes,
/// its grid, and the FLOPs it does (2 per multiply-add; 0 for data movement).
#[derive(Debug, Clone)]
pub struct Op {
    pub kernel: Kernel,
    pub params: Params,
    /// One per storage binding of the kernel, in the registry's order.
    pub args: Vec<(Binding, TensorId)>,
    /// One per window binding of the kernel.
    pub windows: Vec<Window>,
    pub groups: [u32; 3],
    pub flops: u64,
    /// The precision of its network bindings (which pipeline runs it); f32 for kernels outside the network.
    pub precision: Precision,
}

impl Op {
    /// Every tensor the op binds, read or written (windows included).
    pub fn uses(&self) -> impl Iterator<Item = TensorId> + '_ {
        self.args.iter().map(|(_, t)| *t).chain(self.windows.iter().map(|w| w.tensor))
    }

    /// The tensors this op writes (its `read_write` bindings).
    pub fn writes(&self) -> impl Iterator<Item = TensorId> + '_ {
        self.args.iter().filter(|(b, _)| b.access == Access::ReadWrite).map(|(_, t)| *t)
    }
}

#[derive(Debug, Default, Clone)]
pub struct Graph {
    tensors: Vec<TensorDesc>,
    ops: Vec<Op>,
}

impl Graph {
    pub fn new() -> Self {
        Self::default()
    }

    fn add(&mut self, label: &str, shape: &[usize], dtype: Precision, storage: Storage) -> TensorId {
        self.tensors.push(TensorDesc { label: label.to_string(), shape: shape.to_vec(), dtype, storage });
        TensorId(self.tensors.len() - 1)
    }

    /// An f32 tensor that lives only inside the pass.
    pub fn activation(&mut self, label: &str, shape: &[usize]) -> TensorId {
        self.activation_as(label, shape, Precision::F32)
    }

    /// A tensor of `dtype` that lives only inside the pass.
    pub fn activation_as(&mut self, label: &str, shape: &[usize], dtype: Precision) -> TensorId {
        self.add(label, shape, dtype, Storage::Activation)
    }

    /// An f32 tensor the caller writes before a run or reads after it.
    pub fn kept(&mut self, label: &str, shape: &[usize]) -> TensorId {
        self.add(label, shape, Precision::F32, Storage::Kept)
    }

    /// A buffer the caller owns, with the shape and type it holds.
    pub fn bound(&mut self, label: &str, tensor: &Tensor) -> TensorId {
        self.add(label, &tensor.shape, tensor.dtype, Storage::Bound(tensor.buffer.clone()))
    }

    /// Host values the pass reads (the CPU executor's weights), with their shape.
    pub fn host(&mut self, label: &str, shape: &[usize], values: std::sync::Arc<[f32]>) -> TensorId {
        assert_eq!(shape.iter().product::<usize>(), values.len(), "{label}: values do not match shape");
        self.add(label, shape, Precision::F32, Storage::Host(values))
    }

    pub fn dtype(&self, id: TensorId) -> Precision {
        self.tensors[id.0].dtype
    }

    pub fn tensor(&self, id: TensorId) -> &TensorDesc {
        &self.tensors[id.0]
    }

    pub fn shape(&self, id: TensorId) -> &[usize] {
        &self.tensors[id.0].shape
    }

    pub fn len(&self, id: TensorId) -> usize {
        self.tensors[id.0].len()
    }

    pub fn tensors(&self) -> &[TensorDesc] {
        &self.tensors
    }

    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// FLOPs of the whole pass.
    pub fn flops(&self) -> u64 {
        self.ops.iter().map(|o| o.flops).sum()
    }

    /// Records a launch of `kernel`. `args` names a tensor for each of the kernel's storage bindings, by the
    /// names in the registry (`kernel.rs`); a missing, extra or misnamed one, or one of the wrong element
    /// type, is a bug in the caller and panics in every test that records it. The op runs in the precision
    /// of its network tensors, which must all agree.
    pub fn record<P: bytemuck::Pod>(&mut self, kernel: Kernel, params: &P, args: &[(&str, TensorId)], groups: [u32; 3], flops: u64) {
        self.record_with(kernel, Params::Inline(bytemuck::bytes_of(params).to_vec()), args, groups, flops);
    }

    /// As [`Graph::record`], for a kernel with window bindings: `windows` names, for each, a tensor and the
    /// range of its elements the window holds, which must fit [`WINDOW_BYTES`]. A constant's (weights: bound
    /// or host) the plan copies once, when compiled; an activation's it binds in place, so its range must
    /// start on a [`WINDOW_ALIGN`]-byte boundary, and the kernel reads what lies in it at the time it runs.
    pub fn record_windowed<P: bytemuck::Pod>(&mut self, kernel: Kernel, params: &P, args: &[(&str, TensorId)], windows: &[(&str, TensorId, std::ops::Range<usize>)], groups: [u32; 3], flops: u64) {
        let wanted: Vec<Binding> = kernel.bindings().iter().copied().filter(|b| b.access == Access::Window).collect();
        assert_eq!(windows.len(), wanted.len(), "{kernel:?} takes windows {:?}", wanted.iter().map(|b| b.name).collect::<Vec<_>>());
        let windows = wanted
            .iter()
            .map(|b| {
                let (_, id, range) = windows.iter().find(|(name, ..)| *name == b.name).unwrap_or_else(|| panic!("{kernel:?}: no window for binding `{}`", b.name));
                let desc = &self.tensors[id.0];
                assert!(!matches!(desc.storage, Storage::Kept), "{kernel:?}: window `{}` of `{}`, a kept tensor (a constant or an activation only)", b.name, desc.label);
                assert!(range.end <= desc.len() && ((range.end - range.start) * desc.dtype.size()) as u64 <= WINDOW_BYTES, "{kernel:?}: window {range:?} of `{}` ({} values) does not fit", desc.label, desc.len());
                if matches!(desc.storage, Storage::Activation) {
                    assert_eq!((range.start * desc.dtype.size()) as u64 % WINDOW_ALIGN, 0, "{kernel:?}: window {range:?} of activation `{}` starts off the {WINDOW_ALIGN}-byte alignment", desc.label);
                }
                Window { binding: *b, tensor: *id, start: range.start, len: range.end - range.start }
            })
            .collect();
        self.push(kernel, Params::Inline(bytemuck::bytes_of(params).to_vec()), args, windows, groups, flops);
    }

    /// As [`Graph::record`], with the params in a uniform buffer the caller rewrites between runs.
    pub fn record_with(&mut self, kernel: Kernel, params: Params, args: &[(&str, TensorId)], groups: [u32; 3], flops: u64) {
        self.push(kernel, params, args, Vec::new(), groups, flops);
    }

    fn push(&mut self, kernel: Kernel, params: Params, args: &[(&str, TensorId)], windows: Vec<Window>, groups: [u32; 3], flops: u64) {
        let storage: Vec<Binding> = kernel.bindings().iter().copied().filter(|b| matches!(b.access, Access::Read | Access::ReadWrite)).collect();
        assert_eq!(args.len(), storage.len(), "{kernel:?} takes {:?}, got {:?}", storage.iter().map(|b| b.name).collect::<Vec<_>>(), args.iter().map(|a| a.0).collect::<Vec<_>>());
        let args = storage
            .iter()
            .map(|b| {
                let (_, id) = args.iter().find(|(name, _)| *name == b.name).unwrap_or_else(|| panic!("{kernel:?}: no tensor for binding `{}`", b.name));
                assert!(id.0 < self.tensors.len(), "{kernel:?}: `{}` is not a tensor of this graph", b.name);
                (*b, *id)
            })
            .collect::<Vec<_>>();
        let precision = args.iter().find(|(b, _)| b.elem == Elem::Net).map_or(Precision::F32, |(_, id)| self.dtype(*id));
        assert!(kernel.runs_in(precision), "{kernel:?} has no {precision} form");
        for (b, id) in args.iter().copied().chain(windows.iter().map(|w| (w.binding, w.tensor))) {
            let want = if b.elem == Elem::Net { precision } else { Precision::F32 };
            assert_eq!(self.dtype(id), want, "{kernel:?}: `{}` ({}) is {}, the op needs {want}", b.name, self.tensors[id.0].label, self.dtype(id));
        }
        self.ops.push(Op { kernel, params, args, windows, groups, flops, precision });
    }
}

/// Workgroups are capped at 65,535 per dimension; 1-D kernels fold the rest into y and rebuild the index
/// as `gid.x + gid.y * num_workgroups.x * WG`.
pub fn grid_1d(items: usize, wg: usize) -> [u32; 3] {
    let groups = items.div_ceil(wg).max(1);
    let x = groups.min(65_535);
    [x as u32, groups.div_ceil(x) as u32, 1]
}
