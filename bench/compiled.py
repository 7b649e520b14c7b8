"""Compiled-step workloads, one engine per process: ``python bench/compiled.py WORKLOAD ENGINE``.

Prints one JSON object on stdout; ``bench/run.py`` starts these processes, alternating
the engines, and reports medians. Workloads:

- ``demo``: the reference demo's training step written exactly as in
  ``workloads.demo_step`` (the user's loop), with one line added:
  ``step = chainrule.compile(loss, model.parameters())``. Engine ``compiled``.
- ``demo_array``: the same step through ``step.value_and_grad()`` (the array path),
  the update done from the gradient array. Engine ``compiled``.
- ``compile_time``: seconds to compile the demo (both traces, checks, planning and the
  first replay), beside the median eager step in the same process.
- ``mlp``: moons, ``--points`` × ``--width``: MLP 2-W-W-1 ReLU, hinge + 1e-4·L2, one
  full-batch step; engines ``compiled`` (value_and_grad) and ``numpy`` (forward and
  backward written by hand with NumPy: the floor an array program can reach).
- ``chain``: a ``--depth``-deep chain ``y = tanh(y·w + 0.1)``, build + backward;
  engines ``eager`` and ``compiled`` (which falls back to eager for such graphs);
  ``--no-gc`` times the steps with the collector off (the engines' own work).

BLAS runs on one thread, as PyTorch does in ``workloads.py``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import time
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import workloads  # bench/workloads.py: the same demo as the other engines run

import chainrule
from chainrule import Value
from chainrule import losses as L
from chainrule.data import moons
from chainrule.nn import MLP


def demo_problem() -> tuple[Any, Any]:
    """The reference demo's model and loss, exactly as ``workloads.demo_step`` runs them."""
    X, y = workloads.moons()
    random.seed(1337)
    model = MLP(2, [16, 16, 1], activation="relu")  # the reference demo's network
    return model, workloads.demo_loss(Value, model, X, y)


def demo(engine: str, steps: int) -> dict[str, Any]:
    model, loss = demo_problem()
    step = chainrule.compile(loss, model.parameters())
    times, values = [], []
    for k in range(steps):
        start = time.perf_counter()
        total = step()
        workloads.backward_and_update(model, total, k)
        times.append(time.perf_counter() - start)
        values.append(total.data)
    return {"seconds": times, "loss": values}


def demo_array(engine: str, steps: int) -> dict[str, Any]:
    model, loss = demo_problem()
    params = model.parameters()
    step = chainrule.compile(loss, params)
    times, values = [], []
    for k in range(steps):
        start = time.perf_counter()
        value, grads = step.value_and_grad()
        lr = 1.0 - 0.9 * k / 100
        for p, g in zip(params, grads.tolist(), strict=True):
            p.data -= lr * g
        times.append(time.perf_counter() - start)
        values.append(value)
    return {"seconds": times, "loss": values}


def compile_time(engine: str, steps: int) -> dict[str, Any]:
    model, loss = demo_problem()
    eager = []
    for _ in range(steps):
        start = time.perf_counter()
        total = loss()
        model.zero_grad()
        total.backward()
        eager.append(time.perf_counter() - start)
    start = time.perf_counter()
    step = chainrule.compile(loss, model.parameters())
    step().backward()
    seconds = time.perf_counter() - start
    return {"compile": seconds, "eager_step": statistics.median(eager[1:])}


def mlp_problem(points: int, width: int) -> tuple[Any, Any, Any]:
    X, y = moons(points, noise=0.1, seed=1)
    ys = np.array([2.0 * c - 1.0 for c in y])
    return np.array(X), ys, MLP(2, [width, width, 1], activation="relu", rng=random.Random(0))


def mlp(engine: str, steps: int, points: int, width: int) -> dict[str, Any]:
    X, ys, model = mlp_problem(points, width)
    params = model.parameters()
    if engine == "numpy":
        return numpy_mlp(X, ys, model, steps)

    def loss(xb: Any, yb: Any) -> Value:
        return L.hinge([model(r) for r in xb], yb) + 1e-4 * L.l2(params)

    start = time.perf_counter()
    step = chainrule.compile(loss, params)
    value, grads = step.value_and_grad(X, ys)
    compiled = time.perf_counter() - start
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        value, grads = step.value_and_grad(X, ys)
        times.append(time.perf_counter() - start)
    return {
        "seconds": times,
        "loss": value,
        "grad_norm": float(np.linalg.norm(grads)),
        "compile": compiled,
    }


def numpy_weights(model: MLP) -> tuple[list[Any], list[Any]]:
    """The MLP's weights as NumPy arrays: per layer, a (nout, nin) matrix and a bias vector."""
    Ws = [np.array([[w.data for w in n.w] for n in layer.neurons]) for layer in model.layers]
    bs = [np.array([n.b.data for n in layer.neurons]) for layer in model.layers]
    return Ws, bs


def numpy_step(X: Any, ys: Any, Ws: list[Any], bs: list[Any]) -> tuple[float, list[Any]]:
    """One full-batch step of MLP 2-W-W-1 ReLU, hinge + 1e-4·L2, forward and backward
    written by hand: the loss and the gradients ``[gW1, gb1, gW2, gb2, gW3, gb3]``."""
    n = len(X)
    h1 = X @ Ws[0].T + bs[0]
    a1 = np.maximum(h1, 0.0)
    h2 = a1 @ Ws[1].T + bs[1]
    a2 = np.maximum(h2, 0.0)
    s = (a2 @ Ws[2].T + bs[2])[:, 0]
    margin = 1.0 - ys * s
    value = np.maximum(margin, 0.0).mean() + 1e-4 * sum(
        (W * W).sum() + (b * b).sum() for W, b in zip(Ws, bs, strict=True)
    )
    ds = np.where(margin > 0.0, -ys / n, 0.0)[:, None]
    gW3, gb3 = ds.T @ a2, ds.sum(0)
    d2 = (ds @ Ws[2]) * (h2 > 0.0)
    gW2, gb2 = d2.T @ a1, d2.sum(0)
    d1 = (d2 @ Ws[1]) * (h1 > 0.0)
    gW1, gb1 = d1.T @ X, d1.sum(0)
    params = [Ws[0], bs[0], Ws[1], bs[1], Ws[2], bs[2]]
    grads = [g + 2e-4 * p for g, p in zip([gW1, gb1, gW2, gb2, gW3, gb3], params, strict=True)]
    return float(value), grads


def in_params_order(grads: list[Any]) -> Any:
    """``[gW1, gb1, ...]`` as one vector in ``model.parameters()``'s order: layer by layer,
    each neuron's weights, then its bias."""
    pairs = zip(grads[::2], grads[1::2], strict=True)
    return np.concatenate([np.hstack([gW, gb[:, None]]).ravel() for gW, gb in pairs])


def numpy_mlp(X: Any, ys: Any, model: MLP, steps: int) -> dict[str, Any]:
    """The same loss and gradients written by hand with NumPy arrays."""
    Ws, bs = numpy_weights(model)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        value, grads = numpy_step(X, ys, Ws, bs)
        times.append(time.perf_counter() - start)
    norm = float(np.sqrt(sum((g * g).sum() for g in grads)))
    return {"seconds": times, "loss": value, "grad_norm": norm}


def chain(engine: str, steps: int, depth: int, collector: bool = True) -> dict[str, Any]:
    w = Value(0.9)

    def loss() -> Value:
        y = w
        for _ in range(depth):
            y = (y * w + 0.1).tanh()
        return y

    fn: Any = loss
    compiled = 0.0
    if engine == "compiled":
        start = time.perf_counter()
        fn = chainrule.compile(loss, [w])
        fn()
        compiled = time.perf_counter() - start
    else:  # as many graphs built before timing as compile() builds: the same heap state
        for _ in range(3):
            loss()
    if not collector:  # the engines' own work: the collector's pauses depend on the
        gc.disable()  # heap's history (compiling leaves another heap than 3 graphs do)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        out = fn()
        w.grad = 0.0
        out.backward()
        times.append(time.perf_counter() - start)
    gc.enable()
    return {"seconds": times, "grad": w.grad, "compile": compiled}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("workload", choices=["demo", "demo_array", "compile_time", "mlp", "chain"])
    parser.add_argument("engine", choices=["compiled", "eager", "numpy"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--points", type=int, default=100)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--depth", type=int, default=20_000)
    parser.add_argument(
        "--no-gc", action="store_true", help="chain: time the steps with the collector off"
    )
    args = parser.parse_args()
    if args.workload == "mlp":
        result = mlp(args.engine, args.steps, args.points, args.width)
    elif args.workload == "chain":
        result = chain(args.engine, args.steps, args.depth, collector=not args.no_gc)
    else:
        result = globals()[args.workload](args.engine, args.steps)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
