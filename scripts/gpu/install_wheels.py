"""Makes the kit's wheels importable on the offline GPU machine, without pip's resolver or network.

    python3 scripts/gpu/install_wheels.py WHEEL_DIR TARGET      # then PYTHONPATH=TARGET (run.sh does both)

Each wheel whose distribution the machine lacks is unpacked into TARGET (diffusers and huggingface_hub
always, at the versions this project tests); then diffusers and accelerate are imported in a child with
TARGET first on the path. If that fails, the machine's own huggingface_hub is tried instead of ours (its
accelerate may want it), then every carried wheel. Wheels are zip files: unpacking one is what pip's
install --target does, less the scripts.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ALWAYS = {"diffusers", "huggingface-hub"}
CHECK = ("import diffusers, accelerate; from diffusers import UNet2DModel, DDPMScheduler; "
         "from diffusers.training_utils import EMAModel; from accelerate import Accelerator")


def dist_name(wheel: Path) -> str:
    return wheel.name.split("-")[0].lower().replace("_", "-").replace(".", "-")


def have(name: str) -> bool:
    try:
        md.version(name)
        return True
    except md.PackageNotFoundError:
        return False


def unpack(wheel: Path, target: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        z.extractall(target)
    # A wheel's NAME.data/{purelib,platlib} belong on the path itself.
    for data in target.glob("*.data"):
        for sub in ("purelib", "platlib"):
            if (data / sub).is_dir():
                shutil.copytree(data / sub, target, dirs_exist_ok=True)
        shutil.rmtree(data)


def works(target: Path) -> tuple[bool, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(target), *filter(None, [os.environ.get("PYTHONPATH")])]))
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, env=env)
    return out.returncode == 0, out.stderr.strip()[-1500:]


def main() -> None:
    wheel_dir, target = Path(sys.argv[1]), Path(sys.argv[2])
    wheels = sorted(wheel_dir.glob("*.whl"))
    if not wheels:
        sys.exit(f"install_wheels: no wheels in {wheel_dir}")
    missing = [w for w in wheels if not have(dist_name(w))]
    tries = [
        ("missing ones, with our diffusers and huggingface_hub", [w for w in wheels if dist_name(w) in ALWAYS or w in missing]),
        ("missing ones, with our diffusers and the machine's huggingface_hub",
         [w for w in wheels if dist_name(w) == "diffusers" or w in missing]),
        ("all of them", wheels),
    ]
    err = ""
    for what, chosen in tries:
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for w in chosen:
            unpack(w, target)
        ok, err = works(target)
        print(f"install_wheels: {len(chosen)} of {len(wheels)} wheels ({what}: "
              f"{', '.join(dist_name(w) for w in chosen)}) into {target}; import diffusers, accelerate: "
              f"{'ok' if ok else 'failed'}", flush=True)
        if ok:
            return
    sys.exit(f"install_wheels: diffusers or accelerate does not import with the carried wheels:\n{err}")


if __name__ == "__main__":
    main()
