"""Per-pass time of the exported U-Net under onnxruntime (CPU EP) and PyTorch eager (CPU), one JSON line each.

    python benches/ort/native.py --model www/models/fashion-mnist --onnx unet.onnx --batch 4 --steps 10 [--threads 2]

Run by scripts/bench-vs-ort.sh beside `ddpm bench`; PyTorch is skipped when torch/diffusers are not importable
(the script runs in the onnxruntime venv first, then in the training venv for PyTorch).
"""
import argparse
import json
import time

import numpy as np


def timed(fn, steps):
    fn()
    fn()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) * 1e3 / steps


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--onnx")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--what", choices=["ort", "torch"], required=True)
    a = p.parse_args()
    cfg = json.load(open(f"{a.model}/config.json"))
    size = cfg["sample_size"]
    h, w = (size, size) if isinstance(size, int) else size
    x = np.random.default_rng(0).standard_normal((a.batch, cfg["in_channels"], h, w)).astype(np.float32)
    t = np.full((a.batch,), 500.0, dtype=np.float32)
    if a.what == "ort":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = a.threads
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(a.onnx, so, providers=["CPUExecutionProvider"])
        ms = timed(lambda: sess.run(None, {"sample": x, "timestep": t}), a.steps)
        who = f"onnxruntime {ort.__version__} CPU"
    else:
        import torch
        from diffusers import UNet2DModel

        torch.set_num_threads(a.threads)
        unet = UNet2DModel.from_pretrained(a.model).float().eval()
        xt, tt = torch.from_numpy(x), torch.from_numpy(t)
        with torch.no_grad():
            ms = timed(lambda: unet(xt, tt).sample, a.steps)
        who = f"PyTorch {torch.__version__} eager CPU"
    print(json.dumps({"who": who, "batch": a.batch, "threads": a.threads, "ms_per_pass": ms}))


if __name__ == "__main__":
    main()
