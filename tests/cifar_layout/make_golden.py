"""Golden output for the original DDPM CIFAR-10 layout (google/ddpm-cifar10-32 in diffusers format), without
committing its 143 MB of weights: every tensor is a formula of its name and index, which tests/cifar_layout.rs
computes the same way, so diffusers' output here is checked against ours there.

    python3 tests/cifar_layout/make_golden.py      # torch 2.15.0, diffusers 0.42.1

Writes config.json (the checkpoint's config), tensors.json (each state-dict name and shape, in diffusers'
current names; the Rust test saves the attention ones under the checkpoint's old names query/key/value/
proj_attn), and eps_t500.npy = model(x, 500) for x given by the same formula.
"""

import json
from pathlib import Path

import numpy as np
import torch
from diffusers import UNet2DModel

OUT = Path(__file__).parent

CONFIG = dict(
    sample_size=32, in_channels=3, out_channels=3, block_out_channels=[128, 256, 256, 256], layers_per_block=2,
    down_block_types=["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
    up_block_types=["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
    attention_head_dim=None, norm_eps=1e-6, norm_num_groups=32, freq_shift=1, flip_sin_to_cos=False,
    downsample_padding=0, act_fn="silu", center_input_sample=False, mid_block_scale_factor=1,
    time_embedding_type="positional",
)


def fill(name: str, shape: list[int]) -> np.ndarray:
    """Deterministic values: sin of the index with a per-name phase, scaled like an initialisation."""
    n = int(np.prod(shape))
    phase = (sum(name.encode()) % 997) * 0.01
    base = np.sin(np.arange(n, dtype=np.float64) * 0.7 + phase)
    if name.endswith("weight") and len(shape) >= 2:
        v = base / np.sqrt(np.prod(shape[1:]))
    elif name.endswith("weight"):
        v = 1.0 + 0.1 * base
    else:
        v = 0.1 * base
    return v.astype(np.float32).reshape(shape)


def main() -> None:
    model = UNet2DModel(**CONFIG).eval()
    sd = model.state_dict()
    tensors = [[k, list(v.shape)] for k, v in sd.items()]
    model.load_state_dict({k: torch.from_numpy(fill(k, s)) for k, s in tensors})
    x = np.sin(np.arange(3 * 32 * 32, dtype=np.float64) * 0.3).astype(np.float32).reshape(1, 3, 32, 32)
    with torch.no_grad():
        eps = model(torch.from_numpy(x), 500).sample.numpy()
    (OUT / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel", **CONFIG}, indent=1))
    (OUT / "tensors.json").write_text(json.dumps(tensors))
    np.save(OUT / "eps_t500.npy", eps)
    print(f"{sum(p.numel() for p in model.parameters())} parameters; eps std {eps.std():.4f}")


if __name__ == "__main__":
    main()
