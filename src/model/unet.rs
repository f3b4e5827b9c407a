//! The `UNet2DModel` graph in diffusers' order, recorded once per batch size as a list of kernel dispatches
//! (a [`Plan`]). Running the network is then: write x_t and t, replay the plan.
//!
//! One walk over the config serves both uses: [`Unet::new`] walks it with batch 1 to upload every weight and
//! check its shape (a wrong file is refused before anything runs), and [`Unet::plan`] walks it again for the
//! real batch, reusing the uploaded weights. Activations come from a pool: a buffer is handed back when its
//! last reader is recorded, so a pass needs a few live activations, not all of them.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::attention::{attention, scores_len};
use crate::gpu::kernels::conv2d::{conv2d, ConvSpec};
use crate::gpu::kernels::embed::time_embedding;
use crate::gpu::kernels::group_norm::group_norm;
use crate::gpu::kernels::linear::linear;
use crate::gpu::kernels::resample::{concat_channels, upsample_nearest2x};
use crate::gpu::kernels::{self, Dispatch};
use crate::gpu::tensor::{Tensor, STORAGE};
use crate::model::config::UNetConfig;
use crate::model::weights::Weights;
use crate::model::Model;

/// The most memory one batch may hold at once on any adapter (activations and scratch), whatever the
/// adapter's own limits say: browsers kill tabs long before a GPU runs out.
const MEMORY_BUDGET: u64 = 1 << 30;

/// The network on the GPU: weights uploaded and checked, ready to record plans.
pub struct Unet {
    pub config: UNetConfig,
    weights: HashMap<String, Tensor>,
    parameter_count: usize,
    /// Per image: multiply-adds × 2 of one pass, the largest single buffer, and the pool's peak bytes.
    flops_per_image: u64,
    largest_buffer_per_image: u64,
    peak_bytes_per_image: u64,
}

/// A recorded pass for a fixed batch: write `x` and `t`, run `dispatches`, read `eps`.
pub struct Plan {
    pub n: usize,
    /// x_t, [N, C, H, W].
    pub x: Tensor,
    /// Timesteps as f32, [N].
    pub t: Tensor,
    /// ε_θ(x_t, t), [N, C_out, H, W].
    pub eps: Tensor,
    pub dispatches: Vec<Dispatch>,
}

impl Unet {
    /// Uploads the model's weights, checking each against the shape the config implies.
    pub fn new(ctx: &GpuContext, model: &Model) -> Result<Self> {
        let mut unet = Self {
            config: model.config.clone(),
            weights: HashMap::new(),
            parameter_count: 0,
            flops_per_image: 0,
            largest_buffer_per_image: 0,
            peak_bytes_per_image: 0,
        };
        let stats = {
            let mut b = Builder::new(ctx, &unet.config, &mut unet.weights, Some(&model.weights), 1);
            b.forward()?;
            b.stats()
        };
        unet.parameter_count = unet.weights.values().map(Tensor::len).sum();
        unet.flops_per_image = stats.flops;
        unet.largest_buffer_per_image = stats.largest;
        unet.peak_bytes_per_image = stats.peak;
        Ok(unet)
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

    /// The largest batch this adapter can run: every buffer within the adapter's storage-binding and buffer
    /// limits, and all live activations within [`MEMORY_BUDGET`].
    pub fn max_batch(&self, ctx: &GpuContext) -> usize {
        let limits = ctx.limits();
        let per_buffer = (limits.max_storage_buffer_binding_size as u64).min(limits.max_buffer_size);
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
                limit_mib: ((limits.max_storage_buffer_binding_size as u64).min(limits.max_buffer_size).min(MEMORY_BUDGET)) >> 20,
            });
        }
        Ok(())
    }

    /// Records the pass for a batch of `n`.
    pub fn plan(&self, ctx: &GpuContext, n: usize) -> Result<Plan> {
        self.check_batch(ctx, n)?;
        let mut weights = self.weights.clone();
        let mut b = Builder::new(ctx, &self.config, &mut weights, None, n);
        b.forward()
    }

    /// ε_θ(x, t) for a batch (x: N·C·H·W values, one timestep per image), read back to the host.
    pub async fn eps(&self, ctx: &GpuContext, x: &[f32], t: &[usize]) -> Result<Vec<f32>> {
        let (c, h, w) = self.image_shape();
        let n = t.len();
        if n == 0 || x.len() != n * c * h * w {
            return Err(Error::InputShape { expected: format!("{n} images of {c}x{h}x{w}"), found: vec![x.len()] });
        }
        let plan = self.plan(ctx, n)?;
        plan.x.write(ctx, x);
        plan.t.write(ctx, &t.iter().map(|&v| v as f32).collect::<Vec<_>>());
        kernels::run(ctx, &plan.dispatches);
        ctx.check()?;
        plan.eps.read(ctx).await
    }
}

struct Stats {
    flops: u64,
    largest: u64,
    peak: u64,
}

/// Free buffers by size, best fit first.
#[derive(Default)]
struct Pool {
    free: Vec<wgpu::Buffer>,
    live_bytes: u64,
    peak_bytes: u64,
}

struct Builder<'a> {
    ctx: &'a GpuContext,
    cfg: &'a UNetConfig,
    /// Uploaded weights by name; filled from `source` on the first walk.
    uploaded: &'a mut HashMap<String, Tensor>,
    source: Option<&'a Weights>,
    n: usize,
    pool: RefCell<Pool>,
    dispatches: Vec<Dispatch>,
    flops: u64,
    largest: u64,
}

impl<'a> Builder<'a> {
    fn new(ctx: &'a GpuContext, cfg: &'a UNetConfig, uploaded: &'a mut HashMap<String, Tensor>, source: Option<&'a Weights>, n: usize) -> Self {
        Self { ctx, cfg, uploaded, source, n, pool: RefCell::default(), dispatches: Vec::new(), flops: 0, largest: 0 }
    }

    fn stats(&self) -> Stats {
        Stats { flops: self.flops / self.n as u64, largest: self.largest / self.n as u64, peak: self.pool.borrow().peak_bytes / self.n as u64 }
    }

    /// The weight `prefix.name` with `shape`, uploaded on first use.
    fn w(&mut self, prefix: &str, name: &str, shape: &[usize]) -> Result<Tensor> {
        let key = if prefix.is_empty() { name.to_string() } else { format!("{prefix}.{name}") };
        if let Some(t) = self.uploaded.get(&key) {
            if t.shape != shape {
                return Err(Error::ShapeMismatch { name: key, expected: shape.to_vec(), found: t.shape.clone() });
            }
            return Ok(t.clone());
        }
        let source = self.source.ok_or_else(|| Error::MissingTensor(key.clone()))?;
        let data = source.get(&key, shape)?;
        let t = Tensor::upload(self.ctx, &key, shape, data);
        self.uploaded.insert(key, t.clone());
        Ok(t)
    }

    /// An activation buffer of `shape` from the pool.
    fn tensor(&mut self, shape: &[usize]) -> Tensor {
        let bytes = 4 * shape.iter().product::<usize>().max(1) as u64;
        self.largest = self.largest.max(bytes);
        let mut pool = self.pool.borrow_mut();
        let best = (0..pool.free.len()).filter(|&i| pool.free[i].size() >= bytes).min_by_key(|&i| pool.free[i].size());
        let buffer = match best {
            Some(i) => pool.free.swap_remove(i),
            None => self.ctx.device.create_buffer(&wgpu::BufferDescriptor { label: Some("activation"), size: bytes, usage: STORAGE, mapped_at_creation: false }),
        };
        pool.live_bytes += buffer.size();
        pool.peak_bytes = pool.peak_bytes.max(pool.live_bytes);
        Tensor { buffer, shape: shape.to_vec() }
    }

    /// Hands `t` back: no dispatch recorded after this may read it.
    fn release(&self, t: Tensor) {
        let mut pool = self.pool.borrow_mut();
        pool.live_bytes -= t.buffer.size();
        pool.free.push(t.buffer);
    }

    fn conv(&mut self, prefix: &str, x: &Tensor, cout: usize, spec: ConvSpec, chan_add: Option<&Tensor>, residual: Option<&Tensor>) -> Result<Tensor> {
        let [n, cin, h, w] = x.shape[..] else { unreachable!("activations are NCHW") };
        let weight = self.w(prefix, "weight", &[cout, cin, spec.k, spec.k])?;
        let bias = self.w(prefix, "bias", &[cout])?;
        let (oh, ow) = (spec.out_size(h), spec.out_size(w));
        let out = self.tensor(&[n, cout, oh, ow]);
        self.flops += 2 * (n * cout * oh * ow * cin * spec.k * spec.k) as u64;
        self.dispatches.push(conv2d(self.ctx, x, &weight, &bias, spec, chan_add, residual, &out));
        Ok(out)
    }

    fn norm(&mut self, prefix: &str, x: &Tensor, silu: bool) -> Result<Tensor> {
        let c = x.shape[1];
        let gamma = self.w(prefix, "weight", &[c])?;
        let beta = self.w(prefix, "bias", &[c])?;
        let out = self.tensor(&x.shape);
        self.dispatches.push(group_norm(self.ctx, x, &gamma, &beta, self.cfg.groups(), self.cfg.norm_eps, silu, &out));
        Ok(out)
    }

    fn linear(&mut self, prefix: &str, x: &Tensor, outp: usize, silu_in: bool, silu_out: bool) -> Result<Tensor> {
        let weight = self.w(prefix, "weight", &[outp, x.shape[1]])?;
        let bias = self.w(prefix, "bias", &[outp])?;
        let out = self.tensor(&[x.shape[0], outp]);
        self.flops += 2 * (x.len() * outp) as u64;
        self.dispatches.push(linear(self.ctx, x, &weight, &bias, silu_in, silu_out, &out));
        Ok(out)
    }

    /// diffusers' `ResnetBlock2D` (time_embedding_norm "default", output_scale_factor 1):
    /// x + conv2(silu(norm2(conv1(silu(norm1(x))) + proj(silu(temb))))), with a 1x1 shortcut when widths differ.
    fn resnet(&mut self, prefix: &str, x: &Tensor, cout: usize, temb: &Tensor) -> Result<Tensor> {
        let cin = x.shape[1];
        let h = self.norm(&format!("{prefix}.norm1"), x, true)?;
        let tproj = self.linear(&format!("{prefix}.time_emb_proj"), temb, cout, true, false)?;
        let h2 = self.conv(&format!("{prefix}.conv1"), &h, cout, ConvSpec::SAME3, Some(&tproj), None)?;
        self.release(h);
        self.release(tproj);
        let h3 = self.norm(&format!("{prefix}.norm2"), &h2, true)?;
        self.release(h2);
        let shortcut = if cin != cout { Some(self.conv(&format!("{prefix}.conv_shortcut"), x, cout, ConvSpec::POINT, None, None)?) } else { None };
        let out = self.conv(&format!("{prefix}.conv2"), &h3, cout, ConvSpec::SAME3, None, Some(shortcut.as_ref().unwrap_or(x)))?;
        self.release(h3);
        if let Some(s) = shortcut {
            self.release(s);
        }
        Ok(out)
    }

    /// diffusers' `Attention` as the U-Net blocks build it: GroupNorm, q/k/v projections, softmax(qkᵀ/√d)v per
    /// head, output projection, plus the input (residual_connection, rescale 1).
    fn attention(&mut self, prefix: &str, x: &Tensor) -> Result<Tensor> {
        let [n, c, h, w] = x.shape[..] else { unreachable!() };
        let heads = c / self.cfg.head_dim(c);
        let g = self.norm(&format!("{prefix}.group_norm"), x, false)?;
        let q = self.conv(&format!("{prefix}.to_q"), &g, c, ConvSpec::POINT, None, None)?;
        let k = self.conv(&format!("{prefix}.to_k"), &g, c, ConvSpec::POINT, None, None)?;
        let v = self.conv(&format!("{prefix}.to_v"), &g, c, ConvSpec::POINT, None, None)?;
        self.release(g);
        let l = h * w;
        let scores = self.tensor(&[scores_len(n, heads, l)]);
        let a = self.tensor(&x.shape);
        self.flops += 4 * (n * l * l * c) as u64;
        self.dispatches.extend(attention(self.ctx, &q, &k, &v, heads, &scores, &a));
        for t in [q, k, v, scores] {
            self.release(t);
        }
        let out = self.conv(&format!("{prefix}.to_out.0"), &a, c, ConvSpec::POINT, None, Some(x))?;
        self.release(a);
        Ok(out)
    }

    /// Records the whole pass (diffusers' `UNet2DModel.forward`) and returns the plan.
    fn forward(&mut self) -> Result<Plan> {
        let cfg = self.cfg;
        let n = self.n;
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
        let x = Tensor::zeros(self.ctx, "x_t", &[n, cfg.in_channels, h, w]);
        let t = Tensor::zeros(self.ctx, "t", &[n]);

        // Time: sinusoidal embedding → linear → SiLU → linear (the SiLU before each ResNet's projection is
        // fused into that projection).
        let tdim = cfg.time_proj_dim();
        let ted = cfg.time_embed_dim();
        let emb = self.tensor(&[n, tdim]);
        self.dispatches.push(time_embedding(self.ctx, &t, tdim, cfg.flip_sin_to_cos, cfg.freq_shift, &emb));
        let hid = self.linear("time_embedding.linear_1", &emb, ted, false, true)?;
        self.release(emb);
        let temb = self.linear("time_embedding.linear_2", &hid, ted, false, false)?;
        self.release(hid);

        let mut hcur = self.conv("conv_in", &x, chans[0], ConvSpec::SAME3, None, None)?;
        let mut skips: Vec<Tensor> = vec![hcur.clone()];
        let mut in_skips = true;

        for (i, kind) in cfg.down_block_types.iter().enumerate() {
            let cout = chans[i];
            let attn = kind.starts_with("Attn");
            for j in 0..cfg.layers_per_block {
                let r = self.resnet(&format!("down_blocks.{i}.resnets.{j}"), &hcur, cout, &temb)?;
                if !in_skips {
                    self.release(hcur);
                }
                let r = if attn {
                    let a = self.attention(&format!("down_blocks.{i}.attentions.{j}"), &r)?;
                    self.release(r);
                    a
                } else {
                    r
                };
                skips.push(r.clone());
                hcur = r;
                in_skips = true;
            }
            if i + 1 < levels {
                let pad = cfg.downsample_padding;
                let spec = ConvSpec { k: 3, stride: 2, pad_before: pad, pad_after: 1 };
                let d = self.conv(&format!("down_blocks.{i}.downsamplers.0.conv"), &hcur, cout, spec, None, None)?;
                skips.push(d.clone());
                hcur = d;
            }
        }

        let c_mid = chans[levels - 1];
        let r1 = self.resnet("mid_block.resnets.0", &hcur, c_mid, &temb)?;
        let a = self.attention("mid_block.attentions.0", &r1)?;
        self.release(r1);
        hcur = self.resnet("mid_block.resnets.1", &a, c_mid, &temb)?;
        self.release(a);

        for (i, kind) in cfg.up_block_types.iter().enumerate() {
            let cout = chans[levels - 1 - i];
            let attn = kind.starts_with("Attn");
            for j in 0..=cfg.layers_per_block {
                let skip = skips.pop().ok_or_else(|| Error::Gpu("internal: U-Net skip stack underflow".into()))?;
                let [_, ca, sh, sw] = hcur.shape[..] else { unreachable!() };
                let cat = self.tensor(&[n, ca + skip.shape[1], sh, sw]);
                if skip.shape[2..] != hcur.shape[2..] {
                    return Err(Error::UnsupportedConfig { field: "sample_size", value: format!("{h}x{w}"), hint: "skip connections do not line up".into() });
                }
                self.dispatches.push(concat_channels(self.ctx, &hcur, &skip, &cat));
                self.release(hcur);
                self.release(skip);
                let r = self.resnet(&format!("up_blocks.{i}.resnets.{j}"), &cat, cout, &temb)?;
                self.release(cat);
                hcur = if attn {
                    let a = self.attention(&format!("up_blocks.{i}.attentions.{j}"), &r)?;
                    self.release(r);
                    a
                } else {
                    r
                };
            }
            if i + 1 < levels {
                let [_, c, sh, sw] = hcur.shape[..] else { unreachable!() };
                let up = self.tensor(&[n, c, 2 * sh, 2 * sw]);
                self.dispatches.push(upsample_nearest2x(self.ctx, &hcur, &up));
                self.release(hcur);
                hcur = self.conv(&format!("up_blocks.{i}.upsamplers.0.conv"), &up, cout, ConvSpec::SAME3, None, None)?;
                self.release(up);
            }
        }
        self.release(temb);

        let g = self.norm("conv_norm_out", &hcur, true)?;
        self.release(hcur);
        let weight = self.w("conv_out", "weight", &[cfg.out_channels, chans[0], 3, 3])?;
        let bias = self.w("conv_out", "bias", &[cfg.out_channels])?;
        let eps = Tensor::zeros(self.ctx, "eps", &[n, cfg.out_channels, h, w]);
        self.flops += 2 * (n * cfg.out_channels * h * w * chans[0] * 9) as u64;
        self.dispatches.push(conv2d(self.ctx, &g, &weight, &bias, ConvSpec::SAME3, None, None, &eps));
        self.release(g);
        Ok(Plan { n, x, t, eps, dispatches: std::mem::take(&mut self.dispatches) })
    }
}
