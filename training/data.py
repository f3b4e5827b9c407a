"""Fashion-MNIST from Debian's `dataset-fashion-mnist` package, read from its gzipped IDX files.

The project reads the files itself (no torchvision download): the machine that trains can only reach the
package registries, and Debian ships the data.
"""

from __future__ import annotations

import gzip
import os
import struct
import sys
from pathlib import Path

import numpy as np

DEFAULT_DIR = Path(os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))

CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]

_FILES = {
    ("train", "images"): "train-images-idx3-ubyte.gz",
    ("train", "labels"): "train-labels-idx1-ubyte.gz",
    ("test", "images"): "t10k-images-idx3-ubyte.gz",
    ("test", "labels"): "t10k-labels-idx1-ubyte.gz",
}


def _read_idx(path: Path) -> np.ndarray:
    # IDX: two zero bytes, a dtype code (0x08 = u8), the rank, then big-endian u32 sizes, then the data.
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, dtype, rank = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * rank, raw[4 : 4 + 4 * rank])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * rank)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: expected {np.prod(dims)} values, found {data.size}")
    return data.reshape(dims)


def load(split: str = "train", root: Path = DEFAULT_DIR) -> tuple[np.ndarray, np.ndarray]:
    """Returns (images u8 [N, 28, 28], labels u8 [N]) for split "train" (60,000) or "test" (10,000)."""
    paths = {kind: root / _FILES[(split, kind)] for kind in ("images", "labels")}
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        sys.exit(
            "Fashion-MNIST not found: " + ", ".join(missing) + "\n"
            "Install it with `sudo apt-get install dataset-fashion-mnist` "
            "(or point FASHION_MNIST_DIR at a folder holding the four IDX .gz files)."
        )
    return _read_idx(paths["images"]), _read_idx(paths["labels"])


def to_model_range(images_u8: np.ndarray) -> np.ndarray:
    """u8 [N, H, W] -> f32 [N, 1, H, W] in [-1, 1], the data scaling of the DDPM paper (section 3.3)."""
    return (images_u8.astype(np.float32) / 127.5 - 1.0)[:, None, :, :]


def to_u8(x: np.ndarray) -> np.ndarray:
    """Model range [-1, 1] back to u8, rounding as the paper's decoder bins do."""
    return np.clip(np.round((x + 1.0) * 127.5), 0, 255).astype(np.uint8)
