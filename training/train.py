"""Algorithm 1 of Ho et al. (2020) on Fashion-MNIST, written on Hugging Face Accelerate.

    repeat
        x_0 ~ q(x_0);  t ~ Uniform{1..T};  eps ~ N(0, I)
        gradient step on || eps - eps_theta(sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, t) ||^2
    until converged

The same command runs on CPU, one GPU, or many (`accelerate launch training/train.py ...`).
Timesteps are diffusers' indices 0..T-1 (the paper's t minus one), as the network is fed them.

Full resume state lives in --run-dir (ignored by git); `export.py` turns its EMA weights into the page's
model folder. Example (this project's CPU run):

    nohup nice -n 19 python3 training/train.py --run-dir training/runs/fmnist > training/runs/fmnist.log 2>&1 &

SIGTERM or SIGINT (kill <pid>, Ctrl-C) finishes the current step, saves a checkpoint and exits, so stopping
the run before a build or the end of a session loses nothing; so does --max-minutes when its time is up.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import signal
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from diffusers.training_utils import EMAModel
from tqdm import tqdm

import data
import model as model_def


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", type=Path, default=Path("training/runs/fmnist"))
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, help="Adam's learning rate (default 2e-4; a resume without --lr or "
                   "--lr-decay continues the run's latest segment, see lr_history.json)")
    p.add_argument("--warmup-steps", type=int, default=500)
    p.add_argument("--ema-decay", type=float, default=0.9995, help="EMA's final decay (warm-up reaches it)")
    p.add_argument("--lr-decay", type=int, nargs=2, metavar=("START", "END"),
                   help="cosine-decay the learning rate from --lr to --lr-min between these global steps "
                        "(held at --lr-min after END); the loss plateaued at a constant 2e-4 (see README)")
    p.add_argument("--lr-min", type=float, help="default 2e-5")
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--max-steps", type=int, default=10**9, help="stop after this many optimiser steps")
    p.add_argument("--max-minutes", type=float, help="wall-clock budget from the start of this process: the step "
                   "that crosses it is the last, and the checkpoint is saved (scripts/gpu/run.sh leaves room for it)")
    p.add_argument("--checkpoint-every", type=int, default=250, help="steps between resume checkpoints")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: leave torch's choice)")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory format (measured: see README)")
    p.add_argument("--init-from", type=Path, help="warm-start from an exported model folder (no run-dir yet)")
    p.add_argument("--widths", type=lambda v: tuple(int(w) for w in v.split(",")), metavar="W1,W2,W3",
                   help="channels per level of a new run (default 32,64,64, the shipped model); a resume or warm "
                        "start keeps its model's, and refuses a different one")
    p.add_argument("--layers-per-block", type=int, help="ResNet blocks per level of a new run (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mixed-precision", default=None, help="'no', 'fp16' or 'bf16'; default: fp16 on GPU")
    return p.parse_args()


def lr_lambda(warmup: int, decay: tuple[int, int] | None, floor: float, global_step: list[int]):
    """Multiplier on --lr. Warm-up counts this scheduler's own steps, so a warm start (fresh Adam) warms up
    again; the decay reads the global step, so it lands at the same place however a run is split."""

    def factor(sched_step: int) -> float:
        f = min(1.0, (sched_step + 1) / warmup)
        if decay:
            start, end = decay
            p = min(1.0, max(0.0, (global_step[0] - start) / max(1, end - start)))
            f *= floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p))
        return f

    return factor


def resolve_lr_flags(args: argparse.Namespace, history: list[dict]) -> None:
    """Without --lr or --lr-decay, continue the latest segment's schedule, so a plain resume keeps the rate
    it stopped at instead of jumping back to 2e-4; with either, unset flags take their defaults."""
    last = history[-1] if history and args.lr is None and args.lr_decay is None else {}
    if args.lr is None:
        args.lr = last.get("lr", 2e-4)
    if args.lr_decay is None:
        args.lr_decay = last.get("lr_decay")
    if args.lr_min is None:
        args.lr_min = last.get("lr_min", 2e-5)


def record_segment(run_dir: Path, history: list[dict], step: int, args: argparse.Namespace, warm_start: bool,
                   batch: int, hardware: str) -> None:
    """Append this segment's learning-rate flags, global batch and hardware to run_dir/lr_history.json, so
    that export.py can state the whole schedule in the model card, not only the latest segment's."""
    # Resuming from an earlier checkpoint redoes the steps after it, and their segments with them.
    hist = [h for h in history if h["from_step"] < step]
    hist.append({"from_step": step, "lr": args.lr, "lr_decay": list(args.lr_decay) if args.lr_decay else None,
                 "lr_min": args.lr_min, "warm_start": warm_start, "batch": batch, "hardware": hardware})
    (run_dir / "lr_history.json").write_text(json.dumps(hist, indent=1))


def choose_architecture(args: argparse.Namespace, ck: dict | None) -> dict:
    """The U-Net config of this run: the checkpoint's on a resume (runs from before it was recorded hold the
    shipped one), the exported model's on a warm start, else the flags'. A flag that contradicts the model
    being continued is an error, not silently ignored: that run needs a new --run-dir."""
    if ck is not None:
        cfg, source = ck.get("unet_config") or model_def.unet_config(), f"the checkpoint in {args.run_dir}"
    elif args.init_from:
        from diffusers import UNet2DModel

        cfg, source = dict(UNet2DModel.load_config(args.init_from)), str(args.init_from)
    else:
        try:
            return model_def.unet_config(args.widths, args.layers_per_block)
        except ValueError as e:
            raise SystemExit(f"--widths/--layers-per-block: {e}")
    have = (tuple(cfg["block_out_channels"]), int(cfg["layers_per_block"]))
    want = (args.widths or have[0], args.layers_per_block or have[1])
    if want != have:
        raise SystemExit(f"{source} holds a model with widths {have[0]} and {have[1]} blocks per level; "
                         f"--widths/--layers-per-block ask for {want[0]} and {want[1]}: use a new --run-dir")
    return model_def.plain_config(cfg)


def save_checkpoint(path: Path, unet, ema, opt, sched, step: int, images_seen: int) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "unet_config": model_def.plain_config(unet),
            "unet": unet.state_dict(),
            "ema": ema.state_dict(),
            "opt": opt.state_dict(),
            "sched": sched.state_dict(),
            "step": step,
            "images_seen": images_seen,
            "torch_rng": torch.get_rng_state(),
            "np_rng": np.random.get_state(),
        },
        tmp,
    )
    os.replace(tmp, path)  # atomic: an interrupted save never leaves a broken checkpoint


def plot_loss(csv_path: Path, png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.reader(open(csv_path)))[1:]
    if len(rows) < 2:
        return
    steps = np.array([int(r[0]) for r in rows])
    loss = np.array([float(r[1]) for r in rows])
    k = max(1, len(loss) // 200)
    smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, loss, alpha=0.25, lw=0.5, label="batch loss")
    ax.plot(steps[k - 1 :], smooth, lw=1.5, label=f"mean of {k}")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("MSE(eps, eps_theta)")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("Algorithm 1 on Fashion-MNIST")
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    plt.close(fig)


def main() -> None:
    t_start = time.time()
    args = parse_args()
    deadline = t_start + 60 * args.max_minutes if args.max_minutes else math.inf
    if args.threads:
        torch.set_num_threads(args.threads)
    mp = args.mixed_precision or ("fp16" if torch.cuda.is_available() else "no")
    acc = Accelerator(mixed_precision=mp)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = args.run_dir / "checkpoint.pt"
    warm_start = bool(args.init_from) and not ckpt_path.exists()
    # The learning rate of each earlier segment: the run's own record on a resume, the exported model's on a
    # warm start (export.py copies it into config.json), none on a fresh run.
    note = model_def.training_note(args.init_from) if warm_start else {}
    history_path = args.run_dir / "lr_history.json"
    if ckpt_path.exists():
        history = json.loads(history_path.read_text()) if history_path.exists() else []
    else:
        history = note.get("lr_history", [])
    resolve_lr_flags(args, history)
    torch.manual_seed(args.seed + acc.process_index)
    np.random.seed(args.seed + acc.process_index)

    images, _ = data.load("train")
    x_all = torch.from_numpy(data.to_model_range(images))
    if acc.device.type != "cpu":
        # 188 MB as f32: kept on the GPU, so a step copies no batch from the host (the permutation is still
        # drawn on the CPU, so the order of the images is the same as on the CPU).
        x_all = x_all.to(acc.device)

    ck = torch.load(ckpt_path, map_location="cpu", weights_only=False) if ckpt_path.exists() else None
    unet = model_def.make_unet(choose_architecture(args, ck))
    step, images_seen = 0, 0
    if warm_start:
        from diffusers import UNet2DModel

        unet.load_state_dict(UNet2DModel.from_pretrained(args.init_from).float().state_dict())
        # Carry the training already seen (export.py records it) so the model card keeps the total.
        step, images_seen = int(note.get("optimizer_steps", 0)), int(note.get("images_seen", 0))
        acc.print(f"warm start from {args.init_from} ({images_seen} images seen before)")
    if args.channels_last:
        unet = unet.to(memory_format=torch.channels_last)
    noise_sched = model_def.make_scheduler()
    abar = noise_sched.alphas_cumprod.float()
    T = noise_sched.config.num_train_timesteps

    opt = torch.optim.Adam(unet.parameters(), lr=args.lr)
    global_step = [step]  # read by the LR multiplier; updated in the loop
    decay = tuple(args.lr_decay) if args.lr_decay else None
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(args.warmup_steps, decay, args.lr_min / args.lr, global_step))
    # EMA warm-up: the decay grows as 1 - (1 + step)^(-2/3) up to --ema-decay, so a short CPU run is not
    # dominated by the random initial weights.
    ema = EMAModel(unet.parameters(), decay=args.ema_decay, use_ema_warmup=True, power=2 / 3,
                   foreach=acc.device.type == "cuda")  # one fused update instead of a launch per tensor
    if ck is not None:
        unet.load_state_dict(ck["unet"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        ema.load_state_dict(ck["ema"])
        step, images_seen = ck["step"], ck["images_seen"]
        global_step[0] = step
        # The restored scheduler holds the LR of the run that saved it; recompute it under this run's flags
        # (--lr included: a resumed run may continue at a new rate).
        sched.base_lrs = [args.lr for _ in opt.param_groups]
        for g, lr0 in zip(opt.param_groups, sched.base_lrs):
            g["lr"] = lr0 * sched.lr_lambdas[0](sched.last_epoch)
        torch.set_rng_state(ck["torch_rng"])
        np.random.set_state(ck["np_rng"])
        acc.print(f"resumed {ckpt_path} at step {step} ({images_seen} images seen), lr {opt.param_groups[0]['lr']:.2e}")
    (args.run_dir / "args.json").write_text(json.dumps({k: str(v) for k, v in vars(args).items()}, indent=1))
    if acc.is_main_process:
        if acc.device.type == "cuda":
            hardware = f"{acc.num_processes} x {torch.cuda.get_device_name(acc.device)}"
        else:
            hardware = f"{acc.num_processes} x {acc.device.type.upper()}, {torch.get_num_threads()} threads"
        record_segment(args.run_dir, history, step, args, warm_start, args.batch_size * acc.num_processes, hardware)

    unet, opt, sched = acc.prepare(unet, opt, sched)
    ema.to(acc.device)
    abar = abar.to(acc.device)
    loss_csv = args.run_dir / "loss.csv"
    if not loss_csv.exists():
        loss_csv.write_text("step,loss,images_seen\n")
    else:
        # Rows written after the checkpoint we resumed from belong to steps that are about to be redone.
        rows = loss_csv.read_text().splitlines()
        kept = [rows[0]] + [r for r in rows[1:] if r and int(r.split(",")[0]) <= step]
        loss_csv.write_text("\n".join(kept) + "\n")
    log = open(loss_csv, "a")

    n = x_all.shape[0]
    bar = tqdm(total=args.max_steps if args.max_steps < 10**9 else None, initial=step, disable=not acc.is_main_process,
               dynamic_ncols=True, mininterval=5)
    unet.train()
    t_last, seen_last = time.time(), images_seen
    t_loop, seen_start = t_last, images_seen
    # Losses stay on the device until a flush: a .item() per step would wait for the GPU every step.
    pending: list[tuple[int, torch.Tensor, int]] = []

    def flush_losses() -> None:
        if pending:
            values = torch.stack([v for _, v, _ in pending]).float().cpu().tolist()
            log.write("".join(f"{s},{v:.6f},{n}\n" for (s, _, n), v in zip(pending, values)))
            pending.clear()
        log.flush()

    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop.append(signum))
    while step < args.max_steps:
        perm = torch.randperm(n)
        for i in range(0, n - args.batch_size + 1, args.batch_size):
            x0 = x_all[perm[i : i + args.batch_size].to(x_all.device)].to(acc.device)
            if args.channels_last:
                x0 = x0.contiguous(memory_format=torch.channels_last)
            t = torch.randint(0, T, (x0.shape[0],), device=acc.device)
            eps = torch.randn_like(x0)
            a = abar[t].view(-1, 1, 1, 1)
            x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
            with acc.autocast():
                pred = unet(x_t, t).sample
            loss = F.mse_loss(pred.float(), eps)
            acc.backward(loss)
            if acc.sync_gradients:
                acc.clip_grad_norm_(unet.parameters(), args.grad_clip)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            ema.step(acc.unwrap_model(unet).parameters())
            step += 1
            global_step[0] = step
            images_seen += x0.shape[0] * acc.num_processes
            pending.append((step, loss.detach(), images_seen))
            if len(pending) >= 100:
                flush_losses()
            now = time.time()
            if now >= deadline and not stop:
                stop.append("time")
            if now - t_last > 10:
                bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{opt.param_groups[0]['lr']:.1e}", img_s=f"{(images_seen - seen_last) / (now - t_last):.1f}",
                                epoch=f"{images_seen / n:.2f}")
                t_last, seen_last = now, images_seen
            bar.update(1)
            if step % args.checkpoint_every == 0 or step >= args.max_steps or stop:
                flush_losses()
                if acc.is_main_process:
                    save_checkpoint(ckpt_path, acc.unwrap_model(unet), ema, opt, sched, step, images_seen)
                    plot_loss(loss_csv, args.run_dir / "loss.png")
            if step >= args.max_steps or stop:
                break
        if stop:
            why = "--max-minutes reached" if stop[0] == "time" else f"signal {stop[0]}"
            acc.print(f"{why}: checkpoint saved at step {step}")
            break
    flush_losses()
    log.close()
    seconds = time.time() - t_loop
    acc.print(f"done: step {step}, {images_seen} images seen; this segment {images_seen - seen_start} images in "
              f"{seconds:.1f} s ({(images_seen - seen_start) / max(seconds, 1e-9):.1f} images/s)")


if __name__ == "__main__":
    main()
