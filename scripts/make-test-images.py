"""Writes the Fashion-MNIST test images that ship with the page (the forward process explorer's pictures).

    python3 scripts/make-test-images.py     # plain Python 3 (no packages); reads Debian's dataset-fashion-mnist

Takes the first PER_CLASS images of each class from the *test* split, in test-set order, so the page never shows
an image the shipped model was trained on and a rerun writes the same bytes. Output in www/data/fashion-mnist-test/:
  images.u8    N x 28 x 28 raw bytes, row-major, 0 = black (the IDX file's own values, not inverted)
  labels.json  {"classes": [10 names], "images": [{"index": test-set index, "label": class number}, ...],
                "shape": [N, 28, 28]}
"""

import gzip
import json
from pathlib import Path

SRC = Path("/usr/share/datasets/fashion-mnist")
OUT = Path(__file__).resolve().parent.parent / "www" / "data" / "fashion-mnist-test"
PER_CLASS = 2
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def idx(path: Path, header: int) -> bytes:
    """IDX payload after its header (16 bytes for images, 8 for labels)."""
    with gzip.open(path, "rb") as f:
        return f.read()[header:]


def main() -> None:
    images = idx(SRC / "t10k-images-idx3-ubyte.gz", 16)
    labels = idx(SRC / "t10k-labels-idx1-ubyte.gz", 8)
    assert len(images) == 784 * len(labels) and len(labels) == 10_000, (len(images), len(labels))
    chosen = [i for c in range(10) for i in [j for j, l in enumerate(labels) if l == c][:PER_CLASS]]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "images.u8").write_bytes(b"".join(images[784 * i:784 * (i + 1)] for i in chosen))
    meta = {
        "source": "Fashion-MNIST test split (t10k), Debian package dataset-fashion-mnist; MIT licence",
        "classes": CLASSES,
        "shape": [len(chosen), 28, 28],
        "images": [{"index": i, "label": int(labels[i])} for i in chosen],
    }
    (OUT / "labels.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"{len(chosen)} images, {len(chosen) * 784} bytes -> {OUT}")


if __name__ == "__main__":
    main()
