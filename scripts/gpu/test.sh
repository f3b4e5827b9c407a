#!/usr/bin/env bash
# The GPU kit's own test, on the CPU (scripts/test.sh runs it, so the kit cannot rot between GPU sessions):
#   1. prepare.sh into a temporary kit (release build of ddpm, Vulkan loader, wheels, data, size check);
#   2. run.sh --dry-run with that kit: the whole flow on lavapipe and the CPU, tiny sizes;
#   3. import.sh of its output into a temporary copy of the working tree, export forced, so the import and
#      export paths run without touching the repository (`git status` is compared before and after).
#
#     PYTHON=/path/to/training-venv/python bash scripts/gpu/test.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:?set PYTHON to the training virtualenv python (scripts/training-venv.sh)}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ddpm-gpu-test.XXXXXX")
[ -n "${DDPM_KEEP_TMP:-}" ] || trap 'rm -rf "$tmp"' EXIT   # DDPM_KEEP_TMP=1 keeps it to look into
before=$(git status --porcelain)
t0=$(date +%s)

bash scripts/gpu/prepare.sh --kit "$tmp/kit" --no-run ${DDPM_KIT_BIN:+--ddpm "$DDPM_KIT_BIN"} | grep -E "^prepare: (gpu|/|.*MiB|ready|FAILED)" || true
[ -x "$tmp/kit/ddpm" ] || { echo "gpu kit: prepare.sh made no kit"; exit 1; }
t1=$(date +%s)
PYTHON=$PY bash scripts/gpu/run.sh --dry-run --kit "$tmp/kit" --out "$tmp/out" >"$tmp/run.log" 2>&1 || {
  tail -n 40 "$tmp/run.log"; echo "gpu kit: run.sh --dry-run failed"; exit 1; }
t2=$(date +%s)

mkdir "$tmp/tree"
git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$tmp/tree"
(cd "$tmp/tree" && PYTHON=$PY bash scripts/gpu/import.sh "$tmp/out" --allow-dry-run --force-export) >"$tmp/import.log" 2>&1 || {
  tail -n 40 "$tmp/import.log"; echo "gpu kit: import.sh failed"; exit 1; }
t3=$(date +%s)

"$PY" - "$tmp" <<'PY'
import json, sys
from pathlib import Path

tmp = Path(sys.argv[1])
out, tree = tmp / "out", tmp / "tree"
s = json.loads((out / "summary.json").read_text())
bench = json.loads((out / "bench.json").read_text())
ev = json.loads((out / "eval.json").read_text())
files = [p for p in out.rglob("*") if p.is_file()]
name = s["run_name"]
# A ddpm built before `ddpm bench` existed: the engine's error is recorded and the run goes on.
eng_rows = bench["engine"].get("rows", [])
no_bench = bool(eng_rows) and all("subcommand 'bench'" in str(r.get("error")) for r in eng_rows)
if no_bench:
    print("gpu kit: NOTE: this ddpm has no `bench` command; run.sh recorded the error and went on")
warnings = [w for w in s["warnings"] if not (no_bench and w.startswith("engine: no benchmark row"))]
checks = {
    "run.sh wrote at most 8 files, each under 16 MiB, 64 MiB together":
        len(files) <= 8 and all(p.stat().st_size <= 16 * 2**20 for p in files)
        and sum(p.stat().st_size for p in files) <= 64 * 2**20,
    "no warnings in the dry run": not warnings or print(warnings),
    "ddpm info ran": "parameters:" in str(bench["engine"].get("info")),
    "ddpm bench ran (engine rows), or its absence was recorded": no_bench
        or (len(eng_rows) > 0 and all("ms_per_step" in r for r in eng_rows)),
    "PyTorch eager rows": all("ms_per_step" in r for r in bench["torch"]["rows"]) and len(bench["torch"]["rows"]) >= 2,
    "torch.compile stopped at its cap": "cap" in bench["torch"]["compile"]["status"],
    "training probe chose a setting": bench["train_probe"]["best"] is not None,
    "training stopped by its wall-clock budget, checkpoint saved": s.get("train_stopped_by") == "--max-minutes reached"
        and s["end"]["step"] > s["start"]["step"] or print(s.get("train_stopped_by"), s.get("start"), s.get("end")),
    "run folder came back in parts": len(s["run_tar"]["parts"]) >= 1,
    "both models evaluated": set(s["eval_summary"]["new"]["fd"]) == {"0"} == set(s["eval_summary"]["shipped"]["fd"]),
    "nearest neighbours of the new model": "nearest_neighbour" in ev["new"]["0"],
    "the seven samplers scored side by side (evaluate.py --what samplers, ddpm program)":
        len(s["eval_summary"]["shipped"]["samplers_fd"]) == 7 or print(s["eval_summary"]["shipped"]),
    "import: checkpoint in training/runs/": (tree / "training" / "runs" / name / "checkpoint.pt").exists(),
    "import: BENCHMARKS.md rows": (tree / "BENCHMARKS.md").read_text().count(f"| {name} (DRY RUN, CPU) |") >= 2,
    "import: exported weights carry the new step count":
        json.loads((tree / "www/models/fashion-mnist/config.json").read_text())["_ddpm_web"]["images_seen"]
        == s["end"]["images_seen"],
    "import: model card states the evaluation": "## Evaluation" in (tree / "www/models/fashion-mnist/README.md").read_text()
        and "FD, 3 respaced steps, N = 16" in (tree / "www/models/fashion-mnist/README.md").read_text(),
    "import: README lines on the old weights flagged": "made on the old weights" in (tmp / "import.log").read_text(),
}
for what, ok in checks.items():
    print(f"gpu kit: {'ok  ' if ok else 'FAIL'} {what}")
failed = sum(not ok for ok in checks.values())
print(f"gpu-kit: {len(checks) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
after=$(git status --porcelain)
if [ "$before" != "$after" ]; then
  echo "gpu kit: FAIL: the test changed the repository:"; diff <(echo "$before") <(echo "$after") || true; exit 1
fi
echo "gpu kit: prepare $((t1 - t0)) s, dry run $((t2 - t1)) s, import $((t3 - t2)) s; git status unchanged"
