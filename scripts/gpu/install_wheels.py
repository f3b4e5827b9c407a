"""Makes the kit's wheels importable on the offline GPU machine, without pip's resolver or network.

    python3 scripts/gpu/install_wheels.py WHEEL_DIR TARGET      # then PYTHONPATH=TARGET (run.sh does both)

Each wheel whose distribution the machine lacks is unpacked into TARGET (diffusers and huggingface_hub
always, at the versions this project tests); then `import diffusers` is tried in a child with TARGET first
on the path. If that fails (a package there too old, say), every carried wheel is unpacked and it is tried
again. Wheels are zip files: unpacking one is what pip's install --target does, less the scripts.
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
CHECK = "import diffusers; from diffusers import UNet2DModel, DDPMScheduler; from diffusers.training_utils import EMAModel"


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
    target.mkdir(parents=True, exist_ok=True)
    wheels = sorted(wheel_dir.glob("*.whl"))
    if not wheels:
        sys.exit(f"install_wheels: no wheels in {wheel_dir}")
    need = [w for w in wheels if dist_name(w) in ALWAYS or not have(dist_name(w))]
    for w in need:
        unpack(w, target)
    ok, err = works(target)
    print(f"install_wheels: unpacked {len(need)} of {len(wheels)} wheels into {target} "
          f"({', '.join(dist_name(w) for w in need)}); import diffusers: {'ok' if ok else 'failed'}", flush=True)
    if not ok:
        for w in wheels:
            unpack(w, target)
        ok, err = works(target)
        print(f"install_wheels: all {len(wheels)} wheels unpacked; import diffusers: {'ok' if ok else 'failed'}")
    if not ok:
        sys.exit(f"install_wheels: diffusers does not import with the carried wheels:\n{err}")


if __name__ == "__main__":
    main()
