"""Helpers of the tests that kill a training run and resume it. Child scripts import this module too:
`child_env` puts the tests folder on their PYTHONPATH."""

import hashlib
import os
import socket
import subprocess
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def child_env() -> dict:
    "Return the environment of a child training process: one OpenMP thread and this folder importable."
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}


def free_port() -> int:
    "Return a TCP port on 127.0.0.1 that was free a moment ago, for torchrun's rendezvous."
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def file_digests(folder: Path) -> dict:
    "Return the SHA-256 of every finished file under `folder`, keyed by relative path (temporary files skipped)."
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.endswith(".tmp")}


def vqvae_weights(folder: Path) -> dict:
    "Return the state dict of the VQ-VAE saved in `folder`."
    from vqldm_nb.train import load_vqvae
    return load_vqvae(folder)[0].state_dict()


def wait_for_file(path: Path, proc: subprocess.Popen, timeout: float, event: str) -> None:
    "Wait until `path` exists, which marks `event`; fail with the child's stderr if `proc` exits first, or after `timeout` seconds."
    deadline = time.time() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the child exited with {proc.returncode} before {event}: {proc.communicate()[1][-3000:]}")
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting until {event}")
        time.sleep(0.05)


def pause_after_first_checkpoint(model, checkpoint_dir, marker, forward_calls: int = 3) -> None:
    """Make `model` stop in the middle of the epoch after the first checkpoint: on the `forward_calls`-th
    forward pass after `checkpoint_dir/latest.json` appears, create `marker` and sleep until killed."""
    calls = {"n": 0}

    def hook(module, args):
        if (Path(checkpoint_dir) / "latest.json").exists():
            calls["n"] += 1
            if calls["n"] == forward_calls:
                Path(marker).touch()
                time.sleep(600)

    model.register_forward_pre_hook(hook)
