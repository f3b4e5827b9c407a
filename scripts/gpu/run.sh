#!/usr/bin/env bash
# One GPU session in one command, on the offline GPU machine (after scripts/gpu/prepare.sh here):
#   1. the engine (`ddpm info`, `ddpm bench` through Vulkan at batch 1, 16, 64, 256) and PyTorch on the same
#      network (eager and torch.compile, f32 and half precision), GPU-synchronised: bench.json;
#   2. Algorithm 1 for the remaining minutes, continuing the kit's run or warm-starting from the shipped
#      weights, at the batch and precision the first minute measured fastest; the checkpoint comes back
#      as run.tar.NN parts of at most 15 MiB;
#   3. the evaluation (FD at seeds 0-2 of the new and the shipped model, NLL, nearest neighbours, the full
#      sampler) while time allows: eval.json. Then summary.json and log.txt: at most 8 files in all.
#
#     bash scripts/gpu/run.sh --out DIR [--minutes 7] [--kit gpu-kit] [--lr 1e-4] [--dry-run]
#                             [--train-only] [--probe-batches 1024,512]
#
# --train-only skips phase 1's engine and PyTorch benchmarks (once they are on record): the training probe
# on --probe-batches, then Algorithm 1 and the evaluation get the minutes.
#
# --dry-run: the same flow on this machine's CPU with tiny sizes (lavapipe, batch 1, a few training steps,
# a data subset), about 2 minutes on 2 cores; scripts/test.sh runs it. PYTHON picks the interpreter.
set -euo pipefail
started=$(date +%s)
cd "$(dirname "$0")/../.."

minutes=7 out= dry=() kit=gpu-kit extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --kit) kit=$2; shift 2 ;;
    --dry-run) dry=(--dry-run); shift ;;
    --lr|--lr-min|--probe-batches) extra+=("$1" "$2"); shift 2 ;;
    --train-only) extra+=("$1"); shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$out" ] || { echo "run.sh: --out DIR is required" >&2; exit 2; }
PY=${PYTHON:-python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/ddpm-gpu.XXXXXX")
log="$work/log.txt"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$work/xdg}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
{ echo "run.sh $(date -u +%FT%TZ) on $(hostname)"; nvidia-smi 2>&1 || echo "(no nvidia-smi)"; "$PY" --version; } >>"$log" 2>&1

# Python packages the machine lacks (diffusers): unpacked from the kit, first on the path.
if [ -d "$kit/wheels" ]; then
  "$PY" scripts/gpu/install_wheels.py "$kit/wheels" "$work/site" 2>&1 | tee -a "$log"
  export PYTHONPATH="$work/site${PYTHONPATH:+:$PYTHONPATH}"
fi
# The Vulkan loader, unless the machine has one (the dry run always takes the kit's, to test it).
if [ -e "$kit/vulkan/libvulkan.so.1" ] && { [ ${#dry[@]} -gt 0 ] || ! ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1 '; }; then
  export LD_LIBRARY_PATH="$(cd "$kit/vulkan" && pwd)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "run.sh: Vulkan loader from $kit/vulkan" | tee -a "$log"
fi
# The GL dispatch libraries NVIDIA's Vulkan driver loads, unless the machine has them (same rule). Behind the
# machine's own libraries on the path, so they are only found where the machine has none.
if [ -e "$kit/glvnd/libGLdispatch.so.0" ] && { [ ${#dry[@]} -gt 0 ] || ! ldconfig -p 2>/dev/null | grep -q 'libGLdispatch\.so\.0 '; }; then
  export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$(cd "$kit/glvnd" && pwd)"
  echo "run.sh: GL dispatch libraries from $kit/glvnd" | tee -a "$log"
fi
# The data, unless FASHION_MNIST_DIR points elsewhere: the kit's xz images back to the gzip IDX files that
# training/data.py reads (Python's lzma and gzip: nothing to install).
if [ -z "${FASHION_MNIST_DIR:-}" ] && [ -f "$kit/fashion-mnist/train-labels-idx1-ubyte.gz" ]; then
  "$PY" - "$kit/fashion-mnist" "$work/fashion-mnist" <<'PY'
import gzip, lzma, shutil, sys
from pathlib import Path
src, dest = Path(sys.argv[1]), Path(sys.argv[2])
dest.mkdir(parents=True, exist_ok=True)
for f in src.iterdir():
    if f.suffix == ".gz":
        shutil.copy(f, dest / f.name)
    elif f.suffix == ".xz":
        with lzma.open(f) as i, gzip.open(dest / (f.stem + ".gz"), "wb", compresslevel=1) as o:
            shutil.copyfileobj(i, o)
PY
  export FASHION_MNIST_DIR="$work/fashion-mnist"
fi
# The engine: the kit's, else one built here.
ddpm=${DDPM_BIN:-}
for candidate in "$kit/ddpm" target/release/ddpm target/debug/ddpm; do
  if [ -z "$ddpm" ] && [ -x "$candidate" ]; then ddpm=$candidate; fi
done
[ -n "$ddpm" ] || { echo "run.sh: no ddpm binary (run scripts/gpu/prepare.sh, or set DDPM_BIN)" >&2; exit 1; }
resume=()
if [ -f "$kit/run/checkpoint.pt" ]; then resume=(--resume "$kit/run")
elif [ -f "$kit/init/config.json" ]; then resume=(--init-from "$kit/init"); fi

exec "$PY" training/gpu_run.py --out "$out" --minutes "$minutes" --ddpm "$(realpath "$ddpm")" --work "$work" \
  --started "$started" "${dry[@]}" "${resume[@]}" "${extra[@]}"
