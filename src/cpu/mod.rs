//! The CPU executor: the same [`Graph`] the GPU path records (the U-Net's typed ops), run by Rust kernels
//! ([`ops`]) where there is no usable GPU. Nothing here knows the network: each op's kernel and params struct
//! say what to compute, exactly as they tell the WGSL kernel, so a model the GPU path runs, this path runs.
//!
//! Buffers follow the graph's storage: host tensors (the weights, [`Storage::Host`]) are read in place, kept
//! tensors (x_t, t, ε) live as long as the plan, and activations are allocated at their first write and
//! dropped after their last use (the live ranges the GPU plan compiler pools buffers by).

pub mod ops;
pub mod sampler;
pub mod worker;

use crate::error::{Error, Result};
use crate::gpu::graph::{Graph, Op, Params, Storage, TensorId};
use crate::gpu::kernel::{ConvAlgo, Epilogue, Kernel};
use crate::gpu::kernels::{attention, conv2d, embed, group_norm, linear, resample};
use ops::ConvAdd;

/// A tensor's values during a run.
enum Values {
    /// Read-only host values (weights), shared with the graph.
    Host(std::sync::Arc<[f32]>),
    /// Kept tensors, and activations while live.
    Owned(Vec<f32>),
    /// An activation before its first write or after its last use.
    Empty,
}

/// A graph ready to run on the CPU.
pub struct HostPlan {
    ops: Vec<Op>,
    shapes: Vec<Vec<usize>>,
    values: Vec<Values>,
    /// Activations whose last use is op i: dropped after it.
    frees: Vec<Vec<usize>>,
    /// im2col scratch, reused by every convolution.
    col: Vec<f32>,
    flops: u64,
}

fn params<P: bytemuck::Pod>(op: &Op) -> Result<P> {
    match &op.params {
        Params::Inline(bytes) => bytemuck::try_pod_read_unaligned(bytes).map_err(|e| Error::Cpu(format!("internal: {:?}'s params: {e}", op.kernel))),
        Params::Buffer(_) => Err(Error::Cpu(format!("internal: {:?} takes its params from a GPU buffer, which the CPU executor cannot read", op.kernel))),
    }
}

impl HostPlan {
    /// Checks that every op has a CPU kernel and every tensor lives on the host, and computes lifetimes.
    pub fn compile(g: &Graph) -> Result<Self> {
        let mut values = Vec::with_capacity(g.tensors().len());
        for desc in g.tensors() {
            values.push(match &desc.storage {
                Storage::Host(v) => Values::Host(v.clone()),
                Storage::Kept => Values::Owned(vec![0.0; desc.len()]),
                Storage::Activation => Values::Empty,
                Storage::Bound(_) => return Err(Error::Cpu(format!("internal: `{}` is a GPU buffer in a CPU plan", desc.label))),
            });
        }
        let mut last = vec![None; values.len()];
        for (i, op) in g.ops().iter().enumerate() {
            if !Self::supports(op.kernel) {
                return Err(Error::Cpu(format!("internal: the CPU executor has no kernel for {:?}", op.kernel)));
            }
            if op.precision != crate::gpu::kernel::Precision::F32 {
                return Err(Error::Cpu(format!("internal: {:?} runs in {}; the CPU executor computes in f32 only", op.kernel, op.precision)));
            }
            if let Params::Buffer(_) = op.params {
                return Err(Error::Cpu(format!("internal: {:?} takes its params from a GPU buffer, which the CPU executor cannot read", op.kernel)));
            }
            for t in op.uses() {
                last[t.0] = Some(i);
            }
        }
        let mut frees = vec![Vec::new(); g.ops().len()];
        for (t, l) in last.iter().enumerate() {
            if let (Some(i), Values::Empty) = (l, &values[t]) {
                frees[*i].push(t);
            }
        }
        Ok(Self { ops: g.ops().to_vec(), shapes: g.tensors().iter().map(|d| d.shape.clone()).collect(), values, frees, col: Vec::new(), flops: g.flops() })
    }

    /// The kernels this executor runs: the U-Net's.
    pub fn supports(kernel: Kernel) -> bool {
        matches!(
            kernel,
            Kernel::Conv(ConvAlgo::General | ConvAlgo::Blocked3x3 | ConvAlgo::Blocked1x1 | ConvAlgo::Blocked3x3s2 | ConvAlgo::Tiled, _)
                | Kernel::GroupNorm { .. }
                | Kernel::GroupNormX4 { .. }
                | Kernel::Linear { .. }
                | Kernel::TimeEmbed
                | Kernel::AttnScores
                | Kernel::AttnSoftmax
                | Kernel::AttnApply
                | Kernel::AttnFused
                | Kernel::Upsample
                | Kernel::Concat
        )
    }

    /// FLOPs of one run.
    pub fn flops(&self) -> u64 {
        self.flops
    }

    /// Sets a kept tensor's values.
    pub fn write(&mut self, id: TensorId, data: &[f32]) -> Result<()> {
        match &mut self.values[id.0] {
            Values::Owned(v) if v.len() == data.len() => {
                v.copy_from_slice(data);
                Ok(())
            }
            _ => Err(Error::InputShape { expected: format!("{} values for tensor {}", self.shapes[id.0].iter().product::<usize>(), id.0), found: vec![data.len()] }),
        }
    }

    /// A kept tensor's values after a run.
    pub fn read(&self, id: TensorId) -> &[f32] {
        match &self.values[id.0] {
            Values::Owned(v) => v,
            Values::Host(v) => v,
            Values::Empty => &[],
        }
    }

    /// Runs every op in order.
    pub fn run(&mut self) -> Result<()> {
        for i in 0..self.ops.len() {
            self.run_op(i)?;
            for &t in &self.frees[i] {
                self.values[t] = Values::Empty;
            }
        }
        Ok(())
    }

    fn len(&self, t: TensorId) -> usize {
        self.shapes[t.0].iter().product()
    }

    fn run_op(&mut self, i: usize) -> Result<()> {
        let op = &self.ops[i];
        let arg = |name: &str| op.args.iter().find(|(b, _)| b.name == name).map(|(_, t)| *t).expect("the registry names every binding");
        // The op's output (its one read-write binding) is taken out of the table while it is written, so
        // the inputs can be borrowed from the table at the same time; an in-place op reads it there.
        let out_id = op.writes().next().expect("every kernel writes one tensor");
        let mut out = match std::mem::replace(&mut self.values[out_id.0], Values::Empty) {
            Values::Owned(v) => v,
            Values::Empty => vec![0.0; self.len(out_id)],
            Values::Host(_) => return Err(Error::Cpu(format!("internal: {:?} writes a host tensor", op.kernel))),
        };
        let v = |name: &str| -> &[f32] {
            match &self.values[arg(name).0] {
                Values::Owned(v) => v,
                Values::Host(v) => v,
                Values::Empty => &[],
            }
        };
        match op.kernel {
            Kernel::Conv(_, epilogue) => {
                let p: conv2d::Params = params(op)?;
                let add = match epilogue {
                    Epilogue::Bias => ConvAdd::None,
                    Epilogue::ChannelAdd => ConvAdd::Channel { t: v("chan_add"), stride: p.add_stride as usize, offset: p.add_offset as usize },
                    Epilogue::Residual => ConvAdd::Residual(v("residual")),
                };
                ops::conv2d(&p, v("x"), v("w"), v("bias"), add, &mut out, &mut self.col);
            }
            // The vec4 form is the GPU's way of reading the same GroupNorm.
            Kernel::GroupNorm { silu } | Kernel::GroupNormX4 { silu } => ops::group_norm(&params::<group_norm::Params>(op)?, v("x"), v("gamma"), v("beta"), silu, &mut out),
            Kernel::Linear { silu_in, silu_out } => ops::linear(&params::<linear::Params>(op)?, v("x"), v("w"), v("b"), silu_in, silu_out, &mut out),
            Kernel::TimeEmbed => ops::time_embedding(&params::<embed::Params>(op)?, v("t"), &mut out),
            Kernel::AttnFused => ops::attention_fused(&params::<attention::Params>(op)?, v("q"), v("k"), v("v"), &mut out),
            Kernel::AttnScores => ops::attention_scores(&params::<attention::Params>(op)?, v("q"), v("k"), &mut out),
            Kernel::AttnSoftmax => ops::attention_softmax(&params::<attention::Params>(op)?, &mut out),
            Kernel::AttnApply => ops::attention_apply(&params::<attention::Params>(op)?, v("probs"), v("v"), &mut out),
            Kernel::Upsample => ops::upsample_nearest2x(&params::<resample::Params>(op)?, v("x"), &mut out),
            Kernel::Concat => ops::concat_channels(&params::<resample::Params>(op)?, v("a"), v("b"), &mut out),
            other => return Err(Error::Cpu(format!("internal: the CPU executor has no kernel for {other:?}"))),
        }
        self.values[out_id.0] = Values::Owned(out);
        Ok(())
    }
}

/// The U-Net's pass for one batch size, compiled for the executor: write x and t, run, read ε.
pub struct EpsPlan {
    plan: HostPlan,
    /// x, t and ε of the plan.
    io: [TensorId; 3],
}

impl EpsPlan {
    /// `unet` loaded by [`crate::model::unet::Unet::on_host`].
    pub fn new(unet: &crate::model::unet::Unet, n: usize) -> Result<Self> {
        let (g, io) = unet.host_graph(n)?;
        Ok(Self { plan: HostPlan::compile(&g)?, io })
    }

    /// ε_θ(x, t): x is N·C·H·W values, one network timestep per image.
    pub fn eps(&mut self, x: &[f32], t: &[f32]) -> Result<&[f32]> {
        let [xi, ti, ei] = self.io;
        self.plan.write(xi, x)?;
        self.plan.write(ti, t)?;
        self.plan.run()?;
        Ok(self.plan.read(ei))
    }

    /// FLOPs of one pass over the batch.
    pub fn flops(&self) -> u64 {
        self.plan.flops()
    }
}

/// ε_θ for any batch size, one [`EpsPlan`] per size kept for the next call (the likelihood bound asks for
/// many batches of a few sizes).
#[derive(Default)]
pub struct EpsPlans {
    plans: std::collections::HashMap<usize, EpsPlan>,
}

impl EpsPlans {
    pub fn eps(&mut self, unet: &crate::model::unet::Unet, x: &[f32], t: &[usize]) -> Result<Vec<f32>> {
        let n = t.len();
        let (c, h, w) = unet.image_shape();
        if n == 0 || x.len() != n * c * h * w {
            return Err(Error::InputShape { expected: format!("{n} images of {c}x{h}x{w}"), found: vec![x.len()] });
        }
        let plan = match self.plans.entry(n) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(EpsPlan::new(unet, n)?),
        };
        Ok(plan.eps(x, &t.iter().map(|&v| v as f32).collect::<Vec<_>>())?.to_vec())
    }
}

/// The CPU executor as the likelihood bound's [`crate::diffusion::nll::EpsSource`] where there is no GPU.
pub struct HostEps<'a> {
    unet: &'a crate::model::unet::Unet,
    plans: EpsPlans,
}

impl<'a> HostEps<'a> {
    pub fn new(unet: &'a crate::model::unet::Unet) -> Self {
        Self { unet, plans: EpsPlans::default() }
    }
}

impl crate::diffusion::nll::EpsSource for HostEps<'_> {
    async fn eps(&mut self, x: &[f32], t: &[usize]) -> Result<Vec<f32>> {
        self.plans.eps(self.unet, x, t)
    }
}
