"""Takes what scripts/gpu/run.sh brought back from the GPU machine into the repository (scripts/gpu/import.sh):

    python3 training/gpu_import.py DIR [--repo .] [--name NAME] [--allow-dry-run] [--force-export] [--no-export]

1. The run folder (run.tar.NN, joined) into training/runs/NAME/ (NAME: the run's, gpu-YYYYMMDD-HHMMSS):
   checkpoint.pt to continue from, loss.csv, lr_history.json, model/ (the export) and figures/.
2. The figures into the "On a real GPU" section of BENCHMARKS.md: one engine-vs-PyTorch row per batch and
   precision, one row for the training and evaluation; a re-import of the same run replaces its rows.
3. The new weights into www/models/fashion-mnist/ only when the evaluation on the GPU confirms they are
   better than the shipped ones, both measured there with the same seeds: the FD mean over seeds 0-2 lower
   by more than its spread (the larger of the two models' SDs over the seeds), and the NLL bound (sigma^2 =
   beta_t) not higher. Then training/eval.json becomes the new model's seed-0 evaluation, export.py writes
   the model card with it, the figures replace training/*.png, and the lines of README.md that state
   figures of the old weights are listed to be updated.
--allow-dry-run takes a dry run's output (its figures are labelled as such; the test suite uses it on a
copy of the tree); --force-export exports whatever the decision (for that test).
"""

from __future__ import annotations

import argparse
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SECTION = "## On a real GPU"
ENGINE_BEGIN, ENGINE_END = "<!-- gpu-kit engine rows -->", "<!-- /gpu-kit engine rows -->"
RUN_BEGIN, RUN_END = "<!-- gpu-kit run rows -->", "<!-- /gpu-kit run rows -->"
NO_ROWS = "| (no GPU run imported yet) |"

SECTION_TEXT = f"""{SECTION}

Filled by `bash scripts/gpu/import.sh DIR` from what `bash scripts/gpu/run.sh --out DIR` measured on the
offline GPU machine (training/README.md, "A GPU session in one command"). Engine: `ddpm bench` through
Vulkan, ms per sampler step (one U-Net pass + the Algorithm 2 update). PyTorch: diffusers' `UNet2DModel`
from the same folder, the same step, timed around `torch.cuda.synchronize()`; eager f32 is torch's default
(TF32 convolutions), "strict" turns TF32 off (the engine's arithmetic). Ratio = engine ÷ PyTorch eager at
the same precision (f32 vs default f32, f16 vs fp16): the target is ≤ 1.0 at batch 64. % of peak: the
engine's GFLOP/s over the GPU's f32 (non-tensor-core) datasheet peak. Kernels: the family `--kernels auto`
picked, as the page does, then each family by name at batch 64.

{ENGINE_BEGIN}
| run | GPU | batch | engine precision, kernels | engine ms/step | engine % of f32 peak | PyTorch eager f32 / strict / bf16 / fp16 ms | best torch.compile ms | ratio to eager |
|---|---|---:|---|---:|---:|---|---:|---:|
{NO_ROWS}
{ENGINE_END}

Training (Algorithm 1 for the minutes left after the benchmarks, at the batch and precision the training
probe found fastest) and evaluation on the same machine (FD at N = 2,000, 100 respaced steps, seeds 0-2,
of the new weights and of the shipped ones; NLL on 200 test images, σ² = β_t):

{RUN_BEGIN}
| run | GPU | batch, precision | images/s | steps (images) trained | FD new, seeds 0-2 | FD shipped, same seeds | NLL new / shipped | exported |
|---|---|---|---:|---|---|---|---|---|
{NO_ROWS}
{RUN_END}
"""


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def fmt(v, digits=2) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


# --- the decision -----------------------------------------------------------------------------------------

def decide(summary: dict) -> tuple[bool, str]:
    """Better only if the FD mean over seeds 0-2 is lower by more than the spread and the NLL is not higher."""
    new, old = summary.get("new") or {}, summary.get("shipped") or {}
    seeds = {"0", "1", "2"}
    if set(new.get("fd") or {}) != seeds or set(old.get("fd") or {}) != seeds:
        return False, ("not confirmed: FD of seeds 0-2 for both models needed, have new "
                       f"{sorted(new.get('fd') or {})}, shipped {sorted(old.get('fd') or {})}")
    spread = max(new["fd_sd"], old["fd_sd"])
    gain = old["fd_mean"] - new["fd_mean"]
    fd_text = (f"FD {new['fd_mean']:.2f} ± {new['fd_sd']:.2f} vs shipped {old['fd_mean']:.2f} ± {old['fd_sd']:.2f} "
               f"(gain {gain:.2f}, spread {spread:.2f})")
    if gain <= spread:
        return False, f"not better: {fd_text}"
    if new.get("nll_large") is None or old.get("nll_large") is None:
        return False, f"not confirmed: {fd_text}, but the NLL of both models is needed"
    nll_text = f"NLL {new['nll_large']:.3f} vs {old['nll_large']:.3f} bits/dim"
    if new["nll_large"] > old["nll_large"]:
        return False, f"not better: {fd_text}, but {nll_text} is higher"
    return True, f"better: {fd_text}; {nll_text}"


# --- BENCHMARKS.md ----------------------------------------------------------------------------------------

def torch_env(bench: dict) -> dict:
    """The PyTorch side's machine: the benchmark's, else the training probe's (a --train-only run has no other)."""
    return (bench.get("torch") or {}).get("env") or (bench.get("train_probe") or {}).get("env") or {}


def engine_rows(name: str, bench: dict, dry: bool) -> list[str]:
    if "engine" not in bench and "train_probe" in bench:
        return []  # a --train-only run: no engine benchmark was asked for
    eng, tor = bench.get("engine") or {}, bench.get("torch") or {}
    env = torch_env(bench)
    gpu = env.get("gpu") or ("CPU (dry run)" if dry else env.get("device", "?"))
    peak = (env.get("peak_tflops") or {}).get("f32")
    eager = {(r["batch"], r["precision"]): r["ms_per_step"] for r in tor.get("rows", []) if "ms_per_step" in r}
    compiled: dict[int, float] = {}
    for r in tor.get("compile_rows", []):
        if "ms_per_step" in r:
            compiled[r["batch"]] = min(compiled.get(r["batch"], 1e99), r["ms_per_step"])
    label = f"{name}{' (DRY RUN, CPU)' if dry else ''}"
    rows = []
    for r in eng.get("rows", []):
        if "ms_per_step" not in r:
            continue
        b, prec = r["batch"], r.get("precision", "f32")
        same = eager.get((b, "f32" if prec == "f32" else "fp16"))
        pct = f"{100 * r['gflops_per_s'] / (1000 * peak):.2f}%" if peak and r.get("gflops_per_s") else "–"
        torch_cells = " / ".join(fmt(eager.get((b, p))) for p in ("f32", "f32_strict", "bf16", "fp16"))
        adapter = r.get("adapter", "?")
        kernels = r.get("kernels", "?") + ("" if r.get("kernels_asked") else " (auto)")
        rows.append(f"| {label} | {adapter} | {b} | {prec}, {kernels} | {r['ms_per_step']:.2f} | {pct} | {torch_cells} | "
                    f"{fmt(compiled.get(b))} | {fmt(r['ms_per_step'] / same) if same else '–'} |")
    failed = [] if rows else [r for r in eng.get("rows", []) if "error" in r][:1]
    for r in eng.get("refused", []) + failed:
        why = r.get("why") or r.get("error")
        rows.append(f"| {label} | {r.get('adapter', '?')} | {r.get('batch', '?')} | – | – | – | – | – | not measured: "
                    f"{str(why)[:80]} |")
    if not rows:
        rows.append(f"| {label} | {gpu} | – | – | – | – | – | – | engine not measured (see summary.json) |")
    return rows


def run_row(name: str, summary: dict, bench: dict, exported: str, dry: bool) -> str:
    tor = torch_env(bench)
    gpu = tor.get("gpu") or ("CPU (dry run)" if dry else tor.get("device", "?"))
    chosen = summary.get("chosen") or {}
    start, end = summary.get("start") or {}, summary.get("end") or {}
    m = re.search(r"\(([\d.]+) images/s\)", summary.get("train_result", ""))
    ips = m.group(1) if m else fmt(chosen.get("probe_images_per_s"), 0) + " (probe)"
    trained = (f"{end['step'] - start.get('step', 0):,} ({end['images_seen'] - start.get('images_seen', end['images_seen']):,})"
               if end and "images_seen" in start else (f"{end['step'] - start.get('step', 0):,}" if end else "–"))
    ev = summary.get("eval_summary") or {}

    def fds(m_):
        d = ev.get(m_) or {}
        vals = ", ".join(f"{d['fd'][s]:.2f}" for s in sorted(d.get("fd") or {}))
        if not vals:
            return "–"
        return f"{vals} (mean {fmt(d.get('fd_mean'))} ± {fmt(d.get('fd_sd'))})"

    nll = f"{fmt((ev.get('new') or {}).get('nll_large'), 3)} / {fmt((ev.get('shipped') or {}).get('nll_large'), 3)}"
    label = f"{name}{' (DRY RUN, CPU)' if dry else ''}"
    return (f"| {label} | {gpu} | {chosen.get('batch', '–')}, {chosen.get('mixed_precision', '–')} | {ips} | {trained} | "
            f"{fds('new')} | {fds('shipped')} | {nll} | {exported} |")


def update_benchmarks(path: Path, name: str, engine: list[str], run: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if SECTION not in text:
        text = text.rstrip("\n") + "\n\n" + SECTION_TEXT
    for begin, end, rows in ((ENGINE_BEGIN, ENGINE_END, engine), (RUN_BEGIN, RUN_END, [run])):
        a, b = text.index(begin) + len(begin), text.index(end)
        mine = re.compile(rf"^\| {re.escape(name)}( \(DRY RUN, CPU\))? \|")
        lines = [l for l in text[a:b].strip("\n").splitlines() if l.strip()]
        header, body = lines[:2], lines[2:]  # the table's header and separator stay first
        kept = [l for l in body if not l.startswith(NO_ROWS) and not mine.match(l)]
        text = text[:a] + "\n" + "\n".join(header + kept + rows) + "\n" + text[b:]
    path.write_text(text)


# --- the run folder and the export -------------------------------------------------------------------------

def unpack_run(src: Path, dest: Path) -> list[str]:
    parts = sorted(src.glob("run.tar.[0-9][0-9]"))
    if not parts:
        return []
    blob = b"".join(p.read_bytes() for p in parts)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(dest, filter="data")  # no absolute paths, no links out of dest
        return tar.getnames()


def readme_lines_on_old_weights(readme: Path, old_steps: int) -> list[str]:
    """README.md's lines that state figures of the old weights: those naming its step count, and the "same:"
    rows of the Numbers table that follow them."""
    if not readme.exists():
        return []
    out, follow = [], False
    for i, line in enumerate(readme.read_text().splitlines(), 1):
        if f"{old_steps:,}" in line or str(old_steps) in line:
            out.append(f"README.md:{i}: {line[:120]}")
            follow = line.startswith("|")
        elif follow and line.startswith("| same"):
            out.append(f"README.md:{i}: {line[:120]}")
        else:
            follow = False
    return out


def export(repo: Path, run_dir: Path, new_eval: dict | None, python: str) -> list[str]:
    model_out = repo / "www" / "models" / "fashion-mnist"
    old_note = json.loads((model_out / "config.json").read_text()).get("_ddpm_web") or {}
    cmd = [python, str(repo / "training" / "export.py"), "--run-dir", str(run_dir), "--out", str(model_out)]
    subprocess.run(cmd, check=True, cwd=repo)
    if new_eval:
        ev = dict(new_eval)
        ev["model"] = {"path": "../www/models/fashion-mnist", "config_note": json.loads(
            (model_out / "config.json").read_text()).get("_ddpm_web")}
        (repo / "training" / "eval.json").write_text(json.dumps(ev, indent=1))
        subprocess.run(cmd, check=True, cwd=repo)  # again: the card now states the GPU evaluation
    for png in (run_dir / "figures").glob("*.png"):
        shutil.copy(png, repo / "training" / png.name)
    if (run_dir / "loss.png").exists():
        shutil.copy(run_dir / "loss.png", repo / "training" / "loss.png")
    return readme_lines_on_old_weights(repo / "README.md", int(old_note.get("optimizer_steps", -1)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir", type=Path)
    p.add_argument("--repo", type=Path, default=HERE.parent)
    p.add_argument("--name", help="run folder name under training/runs/ (default: the run's own)")
    p.add_argument("--allow-dry-run", action="store_true")
    p.add_argument("--force-export", action="store_true")
    p.add_argument("--no-export", action="store_true")
    args = p.parse_args()
    repo = args.repo.resolve()
    summary = read_json(args.dir / "summary.json")
    if summary is None:
        sys.exit(f"import: {args.dir}/summary.json missing or unreadable: not a run.sh output folder")
    dry = bool(summary.get("dry_run"))
    if dry and not args.allow_dry_run:
        sys.exit("import: this is a dry run's output (CPU figures); --allow-dry-run takes it anyway")
    bench = read_json(args.dir / "bench.json") or {}
    evals = read_json(args.dir / "eval.json") or {}
    name = args.name or summary.get("run_name") or time.strftime("gpu-%Y%m%d-%H%M%S")
    report: dict = {"run": name, "dry_run": dry, "warnings_from_run": summary.get("warnings", [])}

    run_dir = repo / "training" / "runs" / name
    if run_dir.exists() and any(run_dir.iterdir()):
        sys.exit(f"import: {run_dir} exists already; give --name or remove it")
    names = unpack_run(args.dir, run_dir)
    report["run_folder"] = str(run_dir.relative_to(repo)) if names else None
    report["checkpoint"] = (run_dir / "checkpoint.pt").exists()

    better, why = decide(summary.get("eval_summary") or {})
    report["decision"] = why
    exported = "no"
    if (better or args.force_export) and not args.no_export:
        if not (run_dir / "checkpoint.pt").exists():
            report["decision"] += "; no checkpoint came back, nothing to export"
        else:
            flagged = export(repo, run_dir, (evals.get("new") or {}).get("0"), sys.executable)
            exported = "yes" + (" (forced)" if not better else "")
            report["readme_lines_on_old_weights"] = flagged
    report["exported"] = exported
    update_benchmarks(repo / "BENCHMARKS.md", name, engine_rows(name, bench, dry),
                      run_row(name, summary, bench, exported, dry))
    report["benchmarks"] = "BENCHMARKS.md, section 'On a real GPU'"
    if names:
        (run_dir / "import.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    for line in report.get("readme_lines_on_old_weights", []):
        print(f"import: made on the old weights, to update: {line}")


if __name__ == "__main__":
    main()
