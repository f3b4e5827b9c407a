"""`ddpm nll` against evaluate.py's `nll_bits_per_dim` on the same images and the same tiny model: the Rust
bound (GPU U-Net through wgpu, sums in f64 on the CPU) and the training side's (diffusers in PyTorch) are two
implementations of the paper's eq. 5, so they must agree. Needs the `ddpm` binary (scripts/test.sh builds it
with the native tests first). About 75 s: `--every 1` on one image is 1,000 U-Net passes on lavapipe, and evaluate.py runs four
times (1,000 passes each in PyTorch).
"""

import json
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path
from unittest import mock

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import evaluate  # noqa: E402
import samplers  # noqa: E402
from diffusers import DDPMScheduler, UNet2DModel  # noqa: E402

TINY = samplers.ROOT / "tests" / "models" / "tiny"
SHIPPED = samplers.ROOT / "www" / "data" / "fashion-mnist-test" / "images.u8"
SEED = 5


def shipped_images(n: int) -> np.ndarray:
    """The page's shipped test images (28x28 bytes each), mapped to [-1, 1] as k / 127.5 - 1."""
    u8 = np.frombuffer(SHIPPED.read_bytes(), dtype=np.uint8)[: n * 784].reshape(n, 1, 28, 28)
    return (u8.astype(np.float64) / 127.5 - 1.0).astype(np.float32)


def evaluate_bound(x0: np.ndarray, noise_seed: int | None) -> dict:
    """evaluate.nll_bits_per_dim on the tiny model; with `noise_seed`, its per-term draws replaced by the
    engine's Philox noise (key t, as src/diffusion/nll.rs draws x_t), else its own torch generator."""
    unet = UNet2DModel.from_pretrained(TINY).float().eval()
    sched = DDPMScheduler.from_pretrained(TINY)
    if noise_seed is None:
        return evaluate.nll_bits_per_dim(unet, sched, torch.from_numpy(x0), seed=SEED)
    keys = iter(range(len(sched.betas) - 1, -1, -1))  # evaluate.py draws once per t, from T - 1 down

    def philox(shape, generator=None, dtype=None):
        z = samplers.philox_normal(noise_seed, next(keys), int(np.prod(shape))).reshape(shape)
        return torch.from_numpy(z).to(dtype or torch.float32)

    with mock.patch.object(evaluate.torch, "randn", philox):
        return evaluate.nll_bits_per_dim(unet, sched, torch.from_numpy(x0), seed=SEED)


@unittest.skipUnless(samplers.ddpm_binary().exists(), "needs the ddpm binary (cargo build)")
class NllMatchesEvaluate(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(1)  # two threads beside lavapipe's were 8x slower here
        cls.x0 = shipped_images(1)
        with tempfile.TemporaryDirectory() as tmp:
            x = Path(tmp) / "x0.npy"
            np.save(x, cls.x0)
            out = Path(tmp) / "terms.json"
            # --clip: evaluate.py's mean is the official code's clipped-x̂_0 posterior mean.
            subprocess.run([str(samplers.ddpm_binary()), "nll", "--model", str(TINY), "--x", str(x), "--clip",
                            "--seed", str(SEED), "--every", "1", "--batch", "50", "--out", str(out)],
                           check=True, capture_output=True, text=True)
            cls.rust = json.loads(out.read_text())

    def test_same_noise_gives_the_same_bound(self):
        # With evaluate.py's draws replaced by the engine's Philox noise, both compute the same x_t, so they
        # differ only by the two U-Nets' float32 rounding: a wrong coefficient, term index, variance choice
        # (β̃_2 at t = 1) or decoder shows here at well above 1e-4 bits/dim (measured: equal to 6
        # decimals, 8.217378).
        ref = evaluate_bound(self.x0, SEED)
        print(f"\nsame noise: evaluate.py {float(ref['small'][0]):.6f}, ddpm nll {self.rust['bits_per_dim'][0]:.6f} bits/dim")
        self.assertAlmostEqual(self.rust["bits_per_dim"][0], float(ref["small"][0]), delta=1e-4)
        self.assertAlmostEqual(self.rust["terms_bits_per_dim"][0][-1], float(ref["prior_L_T"][0]), delta=1e-9)

    def test_independent_noise_lands_within_the_monte_carlo_spread(self):
        # evaluate.py with its own torch noise at three seeds: their spread is the Monte-Carlo spread of one
        # x_t per term (measured here: 8.28 ± 0.10 bits/dim
        # for this image, against 8.22 from ddpm nll), and the
        # Rust bound on independent (Philox) noise must lie within 4 of those SDs plus 1e-3 of their mean.
        draws = []
        for s in (11, 12, 13):
            unet = UNet2DModel.from_pretrained(TINY).float().eval()
            sched = DDPMScheduler.from_pretrained(TINY)
            draws.append(float(evaluate.nll_bits_per_dim(unet, sched, torch.from_numpy(self.x0), seed=s)["small"][0]))
        mean, sd = float(np.mean(draws)), float(np.std(draws, ddof=1))
        print(f"\nevaluate.py over 3 seeds: {mean:.4f} ± {sd:.4f} bits/dim; ddpm nll: {self.rust['bits_per_dim'][0]:.4f}")
        self.assertGreater(sd, 0.0)
        self.assertLess(abs(self.rust["bits_per_dim"][0] - mean), 4 * sd + 1e-3)

    def test_terms_json_shape(self):
        # The keys and the row layout the issue fixes: L_0 .. L_{T-1}, L_T, all computed, summing to the total.
        self.assertEqual(set(self.rust), {"bits_per_dim", "terms_bits_per_dim", "variance", "every", "estimate"})
        row = self.rust["terms_bits_per_dim"][0]
        self.assertEqual(len(row), 1001)
        self.assertAlmostEqual(sum(row), self.rust["bits_per_dim"][0], places=9)
        self.assertEqual((self.rust["variance"], self.rust["every"], self.rust["estimate"]), ("small", 1, False))


if __name__ == "__main__":
    unittest.main()
