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
"""

from __future__ import annotations

import argparse
import json
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
from chainrule.training import GPTConfig


def setup(steps: int) -> tuple[GPT, CharTokenizer, list[list[int]]]:
    """The model, tokenizer and token lists of ``train_gpt``'s default run."""
    config = GPTConfig(steps=steps)
    names = data.names()
    tokenizer = CharTokenizer.from_names(names)
    random.Random(config.seed + 1).shuffle(names)
    model = GPT(tokenizer.vocab_size, rng=random.Random(config.seed))
    return model, tokenizer, [tokenizer.encode(n) for n in names[:steps]]


def ours(engine: str, steps: int) -> dict[str, Any]:
    model, _, batches = setup(steps)
    trainer = Trainer(model, lr=0.01, steps=steps, compiled=engine == "compiled")
    times, losses = [], []
    for tokens in batches:
        start = time.perf_counter()
        losses.append(trainer.step(tokens))
        times.append(time.perf_counter() - start)
    return {"seconds": times, "loss": losses}


def torch_gpt(steps: int) -> dict[str, Any]:
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_gpt import torch_reference  # the suite's PyTorch twin of chainrule.gpt.GPT

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("engine", choices=["eager", "compiled", "torch"])
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()
    result = torch_gpt(args.steps) if args.engine == "torch" else ours(args.engine, args.steps)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
