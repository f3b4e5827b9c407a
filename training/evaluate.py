"""How good the shipped model is. Each part can run alone (--what), and every figure goes to --out with the
command line that produced it.

    python3 training/evaluate.py --model www/models/fashion-mnist --what fd,full,nll,nn --out training/eval.json

  fd    N samples from a respaced sampler (--steps); Fréchet distance (FD) between the project classifier's
        penultimate features of the samples and of N test images, next to the floor: FD between N training
        images and the same test images (FD is biased by N, so only same-N figures compare); the classifier's
        class histogram of the samples and exp(E KL(p(y|x) || p(y))), an Inception-Score-like figure; and
        diagnostics: the FD's mean term, the FD of the samples rounded to 8 bits, and the FD that the
        samples' class mix alone would give (see diagnostics()).
  full  the same FD with the paper's full 1000-step Algorithm 2 on --full-n samples, against the floor at that N.
  nll   the variational bound L_T + sum_{t>1} L_{t-1} + L_0 in bits/dim on --nll-n test images, all T terms,
        with the discretised Gaussian decoder for L_0 (paper section 3.3, as the official code computes it);
        mean and standard error across images. Reverse-process variance: sigma^2 = beta_t ("large", with
        beta-tilde_1 at t = 1 as the official code) and beta-tilde_t ("small"), both from the same passes;
        x0 predictions clipped to [-1, 1] as the official code's calc_bpd_loop does.
  nn    nearest training image (L2 in pixels) of 64 samples, against the test-to-train nearest distances;
        a PNG of samples beside their nearest neighbours.
  samplers  the page's samplers side by side (--samplers, default all seven) at the same --steps noise
        levels: --samplers-n samples each and the same FD figures as fd. Each sampler's passes and
        coefficients come from the engine itself (`ddpm program`, training/samplers.py runs them; its test
        checks the runner against `ddpm sample` on the same noise), so the table describes the page's samplers.
Everything runs on --device (a GPU when torch sees one); the noise is drawn on the CPU either way.
Samples use diffusers' DDPMScheduler (clip) on the model in float32: the same maths as the page, which
tests/golden.rs checks against diffusers. --sampler picks the respaced sampler of the fd and nn parts:
fixed_small and fixed_large are Algorithm 2 with sigma^2 = beta-tilde or the respaced beta (1 - abar_t /
abar_prev); ddim is DDIM (eta = 0), for comparison only, as the page runs Algorithm 2. The full 1000-step run
always uses the scheduler's own (fixed_small).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel
from tqdm import tqdm

import classifier
import data
import model as model_def
import samplers as engine_samplers

HERE = Path(__file__).parent


# --what names and the keys of their results in eval.json.
PARTS = {"fd": "fd_respaced", "full": "fd_full_1000_steps", "nll": "nll_bits_per_dim", "nn": "nearest_neighbour",
         "samplers": "samplers"}


def device_of(module) -> torch.device:
    """Where a network's weights live (the CPU for stand-ins without any, such as the tests' oracle)."""
    params = getattr(module, "parameters", None)
    first = next(iter(params()), None) if params else None
    return first.device if first is not None else torch.device("cpu")


def sample(unet, sched: DDPMScheduler, n: int, steps: int, seed: int, batch: int, keep_every: int = 0):
    """n samples in [-1, 1]; with keep_every, also the first sample's x_t every keep_every steps. The noise is
    drawn on the CPU whatever the model's device, so a GPU run draws the same x_T and z as a CPU run."""
    dev = device_of(unet)
    sched.set_timesteps(steps)
    g = torch.Generator().manual_seed(seed)
    out, traj = [], []
    bar = tqdm(total=n * steps, desc=f"sampling {n} x {steps} steps", unit="img-step", mininterval=10)
    for start in range(0, n, batch):
        b = min(batch, n - start)
        x = torch.randn(b, unet.config.in_channels, unet.config.sample_size, unet.config.sample_size, generator=g).to(dev)
        for k, t in enumerate(sched.timesteps):
            if keep_every and start == 0 and k % keep_every == 0:
                traj.append((int(t) + 1, x[0].cpu()))
            with torch.no_grad():
                eps = unet(x, t).sample
            x = sched.step(eps, t, x, generator=g).prev_sample
            bar.update(b)
        if keep_every and start == 0:
            traj.append((0, x[0].cpu()))
        out.append(x.clamp(-1, 1).cpu())
    bar.close()
    return torch.cat(out).numpy(), traj


def sample_program(unet, prog: dict, n: int, seed: int, batch: int) -> np.ndarray:
    """n samples in [-1, 1] from an engine program (training/samplers.py), noise from a CPU torch generator."""
    dev = device_of(unet)
    g = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, n, batch):
        b = min(batch, n - start)
        z = torch.randn(b, unet.config.in_channels, unet.config.sample_size, unet.config.sample_size, generator=g)
        out.append(engine_samplers.run(unet, prog, z.to(dev), engine_samplers.torch_noise(g)).clamp(-1, 1).cpu())
    return torch.cat(out).numpy()


_FEATURES: dict = {}


def features(net, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Penultimate features and class probabilities; the test and training sets' are computed once per run
    (the samplers part scores seven sample sets against the same references)."""
    if len(x) < 10_000:
        return _features(net, x)
    key = (id(net), id(x), len(x))
    if key not in _FEATURES:
        _FEATURES[key] = _features(net, x)
    return _FEATURES[key]


@torch.no_grad()
def _features(net, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Penultimate features and class probabilities."""
    dev = device_of(net)
    feats, probs = [], []
    for i in range(0, len(x), 500):
        xb = torch.from_numpy(x[i : i + 500]).float().to(dev)
        f = net.features(xb)
        feats.append(f.cpu().numpy())
        probs.append(torch.softmax(net.head(f), 1).cpu().numpy())
    return np.concatenate(feats).astype(np.float64), np.concatenate(probs)


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(Sa + Sb - 2 (Sa Sb)^1/2); the trace of the root from the eigenvalues of Sa Sb."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    eig = np.linalg.eigvals(sa @ sb)
    root_trace = np.sqrt(np.clip(eig.real, 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(sa) + np.trace(sb) - 2 * root_trace)


def quality(net, samples: np.ndarray, test_x: np.ndarray, train_x: np.ndarray, seed: int) -> dict:
    n = len(samples)
    rng = np.random.default_rng(seed)
    test_idx = rng.choice(len(test_x), n, replace=False)
    train_idx = rng.choice(len(train_x), n, replace=False)
    fs, ps = features(net, samples)
    ft_all, pt_all = features(net, test_x)
    ft = ft_all[test_idx]
    fr_all, _ = features(net, train_x)
    fr = fr_all[train_idx]
    hist = np.bincount(ps.argmax(1), minlength=10)
    py = ps.mean(0, keepdims=True)
    is_like = float(np.exp((ps * (np.log(ps + 1e-12) - np.log(py + 1e-12))).sum(1).mean()))
    return {
        "n": n,
        "fd_samples_vs_test": frechet(fs, ft),
        "fd_floor_train_vs_test": frechet(fr, ft),
        "fd_floor_spread": floor_spread(fr_all, ft_all, n, np.random.default_rng([seed, 1])),
        "diagnostics": {
            **diagnostics(fs, ft, hist, ft_all, pt_all.argmax(1), test_idx, rng),
            # The test images are 8-bit and the page shows 8-bit pixels; common FID pipelines score saved PNGs.
            "fd_samples_quantised_8bit": frechet(features(net, data.to_model_range(data.to_u8(samples[:, 0])))[0], ft),
        },
        "class_histogram": {data.CLASSES[i]: int(h) for i, h in enumerate(hist)},
        "all_classes_present": bool((hist > 0).all()),
        "inception_score_like": is_like,
    }


def floor_spread(fr_all: np.ndarray, ft_all: np.ndarray, n: int, rng, draws: int = 20) -> dict:
    """The floor is one draw of N training and N test images; this is how much it moves between fresh draws
    (eval.json, 2026-11-26: from 0.33 to 0.76 at N = 2,000), so a ratio to one draw is read with that in mind."""
    v = np.array([frechet(fr_all[rng.choice(len(fr_all), n, replace=False)],
                          ft_all[rng.choice(len(ft_all), n, replace=False)]) for _ in range(draws)])
    return {"draws": draws, "mean": float(v.mean()), "sd": float(v.std(ddof=1)), "min": float(v.min()),
            "max": float(v.max())}


def diagnostics(fs, ft, hist, ft_all, pred_all, test_idx, rng) -> dict:
    """Where the FD comes from, to steer training rather than to grade it.

    mean_term: the ||mu_s - mu_t||^2 part of the FD (the rest is the covariance part).
    class_mix_only: FD of real test images, drawn from outside the compared test subset with the samples'
    class proportions (by the classifier's own labels), against that subset: the FD a perfect model with the
    samples' class mix would get at this N. Set next to the floor, it says how much of the gap is the mix.
    """
    pool = np.setdiff1d(np.arange(len(ft_all)), test_idx)
    drawn = []
    for c, k in enumerate(hist):
        if k == 0:
            continue
        members = pool[pred_all[pool] == c]
        drawn.append(rng.choice(members, int(k), replace=int(k) > len(members)))
    drawn = np.concatenate(drawn)
    return {
        "mean_term": float(((fs.mean(0) - ft.mean(0)) ** 2).sum()),
        "class_mix_only": frechet(ft_all[drawn], ft),
    }


# --- the variational bound (Ho et al. 2020, eq. 5; the official code's diffusion_utils_2.py) ---

def normal_kl(mean1, logvar1, mean2, logvar2):
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def approx_std_normal_cdf(x):
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def discretized_gaussian_log_likelihood(x, means, log_scales):
    """log p(x) for data on 256 bins of [-1, 1] under N(means, exp(log_scales)^2), edges to +-infinity."""
    centered = x - means
    inv_std = torch.exp(-log_scales)
    cdf_plus = approx_std_normal_cdf(inv_std * (centered + 1.0 / 255.0))
    cdf_min = approx_std_normal_cdf(inv_std * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_delta))


def meanflat(x):
    return x.mean(dim=tuple(range(1, x.dim())))


@torch.no_grad()
def nll_bits_per_dim(unet, sched: DDPMScheduler, x0: torch.Tensor, seed: int) -> dict[str, np.ndarray]:
    """Per-image bound in bits/dim for both variance choices (one network pass per image and t)."""
    betas = sched.betas.double()
    # The products in float64 as the official code does: diffusers' float32 alphas_cumprod puts 1 - abar_1
    # about 1e-4 (relative) off beta_1, and the decoder's mean coefficient, beta_1 / (1 - abar_1), off 1.
    abar = torch.cumprod(1 - betas, 0)
    abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    post_var = betas * (1 - abar_prev) / (1 - abar)
    post_logvar = torch.log(torch.cat([post_var[1:2], post_var[1:]]))  # beta-tilde_1 at t = 1 (index 0)
    coef_x0 = betas * abar_prev.sqrt() / (1 - abar)
    coef_xt = (1 - abar_prev) * (1 - betas).sqrt() / (1 - abar)
    model_logvar = {"large": torch.log(torch.cat([post_var[1:2], betas[1:]])), "small": post_logvar}
    T = len(betas)
    dev = device_of(unet)
    g = torch.Generator().manual_seed(seed)
    x0 = x0.double()
    total = {k: torch.zeros(len(x0), dtype=torch.float64) for k in model_logvar}
    for t in tqdm(range(T - 1, -1, -1), desc=f"bound over {T} terms, {len(x0)} images", mininterval=10):
        noise = torch.randn(x0.shape, generator=g, dtype=torch.float64)
        xt = abar[t].sqrt() * x0 + (1 - abar[t]).sqrt() * noise
        eps = unet(xt.float().to(dev), torch.full((len(x0),), t, device=dev)).sample.double().cpu()
        pred_x0 = ((xt - (1 - abar[t]).sqrt() * eps) / abar[t].sqrt()).clamp(-1, 1)
        model_mean = coef_x0[t] * pred_x0 + coef_xt[t] * xt
        true_mean = coef_x0[t] * x0 + coef_xt[t] * xt
        for k, lv in model_logvar.items():
            if t == 0:
                term = -meanflat(discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * lv[0])) / math.log(2)
            else:
                term = meanflat(normal_kl(true_mean, post_logvar[t], model_mean, lv[t])) / math.log(2)
            total[k] += term
    prior = meanflat(normal_kl(abar[-1].sqrt() * x0, torch.log(1 - abar[-1]), torch.zeros(()), torch.zeros((), dtype=torch.float64))) / math.log(2)
    return {k: (v + prior).numpy() for k, v in total.items()} | {"prior_L_T": prior.numpy()}


def save_grid(images: np.ndarray, path: Path, cols: int) -> None:
    from PIL import Image

    n, _, h, w = images.shape
    rows = math.ceil(n / cols)
    canvas = np.full((rows * (h + 2) + 2, cols * (w + 2) + 2), 255, np.uint8)
    for i, im in enumerate(data.to_u8(images[:, 0])):
        r, c = divmod(i, cols)
        canvas[2 + r * (h + 2) : 2 + r * (h + 2) + h, 2 + c * (w + 2) : 2 + c * (w + 2) + w] = im
    Image.fromarray(canvas).resize((canvas.shape[1] * 3, canvas.shape[0] * 3), Image.NEAREST).save(path)


def nearest(samples: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = torch.from_numpy(samples.reshape(len(samples), -1)).double()
    t = torch.from_numpy(train.reshape(len(train), -1)).double()
    d = torch.cdist(s, t)
    dist, idx = d.min(1)
    return dist.numpy(), idx.numpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=Path("www/models/fashion-mnist"))
    p.add_argument("--what", default="fd,full,nll,nn")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--full-n", type=int, default=256)
    p.add_argument("--nll-n", type=int, default=200)
    p.add_argument("--batch", type=int, default=250)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="auto", help="'cpu', 'cuda', ...; auto: a GPU when torch sees one")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sampler", choices=["fixed_small", "fixed_large", "ddim"], default="fixed_small",
                   help="the respaced sampler of the fd and nn parts (see above)")
    p.add_argument("--samplers", default="ddpm,ddim,euler,heun,sde,langevin,pc", help="the samplers part's list")
    p.add_argument("--samplers-n", type=int, default=1000, help="samples per sampler in the samplers part")
    p.add_argument("--out", type=Path, default=HERE / "eval.json")
    p.add_argument("--figures", type=Path, default=HERE, help="folder for the PNGs")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    what = set(args.what.split(","))

    device = torch.device(args.device if args.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu")
    unet = UNet2DModel.from_pretrained(args.model).float().eval().to(device)
    sched = DDPMScheduler.from_pretrained(args.model)
    if args.sampler == "ddim":
        respaced = DDIMScheduler.from_config(sched.config)
    else:
        respaced = DDPMScheduler.from_config(sched.config, variance_type=args.sampler)
    net = classifier.load().to(device)
    train_x = data.to_model_range(data.load("train")[0])
    test_x = data.to_model_range(data.load("test")[0])
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    results["model"] = {"path": str(args.model), "config_note": model_def.training_note(args.model) or None}
    results["device"] = str(device)  # what the "seconds" figure ran on
    cmd = " ".join(["python3"] + sys.argv)

    def timed(key: str, t_start: float) -> None:
        results[key]["seconds"] = round(time.time() - t_start)

    if "fd" in what:
        t0 = time.time()
        s, traj = sample(unet, respaced, args.n, args.steps, args.seed, args.batch, keep_every=max(1, args.steps // 10))
        results["fd_respaced"] = {"steps": args.steps, "sampler": args.sampler, **quality(net, s, test_x, train_x, args.seed), "command": cmd}
        save_grid(s[:64], args.figures / "samples_grid.png", 8)
        save_grid(np.stack([x.numpy() for _, x in traj]), args.figures / "trajectory.png", len(traj))
        results["trajectory_t"] = [t for t, _ in traj]
        timed("fd_respaced", t0)
    if "full" in what:
        t0 = time.time()
        s, _ = sample(unet, sched, args.full_n, sched.config.num_train_timesteps, args.seed + 1, args.batch)
        results["fd_full_1000_steps"] = {**quality(net, s, test_x, train_x, args.seed + 1), "command": cmd}
        timed("fd_full_1000_steps", t0)
    if "nll" in what:
        t0 = time.time()
        x0 = torch.from_numpy(test_x[: args.nll_n])
        bpd = nll_bits_per_dim(unet, sched, x0, args.seed)
        n = len(x0)
        results["nll_bits_per_dim"] = {
            "images": n,
            **{k: {"mean": float(v.mean()), "standard_error": float(v.std(ddof=1) / math.sqrt(n)) if n > 1 else None}
               for k, v in bpd.items()},
            "command": cmd,
        }
        timed("nll_bits_per_dim", t0)
    if "nn" in what:
        t0 = time.time()
        s, _ = sample(unet, respaced, 64, args.steps, args.seed + 2, 64)
        d_s, idx = nearest(s, train_x)
        d_t, _ = nearest(test_x[:64], train_x)
        results["nearest_neighbour"] = {
            "sample_to_train_l2": {"min": float(d_s.min()), "median": float(np.median(d_s))},
            "test_to_train_l2": {"min": float(d_t.min()), "median": float(np.median(d_t))},
            "command": cmd,
        }
        pairs = np.stack([np.stack([s[i], train_x[idx[i]]]) for i in range(16)]).reshape(32, *s.shape[1:])
        save_grid(pairs, args.figures / "nearest_neighbours.png", 8)
        timed("nearest_neighbour", t0)
    if "samplers" in what:
        t0 = time.time()
        table = {}
        for name in args.samplers.split(","):
            t1 = time.time()
            prog = engine_samplers.program(args.model, name, args.steps)
            s = sample_program(unet, prog, args.samplers_n, args.seed + 3, args.batch)
            q = quality(net, s, test_x, train_x, args.seed + 3)
            table[name] = {"passes": len(prog["passes"]), **q, "seconds": round(time.time() - t1)}
            save_grid(s[:16], args.figures / f"samplers_{name}.png", 8)
            print(f"{name:9s} {len(prog['passes']):4d} passes  FD {q['fd_samples_vs_test']:.3f} (floor {q['fd_floor_train_vs_test']:.3f})", flush=True)
        results["samplers"] = {"n": args.samplers_n, "steps": args.steps, "by_sampler": table, "command": cmd}
        timed("samplers", t0)
    # Each part keeps its own time, so re-running one part replaces its time instead of adding to the total.
    results["seconds"] = sum(results[k].get("seconds", 0) for k in PARTS.values() if k in results)
    args.out.write_text(json.dumps(results, indent=1))
    print(json.dumps({k: v for k, v in results.items() if k != "model"}, indent=1))


if __name__ == "__main__":
    main()
