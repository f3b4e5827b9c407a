#!/usr/bin/env bash
# Two engine binaries side by side on the GPU machine, alternating, in one lease: what a kernel change does
# on a real GPU (BENCHMARKS.md, "On a real GPU"). Here, first:
#     mkdir -p gpu-ab && cp OLD_DDPM gpu-ab/ddpm-old && cp target/release/ddpm gpu-ab/ddpm-new
#     strip gpu-ab/ddpm-*; cp -r gpu-kit/vulkan gpu-kit/glvnd gpu-ab/     (after scripts/gpu/prepare.sh)
# then there, carrying gpu-ab:
#     bash scripts/gpu/ab.sh [--dir gpu-ab] [--batches "64 256"] [--kernels "tiled fused"] [--rounds 2]
# Writes $OUT/ab.jsonl ({bin, round, report: ddpm bench's JSON}) and prints ms per step and GPU ms per family.
set -u
dir=gpu-ab batches="64 256" kernels="tiled fused" rounds=2
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=$2; shift 2 ;;
    --batches) batches=$2; shift 2 ;;
    --kernels) kernels=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "ab.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
out=${OUT:?set OUT to the folder that comes back}
export XDG_RUNTIME_DIR=/tmp/ddpm-ab-xdg LD_LIBRARY_PATH="$PWD/$dir/vulkan:$PWD/$dir/glvnd"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
M=www/models/fashion-mnist
one() { # bin batch kernels precision round
  local r
  r=$(timeout 60 "$dir/ddpm-$1" bench --model $M --batch "$2" --steps 20 --kernels "$3" --precision "$4" 2>/dev/null)
  echo "{\"bin\":\"$1\",\"round\":$5,\"report\":${r:-null}}" >> "$out/ab.jsonl"
  echo "$1 b=$2 $3 $4: $(echo "$r" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(round(d["ms_per_step"],2), {k: round(v,2) for k,v in d["gpu_ms_per_family"].items()})' 2>&1)"
}
for round in $(seq "$rounds"); do
  for b in $batches; do
    for k in $kernels; do
      one old "$b" "$k" f32 "$round"; one new "$b" "$k" f32 "$round"
    done
  done
done
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv 2>/dev/null || true
