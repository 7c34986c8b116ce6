"""Two CPU processes (gloo) train one EMA quantizer each on different data; the codebooks must stay bitwise equal."""

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vqldm_nb.quantize import VectorQuantizer

WORLD_SIZE = 2
STEPS = 20


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, results: dict, sync: bool) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE)
    try:
        torch.manual_seed(0)  # the same initial codebook on every rank
        vq = VectorQuantizer(32, 6, ema=True, decay=0.8, kmeans_init=True, dead_code_threshold=2.0,
                             seed=rank, sync_distributed=sync).train()
        data = torch.Generator().manual_seed(100 + rank)  # different data on each rank
        restarts = 0
        for step in range(STEPS):
            shift = 3.0 * rank  # the two ranks see different distributions
            z_e = torch.randn(4, 6, 25, generator=data) + shift
            length = 25 - 3 * rank - step % 4
            mask = torch.arange(25)[None].expand(4, 25) < length
            vq(z_e, mask=mask)
            restarts += vq.last_restarts
        stats = vq.epoch_stats()  # collective: sums the counts of both ranks
        results[rank] = dict(
            codebook=vq.codebook.clone(), ema_count=vq.ema_count.clone(), ema_sum=vq.ema_sum.clone(),
            restarts=restarts, vectors=stats["vectors"],
        )
    finally:
        dist.destroy_process_group()


def _run(sync: bool) -> tuple[dict, dict]:
    manager = mp.Manager()
    results = manager.dict()
    mp.spawn(_worker, args=(_free_port(), results, sync), nprocs=WORLD_SIZE, join=True)
    return results[0], results[1]


def test_ema_codebooks_bitwise_equal_across_ranks():
    r0, r1 = _run(sync=True)
    assert torch.equal(r0["codebook"], r1["codebook"])
    assert torch.equal(r0["ema_count"], r1["ema_count"])
    assert torch.equal(r0["ema_sum"], r1["ema_sum"])
    assert r0["restarts"] == r1["restarts"]
    assert r0["restarts"] > 0, "no dead-code restart happened, so the test does not cover the broadcast"
    expected_vectors = sum(4 * (25 - 3 * rank - step % 4) for rank in range(WORLD_SIZE) for step in range(STEPS))
    assert r0["vectors"] == r1["vectors"] == expected_vectors



def test_unsynchronised_codebooks_differ():
    r0, r1 = _run(sync=False)  # the control: without synchronisation the ranks drift apart
    assert not torch.equal(r0["codebook"], r1["codebook"])


if __name__ == "__main__":
    pytest.main([__file__, "-v"])
