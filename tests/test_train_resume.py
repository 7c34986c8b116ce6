"""Kill a training process with SIGKILL in the middle of an epoch, resume it in a new process, and compare
with an uninterrupted run: the final weights must be bitwise equal and no earlier checkpoint may be damaged."""

import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _helpers import child_env, file_digests, vqvae_weights, wait_for_file

from vqldm_nb.train import TrainConfig, latest_checkpoint, load_train_state, train_vqvae

CHILD = r'''
import sys
from pathlib import Path
import numpy as np, torch
from _helpers import pause_after_first_checkpoint
from vqldm_nb.autoencoder import VQVAE, VQVAEConfig
from vqldm_nb.core import seed_everything
from vqldm_nb.train import TrainConfig, save_vqvae, train_vqvae

mode, ckpt, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
x = np.random.default_rng(0).normal(size=(96, 1, 40)).astype(np.float32)
cfg = TrainConfig(epochs=5, batch_size=8, lr=3e-3, device="cpu", progress=False,
                  checkpoint_dir=None if ckpt == "-" else ckpt, checkpoint_every=1)
seed_everything(cfg.seed)
model = VQVAE(VQVAEConfig(hidden=8, n_down=2, n_res=1, codebook_size=16, code_dim=4,
                          quantizer={"dead_code_threshold": 1.0}))
if mode == "hang":  # after the first checkpoint, stop in the middle of an epoch and wait to be killed
    pause_after_first_checkpoint(model, ckpt, out.parent / "mid_epoch")
train_vqvae(model, x, cfg, resume=(mode == "resume"))
save_vqvae(model, out)
'''


def _run(tmp_path, mode, ckpt, out, **kw):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    return subprocess.Popen([sys.executable, str(script), mode, str(ckpt), str(out)], env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_resume_after_sigkill_bitwise_equal(tmp_path):
    ckpt = tmp_path / "ckpt"
    hang = _run(tmp_path, "hang", ckpt, tmp_path / "unused")
    wait_for_file(tmp_path / "mid_epoch", hang, 240, "the middle of epoch 2")
    os.kill(hang.pid, signal.SIGKILL)
    hang.wait(30)
    assert hang.returncode == -signal.SIGKILL
    before = file_digests(ckpt)
    folder = latest_checkpoint(ckpt)
    assert folder.name == "epoch_0001"
    model_state, tensors, scalars = load_train_state(folder)  # complete and readable after the kill
    assert scalars["epoch"] == 1
    assert len(scalars["history"]) == 1
    assert scalars["step"] == 12  # 96 series in batches of 8

    resumed = _run(tmp_path, "resume", ckpt, tmp_path / "resumed")
    full = _run(tmp_path, "full", "-", tmp_path / "full")
    for proc in (resumed, full):
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
    a, b = vqvae_weights(tmp_path / "resumed"), vqvae_weights(tmp_path / "full")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs between the resumed and the uninterrupted run"
    after = file_digests(ckpt)
    assert any(name.startswith("epoch_0001/") for name in before)
    for name, digest in before.items():
        if name == "latest.json":  # the pointer is meant to move on
            continue
        assert after.get(name) == digest, f"{name} was lost or changed by the resumed run"
    assert latest_checkpoint(ckpt).name == "epoch_0005"
    assert [r["epoch"] for r in load_train_state(latest_checkpoint(ckpt))[2]["history"]] == [1, 2, 3, 4, 5]


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.mark.parametrize("where", ["file", "folder"])
def test_pickled_checkpoint_rejected(tmp_path, where):
    import numpy as np

    from vqldm_nb.autoencoder import VQVAE, VQVAEConfig
    marker = tmp_path / "code_ran"
    payload = pickle.dumps(_Payload(marker))
    if where == "file":
        target = tmp_path / "checkpoint.pt"
        target.write_bytes(payload)
        expected = "never unpickles"
    else:
        target = tmp_path / "ckpt"
        folder = target / "epoch_0001"
        folder.mkdir(parents=True)
        for name in ("vqvae.safetensors", "train_state.safetensors"):
            (folder / name).write_bytes(payload)
        (folder / "vqvae.json").write_text('{"kind": "VQVAE", "format": 1, "config": {}}')
        (folder / "train_state.json").write_text('{"kind": "TrainState", "format": 1}')
        (target / "latest.json").write_text('{"format": 1, "epoch": 1, "folder": "epoch_0001"}')
        expected = "never unpickled"
    model = VQVAE(VQVAEConfig(hidden=8, n_down=2, n_res=1, codebook_size=16, code_dim=4))
    x = np.zeros((4, 1, 16), np.float32)
    with pytest.raises(ValueError, match=expected):
        train_vqvae(model, x, TrainConfig(epochs=1, device="cpu", progress=False), resume=target)
    assert not marker.exists()
