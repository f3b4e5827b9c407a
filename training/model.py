"""The shipped model's architecture and noise schedule, shared by training, evaluation and export."""

from __future__ import annotations

import json
from pathlib import Path

from diffusers import DDPMScheduler, UNet2DModel

# Sized for the web (about 1.6 M parameters, ~0.6 GFLOP per 28x28 pass, see ../shared/ENVIRONMENT.md):
# the DDPM layout (ResNet blocks, GroupNorm, SiLU, sinusoidal time embedding, one attention level)
# at three resolutions, 28 -> 14 -> 7, with self-attention at 14x14 as the paper puts it at 16x16.
UNET_CONFIG = dict(
    sample_size=28,
    in_channels=1,
    out_channels=1,
    block_out_channels=(32, 64, 64),
    layers_per_block=2,
    down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    attention_head_dim=64,  # one head per attention layer, as in the paper
    norm_num_groups=8,  # 32 groups (the paper's) would leave one channel per group at width 32
    norm_eps=1e-6,
    dropout=0.1,
    act_fn="silu",
    time_embedding_type="positional",
    flip_sin_to_cos=False,  # the paper's order: sin then cos
    freq_shift=1,
    downsample_padding=1,
)

# Algorithm 1 / the paper's section 4: T = 1000, beta linear from 1e-4 to 0.02.
SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000,
    beta_start=1e-4,
    beta_end=0.02,
    beta_schedule="linear",
    variance_type="fixed_small",
    clip_sample=True,
    prediction_type="epsilon",
)


def unet_config(widths: tuple[int, ...] | None = None, layers_per_block: int | None = None) -> dict:
    """UNET_CONFIG with another width per level or depth per level: the knobs a larger (GPU) run turns.
    The three levels and their block types stay, and the attention level keeps one head, as in the paper."""
    cfg = dict(UNET_CONFIG)
    if widths is not None:
        widths = tuple(int(w) for w in widths)
        if len(widths) != len(cfg["down_block_types"]) or any(w <= 0 or w % cfg["norm_num_groups"] for w in widths):
            raise ValueError(f"widths {widths}: need {len(cfg['down_block_types'])} positive multiples of "
                             f"{cfg['norm_num_groups']} (GroupNorm's groups)")
        cfg["block_out_channels"] = widths
        cfg["attention_head_dim"] = widths[1]
    if layers_per_block is not None:
        if layers_per_block < 1:
            raise ValueError(f"layers_per_block {layers_per_block}: need at least 1")
        cfg["layers_per_block"] = int(layers_per_block)
    return cfg


def plain_config(unet_or_config) -> dict:
    """A model's (or a loaded config.json's) constructor arguments, without diffusers' "_" bookkeeping keys."""
    cfg = getattr(unet_or_config, "config", unet_or_config)
    return {k: v for k, v in cfg.items() if not k.startswith("_")}


def make_unet(config: dict | None = None) -> UNet2DModel:
    """The shipped architecture, or the one a run folder's checkpoint records (see train.py)."""
    return UNet2DModel.from_config(UNET_CONFIG if config is None else config)


def make_scheduler() -> DDPMScheduler:
    return DDPMScheduler(**SCHEDULER_CONFIG)


def training_note(folder: Path) -> dict:
    """The "_ddpm_web" note export.py writes into a model folder's config.json (training seen, LR history);
    {} for models without one. Read from the file: diffusers drops keys starting with "_" from .config."""
    return json.loads((folder / "config.json").read_text()).get("_ddpm_web") or {}


def flops_per_image(model: UNet2DModel) -> int:
    """Multiply-adds x 2 of one epsilon pass on one image, counted by hooks on conv, linear and attention."""
    import torch

    total = 0

    def conv_hook(mod, inp, out):
        nonlocal total
        k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)
        total += 2 * out.numel() * k

    def linear_hook(mod, inp, out):
        nonlocal total
        total += 2 * out.numel() * mod.in_features

    hooks = []
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, torch.nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    cfg = model.config
    x = torch.zeros(1, cfg.in_channels, cfg.sample_size, cfg.sample_size)
    with torch.no_grad():
        model.eval()(x, torch.tensor([10]))
    for h in hooks:
        h.remove()
    # Attention's QK^T and PV products are matmuls, not modules: 2 x 2 x tokens^2 x channels per layer.
    res = cfg.sample_size
    for i, kind in enumerate(cfg.down_block_types):
        ch = cfg.block_out_channels[i]
        if kind.startswith("Attn"):
            total += cfg.layers_per_block * 4 * (res * res) ** 2 * ch
        if i < len(cfg.down_block_types) - 1:
            res = (res + 1) // 2
    total += 4 * (res * res) ** 2 * cfg.block_out_channels[-1]  # mid block
    for i, kind in enumerate(cfg.up_block_types):
        ch = list(reversed(cfg.block_out_channels))[i]
        if kind.startswith("Attn"):
            total += (cfg.layers_per_block + 1) * 4 * (res * res) ** 2 * ch
        if i < len(cfg.up_block_types) - 1:
            res *= 2
    return total
