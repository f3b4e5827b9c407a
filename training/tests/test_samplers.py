"""training/samplers.py against the Rust engine: the same programs (`ddpm program`), the same noise (the
GPU's Philox generator re-implemented in numpy), the same tiny model, so every sampler's PyTorch run must
equal `ddpm sample --out-npy` to float32 rounding. This is what lets evaluate.py's sampler table stand for
the page's samplers. Needs the `ddpm` binary (scripts/test.sh builds it with the native tests first)."""

import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import samplers  # noqa: E402
from diffusers import UNet2DModel  # noqa: E402

TINY = samplers.ROOT / "tests" / "models" / "tiny"


@unittest.skipUnless(samplers.ddpm_binary().exists(), "needs the ddpm binary (cargo build)")
class SamplersMatchTheEngine(unittest.TestCase):
    def test_philox_known_answer(self):
        # Random123's kat_vectors for philox4x32_10 at counter (0,0,0,0), key (0,0): 0x6627e8d5 0xe169c58d;
        # the normal is Box-Muller on their top 24 bits (the same as reference_gaussian in update.rs).
        u1 = ((0x6627E8D5 >> 8) + 1) / 16777216
        u2 = (0xE169C58D >> 8) / 16777216
        want = np.sqrt(-2 * np.log(u1)) * np.cos(2 * np.pi * u2)
        self.assertAlmostEqual(float(samplers.philox_normal(0, 0, 1)[0]), want, places=5)

    def test_every_sampler_equals_the_rust_run(self):
        unet = UNet2DModel.from_pretrained(TINY).float().eval()
        seed, n, steps = 7, 2, 3
        cases = [("ddpm", []), ("ddpm", ["--variance", "large"]), ("ddim", ["--eta", "0.5"]), ("euler", []), ("heun", []),
                 ("sde", []), ("langevin", ["--langevin-steps", "2"]), ("pc", [])]
        with tempfile.TemporaryDirectory() as tmp:
            for sampler, extra in cases:
                out = Path(tmp) / f"{sampler}.npy"
                subprocess.run([str(samplers.ddpm_binary()), "sample", "--model", str(TINY), "--sampler", sampler, "--steps", str(steps),
                                "--n", str(n), "--seed", str(seed), "--out-npy", str(out), *extra], check=True, capture_output=True)
                rust = np.load(out)
                prog = samplers.program(TINY, sampler, steps, extra)
                z = torch.from_numpy(samplers.philox_normal(seed, samplers.INIT_KEY, rust.size).reshape(rust.shape))
                ours = samplers.run(unet, prog, z, samplers.gpu_noise(seed)).numpy()
                err = float(np.max(np.abs(ours - rust) / np.maximum(1.0, np.abs(rust))))
                print(f"{sampler} {extra}: {len(prog['passes'])} passes, max error {err:.2e} against the Rust engine")
                self.assertLess(err, 1e-3, f"{sampler} {extra}")


if __name__ == "__main__":
    unittest.main()
