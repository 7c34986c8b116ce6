"""Train the quick VQ-VAE on ECG5000 with `torchrun --nproc_per_node 2` (gloo on CPU).
Both ranks must end with bitwise equal weights and codebook, and only rank 0 may log and write checkpoints."""

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

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


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None, reason="torchrun not installed")
def test_ddp_ranks_end_equal(tmp_path):
    script = tmp_path / "train_ddp.py"
    script.write_text(SCRIPT)
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                             "--master_port", str(_free_port()), str(script), str(tmp_path)],
                            capture_output=True, text=True, timeout=600, env=env)
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
