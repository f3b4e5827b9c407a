"""Tests of the GPU kit's pieces that can go wrong quietly (scripts/gpu/, training/gpu_*.py): the import's
decision, its BENCHMARKS.md rows, the evaluation summary, the wheel list and how wheels are unpacked, and
train.py's wall-clock budget. The whole flow runs in scripts/gpu/test.sh (a dry run on the CPU).

    python3 -m unittest discover -s training/tests -v
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import unittest
import zipfile
from pathlib import Path

import torch

TRAINING = Path(__file__).resolve().parents[1]
REPO = TRAINING.parent
sys.path.insert(0, str(TRAINING))
sys.path.insert(0, str(REPO / "scripts" / "gpu"))

import data  # noqa: E402
import gpu_import  # noqa: E402
import gpu_run  # noqa: E402
import install_wheels  # noqa: E402
import wheels  # noqa: E402

HAVE_DATA = all((data.DEFAULT_DIR / f).exists() for f in data._FILES.values())


def model_summary(fds, nll):
    v = list(fds)
    mean = sum(v) / len(v)
    sd = (sum((x - mean) ** 2 for x in v) / (len(v) - 1)) ** 0.5
    return {"fd": {str(i): x for i, x in enumerate(v)}, "fd_mean": mean, "fd_sd": sd, "nll_large": nll}


class DecisionTest(unittest.TestCase):
    shipped = model_summary([2.64, 2.77, 2.31], 3.36)  # the shipped model's seeds 0-2 (README)

    def test_better_by_more_than_the_spread_and_nll_not_higher(self):
        ok, why = gpu_import.decide({"new": model_summary([1.9, 2.0, 1.8], 3.30), "shipped": self.shipped})
        self.assertTrue(ok, why)

    def test_a_gain_within_the_spread_is_not_enough(self):
        # Mean 2.40 against 2.57: a gain of 0.17, less than the shipped SD of 0.24.
        ok, why = gpu_import.decide({"new": model_summary([2.45, 2.40, 2.35], 3.30), "shipped": self.shipped})
        self.assertFalse(ok)
        self.assertIn("not better", why)

    def test_higher_nll_vetoes(self):
        ok, why = gpu_import.decide({"new": model_summary([1.9, 2.0, 1.8], 3.37), "shipped": self.shipped})
        self.assertFalse(ok)
        self.assertIn("NLL", why)

    def test_missing_seeds_or_nll_cannot_confirm(self):
        one_seed = {"fd": {"0": 1.0}, "fd_mean": 1.0, "fd_sd": None, "nll_large": 3.0}
        self.assertFalse(gpu_import.decide({"new": one_seed, "shipped": self.shipped})[0])
        no_nll = dict(model_summary([1.9, 2.0, 1.8], None))
        ok, why = gpu_import.decide({"new": no_nll, "shipped": self.shipped})
        self.assertFalse(ok)
        self.assertIn("not confirmed", why)


class EvalSummaryTest(unittest.TestCase):
    def test_mean_sd_and_nll_per_model(self):
        def ev(fd, nll=None):
            r = {"fd_respaced": {"fd_samples_vs_test": fd, "fd_floor_train_vs_test": 0.4}}
            if nll:
                r["nll_bits_per_dim"] = {"large": {"mean": nll}, "small": {"mean": nll - 0.05}}
            return r

        s = gpu_run.eval_summary({"new": {"0": ev(2.0, 3.3), "1": ev(3.0), "2": ev(4.0)}})
        self.assertEqual(s["new"]["fd"], {"0": 2.0, "1": 3.0, "2": 4.0})
        self.assertAlmostEqual(s["new"]["fd_mean"], 3.0)
        self.assertAlmostEqual(s["new"]["fd_sd"], 1.0)
        self.assertEqual(s["new"]["nll_large"], 3.3)
        self.assertIsNone(s["shipped"]["fd_mean"])


class BenchmarksTableTest(unittest.TestCase):
    def test_rows_fill_the_section_and_a_reimport_replaces_them(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "BENCHMARKS.md"
            path.write_text("# Benchmarks\n\nEarlier text.\n")
            gpu_import.update_benchmarks(path, "gpu-1", ["| gpu-1 | A | 64 | x |"], "| gpu-1 | A | run |")
            gpu_import.update_benchmarks(path, "gpu-2", ["| gpu-2 | B | 64 | x |"], "| gpu-2 | B | run |")
            gpu_import.update_benchmarks(path, "gpu-1", ["| gpu-1 | A | 64 | y |"], "| gpu-1 | A | run2 |")
            text = path.read_text()
            self.assertTrue(text.startswith("# Benchmarks\n\nEarlier text.\n"))
            self.assertEqual(text.count(gpu_import.SECTION), 1)
            self.assertNotIn(gpu_import.NO_ROWS, text)
            self.assertNotIn("| gpu-1 | A | 64 | x |", text)
            engine = text[text.index(gpu_import.ENGINE_BEGIN):text.index(gpu_import.ENGINE_END)].splitlines()
            # Header and separator first, then the rows in import order (a re-import goes last).
            self.assertTrue(engine[1].startswith("| run |") and engine[2].startswith("|---"))
            self.assertEqual(engine[3:], ["| gpu-2 | B | 64 | x |", "| gpu-1 | A | 64 | y |"])

    def test_the_committed_section_is_the_one_the_import_writes(self):
        text = (REPO / "BENCHMARKS.md").read_text()
        self.assertIn(gpu_import.SECTION, text)
        self.assertTrue(text.rstrip("\n").endswith(gpu_import.RUN_END))

    def test_engine_rows_state_ratio_and_peak_and_refusals(self):
        bench = {"engine": {"rows": [{"batch": 64, "precision": "f32", "ms_per_step": 2.0, "gflops_per_s": 20000,
                                      "adapter": "NVIDIA H100"}],
                            "refused": [{"batch": 1, "adapter": "llvmpipe", "why": "a CPU adapter is not the GPU"}]},
                 "torch": {"env": {"gpu": "NVIDIA H100 80GB HBM3", "peak_tflops": gpu_import_peak()},
                           "rows": [{"batch": 64, "precision": "f32", "ms_per_step": 4.0},
                                    {"batch": 64, "precision": "fp16", "ms_per_step": 3.0}],
                           "compile_rows": [{"batch": 64, "ms_per_step": 1.5}, {"batch": 64, "ms_per_step": 1.0}]}}
        rows = gpu_import.engine_rows("gpu-x", bench, dry=False)
        self.assertIn("| 64 | f32, ? (auto) | 2.00 | 29.85% | 4.00 / – / – / 3.00 | 1.00 | 0.50 |", rows[0])
        self.assertIn("not measured: a CPU adapter is not the GPU", rows[1])


def gpu_import_peak():
    import gpu_bench

    return gpu_bench.peak_for("NVIDIA H100 80GB HBM3")


class WheelsTest(unittest.TestCase):
    def test_closure_covers_every_requirement_of_diffusers(self):
        import importlib.metadata as md

        from packaging.requirements import Requirement

        listed = wheels.closure()
        self.assertEqual(listed["diffusers"], md.version("diffusers"))
        covered = set(listed) | wheels.MACHINE_HAS | wheels.NOT_NEEDED
        for name in listed:
            for text in md.distribution(name).requires or []:
                req = Requirement(text)
                if req.marker is None or req.marker.evaluate({"extra": "", "python_version": "3.12"}):
                    self.assertIn(wheels.norm(req.name), covered, f"{name} needs {req.name}")

    def test_training_imports_without_the_wheels_left_out(self):
        # NOT_NEEDED packages are blocked at import; the scripts the GPU machine runs must still import.
        block = "; ".join(f"sys.modules[{m.replace('-', '_')!r}] = None" for m in wheels.NOT_NEEDED)
        code = (f"import sys; {block}; sys.path.insert(0, {str(TRAINING)!r}); "
                "import train, evaluate, export, gpu_bench, model; model.make_unet()")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stderr[-2000:])

    def test_unpacking_skips_what_is_installed_and_flattens_data_dirs(self):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            whl = tmp / "demo_pkg-1.0-py3-none-any.whl"
            with zipfile.ZipFile(whl, "w") as z:
                z.writestr("demo_pkg/__init__.py", "X = 1\n")
                z.writestr("demo_pkg-1.0.data/purelib/demo_extra.py", "Y = 2\n")
                z.writestr("demo_pkg-1.0.dist-info/METADATA", "Name: demo-pkg\nVersion: 1.0\n")
            self.assertEqual(install_wheels.dist_name(whl), "demo-pkg")
            self.assertFalse(install_wheels.have("demo-pkg"))
            self.assertTrue(install_wheels.have("numpy"))
            install_wheels.unpack(whl, tmp / "site")
            self.assertTrue((tmp / "site" / "demo_pkg" / "__init__.py").exists())
            self.assertTrue((tmp / "site" / "demo_extra.py").exists())
            self.assertFalse(any((tmp / "site").glob("*.data")))


@unittest.skipUnless(HAVE_DATA, "Fashion-MNIST missing: apt-get install dataset-fashion-mnist")
class WallClockBudgetTest(unittest.TestCase):
    def test_max_minutes_ends_the_run_with_a_checkpoint(self):
        with tempfile.TemporaryDirectory() as tmp:
            run = Path(tmp) / "run"
            # The budget (0.6 s from the process start) is spent before the first step ends: one step, saved.
            out = subprocess.run([sys.executable, str(TRAINING / "train.py"), "--run-dir", str(run), "--threads", "1",
                                  "--batch-size", "4", "--max-steps", "1000", "--max-minutes", "0.01"],
                                 capture_output=True, text=True, cwd=REPO)
            self.assertEqual(out.returncode, 0, out.stderr[-2000:])
            self.assertIn("--max-minutes reached: checkpoint saved at step 1", out.stdout + out.stderr)
            ck = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
            self.assertEqual((ck["step"], ck["images_seen"]), (1, 4))
            self.assertEqual((run / "loss.csv").read_text().splitlines()[1].split(",")[0], "1")


class TinyDatasetTest(unittest.TestCase):
    @unittest.skipUnless(HAVE_DATA, "Fashion-MNIST missing")
    def test_subset_reads_back_through_data_load(self):
        with tempfile.TemporaryDirectory() as tmp:
            sub = gpu_run.tiny_dataset(Path(tmp), data.DEFAULT_DIR, n_train=30, n_test=20)
            x, y = data.load("train", sub)
            full_x, full_y = data.load("train")
            self.assertEqual(x.shape, (30, 28, 28))
            self.assertTrue((x == full_x[:30]).all() and (y == full_y[:30]).all())
            self.assertEqual(data.load("test", sub)[0].shape, (20, 28, 28))


if __name__ == "__main__":
    unittest.main()
