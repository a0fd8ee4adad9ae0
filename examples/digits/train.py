"""Train the PyTorch module archdsl generated for specs/digits_cnn.arch on scikit-learn's digits.

    archdsl compile specs/digits_cnn.arch --target torch -o build/torch
    python examples/digits/train.py --module build/torch --out build/digits
    torchrun --nproc_per_node=2 examples/digits/train.py --module build/torch --out build/digits

Writes into --out: digits_cnn.pt (the trained state_dict: its keys are the spec's parameter
names, so every archdsl command takes it as --weights), train.npy / test.npy (float NCHW images,
pixels / 16) and train_labels.npy / test_labels.npy. The split is fixed (seed 0): 1,437 training
and 360 held-out images. Under torchrun each process trains on its half of every batch and
DistributedDataParallel (gloo, CPU) averages the gradients, so both runs compute the same model
up to float rounding. Prints the float model's held-out accuracy.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

NAME = "digits_cnn"


def digits_split(seed: int = 0, n_test: int = 360):
    """(x_train, y_train, x_test, y_test): float32 NCHW images in [0, 1], int64 labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None]  # (1797, 1, 8, 8)
    y = d.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def load_generated(module_dir: Path):
    path = Path(module_dir) / f"{NAME}.py"
    spec = importlib.util.spec_from_file_location(NAME, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build()


def main(argv=None) -> float:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--module", type=Path, required=True, help="folder of `archdsl compile --target torch`")
    p.add_argument("--out", type=Path, required=True, help="folder for the weights and the data split")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.01)
    args = p.parse_args(argv)

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        import torch.distributed as dist

        dist.init_process_group("gloo")
    torch.manual_seed(0)
    torch.set_num_threads(1)
    x_train, y_train, x_test, y_test = digits_split()
    model = load_generated(args.module)
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(model)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    gen = torch.Generator().manual_seed(0)  # the same batches in every process
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(xt), generator=gen)
        for start in range(0, len(xt), args.batch):
            batch = order[start:start + args.batch]
            mine = batch[rank::world]  # this process's share of the batch
            opt.zero_grad()
            # mean over the whole batch: the DDP average of the shares' sums / batch size
            loss = F.cross_entropy(net(xt[mine]), yt[mine], reduction="sum") * (world / len(batch))
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        accuracy = float((model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean())
    if rank == 0:
        args.out.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), args.out / f"{NAME}.pt")
        for key, value in (("train", x_train), ("train_labels", y_train), ("test", x_test),
                           ("test_labels", y_test)):
            np.save(args.out / f"{key}.npy", value)
        print(f"float accuracy on {len(y_test)} held-out images: {100 * accuracy:.2f}% "
              f"({world} process{'es' if world > 1 else ''}); wrote {args.out / (NAME + '.pt')}")
    if world > 1:
        import torch.distributed as dist

        dist.destroy_process_group()
    return accuracy


if __name__ == "__main__":
    main()
