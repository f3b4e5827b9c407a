"""A small Fashion-MNIST classifier, trained by the project, whose penultimate features define the Fréchet
distance (FD) and Inception-Score-like figures of training/evaluate.py (Inception features do not fit
28x28 grey clothes, and the hub that serves them is not reachable here).

    python3 training/classifier.py            # trains (~5 min on 1 core), writes training/classifier.pt

The weights file is committed, so evaluation is reproducible without retraining.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import data

WEIGHTS = Path(__file__).with_name("classifier.pt")
FEATURES = 128


class Net(nn.Module):
    """Three conv blocks (28 -> 14 -> 7 -> 3) and an MLP; `features` is the 128-d penultimate layer."""

    def __init__(self) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                                 nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2))

        self.body = nn.Sequential(block(1, 32), block(32, 64), block(64, 96))
        self.fc = nn.Linear(96 * 3 * 3, FEATURES)
        self.drop = nn.Dropout(0.3)
        self.head = nn.Linear(FEATURES, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.fc(self.body(x).flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.features(x)))


def load(path: Path = WEIGHTS) -> Net:
    net = Net()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["state_dict"])
    return net.eval()


@torch.no_grad()
def accuracy(net: Net, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    pred = torch.cat([net(x[i : i + 1000]).argmax(1) for i in range(0, len(x), 1000)])
    return (pred == y).float().mean().item()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    xi, yi = data.load("train")
    xt, yt = data.load("test")
    x, y = torch.from_numpy(data.to_model_range(xi)), torch.from_numpy(yi.astype(np.int64))
    x_test, y_test = torch.from_numpy(data.to_model_range(xt)), torch.from_numpy(yt.astype(np.int64))
    net = Net()
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = args.epochs * (len(x) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    start = time.time()
    for epoch in range(args.epochs):
        net.train()
        perm = torch.randperm(len(x))
        for i in range(0, len(x) - 127, 128):
            idx = perm[i : i + 128]
            xb = x[idx]
            # Light augmentation: horizontal flips are label-preserving for clothes.
            flip = torch.rand(len(xb)) < 0.5
            xb[flip] = xb[flip].flip(-1)
            loss = F.cross_entropy(net(xb), y[idx], label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        acc = accuracy(net, x_test, y_test)
        print(f"epoch {epoch + 1}: test accuracy {acc:.4f} ({time.time() - start:.0f} s)")
    torch.save({"state_dict": net.state_dict(), "test_accuracy": acc}, WEIGHTS)
    print(f"saved {WEIGHTS} (test accuracy {acc:.4f})")


if __name__ == "__main__":
    main()
