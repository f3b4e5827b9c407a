"""Turns a training run's EMA weights into the page's model folder (diffusers layout, f16 safetensors).

    python3 training/export.py --run-dir training/runs/fmnist --out www/models/fashion-mnist [--onnx PATH]
    python3 training/export.py --from-random --out DIR        # an untrained placeholder

Writes config.json (+ a "_ddpm_web" note that diffusers ignores: dataset, images and optimiser steps seen),
diffusion_pytorch_model.safetensors in float16, and scheduler_config.json. With --onnx, also the f32 EMA
network as ONNX (dynamic batch), for performance comparisons; it is not shipped to the page.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from diffusers import UNet2DModel
from diffusers.training_utils import EMAModel

import model as model_def


def load_ema(run_dir: Path) -> tuple[UNet2DModel, dict]:
    ck = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=False)
    # Checkpoints from before train.py recorded the architecture hold the shipped one.
    unet = model_def.make_unet(ck.get("unet_config"))
    ema = EMAModel(unet.parameters(), decay=0.9995, use_ema_warmup=True, power=2 / 3)
    ema.load_state_dict(ck["ema"])
    ema.copy_to(unet.parameters())
    return unet.eval(), {"optimizer_steps": int(ck["step"]), "images_seen": int(ck["images_seen"])}


def eval_table(ev: dict) -> list[str]:
    """The figures of training/eval.json as a table against the targets, then the commands that made them."""
    rows, commands = [], []

    def fd_row(key: str, label: str) -> None:
        fd = ev.get(key)
        if not fd:
            return
        ratio = fd["fd_samples_vs_test"] / fd["fd_floor_train_vs_test"]
        spread = fd.get("fd_floor_spread")
        moves = (f"; the floor over {spread['draws']} fresh draws: {spread['mean']:.2f} ± {spread['sd']:.2f}, "
                 f"{spread['min']:.2f} to {spread['max']:.2f}") if spread else ""
        rows.append(f"| {label}, N = {fd['n']:,} | {fd['fd_samples_vs_test']:.2f} against a floor of "
                    f"{fd['fd_floor_train_vs_test']:.2f} ({ratio:.1f}x{moves}) | "
                    f"≤ 2x floor: {'met' if ratio <= 2 else 'not met'} |")
        hist = fd["class_histogram"]
        rows.append(f"| {label}: classes (classifier) | {sum(c > 0 for c in hist.values())} of 10 present, "
                    f"{min(hist.values())}-{max(hist.values())} per class; IS-like {fd['inception_score_like']:.2f} | "
                    f"all present: {'met' if fd['all_classes_present'] else 'not met'} |")
        commands.append(fd["command"])

    fd_row("fd_respaced", f"FD, {ev.get('fd_respaced', {}).get('steps')} respaced steps")
    fd_row("fd_full_1000_steps", "FD, full 1000-step Algorithm 2")
    nll = ev.get("nll_bits_per_dim")
    if nll:
        best = min(nll["large"]["mean"], nll["small"]["mean"])
        rows.append(f"| NLL bound, {nll['images']} test images, all 1000 terms | "
                    f"{nll['large']['mean']:.2f} ± {nll['large']['standard_error']:.2f} bits/dim (σ² = β_t), "
                    f"{nll['small']['mean']:.2f} ± {nll['small']['standard_error']:.2f} (β̃_t) | "
                    f"≤ 3.5: {'met' if best <= 3.5 else 'not met'} |")
        commands.append(nll["command"])
    nn = ev.get("nearest_neighbour")
    if nn:
        s, t = nn["sample_to_train_l2"], nn["test_to_train_l2"]
        rows.append(f"| nearest training image (L2), 64 samples vs 64 test images | median {s['median']:.2f} vs "
                    f"{t['median']:.2f}, min {s['min']:.2f} vs {t['min']:.2f} | no copies: "
                    f"{'met' if s['min'] > 0.5 * t['min'] else 'check the figure'} |")
        commands.append(nn["command"])
    lines = ["| figure | value | target |", "|---|---|---|", *rows, "",
             "Commands (run in `training/`; all figures in `training/eval.json`):", ""]
    lines += [f"    {c}" for c in dict.fromkeys(commands)]
    return lines


def lr_history(run_dir: Path | None) -> list[dict]:
    """The learning rate of each training segment, as train.py records it in the run folder."""
    if run_dir is None:
        return []
    try:
        return json.loads((run_dir / "lr_history.json").read_text())
    except (OSError, ValueError):
        return []


def _rate(x: float) -> str:
    mantissa, exponent = f"{x:.1e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def lr_note(history: list[dict]) -> str:
    """One line for the model card: the learning rate over the whole run, segment by segment. Resumes that
    kept the same settings merge into one segment; a warm start restarts Adam, the EMA and the warm-up."""
    parts, last = [], None
    for h in history:
        key = (h["lr"], tuple(h["lr_decay"] or ()), h["lr_min"])
        if key == last and not h.get("warm_start"):
            continue
        last = key
        text = f"{_rate(h['lr'])} from step {h['from_step']:,}"
        if h["lr_decay"]:
            start, end = h["lr_decay"]
            text += f", cosine-decayed to {_rate(h['lr_min'])} between steps {start:,} and {end:,}"
        if h.get("warm_start"):
            text += " (warm start: fresh Adam and warm-up)"
        parts.append(text)
    return "; ".join(parts) if parts else "2e-4"


def hardware_note(history: list[dict]) -> str:
    """Batch and hardware over the run. Segments recorded before train.py wrote them ran on this project's
    2-core CPU machine at batch 64."""
    parts, last = [], None
    for h in history or [{"from_step": 0}]:
        key = (h.get("batch", 64), h.get("hardware", "1 x CPU, 2 threads"))
        if key != last:
            parts.append(f"batch {key[0]} on {key[1]} from step {h['from_step']:,}")
            last = key
    return "; ".join(parts)


def write_card(out: Path, unet: UNet2DModel, seen: dict, dataset: str, run_dir: Path | None = None) -> None:
    """The model card (README.md in the folder), from the checkpoint and, when it is about these very
    weights, training/eval.json. Figures not measured for this export say so."""
    params = sum(p.numel() for p in unet.parameters())
    gflop = model_def.flops_per_image(unet) / 1e9
    epochs = seen["images_seen"] / 60000
    ev_path = Path(__file__).with_name("eval.json")
    ev = json.loads(ev_path.read_text()) if ev_path.exists() else {}
    ev_seen = ((ev.get("model") or {}).get("config_note") or {}).get("images_seen")
    cfg = unet.config
    widths = "/".join(str(w) for w in cfg.block_out_channels)
    blocks = f"{cfg.layers_per_block} ResNet block{'s' if cfg.layers_per_block != 1 else ''}"
    lines = [
        "# Fashion-MNIST DDPM (ddpm-web's default model)", "",
        "A diffusers `UNet2DModel` trained by this project's Algorithm 1 script (`training/train.py`) and exported",
        "by `training/export.py` (EMA weights, float16).", "",
        f"- Data: {dataset}, pixels scaled to [-1, 1].",
        f"- Architecture: {params:,} parameters, {gflop:.3f} GFLOP per 28x28 epsilon pass; widths {widths}, {blocks}",
        f"  per level, self-attention at 14x14, GroupNorm ({cfg.norm_num_groups} groups), SiLU, sinusoidal time "
        f"embedding, dropout {cfg.dropout}.",
        "- Schedule: T = 1000, beta linear from 1e-4 to 0.02 (`scheduler_config.json`).",
        f"- Training: Adam (500 warm-up steps), learning rate {lr_note(lr_history(run_dir))}.",
        f"  Gradient clipping 1.0, EMA decay warming up to 0.9995; {hardware_note(lr_history(run_dir))}.",
        f"- Seen so far: {seen['optimizer_steps']:,} optimiser steps, {seen['images_seen']:,} images ({epochs:.1f} epochs).",
        "  Training spans sessions: each resumes from its run's checkpoint or, on a new machine, warm-starts from",
        "  these weights (Adam state and EMA restart from them); `training/loss.png` shows the latest segment.",
        "",
        "## Evaluation",
        "",
    ]
    if ev and ev_seen == seen["images_seen"]:
        lines += eval_table(ev)
    else:
        lines += ["Not yet run for these weights (`python3 training/evaluate.py --model www/models/fashion-mnist`)."]
    (out / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", type=Path, default=Path("training/runs/fmnist"))
    p.add_argument("--out", type=Path, default=Path("www/models/fashion-mnist"))
    p.add_argument("--onnx", type=Path, nargs="?", const=Path("training/runs/fmnist/unet.onnx"))
    p.add_argument("--from-random", action="store_true")
    args = p.parse_args()

    if args.from_random:
        torch.manual_seed(0)
        unet, seen = model_def.make_unet().eval(), {"optimizer_steps": 0, "images_seen": 0}
        dataset = "none (random weights; placeholder)"
    else:
        unet, seen = load_ema(args.run_dir)
        dataset = "Fashion-MNIST (60,000 28x28 grey training images)"

    args.out.mkdir(parents=True, exist_ok=True)
    reference = unet.float()
    x = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = reference(x, torch.tensor([10, 700])).sample
    half = model_def.make_unet(model_def.plain_config(reference))
    half.load_state_dict(reference.state_dict())
    half.half().save_pretrained(args.out, safe_serialization=True)
    model_def.make_scheduler().save_config(args.out)
    cfg_path = args.out / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["_ddpm_web"] = {"dataset": dataset, **seen, "note": "EMA weights exported by training/export.py"}
    if not args.from_random:
        # A warm start on another machine reads this back (train.py), so the card keeps the whole schedule.
        cfg["_ddpm_web"]["lr_history"] = lr_history(args.run_dir)
    cfg_path.write_text(json.dumps(cfg, indent=2))

    write_card(args.out, reference, seen, dataset, None if args.from_random else args.run_dir)
    back = UNet2DModel.from_pretrained(args.out).float().eval()
    with torch.no_grad():
        got = back(x, torch.tensor([10, 700])).sample
    err = (got - want).abs().max().item()
    print(f"exported {args.out} ({seen['optimizer_steps']} steps, {seen['images_seen']} images); "
          f"f16 vs f32 max abs diff {err:.2e}")
    assert err < 5e-2, "the f16 export does not reproduce the f32 network"

    if args.onnx:
        args.onnx.parent.mkdir(parents=True, exist_ok=True)

        class Wrapped(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, sample, timestep):
                return self.m(sample, timestep).sample

        torch.onnx.export(Wrapped(reference), (x[:1], torch.tensor([10])), args.onnx, input_names=["sample", "timestep"],
                          output_names=["eps"], dynamic_axes={"sample": {0: "batch"}, "timestep": {0: "batch"}, "eps": {0: "batch"}},
                          dynamo=False)
        import onnx

        onnx.checker.check_model(onnx.load(args.onnx))
        print(f"ONNX: {args.onnx}")


if __name__ == "__main__":
    main()
