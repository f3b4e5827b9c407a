"""The pinned wheels that the offline GPU machine needs for training/: diffusers and its whole dependency
closure (from this project's training virtualenv, so the versions are the tested ones), less what that
machine has installed (Python 3.12, torch 2.11 and its dependencies, accelerate, safetensors, numpy, onnx,
onnxruntime, pillow, matplotlib, tqdm, scipy; shared/ENVIRONMENT.md). Prints name==version, one a line.

    python3 scripts/gpu/wheels.py          # run with the training venv's python (prepare.sh does)
"""

from __future__ import annotations

import importlib.metadata as md

from packaging.requirements import Requirement

# Installed on the GPU machine: not carried (install_wheels.py carries diffusers' other dependencies and
# unpacks them only where missing there).
MACHINE_HAS = {"numpy", "pillow", "safetensors", "tqdm", "torch", "accelerate", "onnx", "onnxruntime",
               "matplotlib", "scipy"}
# Not needed offline: huggingface_hub's Xet download backend (4.3 MB; the kit's size is tight). diffusers,
# accelerate and the training scripts import without it (training/tests checks that).
NOT_NEEDED = {"hf-xet"}
ROOTS = ("diffusers",)


def norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def closure(roots=ROOTS) -> dict[str, str]:
    env = {"python_version": "3.12", "python_full_version": "3.12.0", "sys_platform": "linux",
           "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
           "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}
    seen: dict[str, str] = {}

    def visit(name: str) -> None:
        key = norm(name)
        if key in seen or key in MACHINE_HAS or key in NOT_NEEDED:
            return
        dist = md.distribution(name)
        seen[key] = dist.version
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate(env):
                visit(req.name)

    for r in roots:
        visit(r)
    return dict(sorted(seen.items()))


if __name__ == "__main__":
    for name, version in closure().items():
        print(f"{name}=={version}")
