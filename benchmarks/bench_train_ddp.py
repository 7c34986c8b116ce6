"""Training throughput of the quick VQ-VAE on ECG5000 train with 1 and 2 processes (torchrun, gloo on CPU).

Usage: python benchmarks/bench_train_ddp.py [--epochs 4] [--threads 1]
Writes benchmarks/train_ddp.md. Throughput counts the series each optimiser step consumed over all
processes, divided by the wall time of `train_vqvae` on rank 0 (process start-up excluded).
"""

import argparse
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent

WORKER = r'''
import json, os, sys, time
import torch, torch.distributed as dist
from vqldm_nb.autoencoder import VQVAE, VQVAEConfig
from vqldm_nb.core import seed_everything
from vqldm_nb.data import Normalizer, load_ucr
from vqldm_nb.train import TrainConfig, setup_distributed, train_vqvae

epochs, out = int(sys.argv[1]), sys.argv[2]
rank, world = setup_distributed()
train = load_ucr("ECG5000", "train")
x = Normalizer.fit(train.x).transform(train.x)
cfg = TrainConfig(epochs=epochs, batch_size=32, lr=2e-3, device="cpu", progress=False)
seed_everything(0)
model = VQVAE(VQVAEConfig(hidden=32, n_down=2, n_res=2, codebook_size=64, code_dim=16))
if world > 1:
    dist.barrier()
start = time.perf_counter()
history = train_vqvae(model, x, cfg)
seconds = time.perf_counter() - start
if rank == 0:
    per_rank = -(-len(x) // world)  # DistributedSampler pads each epoch to world * ceil(N / world)
    json.dump({"seconds": seconds, "series": per_rank * world * epochs, "loss": history[-1]["loss"]}, open(out, "w"))
if world > 1:
    dist.destroy_process_group()
'''


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(nproc: int, epochs: int, threads: int, tmp: Path) -> dict:
    import json
    script, out = tmp / "worker.py", tmp / f"result{nproc}.json"
    script.write_text(WORKER)
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    load_before = os.getloadavg()
    subprocess.run([torchrun, "--nproc_per_node", str(nproc), "--master_addr", "127.0.0.1", "--master_port",
                    str(_free_port()), str(script), str(epochs), str(out)], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    result = json.loads(out.read_text())
    result.update(nproc=nproc, load_before=load_before, load_after=os.getloadavg())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of each process")
    parser.add_argument("--out", type=Path, default=HERE / "train_ddp.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        rows = [measure(n, args.epochs, args.threads, Path(d)) for n in (1, 2)]
    base = rows[0]["series"] / rows[0]["seconds"]
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    lines = [
        "# VQ-VAE training throughput with DistributedDataParallel on CPU",
        "",
        f"Command: `python benchmarks/bench_train_ddp.py --epochs {args.epochs} --threads {args.threads}`",
        "",
        f"Machine: {cpu}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, gloo backend, "
        f"OMP_NUM_THREADS={args.threads} per process. Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.",
        "",
        "Model: quick preset (hidden=32, n_down=2, n_res=2, K=64, D=16), ECG5000 train (500 series of 140 samples), "
        f"batch 32 per process, {args.epochs} epochs. Series per second counts every series an optimiser step "
        "consumed, over all processes, divided by the wall time of `train_vqvae` on rank 0.",
        "",
        "| processes | seconds | series/s | speed-up | load average before (1, 5, 15 min) | after |",
        "|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        rate = r["series"] / r["seconds"]
        fmt = lambda load: ", ".join(f"{v:.2f}" for v in load)
        lines.append(f"| {r['nproc']} | {r['seconds']:.2f} | {rate:.0f} | {rate / base:.2f} | {fmt(r['load_before'])} | {fmt(r['load_after'])} |")
    lines += ["", "A load average above the number of CPUs means other work shared the machine during the "
              "measurement; the speed-up is then a lower bound of what an idle machine gives.", ""]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
