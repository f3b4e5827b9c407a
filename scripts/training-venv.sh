#!/usr/bin/env bash
# The training side's Python: a virtualenv of training/requirements.txt kept outside the clone, keyed by the
# Python version and the hash of the requirements, so fresh clones (CI) reuse it and a changed pin builds a
# new one. Sourced by scripts/test.sh and scripts/gpu/prepare.sh; `training_venv` prints its python.
#
# The first install pulls PyPI's torch with its CUDA libraries (about 5.6 GB on disk, 2 to 3 minutes here):
# the CPU-only wheel index is not reachable from this project's machines, only PyPI is, and PyPI's Linux
# torch runs on the CPU as well. A folder without the .complete mark (an interrupted install) is rebuilt.
training_venv() {
  local key dir
  key=$(sha256sum training/requirements.txt | cut -c1-16) || return 1
  dir="${DDPM_VENV_ROOT:-$HOME/.cache/ddpm-web}/venv-py$(python3 -c 'import sys; print("%d%d" % sys.version_info[:2])')-$key"
  if [ ! -e "$dir/.complete" ]; then
    echo "training: installing training/requirements.txt into $dir (once per requirements hash; a few GB)" >&2
    rm -rf "$dir" && mkdir -p "$(dirname "$dir")" || return 1
    python3 -m venv "$dir" >&2 || return 1
    "$dir/bin/python" -m pip install -q -r training/requirements.txt >&2 || return 1
    touch "$dir/.complete"
  fi
  echo "$dir/bin/python"
}

# Fashion-MNIST for the training tests and the GPU kit: Debian's dataset-fashion-mnist (IDX files in
# /usr/share/datasets/fashion-mnist/), installed when missing.
training_data() {
  [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && return 0
  local sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
  echo "training: apt-get install dataset-fashion-mnist" >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q dataset-fashion-mnist >&2 \
    || { $sudo apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q dataset-fashion-mnist >&2; }
}
