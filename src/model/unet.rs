//! The `UNet2DModel` graph in diffusers' order, recorded as typed ops into a [`Graph`] and compiled once per
//! batch size into a [`Plan`]. Running the network is then: write x_t and t, replay the plan.
//!
//! One walk over the config serves both uses: [`Unet::new`] walks it with batch 1 to upload every weight and
//! check its shape (a wrong file is refused before anything runs), and [`Unet::record`] walks it again for the
//! real batch, reusing the uploaded weights. Nothing here frees a buffer: the plan compiler computes each
//! activation's lifetime and shares buffers between activations that are never live at once.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::graph::{Graph, Storage, TensorId};
use crate::gpu::kernel::{KernelChoice, KernelFamily, Precision};
use crate::gpu::kernels::cast::{cast_in, cast_out};
use crate::gpu::kernels::attention::{attention, AttentionImpl, AttentionIo};
use crate::gpu::kernels::conv2d::{conv1x1_pair, conv2d, ConvIo, ConvSpec, Extra};
use crate::gpu::kernels::embed::time_embedding;
use crate::gpu::kernels::group_norm::{group_norm, group_norm_pair, GroupNormIo, GroupNormPairIo};
use crate::gpu::kernels::linear::{linear, LinearIo};
use crate::gpu::kernels::resample::{concat_channels, upsample_nearest2x};
use crate::gpu::plan::{Assignment, Plan};
use crate::gpu::tensor::Tensor;
use crate::model::config::{BlockKind, UNetConfig};
use crate::model::weights::Weights;
use crate::model::Model;

/// The most memory one batch may hold at once on any adapter (activations and scratch), whatever the
/// adapter's own limits say: browsers kill tabs long before a GPU runs out.
const MEMORY_BUDGET: u64 = 1 << 30;

/// The network with its weights checked and placed (on the GPU, or on the host for the CPU executor),
/// ready to record passes.
pub struct Unet {
    pub config: UNetConfig,
    /// The element type of its weights and activations (x_t and ε stay f32 either way).
    precision: Precision,
    weights: HashMap<String, Weight>,
    parameter_count: usize,
    /// Per image: FLOPs of one pass, the largest single buffer, and the activation memory of a compiled pass.
    flops_per_image: u64,
    largest_buffer_per_image: u64,
    peak_bytes_per_image: u64,
    /// Measured choices of convolution kernels, per batch size (the context and model are this Unet's).
    tuned: RefCell<HashMap<usize, Tuning>>,
    /// The weights' buffers in the engine's tally (`gpu::live`), set once they are uploaded.
    _live: Option<crate::gpu::live::Live>,
}

/// Where a weight lives: a GPU buffer, or host values the CPU executor reads in place.
#[derive(Clone)]
enum Weight {
    Gpu(Tensor),
    Host { values: Arc<[f32]>, shape: Vec<usize> },
}

impl Weight {
    fn shape(&self) -> &[usize] {
        match self {
            Weight::Gpu(t) => &t.shape,
            Weight::Host { shape, .. } => shape,
        }
    }

    fn len(&self) -> usize {
        self.shape().iter().product()
    }

    /// The weight as a tensor of `g`.
    fn bind(&self, g: &mut Graph, label: &str) -> TensorId {
        match self {
            Weight::Gpu(t) => g.bound(label, t),
            Weight::Host { values, shape } => g.host(label, shape, values.clone()),
        }
    }
}

/// Where [`Unet::load`] puts the weights.
#[derive(Clone, Copy)]
pub enum Target<'a> {
    Gpu(&'a GpuContext),
    /// The host, for the CPU executor ([`crate::cpu`]).
    Host,
}

/// The outcome of timing each convolution family on a whole pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Tuning {
    pub chosen: KernelFamily,
    /// Milliseconds per pass of each candidate timed, in [`KernelFamily::ALL`]'s order.
    pub ms: Vec<(KernelFamily, f64)>,
    /// On a software adapter, a blocked pass would take over [`SLOW_PASS_MS`] (projected from one image;
    /// `ms` holds the projections of blocked and, in f32, windowed): the GPU families were not tried.
    pub others_skipped: bool,
}

/// On a software adapter, a blocked pass projected slower than this (one image's time x the batch) means
/// timing the other families (several passes each) would hold up the page for seconds: they are not timed
/// there. A hardware adapter is never projected: one image leaves it idle (on an H200 a warm pass took 7 ms
/// at batch 1 and 49 ms at batch 256; the projection from a cold one said 2.2 s, and auto kept blocked, 2.2x
/// slower than tiled).
pub const SLOW_PASS_MS: f64 = 2000.0;

/// A compiled ε_θ pass for a fixed batch: write `x` and `t`, run, read `eps`.
pub struct UnetPlan {
    pub plan: Plan,
    /// x_t, [N, C, H, W].
    pub x: TensorId,
    /// Timesteps as f32, [N].
    pub t: TensorId,
    /// ε_θ(x_t, t), [N, C_out, H, W].
    pub eps: TensorId,
}

/// Refuses a config whose weights or one image's activations cannot fit this adapter, before any buffer is
/// made: the adapter's per-buffer limit for one tensor, [`MEMORY_BUDGET`] for the weights together.
pub fn check_fits(ctx: &GpuContext, cfg: &UNetConfig) -> Result<()> {
    let limits = ctx.limits();
    let per_buffer = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
    let sizes = cfg.sizes();
    let checks = [
        ("its largest weight tensor", sizes.largest_weight * 4, per_buffer),
        ("one image's largest activation", sizes.largest_activation * 4, per_buffer.min(MEMORY_BUDGET)),
        (&format!("its {} parameters as f32", sizes.parameters) as &str, sizes.parameters * 4, MEMORY_BUDGET),
    ];
    for (what, needed, limit) in checks {
        if needed > limit {
            return Err(Error::ModelTooLarge { what: what.to_string(), needed_mib: needed.div_ceil(1 << 20), limit_mib: limit >> 20 });
        }
    }
    Ok(())
}

impl Unet {
    /// Uploads the model's weights, checking each against the shape the config implies.
    pub fn new(ctx: &GpuContext, model: &Model) -> Result<Self> {
        Self::load(Target::Gpu(ctx), model)
    }

    /// The model's weights on the host, checked as [`Unet::new`] checks them, for the CPU executor.
    pub fn on_host(model: &Model) -> Result<Self> {
        Self::load(Target::Host, model)
    }

    /// Places the model's weights on `target` in f32, checking each against the shape the config implies.
    pub fn load(target: Target, model: &Model) -> Result<Self> {
        Self::load_as(target, model, Precision::F32)
    }

    /// As [`Unet::load`], in `precision`: f16 only on a GPU whose f16 kernels are enabled
    /// ([`GpuContext::enable`]); without `shader-f16` that is [`Error::NoShaderF16`].
    pub fn load_as(target: Target, model: &Model, precision: Precision) -> Result<Self> {
        match target {
            Target::Gpu(ctx) => {
                if !ctx.is_enabled(precision) {
                    return Err(if ctx.has_f16() {
                        Error::Gpu(format!("internal: the {precision} kernels were not enabled before loading (GpuContext::enable)"))
                    } else {
                        Error::NoShaderF16 { adapter: ctx.adapter_name() }
                    });
                }
                check_fits(ctx, &model.config)?;
            }
            Target::Host if precision != Precision::F32 => return Err(Error::Cpu(format!("the CPU path computes in f32, not {precision}"))),
            Target::Host => {}
        }
        let mut unet = Self {
            config: model.config.clone(),
            precision,
            weights: HashMap::new(),
            parameter_count: 0,
            flops_per_image: 0,
            largest_buffer_per_image: 0,
            peak_bytes_per_image: 0,
            tuned: RefCell::default(),
            _live: None,
        };
        let mut g = Graph::new();
        let (x, t, eps) = io_tensors(&mut g, &unet.config, 1);
        Builder { target, cfg: &unet.config, precision, uploaded: &mut unet.weights, source: Some(&model.weights), g: &mut g, kernels: KernelFamily::Blocked, temb_proj: None }.forward(x, t, eps)?;
        unet.parameter_count = unet.weights.values().map(Weight::len).sum();
        unet.flops_per_image = g.flops();
        let own = |d: &&crate::gpu::graph::TensorDesc| !matches!(d.storage, Storage::Bound(_) | Storage::Host(_));
        unet.largest_buffer_per_image = g.tensors().iter().filter(own).map(|d| d.bytes()).max().unwrap_or(4);
        unet.peak_bytes_per_image = Assignment::new(&g).pool_bytes() + g.tensors().iter().filter(|d| matches!(d.storage, Storage::Kept)).map(|d| d.bytes()).sum::<u64>();
        if let Target::Gpu(_) = target {
            unet._live = Some(crate::gpu::live::Live::new(unet.weights.len(), (precision.size() * unet.parameter_count) as u64));
        }
        Ok(unet)
    }

    /// The element type the network's weights and activations are stored in.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Parameters the network uses (the weights file may hold more; they are ignored).
    pub fn parameter_count(&self) -> usize {
        self.parameter_count
    }

    /// Floating-point operations (2 per multiply-add) of one ε_θ pass on one image.
    pub fn flops_per_image(&self) -> u64 {
        self.flops_per_image
    }

    /// (channels, height, width) of the images the model takes.
    pub fn image_shape(&self) -> (usize, usize, usize) {
        let (h, w) = self.config.image_size();
        (self.config.in_channels, h, w)
    }

    /// (channels, height, width) of the images a sampler runs, refusing a model whose ε has another number of
    /// channels than its images (the update adds them).
    pub fn sampling_shape(&self) -> Result<(usize, usize, usize)> {
        let (c, h, w) = self.image_shape();
        if self.config.out_channels != c {
            return Err(Error::UnsupportedConfig {
                field: "out_channels",
                value: self.config.out_channels.to_string(),
                hint: format!("sampling needs ε with as many channels as the image ({c})"),
            });
        }
        Ok((c, h, w))
    }

    /// The largest batch this adapter can run: every buffer within the adapter's storage-binding and buffer
    /// limits, and all live activations within [`MEMORY_BUDGET`].
    pub fn max_batch(&self, ctx: &GpuContext) -> usize {
        let limits = ctx.limits();
        let per_buffer = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
        let by_buffer = per_buffer / self.largest_buffer_per_image.max(1);
        let by_memory = MEMORY_BUDGET / self.peak_bytes_per_image.max(1);
        by_buffer.min(by_memory).max(1) as usize
    }

    /// Checks that a batch of `n` fits this adapter.
    pub fn check_batch(&self, ctx: &GpuContext, n: usize) -> Result<()> {
        let max = self.max_batch(ctx);
        if n > max {
            let limits = ctx.limits();
            return Err(Error::BatchTooLarge {
                requested: n,
                max,
                needed_mib: (self.largest_buffer_per_image * n as u64).max(self.peak_bytes_per_image * n as u64) >> 20,
                limit_mib: (limits.max_storage_buffer_binding_size.min(limits.max_buffer_size).min(MEMORY_BUDGET)) >> 20,
            });
        }
        Ok(())
    }

    /// Records the pass into `g`: reads x [N, C, H, W] and t [N] (timesteps as f32), writes eps
    /// [N, C_out, H, W]. The caller chooses those three tensors' storage (kept, bound, or an activation that a
    /// later op of the same graph consumes).
    pub fn record(&self, ctx: &GpuContext, g: &mut Graph, x: TensorId, t: TensorId, eps: TensorId, kernels: KernelFamily) -> Result<()> {
        self.check_batch(ctx, g.shape(x)[0])?;
        self.record_any(Target::Gpu(ctx), g, x, t, eps, kernels)
    }

    /// As [`Unet::record`], for a Unet loaded with [`Unet::on_host`]: the graph the CPU executor runs.
    /// Its convolutions are recorded as `Tiled` and attention `Fused` (one op each); the executor computes
    /// them its own way.
    pub fn record_host(&self, g: &mut Graph, x: TensorId, t: TensorId, eps: TensorId) -> Result<()> {
        self.record_any(Target::Host, g, x, t, eps, KernelFamily::Fused)
    }

    fn record_any(&self, target: Target, g: &mut Graph, x: TensorId, t: TensorId, eps: TensorId, kernels: KernelFamily) -> Result<()> {
        let mut weights = self.weights.clone();
        Builder { target, cfg: &self.config, precision: self.precision, uploaded: &mut weights, source: None, g, kernels, temb_proj: None }.forward(x, t, eps)
    }

    /// The pass for a batch of `n` as a host graph (for [`crate::cpu::HostPlan`]), x, t and eps kept.
    pub fn host_graph(&self, n: usize) -> Result<(Graph, [TensorId; 3])> {
        let mut g = Graph::new();
        let (x, t, eps) = io_tensors(&mut g, &self.config, n);
        self.record_host(&mut g, x, t, eps)?;
        Ok((g, [x, t, eps]))
    }

    /// The pass for a batch of `n` as a graph, with x, t and eps kept (returned in that order).
    pub fn graph(&self, ctx: &GpuContext, n: usize, kernels: KernelFamily) -> Result<(Graph, [TensorId; 3])> {
        let mut g = Graph::new();
        let (x, t, eps) = io_tensors(&mut g, &self.config, n);
        self.record(ctx, &mut g, x, t, eps, kernels)?;
        Ok((g, [x, t, eps]))
    }

    /// The pass for a batch of `n`, compiled, with x, t and eps kept.
    pub fn plan(&self, ctx: &GpuContext, n: usize, kernels: KernelFamily) -> Result<UnetPlan> {
        let (g, [x, t, eps]) = self.graph(ctx, n, kernels)?;
        Ok(UnetPlan { plan: Plan::compile(ctx, &g)?, x, t, eps })
    }

    /// The convolution kernels for a batch of `n`: a fixed family as asked, or, for `Auto`, the family whose
    /// whole pass ran fastest on this adapter (each timed after a warm-up run; measured once per batch size
    /// and kept). burn's autotune habit: measure on the actual device, don't assume.
    pub async fn kernels(&self, ctx: &GpuContext, n: usize, choice: KernelChoice) -> Result<KernelFamily> {
        Ok(self.choose(ctx, n, choice).await?.0)
    }

    /// As [`Unet::kernels`], with the timings behind an `Auto` choice (None for a fixed family).
    pub async fn choose(&self, ctx: &GpuContext, n: usize, choice: KernelChoice) -> Result<(KernelFamily, Option<Tuning>)> {
        match choice {
            KernelChoice::Fixed(k) => Ok((k, None)),
            KernelChoice::Auto => {
                let t = self.tune(ctx, n).await?;
                Ok((t.chosen, Some(t)))
            }
        }
    }

    /// Times every convolution family on a pass of batch `n` (cached per batch size).
    pub async fn tune(&self, ctx: &GpuContext, n: usize) -> Result<Tuning> {
        if let Some(t) = self.tuned.borrow().get(&n) {
            return Ok(t.clone());
        }
        // On a software adapter, a probe: one warm blocked pass on one image, scaled to the batch (a CPU
        // adapter's pass costs about one image's time per image). Where a whole pass would take over
        // SLOW_PASS_MS, the GPU families were measured 3x slower (BENCHMARKS.md) and timing them would hold
        // the page up for tens of seconds: only the windowed family, made for CPU adapters, is probed the
        // same way, and the faster of the two kept.
        let project = |family: KernelFamily| async move {
            let probe = self.plan(ctx, 1, family)?;
            probe.plan.run(ctx);
            ctx.finish().await?;
            let start = web_time::Instant::now();
            probe.plan.run(ctx);
            ctx.finish().await?;
            Ok::<f64, Error>(start.elapsed().as_secs_f64() * 1e3 * n as f64)
        };
        let mut ms = Vec::new();
        if ctx.is_software() {
            let blocked = project(KernelFamily::Blocked).await?;
            if blocked > SLOW_PASS_MS {
                ms.push((KernelFamily::Blocked, blocked));
                if KernelFamily::Windowed.is_distinct_in(self.precision) {
                    ms.push((KernelFamily::Windowed, project(KernelFamily::Windowed).await?));
                }
            }
        }
        let others_skipped = !ms.is_empty();
        if !others_skipped {
            for family in KernelFamily::ALL.into_iter().filter(|f| f.is_distinct_in(self.precision)) {
                let p = self.plan(ctx, n, family)?;
                p.plan.run(ctx);
                ctx.finish().await?;
                let start = web_time::Instant::now();
                const REPS: usize = 2;
                for _ in 0..REPS {
                    p.plan.run(ctx);
                }
                ctx.finish().await?;
                ms.push((family, start.elapsed().as_secs_f64() * 1e3 / REPS as f64));
            }
        }
        let chosen = ms.iter().min_by(|a, b| a.1.total_cmp(&b.1)).map_or(KernelFamily::Blocked, |m| m.0);
        let tuning = Tuning { chosen, ms, others_skipped };
        self.tuned.borrow_mut().insert(n, tuning.clone());
        Ok(tuning)
    }

    /// ε_θ(x, t) for a batch (x: N·C·H·W values, one timestep per image), read back to the host.
    pub async fn eps(&self, ctx: &GpuContext, x: &[f32], t: &[usize], kernels: KernelFamily) -> Result<Vec<f32>> {
        let (c, h, w) = self.image_shape();
        let n = t.len();
        if n == 0 || x.len() != n * c * h * w {
            return Err(Error::InputShape { expected: format!("{n} images of {c}x{h}x{w}"), found: vec![x.len()] });
        }
        let p = self.plan(ctx, n, kernels)?;
        p.plan.tensor(p.x).write(ctx, x);
        p.plan.tensor(p.t).write(ctx, &t.iter().map(|&v| v as f32).collect::<Vec<_>>());
        p.plan.run(ctx);
        ctx.check()?;
        p.plan.tensor(p.eps).read(ctx).await
    }
}

/// Kept x [n, C, H, W], t [n] and eps [n, C_out, H, W] for a pass whose caller writes and reads them.
fn io_tensors(g: &mut Graph, cfg: &UNetConfig, n: usize) -> (TensorId, TensorId, TensorId) {
    let (h, w) = cfg.image_size();
    (g.kept("x_t", &[n, cfg.in_channels, h, w]), g.kept("t", &[n]), g.kept("eps", &[n, cfg.out_channels, h, w]))
}

/// Walks `UNet2DModel.forward` in diffusers' order, recording ops into `g`.
struct Builder<'a> {
    target: Target<'a>,
    cfg: &'a UNetConfig,
    /// The element type of the weights placed and the activations recorded.
    precision: Precision,
    /// Placed weights by name; filled from `source` on the first walk.
    uploaded: &'a mut HashMap<String, Weight>,
    source: Option<&'a Weights>,
    g: &'a mut Graph,
    kernels: KernelFamily,
    /// Every ResNet's projected time embedding, computed by one linear: [N, Σ widths], and where each
    /// ResNet's columns start.
    temb_proj: Option<(TensorId, HashMap<String, usize>)>,
}

impl Builder<'_> {
    /// The weight `prefix.name` with `shape`, uploaded on first use.
    fn w(&mut self, prefix: &str, name: &str, shape: &[usize]) -> Result<TensorId> {
        let key = if prefix.is_empty() { name.to_string() } else { format!("{prefix}.{name}") };
        if let Some(t) = self.uploaded.get(&key) {
            if t.shape() != shape {
                return Err(Error::ShapeMismatch { name: key, expected: shape.to_vec(), found: t.shape().to_vec() });
            }
            return Ok(t.bind(self.g, &key));
        }
        let source = self.source.ok_or_else(|| Error::MissingTensor(key.clone()))?;
        let data = source.get(&key, shape)?;
        self.place(key, shape, data)
    }

    /// Puts a weight on the target and binds it.
    fn place(&mut self, key: String, shape: &[usize], data: &[f32]) -> Result<TensorId> {
        let weight = match self.target {
            Target::Gpu(ctx) => Weight::Gpu(Tensor::upload_as(ctx, &key, shape, data, self.precision)),
            Target::Host => Weight::Host { values: data.into(), shape: shape.to_vec() },
        };
        let id = weight.bind(self.g, &key);
        self.uploaded.insert(key, weight);
        Ok(id)
    }

    /// Weights `prefix.name` of several layers stacked along their first dimension into one tensor (uploaded
    /// once under `key`), each part checked against its own shape.
    fn stacked(&mut self, key: &str, parts: &[(String, Vec<usize>)]) -> Result<TensorId> {
        let rows: usize = parts.iter().map(|(_, s)| s[0]).sum();
        let shape: Vec<usize> = std::iter::once(rows).chain(parts[0].1[1..].iter().copied()).collect();
        if let Some(t) = self.uploaded.get(key) {
            return Ok(t.bind(self.g, key));
        }
        let source = self.source.ok_or_else(|| Error::MissingTensor(key.to_string()))?;
        let mut data = Vec::with_capacity(shape.iter().product());
        for (name, part) in parts {
            data.extend_from_slice(source.get(name, part)?);
        }
        self.place(key.to_string(), &shape, &data)
    }

    /// Every ResNet block of the walk, in order, with its output width.
    fn resnet_blocks(&self) -> Vec<(String, usize)> {
        let cfg = self.cfg;
        let chans = &cfg.block_out_channels;
        let levels = chans.len();
        let mut blocks: Vec<(String, usize)> = Vec::new();
        for (i, &c) in chans.iter().enumerate() {
            blocks.extend((0..cfg.layers_per_block).map(|j| (format!("down_blocks.{i}.resnets.{j}"), c)));
        }
        blocks.extend((0..2).map(|j| (format!("mid_block.resnets.{j}"), chans[levels - 1])));
        for i in 0..levels {
            blocks.extend((0..=cfg.layers_per_block).map(|j| (format!("up_blocks.{i}.resnets.{j}"), chans[levels - 1 - i])));
        }
        blocks
    }

    /// Every ResNet's time_emb_proj(silu(temb)) in one linear: their weights stacked, one dispatch instead
    /// of one per block. Each block's conv1 then reads its own columns.
    fn project_time_embedding(&mut self, temb: TensorId) -> Result<()> {
        let [n, ted] = self.g.shape(temb)[..] else { unreachable!("temb is [N, D]") };
        let blocks = self.resnet_blocks();
        let mut offsets = HashMap::new();
        let mut total = 0;
        for (prefix, c) in &blocks {
            offsets.insert(prefix.clone(), total);
            total += c;
        }
        let weights: Vec<(String, Vec<usize>)> = blocks.iter().map(|(p, c)| (format!("{p}.time_emb_proj.weight"), vec![*c, ted])).collect();
        let biases: Vec<(String, Vec<usize>)> = blocks.iter().map(|(p, c)| (format!("{p}.time_emb_proj.bias"), vec![*c])).collect();
        let w = self.stacked("time_emb_proj (every ResNet).weight", &weights)?;
        let b = self.stacked("time_emb_proj (every ResNet).bias", &biases)?;
        let out = self.activation("time_emb_proj (every ResNet)", &[n, total]);
        linear(self.g, LinearIo { x: temb, w, b, out }, true, false);
        self.temb_proj = Some((out, offsets));
        Ok(())
    }

    fn activation(&mut self, label: &str, shape: &[usize]) -> TensorId {
        self.g.activation_as(label, shape, self.precision)
    }

    /// A convolution into `out` (a new activation when None).
    fn conv_into(&mut self, prefix: &str, x: TensorId, cout: usize, spec: ConvSpec, extra: Extra, out: Option<TensorId>) -> Result<TensorId> {
        let [n, cin, h, w] = self.g.shape(x)[..] else { unreachable!("activations are NCHW") };
        let weight = self.w(prefix, "weight", &[cout, cin, spec.k, spec.k])?;
        let bias = self.w(prefix, "bias", &[cout])?;
        let out = match out {
            Some(o) => o,
            None => self.activation(prefix, &[n, cout, spec.out_size(h), spec.out_size(w)]),
        };
        conv2d(self.g, ConvIo { x, w: weight, bias, extra, out }, spec, spec.algo(self.kernels, cin, self.precision));
        Ok(out)
    }

    fn conv(&mut self, prefix: &str, x: TensorId, cout: usize, spec: ConvSpec, extra: Extra) -> Result<TensorId> {
        self.conv_into(prefix, x, cout, spec, extra, None)
    }

    fn norm(&mut self, prefix: &str, x: TensorId, silu: bool) -> Result<TensorId> {
        let shape = self.g.shape(x).to_vec();
        let gamma = self.w(prefix, "weight", &[shape[1]])?;
        let beta = self.w(prefix, "bias", &[shape[1]])?;
        let out = self.activation(prefix, &shape);
        group_norm(self.g, GroupNormIo { x, gamma, beta, out }, self.cfg.groups(), self.cfg.norm_eps, silu);
        Ok(out)
    }

    fn linear(&mut self, prefix: &str, x: TensorId, outp: usize, silu_in: bool, silu_out: bool) -> Result<TensorId> {
        let [n, inp] = self.g.shape(x)[..] else { unreachable!("linear inputs are [N, IN]") };
        let w = self.w(prefix, "weight", &[outp, inp])?;
        let b = self.w(prefix, "bias", &[outp])?;
        let out = self.activation(prefix, &[n, outp]);
        linear(self.g, LinearIo { x, w, b, out }, silu_in, silu_out);
        Ok(out)
    }

    /// diffusers' `ResnetBlock2D` (time_embedding_norm "default", output_scale_factor 1):
    /// x + conv2(silu(norm2(conv1(silu(norm1(x))) + proj(silu(temb))))), with a 1x1 shortcut when widths differ.
    fn resnet(&mut self, prefix: &str, x: TensorId, cout: usize) -> Result<TensorId> {
        let h = self.norm(&format!("{prefix}.norm1"), x, true)?;
        self.resnet_from(prefix, x, h, cout)
    }

    /// The up path's ResNet on cat(a, b) (a skip connection). On the GPU, norm1 and the 1x1 shortcut read
    /// a and b in place, so the concatenation is never written (one pass over it saved); where the block has
    /// no shortcut (the sum needs cat itself) and on the CPU executor, the concatenation is recorded.
    fn resnet_cat(&mut self, prefix: &str, a: TensorId, b: TensorId, cout: usize) -> Result<TensorId> {
        let [n, ca, h, w] = self.g.shape(a)[..] else { unreachable!("activations are NCHW") };
        let cin = ca + self.g.shape(b)[1];
        if matches!(self.target, Target::Host) || cin == cout {
            let cat = self.activation(&format!("{prefix}.cat"), &[n, cin, h, w]);
            concat_channels(self.g, a, b, cat);
            return self.resnet(prefix, cat, cout);
        }
        let norm1 = format!("{prefix}.norm1");
        let gamma = self.w(&norm1, "weight", &[cin])?;
        let beta = self.w(&norm1, "bias", &[cin])?;
        let hn = self.activation(&norm1, &[n, cin, h, w]);
        group_norm_pair(self.g, GroupNormPairIo { a, b, gamma, beta, out: hn }, self.cfg.groups(), self.cfg.norm_eps, true);
        let short = format!("{prefix}.conv_shortcut");
        let weight = self.w(&short, "weight", &[cout, cin, 1, 1])?;
        let bias = self.w(&short, "bias", &[cout])?;
        let shortcut = self.activation(&short, &[n, cout, h, w]);
        conv1x1_pair(self.g, a, b, weight, bias, shortcut, ConvSpec::POINT.algo(self.kernels, cin, self.precision));
        self.resnet_body(prefix, hn, shortcut, cout)
    }

    /// The ResNet after norm1 (`h` = silu(norm1(x))), with the shortcut taken from x.
    fn resnet_from(&mut self, prefix: &str, x: TensorId, h: TensorId, cout: usize) -> Result<TensorId> {
        let cin = self.g.shape(x)[1];
        let shortcut = if cin != cout { self.conv(&format!("{prefix}.conv_shortcut"), x, cout, ConvSpec::POINT, Extra::None)? } else { x };
        self.resnet_body(prefix, h, shortcut, cout)
    }

    /// conv1 (+ the block's time embedding), norm2, conv2 (+ the shortcut).
    fn resnet_body(&mut self, prefix: &str, h: TensorId, shortcut: TensorId, cout: usize) -> Result<TensorId> {
        let (tproj, offsets) = self.temb_proj.as_ref().expect("projected before the first ResNet");
        let add = Extra::ChannelAdd { t: *tproj, offset: offsets[prefix] };
        let h = self.conv(&format!("{prefix}.conv1"), h, cout, ConvSpec::SAME3, add)?;
        let h = self.norm(&format!("{prefix}.norm2"), h, true)?;
        self.conv(&format!("{prefix}.conv2"), h, cout, ConvSpec::SAME3, Extra::Residual(shortcut))
    }

    /// diffusers' `Attention` as the U-Net blocks build it: GroupNorm, q/k/v projections, softmax(qkᵀ/√d)v per
    /// head, output projection, plus the input (residual_connection, rescale 1).
    fn attention(&mut self, prefix: &str, x: TensorId) -> Result<TensorId> {
        let shape = self.g.shape(x).to_vec();
        let c = shape[1];
        let heads = c / self.cfg.head_dim(c);
        let g = self.norm(&format!("{prefix}.group_norm"), x, false)?;
        let q = self.conv(&format!("{prefix}.to_q"), g, c, ConvSpec::POINT, Extra::None)?;
        let k = self.conv(&format!("{prefix}.to_k"), g, c, ConvSpec::POINT, Extra::None)?;
        let v = self.conv(&format!("{prefix}.to_v"), g, c, ConvSpec::POINT, Extra::None)?;
        let a = self.activation(&format!("{prefix}.heads"), &shape);
        let how = match self.kernels {
            KernelFamily::Blocked | KernelFamily::Tiled => AttentionImpl::ThreePass,
            KernelFamily::Windowed => AttentionImpl::Windowed,
            KernelFamily::Fused => AttentionImpl::Fused,
        };
        attention(self.g, AttentionIo { q, k, v, out: a }, heads, how);
        self.conv(&format!("{prefix}.to_out.0"), a, c, ConvSpec::POINT, Extra::Residual(x))
    }

    /// Records the whole pass (diffusers' `UNet2DModel.forward`) from x and t into eps.
    fn forward(&mut self, x: TensorId, t: TensorId, eps: TensorId) -> Result<()> {
        let cfg = self.cfg;
        let n = self.g.shape(x)[0];
        let (h, w) = cfg.image_size();
        let chans = &cfg.block_out_channels;
        let levels = chans.len();
        if levels > 1 && (h % (1 << (levels - 1)) != 0 || w % (1 << (levels - 1)) != 0) {
            return Err(Error::UnsupportedConfig {
                field: "sample_size",
                value: format!("{h}x{w}"),
                hint: format!("must be divisible by {} to go down {} levels and back", 1 << (levels - 1), levels - 1),
            });
        }

        // Time: sinusoidal embedding → linear → SiLU → linear (the SiLU before each ResNet's projection is
        // fused into that projection).
        let tdim = cfg.time_proj_dim();
        let ted = cfg.time_embed_dim();
        let emb = self.activation("time_proj", &[n, tdim]);
        time_embedding(self.g, t, tdim, cfg.flip_sin_to_cos, cfg.freq_shift, emb);
        let hid = self.linear("time_embedding.linear_1", emb, ted, false, true)?;
        let temb = self.linear("time_embedding.linear_2", hid, ted, false, false)?;
        self.project_time_embedding(temb)?;

        // x_t and ε are f32 whatever the network runs in: cast at both ends of an f16 pass.
        let x = match self.precision {
            Precision::F32 => x,
            Precision::F16 => {
                let shape = self.g.shape(x).to_vec();
                let x16 = self.activation("x_t (f16)", &shape);
                cast_in(self.g, x, x16);
                x16
            }
        };
        let mut hcur = self.conv("conv_in", x, chans[0], ConvSpec::SAME3, Extra::None)?;
        let mut skips: Vec<TensorId> = vec![hcur];
        for (i, kind) in cfg.down_block_types.iter().enumerate() {
            let cout = chans[i];
            for j in 0..cfg.layers_per_block {
                hcur = self.resnet(&format!("down_blocks.{i}.resnets.{j}"), hcur, cout)?;
                if kind.has_attention() {
                    hcur = self.attention(&format!("down_blocks.{i}.attentions.{j}"), hcur)?;
                }
                skips.push(hcur);
            }
            if i + 1 < levels {
                let spec = ConvSpec { k: 3, stride: 2, pad_before: cfg.downsample_padding, pad_after: 1 };
                hcur = self.conv(&format!("down_blocks.{i}.downsamplers.0.conv"), hcur, cout, spec, Extra::None)?;
                skips.push(hcur);
            }
        }

        let c_mid = chans[levels - 1];
        hcur = self.resnet("mid_block.resnets.0", hcur, c_mid)?;
        hcur = self.attention("mid_block.attentions.0", hcur)?;
        hcur = self.resnet("mid_block.resnets.1", hcur, c_mid)?;

        for (i, kind) in cfg.up_block_types.iter().enumerate() {
            let cout = chans[levels - 1 - i];
            for j in 0..=cfg.layers_per_block {
                let skip = skips.pop().ok_or_else(|| Error::Gpu("internal: U-Net skip stack underflow".into()))?;
                let [_, _, sh, sw] = self.g.shape(hcur)[..] else { unreachable!() };
                if self.g.shape(skip)[2..] != [sh, sw] {
                    return Err(Error::UnsupportedConfig { field: "sample_size", value: format!("{h}x{w}"), hint: "skip connections do not line up".into() });
                }
                hcur = self.resnet_cat(&format!("up_blocks.{i}.resnets.{j}"), hcur, skip, cout)?;
                if kind.has_attention() {
                    hcur = self.attention(&format!("up_blocks.{i}.attentions.{j}"), hcur)?;
                }
            }
            if i + 1 < levels {
                let [_, c, sh, sw] = self.g.shape(hcur)[..] else { unreachable!() };
                let up = self.activation(&format!("up_blocks.{i}.upsample"), &[n, c, 2 * sh, 2 * sw]);
                upsample_nearest2x(self.g, hcur, up);
                hcur = self.conv(&format!("up_blocks.{i}.upsamplers.0.conv"), up, cout, ConvSpec::SAME3, Extra::None)?;
            }
        }

        let g = self.norm("conv_norm_out", hcur, true)?;
        match self.precision {
            Precision::F32 => {
                self.conv_into("conv_out", g, cfg.out_channels, ConvSpec::SAME3, Extra::None, Some(eps))?;
            }
            Precision::F16 => {
                let e16 = self.conv("conv_out", g, cfg.out_channels, ConvSpec::SAME3, Extra::None)?;
                cast_out(self.g, e16, eps);
            }
        }
        Ok(())
    }
}
