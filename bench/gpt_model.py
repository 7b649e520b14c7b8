"""The library GPT's training, one engine per process: ``python bench/gpt_model.py ENGINE``.

``chainrule gpt train``'s run: ``chainrule.gpt.GPT`` with its defaults (1 layer, 16 wide,
4 heads, context 16; 4,192 parameters), Adam (0.85, 0.99), lr 0.01 falling linearly,
one shuffled name per step from the shipped names. Engines:

- ``eager`` and ``compiled``: ``chainrule.training.train_gpt`` end to end, compiling
  included (one program per name length), timed per step.
- ``torch``: the same model written with PyTorch float64 tensors on one thread (the
  reference of ``tests/test_gpt.py``), the same initial weights, names and Adam.

Prints one JSON object: the seconds of every step and the losses. ``bench/run.py``
runs it; BLAS runs on one thread.

Issue 19's batch target (``bench/run.py --only vmap``) trains on the first ``--names``
shuffled names, in names per second, with these engines:

- ``one_name``: today's compiled trainer, ``train_gpt`` with one name per step (the
  baseline): ``--names`` steps.
- ``batch``: ``train_gpt`` with ``batch_size=--batch-size``, the same names in
  consecutive batches, *if* ``GPTConfig`` has a ``batch_size`` (``chainrule gpt train
  --batch-size``); otherwise it prints ``{"unavailable": "<why>"}``, never a number.
- ``torch_batch``: the PyTorch model above on the same batches (padded to the batch's
  longest name; the loss is the mean of the names' own losses, checked against the
  one-name reference on the first batch), the same Adam.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from chainrule import data
from chainrule.gpt import BETAS, GPT, CharTokenizer, Trainer
from chainrule.training import GPTConfig, train_gpt


def setup(steps: int) -> tuple[GPT, CharTokenizer, list[list[int]]]:
    """The model, tokenizer and the first ``steps`` token lists of ``train_gpt``'s default
    run (name ``k % len(names)`` at step ``k``, as there)."""
    config = GPTConfig(steps=steps)
    names = data.names()
    tokenizer = CharTokenizer.from_names(names)
    random.Random(config.seed + 1).shuffle(names)
    model = GPT(tokenizer.vocab_size, rng=random.Random(config.seed))
    return model, tokenizer, [tokenizer.encode(names[k % len(names)]) for k in range(steps)]


def ours(engine: str, steps: int) -> dict[str, Any]:
    model, _, batches = setup(steps)
    trainer = Trainer(model, lr=0.01, steps=steps, compiled=engine == "compiled")
    times, losses = [], []
    for tokens in batches:
        start = time.perf_counter()
        losses.append(trainer.step(tokens))
        times.append(time.perf_counter() - start)
    return {"seconds": times, "loss": losses}


def torch_reference(model: GPT) -> tuple[dict[str, Any], Any]:
    """The suite's PyTorch twin of ``chainrule.gpt.GPT`` (``tests/test_gpt.py``): the
    model's weights as float64 leaf tensors, and its one-name loss."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_gpt import torch_reference as reference

    weights, loss = reference(model)
    return weights, loss


def torch_gpt(steps: int) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    model, _, batches = setup(steps)
    W, loss_of = torch_reference(model)
    opt = torch.optim.Adam(list(W.values()), lr=0.01, betas=BETAS, eps=1e-8)
    times, losses = [], []
    for k, tokens in enumerate(batches):
        start = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = 0.01 * (1.0 - k / steps)
        opt.zero_grad()
        loss = loss_of(tokens)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
        losses.append(loss.item())
    return {"seconds": times, "loss": losses}


# -- issue 19: names per second, one name per step against batches of names -------------


def one_name(names: int) -> dict[str, Any]:
    """Today's compiled trainer (``chainrule gpt train``): one name per step."""
    result = train_gpt(GPTConfig(steps=names))
    return {"names": names, "total": result.seconds, "loss": result.loss}


def chainrule_batch(names: int, batch_size: int) -> dict[str, Any]:
    """``train_gpt`` on batches of ``batch_size`` names: issue 19's engine, not yet on main.

    Runs only where ``GPTConfig`` has a ``batch_size`` (``chainrule gpt train
    --batch-size``); otherwise it says so instead of giving a figure.
    """
    if "batch_size" not in {f.name for f in dataclasses.fields(GPTConfig)}:
        return {
            "unavailable": "not available: GPTConfig has no batch_size "
            "(`chainrule gpt train --batch-size` is not on this commit)"
        }
    config = GPTConfig(steps=names // batch_size, batch_size=batch_size)  # type: ignore[call-arg]
    result = train_gpt(config)
    return {"names": config.steps * batch_size, "total": result.seconds, "loss": result.loss}


def torch_batch_loss(model: GPT, W: dict[str, Any]) -> Any:
    """The loss of a batch of encoded names with ``W``, the weights of ``torch_reference``:
    the mean over the names of each name's mean cross-entropy, as one tensor program.

    The names are padded at the end to the longest; attention is causal, so padding is
    seen by no real position, and its positions weigh nothing in the loss.
    """
    import torch
    import torch.nn.functional as F

    d, h = model.dim, model.heads

    def rms(x: Any) -> Any:
        return x * (x.pow(2).mean(dim=-1, keepdim=True) + 1e-5).rsqrt()

    def loss(batch: list[list[int]]) -> Any:
        lengths = [min(model.block_size, len(tokens) - 1) for tokens in batch]
        B, n = len(batch), max(lengths)
        inputs = torch.zeros(B, n, dtype=torch.long)
        targets = torch.zeros(B, n, dtype=torch.long)
        weight = torch.zeros(B, n, dtype=torch.float64)
        for b, (tokens, m) in enumerate(zip(batch, lengths, strict=True)):
            inputs[b, :m] = torch.tensor(tokens[:m])
            targets[b, :m] = torch.tensor(tokens[1 : m + 1])
            weight[b, :m] = 1.0 / (m * B)
        x = rms(W["wte"][inputs] + W["wpe"][:n])
        mask = torch.ones(n, n, dtype=torch.bool).triu(1)
        for i in range(len(model.blocks)):
            q, k, v = (
                (rms(x) @ W[f"{i}.{p}"].T).reshape(B, n, h, d // h).transpose(1, 2)
                for p in ("q_proj", "k_proj", "v_proj")
            )
            att = (q @ k.transpose(-1, -2) / math.sqrt(d // h)).masked_fill(mask, -math.inf)
            mixed = (att.softmax(dim=-1) @ v).transpose(1, 2).reshape(B, n, d)
            x = x + mixed @ W[f"{i}.out_proj"].T
            x = x + torch.relu(rms(x) @ W[f"{i}.fc1"].T) @ W[f"{i}.fc2"].T
        logits = (x @ W["lm_head"].T).reshape(B * n, -1)
        losses = F.cross_entropy(logits, targets.reshape(-1), reduction="none")
        return (losses * weight.reshape(-1)).sum()

    return loss


def torch_batch(names: int, batch_size: int) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    steps = names // batch_size
    model, _, token_lists = setup(steps * batch_size)
    W, one_loss = torch_reference(model)
    loss_of = torch_batch_loss(model, W)
    batches = [token_lists[k * batch_size : (k + 1) * batch_size] for k in range(steps)]
    with torch.no_grad():  # the batched loss is the mean of the one-name reference's
        batched = loss_of(batches[0]).item()
        mean = math.fsum(one_loss(t).item() for t in batches[0]) / len(batches[0])
    assert abs(batched - mean) <= 1e-12 * max(1.0, abs(mean)), (batched, mean)
    opt = torch.optim.Adam(list(W.values()), lr=0.01, betas=BETAS, eps=1e-8)
    times, losses = [], []
    for k, batch in enumerate(batches):
        start = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = 0.01 * (1.0 - k / steps)
        opt.zero_grad()
        loss = loss_of(batch)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
        losses.append(loss.item())
    return {"names": steps * batch_size, "total": sum(times), "seconds": times, "loss": losses}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "engine", choices=["eager", "compiled", "torch", "one_name", "batch", "torch_batch"]
    )
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--names", type=int, default=6400, help="issue 19's engines (6,400)")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    if args.engine == "torch":
        result = torch_gpt(args.steps)
    elif args.engine == "one_name":
        result = one_name(args.names)
    elif args.engine == "batch":
        result = chainrule_batch(args.names, args.batch_size)
    elif args.engine == "torch_batch":
        result = torch_batch(args.names, args.batch_size)
    else:
        result = ours(args.engine, args.steps)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
