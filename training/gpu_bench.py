"""Speed of the shipped network on one machine: the project's engine (`ddpm bench`, WGSL through Vulkan) and
PyTorch (diffusers' UNet2DModel from the same config and weights), plus the training throughput that
scripts/gpu/run.sh uses to pick the batch and precision of its run. Called by training/gpu_run.py; each part
also runs alone:

    python3 training/gpu_bench.py engine --ddpm target/release/ddpm --batches 1,16,64,256 --out engine.json
    python3 training/gpu_bench.py torch  --batches 1,16,64,256 --out torch.json [--compile-seconds 120]
    python3 training/gpu_bench.py probe  --batches 64,128,256,512 --seconds 45 --out probe.json

engine  `ddpm info`, then `ddpm bench --batch N --steps K --precision P` for each batch and P in f32, f16. A
        result whose device_type is "Cpu" is refused as a GPU figure (unless --allow-cpu, the dry run): the
        loader is retried with VK_DRIVER_FILES pointing at each nvidia_icd.json found on the machine first.
torch   one sampler step (U-Net pass + the Algorithm 2 update, as `ddpm bench` times it) per timed
        iteration, GPU-synchronised (torch.cuda.synchronize before reading the clock), eager in f32 with torch's
        defaults (TF32 convolutions on CUDA), f32 with TF32 off ("f32_strict", the engine's arithmetic), bf16
        and fp16 (weights and activations cast, as the engine's f16); then torch.compile (modes
        reduce-overhead, i.e. CUDA graphs, and default), batch 64 first, in a child process stopped after
        --compile-seconds, keeping the rows it finished.
probe   Algorithm 1 steps as train.py takes them (autocast, fp16 loss scaling, gradient clipping, Adam, EMA) at
        each batch and precision ("no", "bf16", "fp16"), images/s, within --seconds.

Every row carries the figures it needs on its own: batch, steps, ms per step, images/s, GFLOP/s (from the
network's FLOPs per pass, model.flops_per_image).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_MODEL = REPO / "www" / "models" / "fashion-mnist"

# Datasheet peaks (dense, no sparsity) of the GPUs this kit targets, TFLOP/s: NVIDIA H100 SXM and H200 (same
# compute). Used only to state a fraction of peak; a GPU not listed gets none.
PEAK_TFLOPS = {
    "H100": {"f32": 67.0, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4},
    "H200": {"f32": 67.0, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4},
}


def peak_for(name: str) -> dict | None:
    for key, peaks in PEAK_TFLOPS.items():
        if key in (name or ""):
            return {"source": f"NVIDIA datasheet, {key} SXM, dense", **peaks}
    return None


def write_json(path: Path | None, obj: dict) -> None:
    """Atomically (re)writes a part's results, so a part stopped at its time limit keeps the rows it finished."""
    if path is None:
        return
    tmp = Path(str(path) + ".part")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


# --- the engine -------------------------------------------------------------------------------------------

def nvidia_icds() -> list[str]:
    """NVIDIA's Vulkan ICD manifests where drivers mounted into a container usually put them."""
    found = []
    for pattern in ("/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd*.json", "/usr/share/vulkan/icd.d/nvidia_icd*.json",
                    "/etc/vulkan/icd.d/nvidia_icd*.json", "/usr/local/share/vulkan/icd.d/nvidia_icd*.json",
                    "/usr/local/nvidia/**/nvidia_icd*.json"):
        for path in sorted(glob.glob(pattern, recursive=True)):
            if path not in found:
                found.append(path)
    return found


def run_ddpm(ddpm: str, args: list[str], env: dict, timeout: float) -> dict:
    t0 = time.time()
    try:
        out = subprocess.run([ddpm, *args], capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s", "seconds": round(time.time() - t0, 1)}
    except OSError as e:
        return {"error": f"could not start {ddpm}: {e}"}
    res = {"exit": out.returncode, "seconds": round(time.time() - t0, 1)}
    if out.returncode != 0:
        lines = [l for l in out.stderr.strip().splitlines() if l.strip() and "XDG_RUNTIME_DIR" not in l]
        res["error"] = " | ".join(lines)[:800] or "(no message)"
        return res
    res["stdout"] = out.stdout
    return res


def parse_bench(stdout: str) -> dict:
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON object on stdout")


def engine(ddpm: str, model: Path, batches: list[int], precisions: list[str], steps: int, allow_cpu: bool,
           timeout: float, out: Path | None = None, families: list[str] = (), info_batch: int = 16) -> dict:
    base_env = dict(os.environ)
    result: dict = {"ddpm": ddpm, "model": str(model), "rows": [], "refused": [], "env": {}}

    def info(env: dict) -> str:
        # `ddpm info --batch B` also times the kernel families at batch B; older builds take no --batch.
        r = run_ddpm(ddpm, ["info", "--model", str(model), "--batch", str(info_batch)], env, timeout)
        if "--batch" in str(r.get("error", "")):
            r = run_ddpm(ddpm, ["info", "--model", str(model)], env, timeout)
        return r.get("stdout", r.get("error"))

    result["info"] = info(base_env)

    def bench(batch: int, precision: str | None, env: dict, kernels: str | None = None) -> dict:
        argv = ["bench", "--model", str(model), "--batch", str(batch), "--steps", str(steps)]
        if precision:
            argv += ["--precision", precision]
        if kernels:
            argv += ["--kernels", kernels]
        asked = {"precision_asked": precision, "kernels_asked": kernels}
        r = run_ddpm(ddpm, argv, env, timeout)
        if "error" in r:
            return {"batch": batch, **asked, "error": r["error"]}
        try:
            row = parse_bench(r["stdout"])
        except ValueError as e:
            return {"batch": batch, **asked, "error": f"{e}: {r['stdout'][-300:]!r}"}
        return {**asked, **row, "seconds": r["seconds"]}

    # Find an environment whose adapter is not the CPU: as it is, then each NVIDIA ICD in turn.
    env, first = base_env, bench(batches[0], precisions[0], base_env)
    # A `ddpm` without --precision (older builds) runs each batch once, at its own default precision.
    if "--precision" in str(first.get("error", "")):
        result["precision_flag"] = "not supported by this ddpm: each batch at its default precision"
        precisions = [None]
        first = bench(batches[0], None, env)
    tried = [{"VK_DRIVER_FILES": base_env.get("VK_DRIVER_FILES"), "device_type": first.get("device_type"),
              "adapter": first.get("adapter"), "error": first.get("error")}]
    if not allow_cpu and first.get("device_type") in ("Cpu", None):
        for icd in nvidia_icds():
            trial = dict(base_env, VK_DRIVER_FILES=icd)
            row = bench(batches[0], precisions[0], trial)
            tried.append({"VK_DRIVER_FILES": icd, "device_type": row.get("device_type"), "adapter": row.get("adapter"),
                          "error": row.get("error")})
            if row.get("device_type") not in ("Cpu", None):
                env, first = trial, row
                break
    result["adapter_search"] = tried
    if env is not base_env:
        result["env"]["VK_DRIVER_FILES"] = env["VK_DRIVER_FILES"]
        result["info"] = info(env)

    def keep(row: dict) -> None:
        if row.get("device_type") == "Cpu" and not allow_cpu:
            result["refused"].append({**row, "why": "a CPU adapter is not the GPU"})
        else:
            result["rows"].append(row)
        write_json(out, result)

    keep(first)
    if result["refused"]:
        result["stopped"] = "no GPU adapter: the other batches were not run"
        write_json(out, result)
        return result
    for batch in batches:
        for precision in precisions:
            if (batch, precision) == (batches[0], precisions[0]):
                continue
            keep(bench(batch, precision, env))
    # Each kernel family by name at batch 64 (the rows above use `auto`, the fastest, as the page does).
    family_batch = 64 if 64 in batches else batches[-1]
    for fam in families:
        row = bench(family_batch, None, env, kernels=fam)
        if "--kernels" in str(row.get("error", "")):
            result["kernels_flag"] = "not supported by this ddpm"
            break
        keep(row)
    return result


# --- PyTorch ----------------------------------------------------------------------------------------------

def torch_setup(device: str):
    import torch

    torch.backends.cudnn.benchmark = True
    return torch.device(device if device != "auto" else "cuda" if torch.cuda.is_available() else "cpu")


def load_unet(model: Path, dtype, dev):
    from diffusers import UNet2DModel

    kw = {} if dtype is None else {"torch_dtype": dtype}
    return UNet2DModel.from_pretrained(model, **kw).to(dev).eval()


def sync(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def time_sampler_steps(fwd, dev, dtype, batch: int, steps: int, warmup: int, mark_step: bool = False) -> float:
    """Seconds per step of x <- (x - c1 eps_theta(x, t)) / sqrt(alpha) + sigma z, the Algorithm 2 update, with
    a fresh timestep tensor each step (as the sampler), GPU-synchronised."""
    import torch

    x = torch.randn(batch, 1, 28, 28, device=dev, dtype=dtype)

    def step(k: int):
        nonlocal x
        if mark_step:
            torch.compiler.cudagraph_mark_step_begin()
        t = torch.full((batch,), 999 - (k % 1000), device=dev, dtype=torch.long)
        eps = fwd(x, t).sample
        x = (x - 0.01 * eps) * 1.0001 + 0.01 * torch.randn_like(x)

    with torch.inference_mode():
        for k in range(warmup):
            step(k)
        sync(dev)
        t0 = time.perf_counter()
        for k in range(steps):
            step(warmup + k)
        sync(dev)
        return (time.perf_counter() - t0) / steps


PRECISIONS = {"f32": "float32", "f32_strict": "float32", "bf16": "bfloat16", "fp16": "float16"}


def set_tf32(precision: str) -> None:
    import torch

    # torch's defaults: TF32 on for cuDNN convolutions, off for matmuls. f32_strict turns both off.
    torch.backends.cudnn.allow_tf32 = precision != "f32_strict"
    torch.backends.cuda.matmul.allow_tf32 = False


def torch_row(model: Path, dev, precision: str, batch: int, steps: int, warmup: int, gflop: float,
              compile_mode: str | None = None) -> dict:
    import torch

    row = {"batch": batch, "precision": precision, "mode": f"compile:{compile_mode}" if compile_mode else "eager"}
    try:
        set_tf32(precision)
        unet = load_unet(model, getattr(torch, PRECISIONS[precision]), dev)
        fwd = torch.compile(unet, mode=compile_mode, dynamic=False) if compile_mode else unet
        t_compile = time.time()
        s = time_sampler_steps(fwd, dev, getattr(torch, PRECISIONS[precision]), batch, steps, warmup,
                               mark_step=compile_mode == "reduce-overhead" and dev.type == "cuda")
        row.update(steps=steps, ms_per_step=1e3 * s, images_per_s=batch / s, gflops_per_s=gflop * batch / s,
                   wall_seconds=round(time.time() - t_compile, 1))
    except Exception as e:  # a precision or mode this device lacks is a row with an error, not a failed run
        row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
    return row


def torch_env(dev) -> dict:
    import torch

    env = {"torch": torch.__version__, "device": str(dev), "cudnn_benchmark": True,
           "timing": "wall clock around torch.cuda.synchronize(); one sampler step = U-Net pass + Algorithm 2 update"}
    try:
        import diffusers

        env["diffusers"] = diffusers.__version__
    except ImportError:
        pass
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(dev)
        env.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1), cuda=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version(), sm_count=p.multi_processor_count)
        env["peak_tflops"] = peak_for(p.name)
    else:
        env["cpu_threads"] = torch.get_num_threads()
    return env


def network_gflop(model: Path) -> float:
    sys.path.insert(0, str(HERE))
    import model as model_def

    return model_def.flops_per_image(load_unet(model, None, "cpu").float()) / 1e9


def torch_part(args) -> dict:
    dev = torch_setup(args.device)
    gflop = network_gflop(args.model)
    out = {"env": torch_env(dev), "gflop_per_pass": gflop, "rows": [], "compile_rows": []}
    precisions = args.precisions.split(",")
    for precision in precisions:
        for batch in ints(args.batches):
            out["rows"].append(torch_row(args.model, dev, precision, batch, args.steps, args.warmup, gflop))
            print(json.dumps(out["rows"][-1]), flush=True)
            write_json(args.out, out)
    if args.deadline:  # the cap shrinks to what the eager rows left before the deadline
        args.compile_seconds = min(args.compile_seconds, args.deadline - time.time() - 3)
    if args.compile_seconds > 0:
        out["compile"] = compile_in_child(args, gflop)
        out["compile_rows"] = out["compile"].pop("rows")
    else:
        out["compile"] = {"status": "not run: no time left for it"}
    return out


def compile_plan(batches: list[int], precisions: list[str], modes: list[str]) -> list[tuple[str, str, int]]:
    """Which torch.compile rows to try, most wanted first: batch 64 (the target's batch) in every mode and
    precision, then the other batches. Each (batch, mode) compiles anew (dynamic=False)."""
    first = [b for b in batches if b == 64] or batches[:1]
    rest = [b for b in batches if b not in first]
    return [(m, p, b) for b in first + rest for m in modes for p in precisions]


def compile_in_child(args, gflop: float) -> dict:
    """torch.compile rows in a child process, stopped after --compile-seconds; the rows finished by then are
    kept (the child prints one JSON line per row)."""
    cmd = [sys.executable, __file__, "compile-rows", "--model", str(args.model), "--device", args.device,
           "--batches", args.batches, "--precisions", args.compile_precisions, "--modes", args.compile_modes,
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--gflop", str(gflop)]
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=args.compile_seconds)
        status = f"finished (exit {proc.returncode})"
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        status = f"stopped at the {args.compile_seconds:.0f} s cap"
    rows = []
    for line in stdout.splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            pass
    res = {"status": status, "seconds": round(time.time() - t0, 1), "cap_seconds": args.compile_seconds, "rows": rows}
    if proc.returncode not in (0, None) and stderr.strip() and "stopped" not in status:
        res["stderr_tail"] = stderr.strip()[-1500:]
    return res


def compile_rows(args) -> None:
    dev = torch_setup(args.device)
    plan = compile_plan(ints(args.batches), args.precisions.split(","), args.modes.split(","))
    for mode, precision, batch in plan:
        if mode == "reduce-overhead" and dev.type != "cuda":
            continue  # CUDA graphs only
        row = torch_row(args.model, dev, precision, batch, args.steps, args.warmup, args.gflop, compile_mode=mode)
        print(json.dumps(row), flush=True)


# --- training throughput ----------------------------------------------------------------------------------

def probe_part(args) -> dict:
    import torch
    import torch.nn.functional as F
    from diffusers.training_utils import EMAModel

    sys.path.insert(0, str(HERE))
    import model as model_def

    dev = torch_setup(args.device)
    torch.backends.cudnn.allow_tf32 = True  # torch's default, as train.py runs
    abar = model_def.make_scheduler().alphas_cumprod.float().to(dev)
    rows, t_end = [], time.time() + args.seconds
    res = {"env": torch_env(dev), "rows": rows, "best": None,
           "step": "Algorithm 1 as train.py: autocast, fp16 loss scaling, clip 1.0, Adam, EMA (foreach on CUDA)"}
    plan = [(p, b) for p in args.precisions.split(",") for b in ints(args.batches)]
    for precision, batch in plan:
        if time.time() > t_end:
            rows.append({"precision": precision, "batch": batch, "error": "not run: --seconds spent"})
            continue
        row = {"precision": precision, "batch": batch}
        try:
            torch.manual_seed(0)
            unet = model_def.make_unet().to(dev).train()
            opt = torch.optim.Adam(unet.parameters(), lr=2e-4)
            ema = EMAModel(unet.parameters(), decay=0.9995, use_ema_warmup=True, power=2 / 3,
                           foreach=dev.type == "cuda")
            dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
            scaler = torch.amp.GradScaler(dev.type, enabled=precision == "fp16")
            x_all = torch.rand(4096, 1, 28, 28, device=dev) * 2 - 1

            def step():
                idx = torch.randint(0, len(x_all), (batch,), device=dev)
                x0 = x_all[idx]
                t = torch.randint(0, 1000, (batch,), device=dev)
                eps = torch.randn_like(x0)
                a = abar[t].view(-1, 1, 1, 1)
                with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
                    pred = unet(a.sqrt() * x0 + (1 - a).sqrt() * eps, t).sample
                loss = F.mse_loss(pred.float(), eps)
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
                scaler.step(opt)
                scaler.update()
                opt.zero_grad(set_to_none=True)
                ema.step(unet.parameters())
                return loss.detach()

            for _ in range(args.warmup):
                step()
            sync(dev)
            t0, n = time.perf_counter(), 0
            budget = max(0.5, min(args.per_setting_seconds, t_end - time.time()))
            while n < args.min_steps or (time.perf_counter() - t0 < budget and n < args.max_steps):
                step()
                n += 1
                if n % 10 == 0:
                    sync(dev)
            sync(dev)
            s = (time.perf_counter() - t0) / n
            row.update(steps=n, ms_per_step=1e3 * s, images_per_s=batch / s)
        except Exception as e:
            row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
        rows.append(row)
        print(json.dumps(row), flush=True)
        ok = [r for r in rows if "images_per_s" in r]
        res["best"] = max(ok, key=lambda r: r["images_per_s"]) if ok else None
        write_json(args.out, res)
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="part", required=True)
    e = sub.add_parser("engine")
    e.add_argument("--ddpm", required=True)
    e.add_argument("--precisions", default="f32,f16")
    e.add_argument("--allow-cpu", action="store_true", help="the dry run: report a CPU adapter (lavapipe)")
    e.add_argument("--timeout", type=float, default=90, help="seconds per ddpm command")
    e.add_argument("--families", default="blocked,tiled,fused", help="kernel families benchmarked by name at "
                   "batch 64 besides auto ('' for none)")
    e.add_argument("--info-batch", type=int, default=16, help="batch at which `ddpm info` times the families")
    t = sub.add_parser("torch")
    t.add_argument("--precisions", default="f32,f32_strict,bf16,fp16")
    t.add_argument("--compile-seconds", type=float, default=0, help="cap on all torch.compile rows; 0: none")
    t.add_argument("--compile-precisions", default="f32,bf16")
    t.add_argument("--compile-modes", default="reduce-overhead,default")
    t.add_argument("--deadline", type=float, help="epoch seconds by which the part must end (caps the compile rows)")
    c = sub.add_parser("compile-rows")  # the child of torch --compile-seconds
    c.add_argument("--precisions", default="f32")
    c.add_argument("--modes", default="default")
    c.add_argument("--gflop", type=float, required=True)
    r = sub.add_parser("probe")
    r.add_argument("--precisions", default="bf16,fp16,no")
    r.add_argument("--seconds", type=float, default=45, help="for all settings together")
    r.add_argument("--per-setting-seconds", type=float, default=3)
    r.add_argument("--min-steps", type=int, default=2)
    r.add_argument("--max-steps", type=int, default=10**6)
    for q in (e, t, c, r):
        q.add_argument("--model", type=Path, default=DEFAULT_MODEL)
        q.add_argument("--batches", default="1,16,64,256" if q is not r else "64,128,256,512")
        q.add_argument("--steps", type=int, default=30, help="timed steps per row")
        q.add_argument("--warmup", type=int, default=3)
        q.add_argument("--device", default="auto")
        q.add_argument("--out", type=Path)
    args = p.parse_args()
    if args.part == "compile-rows":
        compile_rows(args)
        return
    t0 = time.time()
    if args.part == "engine":
        res = engine(args.ddpm, args.model, ints(args.batches), args.precisions.split(","), args.steps,
                     args.allow_cpu, args.timeout, args.out, [f for f in args.families.split(",") if f],
                     args.info_batch)
    elif args.part == "torch":
        res = torch_part(args)
    else:
        res = probe_part(args)
    res["seconds"] = round(time.time() - t0, 1)
    res["command"] = " ".join(["python3", *sys.argv])
    if args.out:
        write_json(args.out, res)
    else:
        print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
