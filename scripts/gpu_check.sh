#!/usr/bin/env bash
# Device check in one go: the tests that need CUDA, then the training and sampling throughput benchmark
# (benchmarks/bench_gpu.py), whose figures go to benchmarks/gpu_check.md. Without a CUDA device it prints
# a notice, runs the CPU part on a small workload and exits 0. Usage: bash scripts/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python
if "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    "$PY" -c "import torch; print('CUDA device:', torch.cuda.get_device_name(0))"
    timeout 90 "$PY" -m pytest -q tests/test_train_gpu.py
    timeout 200 "$PY" benchmarks/bench_gpu.py --out benchmarks/gpu_check.md
else
    echo "No CUDA device on this machine: running the CPU part only (the CUDA tests skip)."
    OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} timeout 120 "$PY" -m pytest -q tests/test_train_gpu.py
    OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} timeout 120 "$PY" benchmarks/bench_gpu.py --quick --out benchmarks/gpu_check.md
fi
echo "figures written to benchmarks/gpu_check.md"
