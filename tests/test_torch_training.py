"""The generated module as a training module: SGD lowers the loss (BN in train mode),
torch.compile and torch.export take it whole, and DistributedDataParallel over two
CPU processes (gloo) averages gradients to those of one process on the full batch.

The model is tiny on purpose (8x8 input, a few thousand weights) yet has every
structure of the language: conv + BN + activation rows, a residual, a
squeeze-and-excitation scale, a concat and an fc.
"""
from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import parse_text

from archdsl.backends import torch_target as T
from archdsl.weights import init_weights

torch.set_num_threads(1)

TINY = """\
network tiny(classes = 4)
input 8x8x3
after conv: bn relu
conv / s1        3x3x3x8
residual {
  conv dw / s1   3x3x8 dw
  conv / s1      1x1x8x8        after=bn
}
scale {
  global avg pool
  conv / s1      1x1x8x8        bias=yes after=sigmoid
}
concat {
  branch {
    max pool / s2  2x2
  }
  branch {
    conv / s2    3x3x8x8
  }
}
global avg pool
fc               16x{classes}
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    graph = parse_text(TINY)
    outdir = tmp_path_factory.mktemp("tiny")
    T.compile(graph, init_weights(graph, seed=0), outdir, graph.name)
    return graph, outdir


def dataset(n: int = 32, seed: int = 0):
    """A learnable task: the class is which two input channels have the larger mean."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3, 8, 8)).astype(np.float32)
    means = x.mean(axis=(2, 3))
    y = (means[:, 0] > 0).astype(np.int64) + 2 * (means[:, 1] > 0).astype(np.int64)
    return torch.from_numpy(x), torch.from_numpy(y)


def test_sgd_steps_lower_the_loss(tiny):
    graph, outdir = tiny
    torch.manual_seed(0)
    model = T.load_module(outdir, graph.name).build()  # torch's own init
    model.train()
    x, y = dataset()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses
    bn = model.conv1.bn  # BN in train mode: batch statistics used, running statistics updated
    assert int(bn.num_batches_tracked) == 30
    assert not torch.allclose(bn.running_mean, torch.zeros_like(bn.running_mean))
    # and the trained weights still save under the IR's keys
    keys = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    assert keys == {k for k, _ in graph.parameters()}


def test_torch_compile_and_export(tiny):
    graph, outdir = tiny
    model = T.load_model(outdir, graph.name)
    x, _ = dataset(4, seed=1)
    with torch.no_grad():
        eager = model(x)
        torch._dynamo.reset()
        compiled = torch.compile(model, fullgraph=True)  # inductor: C++ kernels built with the host compiler
        torch.testing.assert_close(compiled(x), eager, rtol=1e-5, atol=1e-6)
    exported = torch.export.export(model, (x,))  # one graph, no Python fallbacks
    torch.testing.assert_close(exported.module()(x), eager, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- DistributedDataParallel

WORLD = 2
BATCH = 8  # split in two shards of 4


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _loss(model, x, y):
    return F.cross_entropy(model(x), y)


def _ddp_worker(rank: int, port: int, outdir: str, name: str, results: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        model = T.load_model(outdir, name)  # eval: BN uses its running statistics, so shards are independent
        ddp = DDP(model)
        x, y = dataset(BATCH, seed=2)
        shard = slice(rank * BATCH // WORLD, (rank + 1) * BATCH // WORLD)
        _loss(ddp, x[shard], y[shard]).backward()
        grads = {k: p.grad.detach().numpy() for k, p in model.named_parameters()}
        np.savez(Path(results) / f"rank{rank}.npz", **grads)
    finally:
        dist.destroy_process_group()


def test_ddp_gradients_equal_the_full_batch_gradient(tiny, tmp_path):
    import torch.multiprocessing as mp

    graph, outdir = tiny
    ctx = mp.spawn(_ddp_worker, args=(_free_port(), str(outdir), graph.name, str(tmp_path)),
                   nprocs=WORLD, join=False)
    deadline = time.monotonic() + 120
    while not ctx.join(timeout=5):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.terminate()
            pytest.fail("the DDP workers did not finish within 120 s")

    model = T.load_model(outdir, graph.name)
    x, y = dataset(BATCH, seed=2)
    _loss(model, x, y).backward()
    full = {k: p.grad.numpy() for k, p in model.named_parameters()}
    ranks = [dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(WORLD)]
    assert set(ranks[0]) == set(full) == {k for k, s in graph.parameters() if s.role != "bn_stats"}
    for key, g in full.items():
        assert np.array_equal(ranks[0][key], ranks[1][key]), f"{key}: the ranks disagree after all-reduce"
        np.testing.assert_allclose(ranks[0][key], g, rtol=1e-4, atol=1e-6 * max(1.0, float(np.abs(g).max())),
                                   err_msg=f"{key}: DDP average differs from the full-batch gradient")
    assert any(np.abs(g).max() > 0 for g in full.values())
