"""Training throughput (images/s) of the shipped U-Net on this CPU under different settings, side by side in
one run. Run it with nothing else busy (pause the training run: kill -STOP <pid>, then kill -CONT):

    python3 training/bench_cpu.py [--steps 15] [--compile]

Each variant: a fresh model, 3 warm-up steps, then --steps timed Algorithm 1 steps (forward, backward, Adam).
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

import model as model_def


def run(batch: int, steps: int, channels_last: bool, compile_: bool, threads: int) -> float:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    unet = model_def.make_unet().train()
    if channels_last:
        unet = unet.to(memory_format=torch.channels_last)
    fwd = torch.compile(unet) if compile_ else unet
    opt = torch.optim.Adam(unet.parameters(), lr=2e-4)
    abar = model_def.make_scheduler().alphas_cumprod
    x0 = torch.rand(batch, 1, 28, 28) * 2 - 1
    if channels_last:
        x0 = x0.contiguous(memory_format=torch.channels_last)

    def step():
        t = torch.randint(0, 1000, (batch,))
        eps = torch.randn_like(x0)
        a = abar[t].view(-1, 1, 1, 1)
        loss = F.mse_loss(fwd(a.sqrt() * x0 + (1 - a).sqrt() * eps, t).sample, eps)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--compile", action="store_true", help="also torch.compile (slow to start)")
    args = p.parse_args()
    variants = [
        ("batch 64, 2 threads", dict(batch=64, channels_last=False, compile_=False, threads=2)),
        ("batch 64, 2 threads, channels_last", dict(batch=64, channels_last=True, compile_=False, threads=2)),
        ("batch 128, 2 threads", dict(batch=128, channels_last=False, compile_=False, threads=2)),
        ("batch 32, 2 threads", dict(batch=32, channels_last=False, compile_=False, threads=2)),
        ("batch 64, 1 thread", dict(batch=64, channels_last=False, compile_=False, threads=1)),
    ]
    if args.compile:
        variants.append(("batch 64, 2 threads, torch.compile", dict(batch=64, channels_last=False, compile_=True, threads=2)))
    base = None
    for name, kw in variants:
        ips = run(steps=args.steps, **kw)
        base = base or ips
        print(f"{name:<40} {ips:7.1f} images/s  ({ips / base:.2f}x)", flush=True)


if __name__ == "__main__":
    main()
