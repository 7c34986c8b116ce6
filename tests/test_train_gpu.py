"""Training on a GPU: bf16 autocast, torch.compile, pinned-memory loading and resume on CUDA.
The CUDA tests skip on a machine without one; the CPU test checks that the GPU options leave CPU results unchanged."""

import numpy as np
import pytest
import torch

from vqldm_nb.autoencoder import VQVAE, VQVAEConfig
from vqldm_nb.core import seed_everything
from vqldm_nb.train import TrainConfig, evaluate_mse, resolve_amp, train_vqvae

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
X = np.random.default_rng(0).normal(size=(128, 1, 44)).astype(np.float32)
MODEL = VQVAEConfig(hidden=16, n_down=2, n_res=1, codebook_size=32, code_dim=8)


def _train(device="cpu", **options):
    seed_everything(0)
    model = VQVAE(MODEL)
    history = train_vqvae(model, X, TrainConfig(epochs=3, batch_size=32, lr=3e-3, device=device, progress=False, **options))
    return model, history


def test_amp_auto_unchanged_on_cpu():
    a, _ = _train(amp="auto")
    b, _ = _train(amp="off")
    assert resolve_amp("auto", torch.device("cpu")) is None
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key


@cuda
def test_bf16_training_on_cuda():
    model, history = _train("cuda", amp="bf16")
    assert all(np.isfinite(r["loss"]) for r in history)
    assert history[-1]["recon_mse"] < history[0]["recon_mse"]
    assert model.quantizer.codebook.dtype == torch.float32  # the quantizer keeps its statistics in fp32
    assert next(model.parameters()).device.type == "cuda"


@cuda
def test_cuda_fp32_close_to_cpu():
    gpu, _ = _train("cuda", amp="off")
    cpu, _ = _train("cpu", amp="off")
    # TF32 and the atomic adds of the EMA update make CUDA differ from the CPU in the last bits only
    assert abs(evaluate_mse(gpu.cpu(), X) - evaluate_mse(cpu, X)) < 0.05


@cuda
def test_compile_on_cuda():
    _, history = _train("cuda", amp="bf16", compile=True)
    assert history[-1]["recon_mse"] < history[0]["recon_mse"]


@cuda
def test_resume_on_cuda(tmp_path):
    full, _ = _train("cuda", amp="off", checkpoint_dir=str(tmp_path))
    import json
    (tmp_path / "latest.json").write_text(json.dumps({"format": 1, "epoch": 1, "folder": "epoch_0001"}))
    seed_everything(1)
    resumed = VQVAE(MODEL)
    train_vqvae(resumed, X, TrainConfig(epochs=3, batch_size=32, lr=3e-3, device="cuda", progress=False, amp="off",
                                         checkpoint_dir=str(tmp_path)), resume=True)
    assert abs(evaluate_mse(resumed.cpu(), X) - evaluate_mse(full.cpu(), X)) < 1e-3
