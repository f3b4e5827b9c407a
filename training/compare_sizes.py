"""Which U-Net size learns most per CPU-minute? A brief side-by-side run of a few widths and depths.

Each variant starts from the same seed and trains with Algorithm 1 (Adam 2e-4, 100 warm-up steps, batch 64,
clipping 1.0) for the same wall-clock budget on this CPU; every --eval-every seconds the clock stops and the
raw weights are scored on a fixed held-out set: the first --n test images, one timestep each, stratified
over 1..T, fixed noise. That held-out epsilon-MSE is the training objective (the paper's simplified,
reweighted bound), so "lower at the same minute" means "more learnt per CPU-minute". Run it with nothing
else busy (pause the training run: kill -STOP <pid>, then kill -CONT <pid>):

    python3 training/compare_sizes.py [--minutes 5] [--eval-every 60]

A few minutes per variant is a short horizon: it shows which sizes are in the running at this budget,
not where they end after days.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import UNet2DModel

import data
import model as model_def

HERE = Path(__file__).parent

VARIANTS = [
    ("narrow (16, 32, 32)", dict(block_out_channels=(16, 32, 32))),
    ("shipped (32, 64, 64)", dict()),
    ("shallow (32, 64, 64), 1 layer/block", dict(layers_per_block=1)),
    ("wide (40, 80, 80)", dict(block_out_channels=(40, 80, 80))),
]


def make(overrides: dict) -> UNet2DModel:
    cfg = dict(model_def.UNET_CONFIG, **overrides)
    cfg["attention_head_dim"] = cfg["block_out_channels"][1]  # one head at the attention level
    return UNet2DModel(**cfg)


@torch.no_grad()
def held_out_loss(unet: UNet2DModel, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, abar: torch.Tensor) -> float:
    unet.eval()
    total = 0.0
    for i in range(0, x0.shape[0], 250):
        a = abar[t[i : i + 250]].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0[i : i + 250] + (1 - a).sqrt() * eps[i : i + 250]
        total += F.mse_loss(unet(xt, t[i : i + 250]).sample, eps[i : i + 250], reduction="sum").item()
    unet.train()
    return total / eps.numel()


def run(name: str, overrides: dict, x_train: torch.Tensor, held: tuple, args) -> list[tuple[float, int, float]]:
    torch.manual_seed(0)
    unet = make(overrides).train()
    abar = model_def.make_scheduler().alphas_cumprod.float()
    params = sum(p.numel() for p in unet.parameters())
    gflop = model_def.flops_per_image(unet) / 1e9
    unet.train()
    opt = torch.optim.Adam(unet.parameters(), lr=2e-4)
    warm = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 100))
    print(f"\n{name}: {params / 1e6:.2f} M parameters, {gflop:.3f} GFLOP per pass", flush=True)
    points, trained, step, next_eval = [], 0.0, 0, args.eval_every
    gen = torch.Generator().manual_seed(1)
    while trained < args.minutes * 60:
        start = time.perf_counter()
        idx = torch.randint(0, x_train.shape[0], (64,), generator=gen)
        x0 = x_train[idx]
        t = torch.randint(0, 1000, (64,), generator=gen)
        eps = torch.randn(x0.shape, generator=gen)
        a = abar[t].view(-1, 1, 1, 1)
        loss = F.mse_loss(unet(a.sqrt() * x0 + (1 - a).sqrt() * eps, t).sample, eps)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        warm.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        trained += time.perf_counter() - start
        if trained >= next_eval:
            held_loss = held_out_loss(unet, *held, abar)
            points.append((trained, step, held_loss))
            print(f"  {trained / 60:5.1f} min  step {step:5d}  {step * 64 / trained:6.1f} img/s  held-out {held_loss:.4f}",
                  flush=True)
            next_eval += args.eval_every
    return [(params, gflop)] + points


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=5)
    p.add_argument("--eval-every", type=float, default=60, help="seconds of training between held-out scores")
    p.add_argument("--n", type=int, default=1000, help="held-out test images")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reference", type=Path, default=HERE.parent / "www/models/fashion-mnist",
                   help="an exported model to score on the same held-out set, for scale")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    x_train = torch.from_numpy(data.to_model_range(data.load("train")[0]))
    x_test = torch.from_numpy(data.to_model_range(data.load("test")[0][: args.n]))
    t_held = torch.from_numpy((np.arange(args.n) * 1000 // args.n).astype(np.int64))
    eps_held = torch.randn(x_test.shape, generator=torch.Generator().manual_seed(2))
    results = {name: run(name, ov, x_train, (x_test, t_held, eps_held), args) for name, ov in VARIANTS}

    print(f"\nheld-out epsilon-MSE after equal CPU time ({args.threads} threads, batch 64):")
    header = f"{'variant':<38} {'params':>7} {'GFLOP':>6}" + "".join(
        f" {int((i + 1) * args.eval_every / 60)} min".rjust(8) for i in range(len(next(iter(results.values()))) - 1))
    print(header)
    for name, ((params, gflop), *pts) in results.items():
        print(f"{name:<38} {params / 1e6:6.2f}M {gflop:6.3f}" + "".join(f" {l:8.4f}" for _, _, l in pts))
    if (args.reference / "config.json").exists():
        ref = UNet2DModel.from_pretrained(args.reference).float()
        seen = model_def.training_note(args.reference).get("images_seen", "?")
        abar = model_def.make_scheduler().alphas_cumprod.float()
        print(f"for scale, {args.reference} (EMA, {seen} images seen): held-out "
              f"{held_out_loss(ref, x_test, t_held, eps_held, abar):.4f}")


if __name__ == "__main__":
    main()
