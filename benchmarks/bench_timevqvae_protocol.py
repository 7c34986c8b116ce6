"""TimeVQVAE's evaluation protocol (FID, IS and CAS with an FCN classifier) on three embedded UCR ECG data sets.

For each data set the script trains the whole pipeline on the TRAIN split (`vqldm_nb.cli.run_pipeline`),
draws max(test size, prior batch size) class-conditional samples whose labels follow the TEST split's
class counts, and scores them against TEST with `vqldm_nb.evaluate.evaluate_run`. The FCN is trained
once per data set and seed and cached under the work folder. The table sets the numbers beside the
values published for TimeVQVAE and beside the real train-versus-test reference.

Each data set's row is also saved under the work folder; a later call reuses a saved row of the same
settings instead of training again (pass --rerun to train anyway), so one call can render the table
from rows computed by earlier ones.

Usage: python benchmarks/bench_timevqvae_protocol.py [--preset quick] [--data-preset ECG200=small-data] [--prior ar] [--rerun] [--data ECG5000 ECG200 ECGFiveDays]
       [--fcn-steps 1000] [--posthoc-steps 500] [--seed 0] [--device auto] [--work runs/timevqvae_protocol]
       [--out benchmarks/timevqvae_protocol.md]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from vqldm_nb.cli import run_pipeline
from vqldm_nb.core import atomic_write_text, get_device
from vqldm_nb.data import load_ucr
from vqldm_nb.evaluate import FCNConfig, PosthocConfig, evaluate_run
from vqldm_nb.priors import PRIOR_KINDS
from vqldm_nb.run import PRESETS

# TimeVQVAE (D. Lee, S. Malacarne, E. Aune, AISTATS 2023), values for its class-conditional samples.
PUBLISHED = {
    "ECG5000": {"fid": 0.7, "inception_score": 2.0, "cas": 0.933},
    "ECG200": {"fid": 1.9, "inception_score": 1.5, "cas": 0.890},
    "ECGFiveDays": {"fid": 0.6, "inception_score": 1.7, "cas": 0.963},
}


def cpu_seconds() -> float:
    "User plus system CPU time of this process and of its finished children (the papermill kernel)."
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def row_path(name: str, preset: str, args) -> Path:
    "Return the file that stores the row of data set `name` for these settings."
    return (Path(args.work) / "rows" /
            f"{name}-{preset}-{args.prior}-seed{args.seed}-fcn{args.fcn_steps}-posthoc{args.posthoc_steps}.json")


def benchmark(name: str, preset: str, args) -> dict:
    "Run the pipeline and the evaluation on data set `name`; return the row of the table."
    work = Path(args.work)
    run_dir = work / f"{name}-{preset}-{args.prior}-seed{args.seed}"
    cpu_start, wall_start = cpu_seconds(), time.time()
    run_pipeline(run_dir, preset=preset, data=name, prior=args.prior, seed=args.seed, device=args.device, log_output=False)
    pipeline_cpu, pipeline_wall = cpu_seconds() - cpu_start, time.time() - wall_start

    n_test = len(load_ucr(name, "test"))
    n_samples = max(n_test, PRESETS[preset]["priors"][args.prior]["train"]["batch_size"])
    cpu_start, wall_start = cpu_seconds(), time.time()
    evaluation = evaluate_run(
        run_dir, n_samples=n_samples,
        fcn_cfg=FCNConfig(steps=args.fcn_steps, seed=args.seed, device=args.device),
        posthoc_cfg=PosthocConfig(steps=args.posthoc_steps, seed=args.seed, device=args.device),
        cache_dir=work / "fcn_cache")
    prior = json.loads((run_dir / "prior.json").read_text())
    return {
        "data": name, "preset": preset, "run_dir": str(run_dir), "n_samples": n_samples, "evaluation": evaluation,
        "prior": f"{prior['kind']} ({', '.join(f'{k}={v}' for k, v in prior['config']['prior'].items())})",
        "pipeline_cpu_s": pipeline_cpu, "pipeline_wall_s": pipeline_wall,
        "evaluation_cpu_s": cpu_seconds() - cpu_start, "evaluation_wall_s": time.time() - wall_start,
    }


def other_presets(args) -> list[dict]:
    "Return the saved rows of the requested data sets under presets other than the ones of this call."
    rows = []
    for name in args.data:
        chosen = row_path(name, args.data_preset.get(name, args.preset), args)
        for preset in sorted(PRESETS):
            path = row_path(name, preset, args)
            if path != chosen and path.is_file():
                rows.append(json.loads(path.read_text()))
    return rows


def render(rows: list[dict], args) -> str:
    "Return the Markdown page of the benchmark."
    lines = [
        "# TimeVQVAE's evaluation protocol on vqldm_nb",
        "",
        f"Written by `benchmarks/bench_timevqvae_protocol.py` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.",
        f"Command: `python benchmarks/bench_timevqvae_protocol.py --preset {args.preset}"
        + "".join(f" --data-preset {name}={preset}" for name, preset in args.data_preset.items())
        + f" --prior {args.prior} --fcn-steps {args.fcn_steps} "
        f"--posthoc-steps {args.posthoc_steps} --seed {args.seed} --data {' '.join(args.data)}`.",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores visible, "
        f"device {get_device(args.device)}, torch {torch.__version__}, Python {platform.python_version()}.",
        "",
        "Protocol: train the VQ-VAE and the prior on the TRAIN split, draw max(test size, prior batch size) "
        "class-conditional samples whose labels follow the TEST split's class counts, and score them against TEST. "
        f"FID and IS use the pooled features and class probabilities of an FCN (Wang et al. 2017; filters 128, 256, 128; "
        f"kernels 8, 5, 3) trained on TRAIN for {args.fcn_steps} Adam steps of {FCNConfig.batch_size} series. "
        "CAS is the TEST accuracy of the same FCN trained on the samples. The reference columns score real TRAIN "
        "against TEST: the value a perfect generator would reach. Rows of other presets saved by earlier calls "
        "with the same prior, seed and classifier settings follow the rows of this call.",
        "",
        "**The numbers are not directly comparable with TimeVQVAE's.** FID and IS depend on the classifier's "
        "weights, and this FCN is trained here with another implementation, another training length and another "
        "seed than the one behind the published values. Compare each FID with the reference FID of the same row. "
        "CAS depends on the classifier less, but still on its training length.",
        "",
        "| data (preset) | FID | FID real | FID TimeVQVAE | IS | IS real | IS TimeVQVAE | CAS | CAS real | CAS TimeVQVAE | samples |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        syn, ref = row["evaluation"]["synthetic"], row["evaluation"]["real_reference"]
        pub = PUBLISHED[row["data"]]
        lines.append(
            f"| {row['data']} ({row['preset']}) | {syn['fid']:.2f} | {ref['fid']:.2f} | {pub['fid']:.1f} "
            f"| {syn['inception_score']:.2f} | {ref['inception_score']:.2f} | {pub['inception_score']:.1f} "
            f"| {100 * syn['cas']:.1f}% | {100 * ref['cas']:.1f}% | {100 * pub['cas']:.1f}% | {row['n_samples']} |")
    lines += [
        "",
        "Other numbers of `evaluate_run` (generated / real reference):",
        "",
        "| data (preset) | discriminative | predictive MAE | PSD distance | ACF distance | MMD² | near copies | reconstruction MSE | PRD % |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        syn, ref = row["evaluation"]["synthetic"], row["evaluation"]["real_reference"]
        rec = row["evaluation"]["reconstruction"]
        pair = lambda key, fmt: f"{format(syn[key], fmt)} / {format(ref[key], fmt)}"
        lines.append(
            f"| {row['data']} ({row['preset']}) | {pair('discriminative_score', '.3f')} | {pair('predictive_score_mae', '.4f')} "
            f"| {pair('psd_distance', '.3f')} | {pair('acf_distance', '.4f')} | {pair('mmd2', '.4f')} "
            f"| {syn['near_copy_fraction']:.3f} | {rec['mse_normalised']:.4f} | {rec['prd_percent']:.1f} |")
    lines += ["", "Time and prior:", "", "| data | preset | prior | pipeline CPU s (wall s) | evaluation CPU s (wall s) |",
              "|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['data']} | {row['preset']} | {row['prior']} | {row['pipeline_cpu_s']:.0f} ({row['pipeline_wall_s']:.0f}) "
                     f"| {row['evaluation_cpu_s']:.0f} ({row['evaluation_wall_s']:.0f}) |")
    lines += [
        "",
        "CPU time is user plus system time of the script and of the papermill kernel it starts. The evaluation "
        "time of the first run on a data set includes training the FCN, which later runs load from the cache.",
        "",
        "Published values: D. Lee, S. Malacarne, E. Aune. Vector quantized time series generation with a "
        "bidirectional prior model. AISTATS 2023.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick", choices=sorted(PRESETS), help="pipeline preset (default: quick)")
    parser.add_argument("--data-preset", nargs="+", default=[], metavar="NAME=PRESET",
                        help="preset for one data set instead of --preset, e.g. ECG200=small-data")
    parser.add_argument("--rerun", action="store_true", help="train again even where a saved row of the same settings exists")
    parser.add_argument("--prior", default="ar", choices=sorted(PRIOR_KINDS), help="prior family fitted over the codes (default: ar)")
    parser.add_argument("--data", nargs="+", default=list(PUBLISHED), choices=list(PUBLISHED), help="data sets to run")
    parser.add_argument("--fcn-steps", type=int, default=FCNConfig.steps, help="Adam updates of each FCN classifier")
    parser.add_argument("--posthoc-steps", type=int, default=PosthocConfig.steps,
                        help="Adam updates of the discriminative and predictive networks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda' or 'mps'")
    parser.add_argument("--work", default="runs/timevqvae_protocol", help="folder for the run folders and the FCN cache")
    parser.add_argument("--out", default="benchmarks/timevqvae_protocol.md", help="Markdown page to write")
    args = parser.parse_args()
    data_preset = {}
    for item in args.data_preset:
        name, _, preset = item.partition("=")
        if name not in PUBLISHED or preset not in PRESETS:
            parser.error(f"--data-preset {item!r} is invalid: use NAME=PRESET with NAME in {list(PUBLISHED)} "
                         f"and PRESET in {sorted(PRESETS)}")
        data_preset[name] = preset
    args.data_preset = data_preset
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    rows = []
    for name in args.data:
        preset = args.data_preset.get(name, args.preset)
        saved = row_path(name, preset, args)
        if saved.is_file() and not args.rerun:
            logging.info("benchmark: %s, preset %s: reusing %s", name, preset, saved)
            rows.append(json.loads(saved.read_text()))
        else:
            logging.info("benchmark: %s, preset %s", name, preset)
            rows.append(benchmark(name, preset, args))
            atomic_write_text(saved, json.dumps(rows[-1], indent=2, default=str))
        atomic_write_text(args.out, render(rows + other_presets(args), args))  # rewritten after each data set
    atomic_write_text(Path(args.work) / "timevqvae_protocol.json",
                      json.dumps({"args": vars(args), "rows": rows}, indent=2, default=str))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
