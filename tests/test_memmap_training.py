"""Train on a memory-mapped .npy file of 400 MiB in a child process, and check that the child's anonymous
memory grows by far less than the file. The same training on the array loaded into memory must give
bitwise the same weights, codes and reconstruction error."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

SERIES, CHANNELS, LENGTH = 12_800, 64, 128  # 12,800 * 64 * 128 float32 values = 400 MiB

CHILD = r'''
import json, sys, threading, time
from pathlib import Path
import numpy as np, torch
from safetensors.torch import save_file
from vqldm_nb.autoencoder import VQVAE, VQVAEConfig
from vqldm_nb.core import seed_everything
from vqldm_nb.data import Normalizer
from vqldm_nb.sample import encode_dataset
from vqldm_nb.train import TrainConfig, evaluate_mse, train_vqvae

def rss_anon_kib():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])

path, mode, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
channels = int(sys.argv[4])
vqvae_cfg = VQVAEConfig(in_channels=channels, hidden=8, n_down=2, n_res=1, codebook_size=16, code_dim=4)
# The first training run allocates memory that later runs reuse, whatever the data size (about 120 MB with
# torch 2.13 on Linux), so a short run on 512 random in-memory series comes before the baseline.
warm_x = np.random.default_rng(1).normal(size=(512, channels, int(sys.argv[5]))).astype(np.float32)
warm_model = VQVAE(vqvae_cfg)
train_vqvae(warm_model, warm_x, TrainConfig(epochs=1, batch_size=256, device="cpu", progress=False))
encode_dataset(warm_model, warm_x, batch_size=256, device="cpu")
evaluate_mse(warm_model, warm_x, batch_size=256)
del warm_x, warm_model

baseline = rss_anon_kib()
peak, stop = [baseline], threading.Event()
def watch():
    while not stop.is_set():
        peak[0] = max(peak[0], rss_anon_kib())
        time.sleep(0.005)
watcher = threading.Thread(target=watch, daemon=True)
watcher.start()

x = np.load(path, mmap_mode="r" if mode == "mmap" else None)
normalizer = Normalizer.fit(x, batch_size=128)  # streamed in both modes, so both get the same statistics
x_norm = normalizer.transform(x)  # a lazy NormalizedSeries for the memmap, an array in memory otherwise
seed_everything(0)
model = VQVAE(vqvae_cfg)
history = train_vqvae(model, x_norm, TrainConfig(epochs=1, batch_size=256, lr=2e-3, device="cpu", progress=False))
codes = encode_dataset(model, x_norm, batch_size=256, device="cpu")
mse = evaluate_mse(model, x_norm, batch_size=256)
stop.set()
watcher.join()
peak[0] = max(peak[0], rss_anon_kib())

save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "weights.safetensors"))
save_file({"codes": codes}, str(out / "codes.safetensors"))
(out / "result.json").write_text(json.dumps({"baseline_kib": baseline, "peak_kib": peak[0], "mse": mse,
                                             "loss": history[-1]["loss"], "type": type(x_norm).__name__}))
'''


def _anonymous_memory_readable() -> bool:
    status = Path("/proc/self/status")
    return status.is_file() and "RssAnon:" in status.read_text()


def _train_child(tmp_path: Path, data: Path, mode: str) -> dict:
    out = tmp_path / mode
    out.mkdir()
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(script), str(data), mode, str(out), str(CHANNELS), str(LENGTH)],
                            capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    return {"out": out, **json.loads((out / "result.json").read_text())}


@pytest.mark.skipif(not _anonymous_memory_readable(),
                    reason="needs RssAnon in /proc/self/status (Linux) to measure anonymous memory")
def test_memmap_training_memory_and_weights(tmp_path):
    data = tmp_path / "series.npy"
    writer = np.lib.format.open_memmap(data, mode="w+", dtype=np.float32, shape=(SERIES, CHANNELS, LENGTH))
    rng = np.random.default_rng(0)
    for start in range(0, SERIES, 1024):  # written in blocks, so the test process never holds the array either
        block = rng.normal(size=(min(1024, SERIES - start), CHANNELS, LENGTH)).astype(np.float32)
        writer[start:start + len(block)] = 3.0 * block + 1.0
    writer.flush()
    del writer
    file_kib = data.stat().st_size // 1024

    mapped = _train_child(tmp_path, data, "mmap")
    in_memory = _train_child(tmp_path, data, "ram")

    # RssAnon counts private anonymous pages only: the heap, numpy arrays and torch tensors. The pages of the
    # mapped file that were read count as RssFile and in VmRSS and VmHWM. The kernel can drop them and read
    # them again from the file at any time, so they are not memory that training holds. A copy of the whole
    # array would be anonymous memory and show here. The child polls RssAnon every 5 ms: no kernel
    # counter keeps its peak, and copying 400 MiB takes far longer than the polling interval.
    assert mapped["type"] == "NormalizedSeries"
    mapped_growth = mapped["peak_kib"] - mapped["baseline_kib"]
    in_memory_growth = in_memory["peak_kib"] - in_memory["baseline_kib"]
    print(f"file {file_kib} KiB; anonymous memory growth: memmap {mapped_growth} KiB, in memory {in_memory_growth} KiB")
    # The growth left is batches and their temporaries (a training batch is 8 MiB, a float64 batch of the
    # statistics 8 MiB), which the allocator keeps after they are freed: about 50 MiB on a 2-core Linux VM.
    assert mapped_growth < file_kib / 4, f"training from the memmap grew anonymous memory by {mapped_growth} KiB"
    assert in_memory_growth > file_kib * 0.9, "the measure must see the array that the in-memory run loads"

    a, b = load_file(str(mapped["out"] / "weights.safetensors")), load_file(str(in_memory["out"] / "weights.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs between the memmap and the in-memory run"
    codes_mapped = load_file(str(mapped["out"] / "codes.safetensors"))["codes"]
    codes_in_memory = load_file(str(in_memory["out"] / "codes.safetensors"))["codes"]
    assert codes_mapped.shape == (SERIES, LENGTH // 4)
    assert torch.equal(codes_mapped, codes_in_memory)
    assert mapped["mse"] == in_memory["mse"]
    assert mapped["loss"] == in_memory["loss"]
