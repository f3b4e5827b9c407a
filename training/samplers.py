"""ddpm-web's samplers in PyTorch, for evaluation at sizes the browser engine (or lavapipe) cannot reach.

The maths is not written twice: `ddpm program` (src/diffusion/samplers.rs) prints a sampler's *program*,
every network pass with its timestep and its update's coefficients, and this module runs it with the same
three updates as shaders/update.wgsl and shaders/langevin.wgsl:

  affine        x0 = clamp(x0_x x - x0_eps eps, -clip, clip);  x' = to_x0 x0 + to_x x + to_eps eps + to_z z
  heun_predict  the affine update (no z), keeping saved = x and deriv = deriv_x x + deriv_x0 x0
  heun_correct  the affine update + to_saved saved + to_deriv deriv
  langevin      s = score_eps eps; step = 2 alpha (snr |z| / |s|)^2 per image; x' = x + step s + sqrt(2 step) z

The Rust programs are checked against diffusers' own schedulers (tests/samplers.rs) and against the
formulas of the samplers diffusers lacks (src/diffusion/samplers.rs); training/tests/test_samplers.py checks
this runner against the Rust engine on the same noise (`philox_normal` is the GPU's generator).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Callable

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
# Philox step key of x_T's draw (src/diffusion/samplers.rs INIT_KEY).
INIT_KEY = 0xFFFFFFFF


def ddpm_binary() -> Path:
    """The `ddpm` command: $DDPM_BIN, else the newer of the release and debug builds in target/ (an old
    release build must not stand in for a fresh debug one)."""
    if os.environ.get("DDPM_BIN"):
        return Path(os.environ["DDPM_BIN"])
    builds = [p for p in (ROOT / "target" / b / "ddpm" for b in ("release", "debug")) if p.exists()]
    return max(builds, key=lambda p: p.stat().st_mtime) if builds else ROOT / "target" / "debug" / "ddpm"


def program(model: Path, sampler: str, steps: int, extra: list[str] | None = None) -> dict:
    """`ddpm program` for this model folder and sampler (extra: e.g. ["--eta", "0.5"])."""
    cmd = [str(ddpm_binary()), "program", "--model", str(model), "--sampler", sampler, "--steps", str(steps), *(extra or [])]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def philox_normal(seed: int, key: int, n: int) -> np.ndarray:
    """The GPU's z for elements 0..n-1 (shaders/philox.wgsl): Philox4x32-10 on counter (i, key, 0, 0) with the
    64-bit seed as key, then Box-Muller on the top 24 bits of the first two words."""
    m = np.uint64(0xFFFFFFFF)
    c0 = np.arange(n, dtype=np.uint64)
    c1 = np.full(n, key, dtype=np.uint64)
    c2 = np.zeros(n, dtype=np.uint64)
    c3 = np.zeros(n, dtype=np.uint64)
    k0, k1 = np.uint64(seed & 0xFFFFFFFF), np.uint64(seed >> 32)
    for _ in range(10):
        p0 = np.uint64(0xD2511F53) * c0
        p1 = np.uint64(0xCD9E8D57) * c2
        hi0, lo0 = p0 >> np.uint64(32), p0 & m
        hi1, lo1 = p1 >> np.uint64(32), p1 & m
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0, k1 = (k0 + np.uint64(0x9E3779B9)) & m, (k1 + np.uint64(0xBB67AE85)) & m
    u1 = ((c0 >> np.uint64(8)).astype(np.float64) + 1.0) / 16777216.0
    u2 = (c1 >> np.uint64(8)).astype(np.float64) / 16777216.0
    return (np.sqrt(-2.0 * np.log(u1)) * np.cos(2 * np.pi * u2)).astype(np.float32)


Noise = Callable[[int, tuple], torch.Tensor]


def torch_noise(generator: torch.Generator) -> Noise:
    """Fresh N(0, I) per pass from a torch generator (on the CPU, moved to x's device by the runner)."""
    return lambda key, shape: torch.randn(shape, generator=generator)


def gpu_noise(seed: int) -> Noise:
    """Exactly the engine's noise for a run with this seed."""
    return lambda key, shape: torch.from_numpy(philox_normal(seed, key, int(np.prod(shape))).reshape(shape))


@torch.no_grad()
def run(unet, prog: dict, z: torch.Tensor, noise: Noise) -> torch.Tensor:
    """Runs a program from x_T = init_scale * z; returns the final batch (float32, model range, unclipped)."""
    dev = z.device
    x = (z * prog["init_scale"]).float()
    saved = deriv = None
    n = x.shape[0]
    for p in prog["passes"]:
        t = torch.full((n,), p["t_model"], dtype=torch.float32, device=dev)
        eps = unet(x, t).sample.float()
        kind, c = p["update"]["kind"], p["update"]["coeffs"]
        if kind == "langevin":
            zz = noise(p["key"], tuple(x.shape)).to(dev)
            score = c["score_eps"] * eps
            flat = lambda v: v.reshape(n, -1).double().norm(dim=1)
            s_norm = flat(score)
            step = torch.where(s_norm > 0, 2 * c["alpha"] * (c["snr"] * flat(zz) / s_norm.clamp_min(1e-30)) ** 2, torch.zeros_like(s_norm))
            step = step.float().view(n, *[1] * (x.dim() - 1))
            x = x + step * score + torch.sqrt(2 * step) * zz
            continue
        x0 = c["x0_x"] * x - c["x0_eps"] * eps
        if c["clip"] < 1e38:  # NO_CLIP is f32's largest value (its JSON decimal overflows a float32 clamp)
            x0 = x0.clamp(-c["clip"], c["clip"])
        nxt = c["to_x0"] * x0 + c["to_x"] * x + c["to_eps"] * eps
        if kind == "affine" and c["to_z"] != 0.0:
            nxt = nxt + c["to_z"] * noise(p["key"], tuple(x.shape)).to(dev)
        if kind == "heun_predict":
            saved, deriv = x, c["deriv_x"] * x + c["deriv_x0"] * x0
        elif kind == "heun_correct":
            nxt = nxt + c["to_saved"] * saved + c["to_deriv"] * deriv
        x = nxt
    return x
