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
    unet = model_def.make_unet()
    ema = EMAModel(unet.parameters(), decay=0.9995, use_ema_warmup=True, power=2 / 3)
    ema.load_state_dict(ck["ema"])
    ema.copy_to(unet.parameters())
    return unet.eval(), {"optimizer_steps": int(ck["step"]), "images_seen": int(ck["images_seen"])}


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
    half = model_def.make_unet()
    half.load_state_dict(reference.state_dict())
    half.half().save_pretrained(args.out, safe_serialization=True)
    model_def.make_scheduler().save_config(args.out)
    cfg_path = args.out / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["_ddpm_web"] = {"dataset": dataset, **seen, "note": "EMA weights exported by training/export.py"}
    cfg_path.write_text(json.dumps(cfg, indent=2))

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
