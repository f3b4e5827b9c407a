#!/usr/bin/env bash
# Gathers into one git-ignored folder (gpu-kit/ by default) what the offline GPU machine lacks, for
# scripts/gpu/run.sh there (shared/ENVIRONMENT.md, "The offline GPU machine"):
#   ddpm            the release engine binary built here (cargo build --release --bin ddpm), stripped
#   vulkan/         Debian's Vulkan loader (libvulkan1, which needs only libc), unpacked with dpkg -x
#   glvnd/          Debian's GL dispatch libraries (libglvnd0, libglx0, libegl1, libgl1, libopengl0, libgles2):
#                   NVIDIA's Vulkan driver, libGLX_nvidia.so.0, loads libGLdispatch.so.0, and the machine's
#                   image lacks it (without them the loader found only a CPU adapter there, 2026-11-28)
#   wheels/         diffusers and the dependencies that machine lacks, pinned to this project's training
#                   virtualenv, for its Python 3.12 (scripts/gpu/wheels.py lists them)
#   fashion-mnist/  the four IDX files (Debian's dataset-fashion-mnist, installed here when missing; the
#                   images recompressed with xz)
#   run/            the newest training/runs/*/ checkpoint to continue, when one exists and fits (26 MB for the
#                   shipped size with Adam's state: it does not fit beside the rest); else init/, that run's
#                   export (an imported GPU run has one), to warm-start from; else run.sh warm-starts from
#                   the tracked www/models/fashion-mnist
# The kit travels with the working tree, 64 MiB at most together: this fails above 60 MiB, tree included.
#
#     bash scripts/gpu/prepare.sh [--kit DIR] [--ddpm PATH] [--run-dir training/runs/NAME | --no-run]
#
# --ddpm PATH copies that binary instead of building one (the test suite passes its debug build).
set -euo pipefail
cd "$(dirname "$0")/../.."

kit=gpu-kit ddpm= run_dir= no_run=0
LIMIT_MIB=60
while [ $# -gt 0 ]; do
  case "$1" in
    --kit) kit=$2; shift 2 ;;
    --ddpm) ddpm=$2; shift 2 ;;
    --run-dir) run_dir=$2; shift 2 ;;
    --no-run) no_run=1; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "prepare.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }

rm -rf "$kit"
mkdir -p "$kit"
kit=$(cd "$kit" && pwd)

# 1. The engine.
if [ -z "$ddpm" ]; then
  echo "prepare: cargo build --release --bin ddpm"
  cargo build --release --locked --bin ddpm
  ddpm=target/release/ddpm
fi
cp "$ddpm" "$kit/ddpm"
strip "$kit/ddpm" 2>/dev/null || true

# 2. The Vulkan loader and the GL dispatch libraries NVIDIA's Vulkan driver needs: the machine has the
# driver but may lack both.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
debs=(libvulkan1 libglvnd0 libglx0 libegl1 libgl1 libopengl0 libgles2)
if ! (cd "$tmp" && apt-get download "${debs[@]}" >/dev/null 2>&1); then
  as_root apt-get update -q >/dev/null
  (cd "$tmp" && apt-get download "${debs[@]}" >/dev/null)
fi
for d in "$tmp"/*.deb; do dpkg -x "$d" "$tmp/x"; done
mkdir -p "$kit/vulkan" "$kit/glvnd"
cp -L "$tmp"/x/usr/lib/*/libvulkan.so.1 "$kit/vulkan/libvulkan.so.1"  # the file, not a link
for lib in "$tmp"/x/usr/lib/*/lib*.so.[0-9]; do
  case "$(basename "$lib")" in libvulkan.so.1) ;; *) cp -L "$lib" "$kit/glvnd/" ;; esac
done
echo "prepare: Vulkan loader and GL dispatch libraries: $(cd "$tmp" && ls *.deb | tr '\n' ' ')"

# 3. Wheels, pinned to the training virtualenv's versions (the ones scripts/test.sh tests).
source scripts/training-venv.sh
PY=$(training_venv)
mapfile -t wheels < <("$PY" scripts/gpu/wheels.py)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --abi cp312 --abi abi3 --abi none --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform any -d "$kit/wheels" "${wheels[@]}"
echo "prepare: ${#wheels[@]} wheels for Python 3.12: ${wheels[*]}"

# 4. Fashion-MNIST.
data=/usr/share/datasets/fashion-mnist
training_data
mkdir -p "$kit/fashion-mnist"
cp "$data"/{train,t10k}-labels-idx1-ubyte.gz "$kit/fashion-mnist/"
# The images as xz: 4.2 MiB less than Debian's gzip files, room for a run's state (run.sh unpacks them).
for f in train t10k; do
  zcat "$data/$f-images-idx3-ubyte.gz" | xz -6 -T2 -c > "$kit/fashion-mnist/$f-images-idx3-ubyte.xz"
done

# Size so far: the kit plus what the run tool copies besides it (tracked and untracked-but-not-ignored files).
tree_bytes() { git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'; }
kit_bytes() { du -sb "$kit" | cut -f1; }
limit=$((LIMIT_MIB * 1048576))

# 5. A run to continue, if one exists and fits.
if [ "$no_run" = 0 ]; then
  if [ -z "$run_dir" ]; then
    newest=$(ls -t training/runs/*/checkpoint.pt 2>/dev/null | head -n1 || true)
    [ -n "$newest" ] && run_dir=$(dirname "$newest")
  fi
  if [ -n "$run_dir" ] && [ -f "$run_dir/checkpoint.pt" ]; then
    need=$(du -cb "$run_dir/checkpoint.pt" "$run_dir"/lr_history.json "$run_dir"/loss.csv 2>/dev/null | tail -n1 | cut -f1)
    if [ $(( $(tree_bytes) + $(kit_bytes) + need )) -le "$limit" ]; then
      mkdir -p "$kit/run"
      cp "$run_dir/checkpoint.pt" "$kit/run/"
      for f in lr_history.json loss.csv; do [ -f "$run_dir/$f" ] && cp "$run_dir/$f" "$kit/run/"; done
      echo "$run_dir" > "$kit/run/FROM"
      echo "prepare: continuing $run_dir ($(mib "$need") MiB)"
    elif [ -f "$run_dir/model/config.json" ]; then
      # An imported GPU run: its export (EMA weights, f16, 3 MiB) continues it as a warm start, less Adam's state.
      cp -r "$run_dir/model" "$kit/init"
      echo "$run_dir" > "$kit/init/FROM"
      echo "prepare: $run_dir/checkpoint.pt does not fit ($(mib "$need") MiB more); the run warm-starts from its export $run_dir/model"
    else
      echo "prepare: $run_dir does not fit ($(mib "$need") MiB more); the run warm-starts from www/models/fashion-mnist"
    fi
  else
    echo "prepare: no run folder with a checkpoint in training/runs/; the run warm-starts from www/models/fashion-mnist"
  fi
fi

total=$(( $(tree_bytes) + $(kit_bytes) ))
echo "prepare: $kit: $(mib "$(kit_bytes)") MiB (ddpm $(mib "$(stat -c %s "$kit/ddpm")"), wheels $(mib "$(du -sb "$kit/wheels" | cut -f1)"), data $(mib "$(du -sb "$kit/fashion-mnist" | cut -f1)")); with the working tree $(mib "$total") MiB of ${LIMIT_MIB}"
if [ "$total" -gt "$limit" ]; then
  echo "prepare: FAILED: $(mib "$total") MiB is above ${LIMIT_MIB} MiB (the machine takes 64 MiB with the tree)" >&2
  exit 1
fi
echo "prepare: ready. On the GPU machine: bash scripts/gpu/run.sh --out \"\$OUT\" [--minutes 7], carrying $(realpath --relative-to=. "$kit")"
