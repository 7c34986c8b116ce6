"""VQ-VAE training steps per second (with and without bf16 autocast and torch.compile) and prior sampling
series per second, on the device `core.get_device("auto")` picks.

Usage: python benchmarks/bench_gpu.py [--quick] [--out benchmarks/gpu_check.md]
Without a CUDA device only the full-precision, uncompiled variant runs, on a small workload (--quick is implied).
"""

import argparse
import os
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from vqldm_nb.autoencoder import VQVAE, VQVAEConfig
from vqldm_nb.core import get_device, seed_everything
from vqldm_nb.data import Normalizer, load_ucr
from vqldm_nb.prior_ar import ARPriorConfig, TransformerPrior
from vqldm_nb.prior_maskgit import MaskGITPrior, MaskGITPriorConfig
from vqldm_nb.train import TrainConfig, train_vqvae

HERE = Path(__file__).resolve().parent


def train_rate(x: np.ndarray, device: torch.device, amp: str, compile_: bool, epochs: int, batch_size: int) -> dict:
    "Return steps/s and series/s over the epochs after the first (which holds compilation and warm-up)."
    seed_everything(0)
    model = VQVAE(VQVAEConfig(hidden=64, n_down=2, n_res=2, codebook_size=256, code_dim=64))
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=1e-3, device=str(device), progress=False, amp=amp, compile=compile_)
    start = time.perf_counter()
    history = train_vqvae(model, x, cfg)
    total = time.perf_counter() - start
    steps = -(-len(x) // batch_size)
    seconds = statistics.median(r["seconds"] for r in history[1:])
    return {"steps_per_s": steps / seconds, "series_per_s": len(x) / seconds, "first_epoch_s": history[0]["seconds"],
            "total_s": total, "recon_mse": history[-1]["recon_mse"]}


def sample_rate(device: torch.device, n: int, amp: bool) -> float:
    "Return series/s of ancestral sampling from an untrained TransformerPrior (K=256, N=35, 4 layers)."
    seed_everything(0)
    prior = TransformerPrior(ARPriorConfig(codebook_size=256, n_classes=5, seq_len=35)).to(device).eval()
    labels = torch.arange(n) % 5
    generator = torch.Generator(device=device).manual_seed(0)
    context = torch.autocast(device.type, dtype=torch.bfloat16) if amp else torch.autocast(device.type, enabled=False)
    with context:
        prior.sample(labels[:8], generator=generator)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        codes = prior.sample(labels, generator=generator)
        if device.type == "cuda":
            torch.cuda.synchronize()
    assert codes.shape == (n, 35)
    assert int(codes.max()) < 256
    return n / (time.perf_counter() - start)


def decoding_rates(device: torch.device, batch_sizes: tuple[int, ...], min_seconds: float = 1.0) -> list[dict]:
    "Return series/s of the cached transformer and of MaskGIT (4 and 8 steps), untrained, same size, per batch size."
    seed_everything(0)
    size = dict(codebook_size=256, n_classes=5, seq_len=35, d_model=128, n_layers=4, n_heads=4)
    transformer = TransformerPrior(ARPriorConfig(**size)).to(device).eval()
    maskgit = MaskGITPrior(MaskGITPriorConfig(**size)).to(device).eval()
    samplers = [("transformer, key/value cache", lambda labels, seed: transformer.sample_codes(labels, seed=seed)),
                ("MaskGIT, 4 steps", lambda labels, seed: maskgit.sample_codes(labels, seed=seed, steps=4)),
                ("MaskGIT, 8 steps", lambda labels, seed: maskgit.sample_codes(labels, seed=seed, steps=8))]
    rows = []
    for batch_size in batch_sizes:
        labels = torch.arange(batch_size) % 5
        for name, sample in samplers:
            sample(labels, 0)  # warm-up
            calls, start = 0, time.perf_counter()
            while time.perf_counter() - start < min_seconds:
                sample(labels, calls)
                calls += 1
            if device.type == "cuda":
                torch.cuda.synchronize()
            rows.append({"batch_size": batch_size, "sampler": name,
                         "series_per_s": calls * batch_size / (time.perf_counter() - start)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small workload (the CPU path)")
    parser.add_argument("--out", type=Path, default=HERE / "gpu_check.md")
    args = parser.parse_args()
    device = get_device("auto")
    cuda = device.type == "cuda"
    quick = args.quick or not cuda
    test = load_ucr("ECG5000", "test")  # 4500 beats: enough steps per epoch for a rate
    x = Normalizer.fit(test.x).transform(test.x)
    x = x[:512] if quick else x
    variants = [("off", False), ("bf16", False), ("off", True), ("bf16", True)] if cuda else [("off", False)]
    rows = []
    for amp, compile_ in variants:
        r = train_rate(x, device, amp, compile_, epochs=3 if quick else 4, batch_size=128)
        rows.append((amp, compile_, r))
        print(f"train amp={amp} compile={compile_}: {r['steps_per_s']:.1f} steps/s", flush=True)
    n_sample = 32 if quick else 1024
    sampling = [(amp, sample_rate(device, n_sample, amp)) for amp in ((False, True) if cuda else (False,))]
    decoding = decoding_rates(device, tuple(sorted({1, 64, n_sample})), min_seconds=0.3 if quick else 2.0)
    name = torch.cuda.get_device_name(device) if cuda else (platform.processor() or platform.machine())
    if not cuda:
        try:
            name = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
        except (OSError, StopIteration):
            pass
    lines = [
        "# Training and sampling throughput" + ("" if cuda else " (no CUDA device: CPU figures only)"),
        "",
        f"Command: `bash scripts/gpu_check.sh` (runs `python benchmarks/bench_gpu.py{' --quick' if args.quick else ''}`)",
        "",
        f"Device: {name}; torch {torch.__version__}; {os.cpu_count()} logical CPUs; load average "
        f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.",
        "",
        f"VQ-VAE (hidden=64, n_res=2, K=256, D=64) on {len(x)} normalised ECG5000 test beats, batch 128; "
        "rates are medians over the epochs after the first, which holds warm-up and compilation.",
        "",
        "| amp | compile | steps/s | series/s | first epoch (s) | final train recon MSE |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for amp, compile_, r in rows:
        lines.append(f"| {amp} | {compile_} | {r['steps_per_s']:.1f} | {r['series_per_s']:.0f} | {r['first_epoch_s']:.2f} | {r['recon_mse']:.4f} |")
    lines += ["", f"Ancestral sampling from an untrained TransformerPrior (K=256, N=35, d_model=128, 4 layers), {n_sample} series in one batch:",
              "", "| autocast bf16 | series/s |", "|---|---:|"]
    lines += [f"| {amp} | {rate:.0f} |" for amp, rate in sampling]
    lines += ["", "Code sampling by batch size, untrained priors of one size (K=256, N=35, d_model=128, 4 layers), "
              "full precision; the ratio is to the cached transformer at the same batch size:",
              "", "| batch size | sampler | series/s | ratio |", "|---:|---|---:|---:|"]
    for r in decoding:
        base = next(b["series_per_s"] for b in decoding
                    if b["batch_size"] == r["batch_size"] and b["sampler"] == "transformer, key/value cache")
        lines.append(f"| {r['batch_size']} | {r['sampler']} | {r['series_per_s']:.0f} | {r['series_per_s'] / base:.2f}x |")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
