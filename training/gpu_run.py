"""One GPU session in one command, within a wall-clock budget: the engine and PyTorch benchmarks, Algorithm 1
for the remaining minutes at the fastest batch and precision, then the evaluation while time allows. Started
by scripts/gpu/run.sh (which sets up the carried wheels, Vulkan loader and data first); see training/README.md.

    python3 training/gpu_run.py --out DIR [--minutes 7] [--dry-run] --ddpm PATH [--resume KIT/run]

Writes into --out, at most 8 plain files, each under 16 MiB (scripts/gpu/import.sh reads them):
  summary.json    phases, seconds, the chosen batch and precision, images trained, warnings (rewritten after
                  every phase, so a run cut short still says how far it got)
  bench.json      engine (`ddpm info`, `ddpm bench`), PyTorch eager and torch.compile, training throughput
                  (--train-only: the training throughput only)
  eval.json       evaluate.py's output per model ("new", "shipped") and seed
  log.txt         every child's output (head and tail when long)
  run.tar.00 ...  the run folder (checkpoint.pt, loss.csv, lr_history.json, model/ = the export, figures/),
                  a tar split into 15 MiB parts (at most 4)
--dry-run: the same flow on the CPU with tiny sizes (lavapipe for the engine, a few training steps, a
subset of the data), the test that keeps this kit working (scripts/test.sh).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PART_BYTES = 15 * 2**20
MAX_PARTS = 4
MAX_OUT_BYTES = 60 * 2**20
LOG_BYTES = 2 * 2**20
SEEDS = (0, 1, 2)


class Run:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.t0 = args.started or time.time()
        self.end = self.t0 + 60 * args.minutes
        self.out = args.out
        self.work = args.work
        self.log_path = self.work / "log.txt"
        self.summary: dict = {
            "run_name": "gpu-" + time.strftime("%Y%m%d-%H%M%S", time.gmtime(self.t0)),
            "dry_run": args.dry_run, "minutes": args.minutes, "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                           time.gmtime(self.t0)),
            "command": " ".join(["python3", *sys.argv]), "phases": {}, "warnings": [], "files": [],
        }
        # DDPM_BIN: evaluate.py's samplers part runs `ddpm program` from the kit's own binary.
        self.env = dict(os.environ, TQDM_DISABLE="1", PYTHONUNBUFFERED="1", DDPM_BIN=str(args.ddpm))

    # --- bookkeeping ---
    def left(self) -> float:
        return self.end - time.time()

    def note(self, text: str) -> None:
        print(f"[gpu_run {time.time() - self.t0:6.1f}s] {text}", flush=True)
        with open(self.log_path, "a") as f:
            f.write(f"\n[gpu_run {time.time() - self.t0:.1f}s] {text}\n")

    def warn(self, text: str) -> None:
        self.summary["warnings"].append(text)
        self.note("WARNING: " + text)

    def save_summary(self) -> None:
        self.summary["seconds_so_far"] = round(time.time() - self.t0, 1)
        (self.out / "summary.json").write_text(json.dumps(self.summary, indent=1))

    def call(self, name: str, cmd: list[str], timeout: float, grace: float = 30) -> tuple[int | None, str]:
        """Runs a child with its output appended to the log; past timeout, SIGTERM (train.py saves its
        checkpoint on it), then SIGKILL after grace. Returns (exit code or None when killed, output tail)."""
        self.note(f"{name}: {' '.join(map(str, cmd))} (timeout {timeout:.0f} s)")
        t = time.time()
        with open(self.log_path, "a") as log:
            # Its own process group, so that a stop reaches its children too (ddpm, the compile child).
            proc = subprocess.Popen(list(map(str, cmd)), stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=REPO,
                                    start_new_session=True)
            try:
                code = proc.wait(timeout=max(1.0, timeout))
            except subprocess.TimeoutExpired:
                self.warn(f"{name}: still running at its {timeout:.0f} s limit, sent SIGTERM")
                signal_group(proc, signal.SIGTERM)
                try:
                    code = proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    signal_group(proc, signal.SIGKILL)
                    proc.wait()
                    code = None
        seconds = round(time.time() - t, 1)
        self.summary["phases"].setdefault(name, {}).update(seconds=seconds, exit=code)
        self.save_summary()
        with open(self.log_path, "rb") as f:
            f.seek(max(0, self.log_path.stat().st_size - 4000))
            tail = f.read().decode(errors="replace")
        if code != 0:
            self.warn(f"{name}: exit {code} after {seconds} s")
        return code, tail

    # --- phases ---
    def bench(self) -> None:
        """The benchmarks take at most 40% of the budget (4 minutes at most): the engine 30% of that, the
        training probe 25% (50 s at most), PyTorch the rest, torch.compile whatever eager leaves of it."""
        a, dry = self.args, self.args.dry_run
        budget = min(0.4 * (self.end - self.t0), 240)
        bench_end = time.time() + budget
        probe_s = min(50.0, 0.25 * budget)
        bench: dict = {}
        if a.train_only:
            # A session after the benchmarks are on record (BENCHMARKS.md) spends its minutes on Algorithm 1:
            # only the probe runs, since the batch and precision it picks also set the learning-rate schedule.
            self.probe(bench, probe_s)
            return
        eng = self.work / "engine.json"
        engine_s = 0.3 * budget
        cmd = [sys.executable, HERE / "gpu_bench.py", "engine", "--ddpm", a.ddpm, "--model", a.model, "--out", eng]
        cmd += (["--batches", "1", "--steps", "2", "--precisions", "f32,f16", "--allow-cpu", "--timeout", "120",
                 "--families", "", "--info-batch", "1"] if dry
                else ["--batches", "1,16,64,256", "--steps", "30", "--timeout", f"{max(20.0, min(60.0, engine_s / 3)):.0f}",
                      "--info-batch", "64"])
        self.call("engine", cmd, timeout=300 if dry else engine_s)
        bench["engine"] = read_json(eng) or {"error": "ddpm bench wrote nothing (see log.txt)"}
        eng = bench["engine"]
        if not any("ms_per_step" in r for r in eng.get("rows", [])):
            errors = {str(r.get("error") or r.get("why")) for r in eng.get("rows", []) + eng.get("refused", []) + [eng]
                      if r.get("error") or r.get("why")}
            self.warn("engine: no benchmark row (" + "; ".join(sorted(errors) or ["no adapter"])[:600] + ")")
        self.write_json("bench.json", bench)

        tj = self.work / "torch.json"
        torch_s = 90 if dry else max(20.0, bench_end - probe_s - time.time())
        compile_s = 5 if dry else torch_s  # capped again by --deadline: what the eager rows leave
        cmd = [sys.executable, HERE / "gpu_bench.py", "torch", "--model", a.model, "--out", tj,
               "--compile-seconds", compile_s]
        cmd += (["--batches", "1", "--steps", "2", "--warmup", "1", "--precisions", "f32,bf16",
                 "--compile-precisions", "f32", "--compile-modes", "default", "--device", "cpu"]
                if dry else ["--batches", "1,16,64,256", "--steps", "30", "--warmup", "5",
                             "--deadline", f"{time.time() + torch_s:.0f}"])
        self.call("torch", cmd, timeout=torch_s + (60 if dry else 10))
        bench["torch"] = read_json(tj) or {"error": "the PyTorch benchmark wrote nothing (see log.txt)"}
        self.write_json("bench.json", bench)
        self.probe(bench, probe_s)

    def probe(self, bench: dict, probe_s: float) -> None:
        a, dry = self.args, self.args.dry_run
        # Largest batch first: on the H200 (2026-11-28) only the probe's first setting finished in its 30 s
        # (batch 64, 70 ms a step; the next had printed nothing 35 s later, cuDNN autotuning each new shape
        # being the likely cost, not measured). A step that slow is launch-bound (PyTorch eager's sampler
        # step took 11-15 ms from batch 1 to 256), so a larger batch trains more images a second.
        pj = self.work / "probe.json"
        cmd = [sys.executable, HERE / "gpu_bench.py", "probe", "--out", pj]
        cmd += (["--batches", "2", "--precisions", "no,bf16", "--seconds", "30", "--per-setting-seconds", "0.5",
                 "--min-steps", "1", "--warmup", "1", "--device", "cpu"] if dry
                else ["--batches", a.probe_batches, "--seconds", f"{max(5.0, probe_s - 12):.0f}", "--per-setting-seconds", "3",
                      "--warmup", "5"])
        self.call("probe", cmd, timeout=120 if dry else probe_s)
        bench["train_probe"] = read_json(pj) or {"error": "the training probe wrote nothing (see log.txt)"}
        self.write_json("bench.json", bench)
        best = bench["train_probe"].get("best")
        if best:
            self.summary["chosen"] = {"batch": best["batch"], "mixed_precision": best["precision"],
                                      "probe_images_per_s": round(best["images_per_s"], 1)}
        else:
            self.warn("training probe found no working setting; training at batch 64, fp16 on GPU")
            self.summary["chosen"] = {"batch": 64, "mixed_precision": None, "probe_images_per_s": None}
        self.save_summary()

    def train(self) -> None:
        a, dry = self.args, self.args.dry_run
        run_dir = self.work / "run"
        chosen = self.summary["chosen"]
        cmd = [sys.executable, HERE / "train.py", "--run-dir", run_dir, "--batch-size", chosen["batch"]]
        if chosen["mixed_precision"]:
            cmd += ["--mixed-precision", chosen["mixed_precision"]]
        if a.resume and (a.resume / "checkpoint.pt").exists():
            shutil.copytree(a.resume, run_dir, dirs_exist_ok=True)
            step0 = read_step(run_dir / "checkpoint.pt")
            self.summary["start"] = {"resumed": str(a.resume), "step": step0}
        else:
            init = a.init_from or a.model
            note = (read_json(init / "config.json") or {}).get("_ddpm_web") or {}
            step0 = int(note.get("optimizer_steps", 0))
            cmd += ["--init-from", init]
            self.summary["start"] = {"warm_start": str(init), "step": step0,
                                     "images_seen": int(note.get("images_seen", 0))}
        # The evaluation's reserve: what the import's decision needs, six FD runs and two NLL runs, each a new
        # process (on the H200, 2026-11-28: 25-30 s per FD, 21 s per NLL, 210 s together; 30% of a 9-minute
        # run, 162 s, left seed 2 and the NLLs out).
        eval_reserve = 0 if dry else min(240, max(60, 0.4 * (self.end - self.t0)))
        train_s = self.left() - eval_reserve - 25  # 25 s: the last checkpoint, export and the tar
        if dry:
            # The wall-clock budget ends the dry run's training: it runs out while train.py starts, so exactly
            # one step is taken and saved, as at the end of a real run.
            cmd += ["--max-steps", step0 + 1000, "--max-minutes", 0.05, "--threads", 2]
            est = 3
        else:
            if train_s < 30:
                self.warn(f"only {train_s:.0f} s left for training: skipped")
                return
            ips = chosen["probe_images_per_s"] or 1000
            est = max(100, int(0.85 * ips * train_s / chosen["batch"]))
            cmd += ["--max-minutes", f"{train_s / 60:.3f}", "--checkpoint-every", 2000]
        # The learning rate of a short run: --lr warmed up, then a cosine decay to --lr-min over the steps the
        # probe says fit (a plain warm start would keep the shipped run's last rate, 2e-6).
        if a.lr is not None:
            cmd += ["--lr", a.lr, "--lr-decay", step0, step0 + est, "--lr-min", a.lr_min,
                    "--warmup-steps", max(1, min(500, est // 10))]
        self.summary["train_plan"] = {"seconds": round(train_s), "estimated_steps": est, "lr": a.lr, "lr_min": a.lr_min}
        code, tail = self.call("train", cmd, timeout=(600 if dry else train_s + 20), grace=45)
        done = re.findall(r"(done: step [^\n\r]*)", tail)
        stopped = re.findall(r"(--max-minutes reached|signal \d+): checkpoint saved", tail)
        if done:
            self.summary["train_result"] = done[-1].strip()
        if stopped:
            self.summary["train_stopped_by"] = stopped[-1]
        ck = run_dir / "checkpoint.pt"
        if not ck.exists():
            self.warn("training left no checkpoint")
            return
        self.summary["end"] = read_progress(ck)
        model_dir = run_dir / "model"
        self.call("export", [sys.executable, HERE / "export.py", "--run-dir", run_dir, "--out", model_dir],
                  timeout=max(30, min(90, self.left())))
        self.pack()

    def pack(self) -> None:
        """The run folder as a tar in parts of at most 15 MiB: checkpoint, loss.csv, lr_history.json, export."""
        run_dir = self.work / "run"
        for old in self.out.glob("run.tar.*"):
            old.unlink()
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for path in sorted(run_dir.rglob("*")):
                if path.is_file() and path.suffix != ".tmp":
                    tar.add(path, arcname=str(path.relative_to(run_dir)))
        blob = buf.getvalue()
        if len(blob) > MAX_PARTS * PART_BYTES:
            self.warn(f"run folder is {len(blob) / 2**20:.1f} MiB: shipping the export only (no checkpoint)")
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as tar:
                tar.add(run_dir / "model", arcname="model")
                for name in ("loss.csv", "lr_history.json"):
                    if (run_dir / name).exists():
                        tar.add(run_dir / name, arcname=name)
            blob = buf.getvalue()
        parts = []
        for i in range(0, len(blob), PART_BYTES):
            name = f"run.tar.{i // PART_BYTES:02d}"
            (self.out / name).write_bytes(blob[i : i + PART_BYTES])
            parts.append(name)
        self.summary["run_tar"] = {"parts": parts, "bytes": len(blob)}
        self.save_summary()

    def evaluate(self) -> None:
        a, dry = self.args, self.args.dry_run
        new = self.work / "run" / "model"
        models = {"new": new, "shipped": a.model} if (new / "config.json").exists() else {"shipped": a.model}
        if "new" not in models:
            self.warn("no new model to evaluate; evaluating the shipped one only")
        size = (["--n", "16", "--steps", "3", "--nll-n", "1", "--batch", "16", "--threads", "2", "--device", "cpu", "--samplers-n", "16"]
                if dry else ["--n", "2000", "--steps", "100", "--nll-n", "200", "--batch", "250", "--full-n", "2000", "--samplers-n", "1000"])
        # Most wanted first: FD seed by seed for both models (the import's test), then the NLL of both, then
        # the new model's nearest neighbours and full 1000-step FD.
        plan = [(m, s, "fd") for s in SEEDS for m in models]
        plan += [(m, 0, "nll") for m in models] + [("new", 0, "nn"), ("new", 0, "full")]
        # The page's seven samplers side by side (README's table), 1,000 samples each at the same --steps.
        plan += [(m, 0, "samplers") for m in models]
        if dry:
            # On 2 CPU cores: seed 0 only, no NLL (1,000 passes per image) and no full 1000-step sampler.
            plan = [p for p in plan if p[1] == 0 and p[2] in ("fd", "nn", "samplers")]
        plan = [p for p in plan if p[0] in models]
        results: dict = {"plan": [list(map(str, p)) for p in plan], "skipped": [], "models": {k: str(v) for k, v in models.items()}}
        self.write_json("eval.json", results)
        cost: dict[str, float] = {}
        for m, seed, what in plan:
            guess = cost.get(what, {"fd": 30, "nll": 45, "nn": 15, "full": 240, "samplers": 120}[what] if not dry else 0)
            if not dry and self.left() < 1.3 * guess + 20:
                results["skipped"].append(f"{m} seed {seed} {what}: {self.left():.0f} s left, about {guess:.0f} s needed")
                self.write_json("eval.json", results)
                continue
            out = self.work / "eval" / f"{m}-seed{seed}.json"
            figs = self.work / "eval" / f"{m}-seed{seed}"
            figs.mkdir(parents=True, exist_ok=True)
            t = time.time()
            code, _ = self.call(f"eval {m} seed {seed} {what}",
                                [sys.executable, HERE / "evaluate.py", "--model", models[m], "--what", what, "--seed",
                                 seed, "--out", out, "--figures", figs, *size],
                                timeout=600 if dry else self.left() - 15, grace=5)
            cost[what] = time.time() - t
            res = read_json(out)
            if res is not None:
                results.setdefault(m, {})[str(seed)] = res
            self.write_json("eval.json", results)
        # The new model's figures go into the run folder (and so into the tar) for the model card and README.
        figs = self.work / "eval" / "new-seed0"
        if figs.exists() and any(figs.iterdir()):
            dest = self.work / "run" / "figures"
            dest.mkdir(exist_ok=True)
            for png in figs.glob("*.png"):
                shutil.copy(png, dest / png.name)
            self.pack()
        self.summary["eval_summary"] = eval_summary(results)
        self.save_summary()

    def write_json(self, name: str, obj) -> None:
        (self.out / name).write_text(json.dumps(obj, indent=1))

    def finish(self) -> None:
        data = self.log_path.read_bytes() if self.log_path.exists() else b""
        if len(data) > LOG_BYTES:
            half = LOG_BYTES // 2
            data = data[:half] + b"\n... (cut) ...\n" + data[-half:]
        (self.out / "log.txt").write_bytes(data)
        files = sorted(p for p in self.out.rglob("*") if p.is_file())
        self.summary["files"] = [{"name": p.name, "bytes": p.stat().st_size} for p in files]
        total = sum(p.stat().st_size for p in files)
        if len(files) > 8 or total > MAX_OUT_BYTES or any(p.stat().st_size > 16 * 2**20 for p in files):
            self.warn(f"output breaks the limits: {len(files)} files, {total / 2**20:.1f} MiB")
        self.summary["seconds"] = round(time.time() - self.t0, 1)
        self.save_summary()


def signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def read_json(path: Path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def read_step(ck: Path) -> int:
    return read_progress(ck)["step"]


def read_progress(ck: Path) -> dict:
    import torch

    c = torch.load(ck, map_location="cpu", weights_only=False)
    return {"step": int(c["step"]), "images_seen": int(c["images_seen"])}


def eval_summary(results: dict) -> dict:
    """Per model: FD of each seed, their mean and SD, the NLL; what import.sh compares."""
    out = {}
    for m in ("new", "shipped"):
        seeds = results.get(m) or {}
        fds = {s: r["fd_respaced"]["fd_samples_vs_test"] for s, r in seeds.items() if "fd_respaced" in r}
        floors = {s: r["fd_respaced"]["fd_floor_train_vs_test"] for s, r in seeds.items() if "fd_respaced" in r}
        nll = (seeds.get("0") or {}).get("nll_bits_per_dim")
        table = ((seeds.get("0") or {}).get("samplers") or {}).get("by_sampler", {})
        v = list(fds.values())
        out[m] = {"fd": fds, "floor": floors, "fd_mean": sum(v) / len(v) if v else None,
                  "fd_sd": (sum((x - sum(v) / len(v)) ** 2 for x in v) / (len(v) - 1)) ** 0.5 if len(v) > 1 else None,
                  "nll_large": nll["large"]["mean"] if nll else None, "nll_small": nll["small"]["mean"] if nll else None,
                  "samplers_fd": {k: r["fd_samples_vs_test"] for k, r in table.items()}}
    return out


def tiny_dataset(dest: Path, source: Path, n_train: int = 1000, n_test: int = 500) -> Path:
    """The first images of each split as IDX files, for the dry run (the evaluation reads every image)."""
    sys.path.insert(0, str(HERE))
    import data
    import numpy as np

    dest.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        x, y = data.load(split, source)
        for kind, arr in (("images", x[:n]), ("labels", y[:n])):
            header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
            with gzip.open(dest / data._FILES[(split, kind)], "wb", compresslevel=1) as f:
                f.write(header + np.ascontiguousarray(arr, dtype=np.uint8).tobytes())
    return dest


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--minutes", type=float, default=7)
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--ddpm", required=True)
    p.add_argument("--model", type=Path, default=REPO / "www" / "models" / "fashion-mnist")
    p.add_argument("--resume", type=Path, help="a run folder to continue (the kit's run/), else warm start")
    p.add_argument("--init-from", type=Path, help="model folder to warm-start from (the kit's init/, an earlier "
                   "GPU run's export); default --model, the shipped weights, which the evaluation compares with")
    p.add_argument("--lr", type=float, default=1e-4, help="peak learning rate of this run (cosine to --lr-min)")
    p.add_argument("--lr-min", type=float, default=2e-6)
    p.add_argument("--train-only", action="store_true", help="no engine or PyTorch benchmarks: the training "
                   "probe, Algorithm 1 and the evaluation only")
    p.add_argument("--probe-batches", default="512,256,128,64", help="the training probe's batches, largest "
                   "first (it keeps the one with the most images a second)")
    p.add_argument("--work", type=Path, help="scratch folder (default: a new one under /tmp)")
    p.add_argument("--started", type=float, help="epoch seconds the budget counts from (run.sh's start)")
    args = p.parse_args()
    args.model = args.model.resolve()
    args.init_from = args.init_from.resolve() if args.init_from else None
    args.out.mkdir(parents=True, exist_ok=True)
    if any(args.out.iterdir()):
        sys.exit(f"{args.out} is not empty: give a new output folder")
    import tempfile

    args.work = args.work or Path(tempfile.mkdtemp(prefix="ddpm-gpu-"))
    args.work.mkdir(parents=True, exist_ok=True)
    run = Run(args)
    if args.dry_run:
        run.env.setdefault("OMP_NUM_THREADS", "2")
        src = Path(os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
        run.env["FASHION_MNIST_DIR"] = str(tiny_dataset(args.work / "fashion-mnist-subset", src))
        run.note(f"dry run: data subset in {run.env['FASHION_MNIST_DIR']}")
    run.save_summary()
    for name, phase in (("bench", run.bench), ("train", run.train), ("evaluate", run.evaluate)):
        try:
            phase()
        except Exception as e:  # a failed phase is reported; the next ones still run
            import traceback

            run.warn(f"phase {name} failed: {type(e).__name__}: {e}")
            with open(run.log_path, "a") as f:
                f.write(traceback.format_exc())
        run.save_summary()
    run.finish()
    print(json.dumps({k: run.summary[k] for k in ("run_name", "chosen", "train_result", "eval_summary", "warnings",
                                                  "seconds") if k in run.summary}, indent=1))


if __name__ == "__main__":
    main()
