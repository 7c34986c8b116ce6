"""Time and peak memory of one forward+backward step of `VectorQuantizer` against vector-quantize-pytorch.

Both quantizers run at matched settings: Euclidean distance, EMA codebook (decay 0.99), commitment
weight 0.25, straight-through gradient, no k-means and no dead-code restarts, D = 64, N = 32,768
vectors, K in {512, 4096}. The floor is one (N, D) x (D, K) matmul, the least work a nearest-code search
does. Timings interleave the three candidates in every repetition and report medians, so the ratios come
from one run on one machine.

Peak memory: on CUDA, `torch.cuda.max_memory_allocated` above the memory held before the step. On CPU,
each configuration runs in its own subprocess after one warm-up step. There the peak resident set size
(Linux VmHWM, reset through /proc/self/clear_refs) is measured above the resident size before the step.

Usage: python benchmarks/bench_quantize.py [--device auto] [--reps 3] [--out benchmarks/quantize.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from vqldm_nb.core import atomic_write_text, get_device
from vqldm_nb.quantize import VectorQuantizer

D, N_VECTORS, BATCH = 64, 32_768, 32
CODEBOOK_SIZES = (512, 4096)
CANDIDATES = ("ours", "vqp", "matmul")


def build(name: str, K: int, device: torch.device):
    "Return `step()` running one forward+backward of candidate `name` on fixed random input."
    g = torch.Generator().manual_seed(0)
    z_rows = torch.randn(N_VECTORS, D, generator=g).to(device)  # (N, D)
    if name == "matmul":
        codebook = torch.randn(K, D, generator=g).to(device)
        return lambda: z_rows @ codebook.t()  # (N, K)
    if name == "ours":
        vq = VectorQuantizer(K, D, beta=0.25, ema=True, decay=0.99).to(device).train()
        z_e = z_rows.reshape(BATCH, N_VECTORS // BATCH, D).permute(0, 2, 1).contiguous()  # (B, D, N)
    else:
        from vector_quantize_pytorch import VectorQuantize
        vq = VectorQuantize(dim=D, codebook_size=K, decay=0.99, commitment_weight=0.25, kmeans_init=False,
                            threshold_ema_dead_code=0, rotation_trick=False, ema_update=True,
                            learnable_codebook=False, channel_last=True).to(device).train()
        z_e = z_rows.reshape(BATCH, N_VECTORS // BATCH, D).contiguous()  # (B, N, D), the layout it expects

    def step():
        x = z_e.detach().requires_grad_(True)
        if name == "ours":
            out = vq(x)
            z_q, loss = out.z_q, out.loss
        else:
            z_q, _, loss = vq(x)
        (z_q.sum() + loss.sum()).backward()
        return z_q

    return step


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_all(device: torch.device, K: int, reps: int) -> dict[str, float]:
    "Return the median seconds per step of each candidate, interleaved."
    steps = {name: build(name, K, device) for name in CANDIDATES}
    for step in steps.values():
        step()  # warm-up: allocator, kernels, lazy initialisation
    sync(device)
    times = {name: [] for name in CANDIDATES}
    for _ in range(reps):
        for name, step in steps.items():
            sync(device)
            start = time.perf_counter()
            step()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not found in /proc/self/status: the CPU memory measurement needs Linux")


def peak_bytes_here(name: str, K: int, device: torch.device) -> int:
    "Return the peak memory of one step above the memory held before it, in this process."
    step = build(name, K, device)
    step()  # warm-up, so lazy initialisation is not counted
    if device.type == "cuda":
        sync(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        sync(device)
        return torch.cuda.max_memory_allocated(device) - base
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current resident size
    base = _status_kb("VmRSS")
    step()
    return (_status_kb("VmHWM") - base) * 1024


def peak_bytes(name: str, K: int, device: torch.device) -> int:
    "Measure in a fresh subprocess, so earlier configurations leave no cached memory behind."
    cmd = [sys.executable, __file__, "--child", name, str(K), "--device", str(device)]
    result = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])["peak_bytes"]


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--reps", type=int, default=3, help="timed repetitions per candidate")
    parser.add_argument("--out", default="benchmarks/quantize.md", help="markdown file to write")
    parser.add_argument("--child", nargs=2, metavar=("NAME", "K"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = get_device(args.device)
    if args.child:
        print(json.dumps({"peak_bytes": peak_bytes_here(args.child[0], int(args.child[1]), device)}))
        return
    import vector_quantize_pytorch
    from importlib.metadata import version

    memory_method = ("torch.cuda.max_memory_allocated above the allocation before the step" if device.type == "cuda"
                     else "peak resident set size (VmHWM) above the resident size before the step, one subprocess per cell")
    load = os.getloadavg()  # other processes on the machine skew CPU timings, so the table reports the load
    rows = []
    for K in CODEBOOK_SIZES:
        t = time_all(device, K, args.reps)
        mem = {name: peak_bytes(name, K, device) for name in CANDIDATES}
        rows.append((K, t, mem))
        print(f"K={K}: " + ", ".join(f"{n} {t[n] * 1e3:.1f} ms / {mem[n] / 2**20:.0f} MiB" for n in CANDIDATES), flush=True)

    command = "python benchmarks/bench_quantize.py " + " ".join(sys.argv[1:])
    lines = [
        "# Quantizer benchmark",
        "",
        f"Command: `{command.strip()}`  ",
        f"Machine: {machine(device)}, device `{device}`  ",
        f"Compared with: vector-quantize-pytorch {version('vector-quantize-pytorch')}  ",
        f"Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"load average at the start {load[0]:.1f} and at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs  ",
        "",
        f"One forward+backward step, N = {N_VECTORS} vectors, D = {D}, Euclidean, EMA codebook (decay 0.99), "
        "commitment weight 0.25, straight-through gradient, no k-means, no restarts. "
        f"Time: median of {args.reps} interleaved repetitions after 1 warm-up step. "
        "The matmul floor is one (N, D) x (D, K) product, forward only. "
        f"Peak memory: {memory_method}.",
        "",
        "| K | ours ms | vqp ms | matmul ms | ours / vqp time | ours / matmul time | ours MiB | vqp MiB | matmul MiB | ours / vqp memory |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for K, t, mem in rows:
        lines.append(
            f"| {K} | {t['ours'] * 1e3:.1f} | {t['vqp'] * 1e3:.1f} | {t['matmul'] * 1e3:.1f} "
            f"| {t['ours'] / t['vqp']:.2f}x | {t['ours'] / t['matmul']:.2f}x "
            f"| {mem['ours'] / 2**20:.0f} | {mem['vqp'] / 2**20:.0f} | {mem['matmul'] / 2**20:.0f} "
            f"| {mem['ours'] / max(mem['vqp'], 1):.2f}x |")
    lines += ["", "Targets: at most 1.0x vector-quantize-pytorch and at most 3x the matmul floor in time.", ""]
    out = Path(args.out)
    section = "\n".join(lines)
    atomic_write_text(out, section)
    print(section)


if __name__ == "__main__":
    main()
