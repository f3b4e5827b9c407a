#!/usr/bin/env bash
# Ends a training session: stops the background run at a checkpoint, exports its EMA weights as the page's
# default model, runs the whole evaluation (40-60 minutes on 2 CPU cores) and writes the model card with
# the figures. Commit www/models/fashion-mnist/ and training/{eval.json,*.png} afterwards.
#
#     bash training/publish.sh [RUN_DIR]
#
# FULL_N sets the number of full 1000-step samples (default 256: 256,000 passes, ~25 minutes on 2 CPU
# cores); on a GPU, FULL_N=2000 gives the full sampler's FD at the same N as the respaced one.
set -euo pipefail
cd "$(dirname "$0")/.."
run_dir=${1:-training/runs/fmnist}

# SIGTERM makes train.py finish its step and save a checkpoint (see train.py).
if pids=$(pgrep -f "training/train.py --run-dir $run_dir"); then
  kill -CONT $pids 2>/dev/null || true
  kill -TERM $pids
  while pgrep -f "training/train.py --run-dir $run_dir" >/dev/null; do sleep 2; done
  echo "training stopped"
fi

python3 training/export.py --run-dir "$run_dir" --out www/models/fashion-mnist --onnx "$run_dir/unet.onnx"
cp "$run_dir/loss.png" training/loss.png

cd training
rm -f eval.json
for what in fd nll nn full; do
  python3 evaluate.py --model ../www/models/fashion-mnist --what "$what" --n 2000 --steps 100 --full-n "${FULL_N:-256}" \
    --nll-n 200 --batch 250 --threads 2 --out eval.json --figures .
done
cd ..
# Again, now that eval.json describes these weights: the model card gets the figures.
python3 training/export.py --run-dir "$run_dir" --out www/models/fashion-mnist
