"""Tests of the training side: the figures evaluate.py reports, the learning-rate schedule, the data scaling,
and a resumable Algorithm 1 run exported as a diffusers folder. Run from the repository root:

    python3 -m unittest discover -s training/tests -v

Each test checks a result computed another way (closed forms, telescoping sums, an oracle network), so a
wrong formula fails here rather than shifting a published figure.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import numpy as np
import torch

TRAINING = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TRAINING))

import data  # noqa: E402
import evaluate  # noqa: E402
import model as model_def  # noqa: E402
import train  # noqa: E402

HAVE_DATA = all((data.DEFAULT_DIR / f).exists() for f in data._FILES.values())
torch.set_num_threads(1)


def whitened(n: int, d: int, seed: int) -> np.ndarray:
    """n points in d dimensions with sample mean exactly 0 and sample covariance exactly I."""
    x = np.random.default_rng(seed).normal(size=(n, d))
    x -= x.mean(0)
    cov = np.cov(x, rowvar=False)
    w = np.linalg.cholesky(np.linalg.inv(cov))
    return x @ w


class FrechetTest(unittest.TestCase):
    def test_identical_sets_give_zero(self):
        a = np.random.default_rng(0).normal(size=(500, 8))
        self.assertAlmostEqual(evaluate.frechet(a, a), 0.0, places=6)

    def test_matches_closed_form_for_diagonal_covariances(self):
        # Commuting covariances: FD = |mu_a - mu_b|^2 + sum_i (s_a,i - s_b,i)^2 with s the standard deviations.
        a = whitened(400, 6, 1)
        scale = np.array([0.5, 1.0, 1.5, 2.0, 0.8, 1.2])
        shift = np.array([0.3, -0.1, 0.0, 0.7, 0.2, -0.4])
        b = a * scale + shift
        expected = (shift**2).sum() + ((1.0 - scale) ** 2).sum()
        self.assertAlmostEqual(evaluate.frechet(a, b), expected, places=8)
        self.assertAlmostEqual(evaluate.frechet(b, a), expected, places=8)

    def test_rotation_of_both_sets_leaves_it_unchanged(self):
        rng = np.random.default_rng(2)
        a, b = rng.normal(size=(300, 5)), rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5))
        q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
        self.assertAlmostEqual(evaluate.frechet(a @ q, b @ q), evaluate.frechet(a, b), places=6)


class DiagnosticsTest(unittest.TestCase):
    def setUp(self):
        # Ten well-separated classes of 600 "test images" each, features = class centre + noise.
        rng = np.random.default_rng(3)
        self.labels = np.repeat(np.arange(10), 600)
        centres = rng.normal(scale=3.0, size=(10, 16))
        self.feats = centres[self.labels] + rng.normal(size=(6000, 16))
        self.test_idx = rng.choice(6000, 1000, replace=False)

    def mix_fd(self, hist):
        ft = self.feats[self.test_idx]
        d = evaluate.diagnostics(ft, ft, np.array(hist), self.feats, self.labels, self.test_idx,
                                 np.random.default_rng(4))
        self.assertEqual(d["mean_term"], 0.0)
        return d["class_mix_only"]

    def test_skewed_class_mix_costs_more_than_the_true_mix(self):
        uniform = self.mix_fd([100] * 10)
        skewed = self.mix_fd([190, 10, 190, 10, 190, 10, 190, 10, 190, 10])
        self.assertLess(uniform, 1.0)  # sampling noise only, at this N and dimension
        self.assertGreater(skewed, 5 * uniform)

    def test_draws_come_from_outside_the_compared_subset(self):
        # If the draw reused the compared images, a uniform mix would score far below independent noise.
        ft = self.feats[self.test_idx]
        other = np.random.default_rng(5).choice(np.setdiff1d(np.arange(6000), self.test_idx), 1000, replace=False)
        independent = evaluate.frechet(self.feats[other], ft)
        self.assertGreater(self.mix_fd([100] * 10), 0.5 * independent)

    def test_floor_spread_shrinks_with_n_and_moves_between_draws(self):
        # Two pools from one distribution: every draw's FD is estimator noise, which falls about as 1/N.
        pool_a, pool_b = self.feats[::2], self.feats[1::2]
        small = evaluate.floor_spread(pool_a, pool_b, 100, np.random.default_rng(6), draws=10)
        large = evaluate.floor_spread(pool_a, pool_b, 1000, np.random.default_rng(6), draws=10)
        self.assertEqual(small["draws"], 10)
        self.assertGreater(small["mean"], 5 * large["mean"])
        self.assertGreater(large["sd"], 0.0)
        self.assertLessEqual(large["min"], large["mean"])
        self.assertLessEqual(large["mean"], large["max"])


class BoundTermsTest(unittest.TestCase):
    def test_discretised_decoder_sums_to_one_over_the_256_bins(self):
        bins = torch.linspace(-1, 1, 256, dtype=torch.float64)
        for mean, log_scale in [(0.0, -3.0), (0.9, -5.0), (-1.0, -2.0), (0.3, 0.5)]:
            logp = evaluate.discretized_gaussian_log_likelihood(
                bins, torch.full_like(bins, mean), torch.full_like(bins, log_scale))
            # The approximate CDF telescopes, and the end bins reach to +-infinity.
            self.assertAlmostEqual(float(logp.exp().sum()), 1.0, places=9)

    def test_normal_kl_matches_torch(self):
        m1, lv1, m2, lv2 = (torch.tensor(v, dtype=torch.float64) for v in (0.3, -1.0, -0.2, 0.5))
        ours = evaluate.normal_kl(m1, lv1, m2, lv2)
        ref = torch.distributions.kl_divergence(
            torch.distributions.Normal(m1, (0.5 * lv1).exp()), torch.distributions.Normal(m2, (0.5 * lv2).exp()))
        self.assertAlmostEqual(float(ours), float(ref), places=12)

    def test_oracle_network_leaves_only_prior_and_decoder(self):
        # With eps_theta equal to the true noise (one known image), every KL term vanishes under
        # sigma^2 = beta-tilde, so the bound is L_T + L_0; the beta variance adds positive KL terms.
        sched = model_def.make_scheduler()
        abar = torch.cumprod(1 - sched.betas.double(), 0)  # as evaluate.py, in float64
        x0 = torch.linspace(-1, 1, 16, dtype=torch.float64).reshape(1, 1, 4, 4)

        class Oracle:
            def __call__(self, xt, t):
                a = abar[t[0]]
                eps = (xt.double() - a.sqrt() * x0) / (1 - a).sqrt()
                return argparse.Namespace(sample=eps.float())

        bpd = evaluate.nll_bits_per_dim(Oracle(), sched, x0.float(), seed=0)
        betas = sched.betas.double()
        beta_tilde_1 = betas[1] * (1 - abar[0]) / (1 - abar[1])
        mean0 = x0  # at t = 1 the posterior mean is x0 itself (coefficients 1 and 0)
        decoder = -evaluate.meanflat(evaluate.discretized_gaussian_log_likelihood(
            x0, mean0, 0.5 * torch.log(beta_tilde_1).expand_as(x0))) / math.log(2)
        expected = float(bpd["prior_L_T"][0] + decoder[0])
        self.assertAlmostEqual(float(bpd["small"][0]), expected, delta=1e-6)
        self.assertGreater(float(bpd["large"][0]), float(bpd["small"][0]))
        self.assertLess(float(bpd["prior_L_T"][0]), 1e-4)  # q(x_T | x_0) is nearly N(0, I) at T = 1000


class ScheduleTest(unittest.TestCase):
    def test_warm_up_then_cosine_to_the_floor(self):
        step = [0]
        f = train.lr_lambda(warmup=10, decay=(100, 200), floor=0.1, global_step=step)
        self.assertAlmostEqual(f(0), 0.1)
        self.assertAlmostEqual(f(9), 1.0)
        step[0] = 100
        self.assertAlmostEqual(f(50), 1.0)
        step[0] = 150
        self.assertAlmostEqual(f(50), 0.55)  # half-way: floor + (1 - floor) / 2
        step[0] = 200
        self.assertAlmostEqual(f(50), 0.1)
        step[0] = 10_000
        self.assertAlmostEqual(f(50), 0.1)

    def test_plain_resume_keeps_the_latest_segment(self):
        history = [{"from_step": 0, "lr": 2e-4, "lr_decay": None, "lr_min": 2e-5},
                   {"from_step": 50, "lr": 5e-5, "lr_decay": [50, 90], "lr_min": 2e-6}]
        args = argparse.Namespace(lr=None, lr_decay=None, lr_min=None)
        train.resolve_lr_flags(args, history)
        self.assertEqual((args.lr, args.lr_decay, args.lr_min), (5e-5, [50, 90], 2e-6))
        # Any LR flag starts a new schedule: the unset ones take their defaults, not the old segment's.
        args = argparse.Namespace(lr=1e-4, lr_decay=None, lr_min=None)
        train.resolve_lr_flags(args, history)
        self.assertEqual((args.lr, args.lr_decay, args.lr_min), (1e-4, None, 2e-5))


class DataTest(unittest.TestCase):
    def test_scaling_round_trips(self):
        u8 = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
        x = data.to_model_range(u8)
        self.assertEqual(x.shape, (1, 1, 16, 16))
        self.assertEqual((float(x.min()), float(x.max())), (-1.0, 1.0))
        np.testing.assert_array_equal(data.to_u8(x[:, 0]), u8)

    @unittest.skipUnless(HAVE_DATA, "Fashion-MNIST missing: apt-get install dataset-fashion-mnist")
    def test_debian_files_load(self):
        x, y = data.load("test")
        self.assertEqual((x.shape, y.shape, x.dtype), ((10000, 28, 28), (10000,), np.uint8))
        np.testing.assert_array_equal(np.bincount(y), [1000] * 10)


@unittest.skipUnless(HAVE_DATA, "Fashion-MNIST missing: apt-get install dataset-fashion-mnist")
class RunTest(unittest.TestCase):
    """Algorithm 1 for a few steps, interrupted and resumed, then exported: the path every shipped model takes."""

    def run_script(self, *argv):
        out = subprocess.run([sys.executable, *map(str, argv)], capture_output=True, text=True, cwd=TRAINING.parent)
        self.assertEqual(out.returncode, 0, out.stdout[-2000:] + out.stderr[-4000:])
        return out.stdout + out.stderr

    def test_train_resume_export(self):
        with tempfile.TemporaryDirectory() as tmp:
            run, out = Path(tmp) / "run", Path(tmp) / "model"
            common = ["--run-dir", run, "--threads", "1", "--batch-size", "8", "--warmup-steps", "2"]
            self.run_script(TRAINING / "train.py", *common, "--max-steps", "2")
            log = self.run_script(TRAINING / "train.py", *common, "--max-steps", "3", "--lr", "1e-4")
            self.assertIn("resumed", log)
            ck = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
            self.assertEqual((ck["step"], ck["images_seen"]), (3, 24))
            rows = (run / "loss.csv").read_text().split()
            self.assertEqual([r.split(",")[0] for r in rows[1:]], ["1", "2", "3"])
            loss = [float(r.split(",")[1]) for r in rows[1:]]
            self.assertTrue(all(0.05 < v < 5 for v in loss), loss)  # an eps-MSE, about 1 for a fresh net
            hist = json.loads((run / "lr_history.json").read_text())
            self.assertEqual([(h["from_step"], h["lr"]) for h in hist], [(0, 2e-4), (2, 1e-4)])
            self.assertEqual({(h["batch"], h["hardware"]) for h in hist}, {(8, "1 x CPU, 1 threads")})

            self.run_script(TRAINING / "export.py", "--run-dir", run, "--out", out)
            from diffusers import UNet2DModel
            from safetensors import safe_open

            with safe_open(out / "diffusion_pytorch_model.safetensors", "pt") as f:
                dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}
            self.assertEqual(dtypes, {"F16"})
            note = model_def.training_note(out)
            self.assertEqual((note["optimizer_steps"], note["images_seen"]), (3, 24))
            self.assertEqual(len(note["lr_history"]), 2)
            unet = UNet2DModel.from_pretrained(out).float().eval()
            ema = ck["ema"]["shadow_params"]
            exported = list(unet.parameters())
            self.assertEqual(len(ema), len(exported))
            # The export is the EMA (to f16 precision), not the raw weights.
            for e, p in zip(ema, exported):
                torch.testing.assert_close(p.detach(), e.float().to(torch.float16).float())
            self.assertTrue((out / "scheduler_config.json").exists())

    def test_a_wider_run_keeps_its_architecture_through_resume_and_export(self):
        """The GPU run the README proposes: --widths on a new run folder, then a plain resume and the export."""
        with tempfile.TemporaryDirectory() as tmp:
            run, out = Path(tmp) / "run", Path(tmp) / "model"
            common = ["--run-dir", run, "--threads", "1", "--batch-size", "4", "--warmup-steps", "1"]
            self.run_script(TRAINING / "train.py", *common, "--max-steps", "1", "--widths", "16,24,24",
                            "--layers-per-block", "1")
            self.run_script(TRAINING / "train.py", *common, "--max-steps", "2")
            refused = subprocess.run([sys.executable, TRAINING / "train.py", *map(str, common), "--max-steps", "3",
                                      "--widths", "32,64,64"], capture_output=True, text=True, cwd=TRAINING.parent)
            self.assertNotEqual(refused.returncode, 0)
            self.assertIn("use a new --run-dir", refused.stderr)
            bad = subprocess.run([sys.executable, TRAINING / "train.py", "--run-dir", Path(tmp) / "other",
                                  "--widths", "20,30,30"], capture_output=True, text=True, cwd=TRAINING.parent)
            self.assertNotEqual(bad.returncode, 0)
            self.assertIn("multiples of 8", bad.stderr)
            self.assertFalse((Path(tmp) / "other" / "checkpoint.pt").exists())

            self.run_script(TRAINING / "export.py", "--run-dir", run, "--out", out)
            cfg = json.loads((out / "config.json").read_text())
            self.assertEqual((cfg["block_out_channels"], cfg["layers_per_block"], cfg["attention_head_dim"]),
                             ([16, 24, 24], 1, 24))
            self.assertEqual(model_def.training_note(out)["optimizer_steps"], 2)
            card = " ".join((out / "README.md").read_text().split())
            self.assertIn("widths 16/24/24, 1 ResNet block per level", card)
            self.assertIn("batch 4 on 1 x CPU, 1 threads from step 0", card)
            # A warm start (no run folder left) takes the exported model's architecture.
            warm = Path(tmp) / "warm"
            log = self.run_script(TRAINING / "train.py", "--run-dir", warm, "--threads", "1", "--batch-size", "4",
                                  "--max-steps", "3", "--init-from", out)
            self.assertIn("warm start", log)
            ck = torch.load(warm / "checkpoint.pt", map_location="cpu", weights_only=False)
            self.assertEqual((tuple(ck["unet_config"]["block_out_channels"]), ck["step"]), ((16, 24, 24), 3))


if __name__ == "__main__":
    unittest.main()
