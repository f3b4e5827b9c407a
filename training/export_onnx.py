"""Exports a diffusers UNet2DModel folder to ONNX: eps = unet(sample, timestep), batch size dynamic.

For benchmarks against onnxruntime (scripts/bench-vs-ort.sh): the same network the page runs, from the same
folder. Reads only the model folder (not a training run) and writes only --out.

    python training/export_onnx.py --model www/models/fashion-mnist --out /tmp/unet.onnx
"""
import argparse

import torch
from diffusers import UNet2DModel


class Eps(torch.nn.Module):
    """UNet2DModel with plain tensors in and out (ONNX has no dataclass outputs)."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep):
        return self.unet(sample, timestep).sample


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a diffusers UNet2DModel folder")
    p.add_argument("--out", required=True, help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=17)
    a = p.parse_args()
    unet = UNet2DModel.from_pretrained(a.model).float().eval()
    size = unet.config.sample_size
    h, w = (size, size) if isinstance(size, int) else size
    x = torch.randn(2, unet.config.in_channels, h, w)
    # Timesteps as float32 (the engine feeds f32 too); diffusers' embedding casts them anyway.
    t = torch.full((2,), 500.0)
    with torch.no_grad():
        torch.onnx.export(
            Eps(unet), (x, t), a.out, input_names=["sample", "timestep"], output_names=["eps"],
            dynamic_axes={"sample": {0: "n"}, "timestep": {0: "n"}, "eps": {0: "n"}}, opset_version=a.opset, dynamo=False,
        )
    print(f"wrote {a.out}: {sum(p.numel() for p in unet.parameters())} parameters, input [N, {unet.config.in_channels}, {h}, {w}]")


if __name__ == "__main__":
    main()
