"""Sampling throughput and sample quality of every prior family on ECG5000; writes benchmarks/priors.md.

Run from the repository root:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_priors.py
--quick shrinks every model and epoch count to check the script in a minute (its numbers mean nothing).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from vqldm_nb.autoencoder import VQVAEConfig
from vqldm_nb.core import get_device
from vqldm_nb.data import Normalizer, load_ucr
from vqldm_nb.prior_ar import ARPriorConfig, TransformerPrior
from vqldm_nb.priors import (COMPARISON_PRIOR_OPTIONS, COMPARISON_TRAINING, PRIOR_KINDS, bits_per_code_any,
                             encode_dataset, evaluate_sampling, fit_comparison, sample_quality)
from vqldm_nb.train import TrainConfig

HERE = Path(__file__).parent

# (row name, prior kind, sampling options); every row draws the same labels in one batch.
SAMPLER_ROWS = [
    ("transformer, key/value cache", "ar", dict(use_cache=True)),
    ("transformer, recompute prefix", "ar", dict(use_cache=False)),
    ("WaveNet", "wavenet", {}),
    ("MaskGIT, 4 steps", "maskgit", dict(steps=4)),
    ("MaskGIT, 8 steps", "maskgit", dict(steps=8)),
    ("MaskGIT, 16 steps", "maskgit", dict(steps=16)),
    ("MaskGIT, 4 steps, random order", "maskgit", dict(steps=4, order="random")),
    ("MaskGIT, 8 steps, random order", "maskgit", dict(steps=8, order="random")),
    ("latent diffusion, DDIM 10 steps", "latent-diffusion", dict(steps=10)),
    ("latent diffusion, DDIM 50 steps", "latent-diffusion", dict(steps=50)),
    ("latent diffusion, DDIM 200 steps", "latent-diffusion", dict(steps=200)),
]


def cache_rows_at_64(n: int, device: torch.device, quick: bool) -> list[dict]:
    "Time an untrained transformer of the comparison's size on 64 codes per series, with and without the cache."
    options = {k: v for k, v in COMPARISON_PRIOR_OPTIONS["ar"].items()}
    if quick:
        options.update(d_model=32, n_layers=1, n_heads=2)
    torch.manual_seed(0)
    prior = TransformerPrior(ARPriorConfig(codebook_size=128, n_classes=5, seq_len=64, **options)).to(device).eval()
    labels = torch.arange(n) % 5
    rows, codes = [], {}
    for use_cache in (True, False):
        prior.sample_codes(labels[:2], seed=0, use_cache=use_cache)  # warm-up
        start = time.perf_counter()
        codes[use_cache] = prior.sample_codes(labels, seed=0, use_cache=use_cache)
        seconds = time.perf_counter() - start
        rows.append({"row": f"transformer at N = 64, {'key/value cache' if use_cache else 'recompute prefix'}",
                     "series_per_second": n / seconds, "seconds": seconds})
    if not torch.equal(codes[True], codes[False]):
        raise AssertionError("sampling with and without the key/value cache gave different codes for one seed")
    return rows


BATCH_SIZES = (1, 8, 64, 500)
BATCH_SAMPLERS = [("transformer, key/value cache", "ar", {}), ("MaskGIT, 4 steps", "maskgit", dict(steps=4)),
                  ("MaskGIT, 8 steps", "maskgit", dict(steps=8))]


def batch_size_rows(priors: dict, labels: torch.Tensor, min_seconds: float) -> list[dict]:
    "Time code sampling of the transformer and MaskGIT at each of `BATCH_SIZES`, repeating calls for `min_seconds`."
    rows = []
    for batch_size in BATCH_SIZES:
        batch = labels[:batch_size]
        for name, kind, options in BATCH_SAMPLERS:
            prior = priors[kind]
            prior.sample_codes(batch, seed=0, **options)  # warm-up
            calls, start = 0, time.perf_counter()
            while True:
                prior.sample_codes(batch, seed=calls, **options)
                calls += 1
                seconds = time.perf_counter() - start
                if seconds >= min_seconds:
                    break
            rows.append({"batch_size": batch_size, "row": name, "series_per_second": calls * len(batch) / seconds})
    return rows


def fmt(value, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def write_markdown(result: dict, path: Path):
    rows, ref = result["rows"], result["reference"]
    by_name = {r["row"]: r for r in rows}
    ar = by_name["transformer, key/value cache"]

    lines = [
        "# Prior sampling benchmark",
        "",
        f"Command: `{result['command']}`  ",
        f"Machine: {result['machine']}  ",
        f"Date: {result['date']}",
        "",
        f"One VQ-VAE (K = {result['codebook_size']}, N = {result['seq_len']} codes per beat) trained on the 500 ECG5000 "
        f"training beats; every prior fitted on its codes (latent diffusion on its encoder latents) with "
        f"`priors.COMPARISON_PRIOR_OPTIONS` and `priors.COMPARISON_TRAINING`. Each row draws {result['n_samples']} beats "
        "in one batch, for labels with the class frequencies of the test split. Series per second counts code "
        "sampling only (no decoding), after one warm-up call. MMD² is against 1000 real test beats (normalised, "
        "RBF kernel, median-heuristic bandwidth); NN median is the median distance from each sample to its nearest "
        "training beat. Bits per code are exact, on the codes of all 4500 test beats.",
        "",
        "| sampler | series / s | x transformer (cache) | MMD² vs test | NN median | bits / code (test) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        speed = r["series_per_second"] / ar["series_per_second"]
        lines.append(f"| {r['row']} | {r['series_per_second']:.1f} | {speed:.2f} | {fmt(r.get('mmd'), '.4f')} | "
                     f"{fmt(r.get('nn_median'), '.2f')} | {fmt(r.get('bits_per_code'), '.3f')} |")
    lines.append(f"| real test beats (reference, {result['n_reference']}) | – | – | {ref['mmd']:.4f} | {ref['nn_median']:.2f} | – |")

    lines += ["", "Key/value cache at 64 codes per series (untrained transformer of the same size, K = 128; "
              "both rows draw identical codes for the seed):", "",
              "| sampler | series / s | seconds |", "|---|---:|---:|"]
    for r in result["cache_rows"]:
        lines.append(f"| {r['row']} | {r['series_per_second']:.1f} | {r['seconds']:.2f} |")

    lines += ["", "Throughput against batch size (the same trained priors; series per second, and the ratio to the "
              "transformer with cache at that batch size):", "",
              "| batch size | " + " | ".join(name for name, _, _ in BATCH_SAMPLERS) + " |",
              "|---:|" + "---:|" * len(BATCH_SAMPLERS)]
    for batch_size in BATCH_SIZES:
        speeds = {r["row"]: r["series_per_second"] for r in result["batch_rows"] if r["batch_size"] == batch_size}
        base = speeds["transformer, key/value cache"]
        lines.append(f"| {batch_size} | " + " | ".join(f"{speeds[name]:.1f} ({speeds[name] / base:.2f}x)"
                                                   for name, _, _ in BATCH_SAMPLERS) + " |")

    cache_speedup = result["cache_rows"][0]["series_per_second"] / result["cache_rows"][1]["series_per_second"]
    lines += ["", "## Against the targets", "",
              f"- Key/value cache vs recomputation at N = 64: {cache_speedup:.1f}x (target: at least 3x); "
              f"at N = {result['seq_len']}: {ar['series_per_second'] / by_name['transformer, recompute prefix']['series_per_second']:.1f}x."]
    for name in [r["row"] for r in rows if r["kind"] == "maskgit"]:
        m = by_name[name]
        lines.append(f"- {name} vs transformer with cache: {m['series_per_second'] / ar['series_per_second']:.1f}x "
                     f"the throughput (target: at least 5x), MMD² {m['mmd']:.4f} vs {ar['mmd']:.4f} "
                     f"({100 * (m['mmd'] / ar['mmd'] - 1):+.0f}%), NN median {m['nn_median']:.2f} vs {ar['nn_median']:.2f} "
                     f"({100 * (m['nn_median'] / ar['nn_median'] - 1):+.0f}%) (target: no more than 10% worse).")

    best = max((r for r in result["batch_rows"] if r["row"] == "MaskGIT, 4 steps"),
               key=lambda r: r["series_per_second"] / next(a["series_per_second"] for a in result["batch_rows"]
                                                          if a["batch_size"] == r["batch_size"] and a["row"] == ar["row"]))
    best_ratio = best["series_per_second"] / next(a["series_per_second"] for a in result["batch_rows"]
                                                  if a["batch_size"] == best["batch_size"] and a["row"] == ar["row"])
    lines.append(f"- Across batch sizes, MaskGIT with 4 steps is fastest against the transformer at batch size "
                 f"{best['batch_size']}: {best_ratio:.1f}x.")
    lines += ["", "MMD² has no confidence interval here; differences smaller than the gap between the real "
              "reference and 0 are within sampling noise.", ""]
    path.write_text("\n".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny models and epochs, to check the script")
    parser.add_argument("--n-samples", type=int, default=500, help="beats drawn per row, in one batch (default 500)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    parser.add_argument("--out", default=str(HERE / "priors.md"), help="markdown file to write")
    args = parser.parse_args(argv)
    device = get_device(args.device)

    train, test = load_ucr("ECG5000", "train"), load_ucr("ECG5000", "test")
    normalizer = Normalizer.fit(train.x)
    x_train, x_test = normalizer.transform(train.x), normalizer.transform(test.x)
    pick = np.random.default_rng(0).permutation(len(x_test))
    x_target, x_reference = x_test[pick[:1000]], x_test[pick[1000:1500]]
    labels = torch.from_numpy(test.y[pick[1500:1500 + args.n_samples]])

    vq_cfg = VQVAEConfig(hidden=32, n_down=2, n_res=2, codebook_size=128, code_dim=16)
    vq_train = TrainConfig(epochs=60, batch_size=32, lr=2e-3, progress=False, seed=0, device=str(device))
    prior_options, training = COMPARISON_PRIOR_OPTIONS, COMPARISON_TRAINING
    if args.quick:
        vq_train = TrainConfig(epochs=2, batch_size=32, lr=2e-3, progress=False, device=str(device))
        prior_options = {k: {**v, **(dict(n_layers=2) if k == "wavenet" else dict(d_model=32, n_layers=1, n_heads=2))}
                         for k, v in prior_options.items()}
        training = {k: {**v, "epochs": 2} for k, v in training.items()}

    start = time.perf_counter()
    vqvae, priors, logs = fit_comparison(x_train, train.y, train.n_classes, vq_cfg, vq_train, prior_options, training,
                                         device=str(device))
    fit_seconds = time.perf_counter() - start
    print(f"fitted the VQ-VAE and {len(priors)} priors in {fit_seconds:.0f} s", file=sys.stderr)
    test_codes = encode_dataset(vqvae, x_test, device=device)
    bits = {kind: bits_per_code_any(p, test_codes, torch.from_numpy(test.y)) for kind, p in priors.items()}

    rows = []
    for name, kind, options in SAMPLER_ROWS:
        r = evaluate_sampling(priors[kind], vqvae, labels, x_target, x_train, **options)
        rows.append({"row": name, "kind": kind, **{k: r[k] for k in ("series_per_second", "seconds", "mmd", "nn_median")},
                     "bits_per_code": bits[kind]})
        print(f"{name}: {r['series_per_second']:.1f} series/s, MMD2 {r['mmd']:.4f}, NN median {r['nn_median']:.2f}", file=sys.stderr)
    reference = sample_quality(x_reference, x_target, x_train)
    cache_rows = cache_rows_at_64(args.n_samples, device, args.quick)
    batch_rows = batch_size_rows(priors, labels, min_seconds=0.2 if args.quick else 2.0)

    machine = (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s), "
               f"device {device}, torch {torch.__version__}, Python {platform.python_version()}")
    result = {"command": "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_priors.py" + (" --quick" if args.quick else ""),
              "machine": machine, "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "codebook_size": vq_cfg.codebook_size, "seq_len": vqvae.latent_length(x_train.shape[-1]),
              "n_samples": args.n_samples, "n_reference": len(x_reference), "fit_seconds": fit_seconds,
              "rows": rows, "reference": reference, "cache_rows": cache_rows, "batch_rows": batch_rows,
              "final_logs": {k: v[-1] for k, v in logs.items()}}
    out = Path(args.out)
    write_markdown(result, out)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1, default=float))
    print(out.read_text())


if __name__ == "__main__":
    main()
