"""Train the quick VQ-VAE on ECG5000 with `torchrun --nproc_per_node 2` (gloo on CPU).
Both ranks must end with bitwise equal weights and codebook, and only rank 0 may log and write checkpoints.
A 2-process run killed after its first checkpoint must resume to the weights of an uninterrupted run."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from _helpers import child_env, file_digests, free_port, vqvae_weights, wait_for_file
from safetensors.torch import load_file

from vqldm_nb.train import latest_checkpoint, load_train_state

SCRIPT = r'''
import sys
from pathlib import Path
import torch, torch.distributed as dist
from safetensors.torch import save_file
from vqldm_nb.autoencoder import VQVAE, VQVAEConfig
from vqldm_nb.core import seed_everything
from vqldm_nb.data import Normalizer, load_ucr
from vqldm_nb.train import TrainConfig, train_vqvae

out = Path(sys.argv[1])
train = load_ucr("ECG5000", "train")
x = Normalizer.fit(train.x).transform(train.x)
cfg = TrainConfig(epochs=3, batch_size=32, lr=2e-3, device="cpu", progress=True, checkpoint_dir=str(out / "ckpt"))
seed_everything(cfg.seed + 1000 * int(__import__("os").environ["RANK"]))  # different initial weights: DDP must broadcast rank 0's
model = VQVAE(VQVAEConfig(hidden=32, n_down=2, n_res=2, codebook_size=64, code_dim=16))
history = train_vqvae(model, x, cfg)
rank = dist.get_rank()
state = {k: v.contiguous() for k, v in model.state_dict().items()}
save_file(state, str(out / f"rank{rank}.safetensors"))
(out / f"codes{rank}.txt").write_text(" ".join(map(str, model.encode_codes(torch.as_tensor(x[:20])).flatten().tolist())))
(out / f"history{rank}.txt").write_text(repr([(r["loss"], r["codes_used"]) for r in history]))
dist.destroy_process_group()
'''


TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent))
needs_torchrun = pytest.mark.skipif(TORCHRUN is None, reason="torchrun not installed next to this Python")


def _torchrun(script: Path, *args: str) -> list[str]:
    return [TORCHRUN, "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
            str(script), *args]


@needs_torchrun
def test_ddp_ranks_end_equal(tmp_path):
    script = tmp_path / "train_ddp.py"
    script.write_text(SCRIPT)
    result = subprocess.run(_torchrun(script, str(tmp_path)), capture_output=True, text=True, timeout=600, env=child_env())
    assert result.returncode == 0, result.stderr[-4000:]
    r0, r1 = load_file(str(tmp_path / "rank0.safetensors")), load_file(str(tmp_path / "rank1.safetensors"))
    assert r0.keys() == r1.keys()
    assert "quantizer.codebook" in r0
    for key in r0:
        assert torch.equal(r0[key], r1[key]), f"{key} differs between rank 0 and rank 1"
    assert (tmp_path / "codes0.txt").read_text() == (tmp_path / "codes1.txt").read_text()
    assert (tmp_path / "history0.txt").read_text() == (tmp_path / "history1.txt").read_text()
    folders = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert folders == ["epoch_0001", "epoch_0002", "epoch_0003", "latest.json"]
    assert result.stdout.count("epoch 3/3") == 1, "only rank 0 may log"
    assert "deprecated" not in result.stderr


RESUME_SCRIPT = r'''
import sys
from pathlib import Path
import numpy as np, torch.distributed as dist
from _helpers import pause_after_first_checkpoint
from vqldm_nb.autoencoder import VQVAE, VQVAEConfig
from vqldm_nb.core import seed_everything
from vqldm_nb.train import TrainConfig, save_vqvae, train_vqvae

mode, ckpt, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
x = np.random.default_rng(0).normal(size=(96, 1, 40)).astype(np.float32)
cfg = TrainConfig(epochs=4, batch_size=8, lr=3e-3, device="cpu", progress=False, checkpoint_dir=str(ckpt), checkpoint_every=1)
seed_everything(cfg.seed)
model = VQVAE(VQVAEConfig(hidden=8, n_down=2, n_res=1, codebook_size=16, code_dim=4,
                          quantizer={"dead_code_threshold": 1.0}))
if mode == "hang":  # both ranks stop in the middle of epoch 2, after the checkpoint of epoch 1
    pause_after_first_checkpoint(model, ckpt, out.parent / "mid_epoch")
train_vqvae(model, x, cfg, resume=(mode == "resume"))
if dist.get_rank() == 0:
    save_vqvae(model, out)
dist.destroy_process_group()
'''


def _kill_group(proc: subprocess.Popen) -> None:
    "SIGKILL torchrun and every worker it started (one process group), and wait until none is left."
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # the whole group has already exited
        pass
    proc.wait(30)
    deadline = time.time() + 30
    while True:
        try:
            os.killpg(proc.pid, 0)  # raises once no process of the group is left
        except ProcessLookupError:
            return
        assert time.time() < deadline, "workers of the killed torchrun are still running"
        time.sleep(0.1)


@needs_torchrun
def test_ddp_resume_after_kill_bitwise_equal(tmp_path):
    script = tmp_path / "resume_ddp.py"
    script.write_text(RESUME_SCRIPT)
    ckpt = tmp_path / "ckpt"
    hang = subprocess.Popen(_torchrun(script, "hang", str(ckpt), str(tmp_path / "unused")), env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_for_file(tmp_path / "mid_epoch", hang, 300, "both ranks reached the middle of epoch 2")
    finally:
        _kill_group(hang)
    before = file_digests(ckpt)
    folder = latest_checkpoint(ckpt)
    assert folder.name == "epoch_0001"
    _, _, scalars = load_train_state(folder)  # complete and readable after the kill
    assert scalars["epoch"] == 1
    assert scalars["world_size"] == 2
    assert scalars["step"] == 6  # 96 series, 48 per rank, in batches of 8

    resumed = subprocess.run(_torchrun(script, "resume", str(ckpt), str(tmp_path / "resumed")),
                             capture_output=True, text=True, timeout=600, env=child_env())
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    full = subprocess.run(_torchrun(script, "full", str(tmp_path / "ckpt_full"), str(tmp_path / "full")),
                          capture_output=True, text=True, timeout=600, env=child_env())
    assert full.returncode == 0, full.stderr[-4000:]

    a, b = vqvae_weights(tmp_path / "resumed"), vqvae_weights(tmp_path / "full")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs between the resumed and the uninterrupted 2-process run"
    after = file_digests(ckpt)
    assert "epoch_0001/vqvae.safetensors" in before
    assert "epoch_0001/train_state.safetensors" in before
    for name, digest in before.items():
        if name == "latest.json":  # the pointer is meant to move on
            continue
        assert after.get(name) == digest, f"{name} was lost or changed by the resumed run"
    assert latest_checkpoint(ckpt).name == "epoch_0004"
    history = load_train_state(latest_checkpoint(ckpt))[2]["history"]
    assert [r["epoch"] for r in history] == [1, 2, 3, 4]
