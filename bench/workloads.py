"""Benchmark workloads, one engine per process: ``python bench/workloads.py WORKLOAD ENGINE``.

Prints one JSON object on stdout. ``bench/run.py`` starts these processes, alternating
the engines, and reports medians; run that, not this.

Engines: ``chainrule``, ``micrograd`` (the reference implementation, 0.1.0, with its own
``MLP``), ``torch`` (PyTorch on the CPU, float64, one thread) and, for the ``gpt``
workload, ``tiny`` (a ~40-line scalar ``Value``, ``bench/tiny_value.py``). The garbage
collector stays on, as users run.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import random
import sys
import time
import tracemalloc
from typing import Any

STEPS = {"chainrule": 20, "micrograd": 4, "torch": 200}


def moons() -> tuple[list[list[float]], list[float]]:
    from chainrule.data import moons as make

    X, y = make(100, noise=0.1, seed=1337)
    return X, [2.0 * c - 1.0 for c in y]


def demo_loss(Value: Any, model: Any, X: list[list[float]], y: list[float]) -> Any:
    """The reference demo's loss, written the way a user writes it (``sum()`` over Values)."""

    def loss() -> Any:
        inputs = [list(map(Value, row)) for row in X]
        scores = list(map(model, inputs))
        losses = [(1 + -yi * si).relu() for yi, si in zip(y, scores, strict=True)]
        data_loss = sum(losses) * (1.0 / len(losses))
        reg_loss = 1e-4 * sum(p * p for p in model.parameters())
        return data_loss + reg_loss

    return loss


def backward_and_update(model: Any, total: Any, k: int) -> None:
    """``zero_grad()``, ``backward()`` and the demo's SGD update (lr 1.0 falling to 0.1)."""
    model.zero_grad()
    total.backward()
    lr = 1.0 - 0.9 * k / 100
    for p in model.parameters():
        p.data -= lr * p.grad


def demo_step(engine: str, steps: int) -> dict[str, Any]:
    """The reference demo's training step, written the way a user writes it."""
    X, y = moons()
    random.seed(1337)
    if engine == "torch":
        return torch_demo_step(X, y, steps)
    if engine == "micrograd":
        from micrograd.engine import Value
        from micrograd.nn import MLP

        model: Any = MLP(2, [16, 16, 1])
    else:
        from chainrule import Value
        from chainrule.nn import MLP

        model = MLP(2, [16, 16, 1], activation="relu")  # the reference demo's network

    loss = demo_loss(Value, model, X, y)
    times, values = [], []
    for k in range(steps):
        start = time.perf_counter()
        total = loss()
        backward_and_update(model, total, k)
        times.append(time.perf_counter() - start)
        values.append(total.data)
    return {"seconds": times, "loss": values}


def torch_demo_step(X: list[list[float]], y: list[float], steps: int) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    sizes = [2, 16, 16, 1]
    params = []
    for nin, nout in itertools.pairwise(sizes):
        w = [[random.uniform(-1, 1) for _ in range(nin)] for _ in range(nout)]
        params.append(torch.tensor(w, dtype=torch.float64, requires_grad=True))
        params.append(torch.zeros(nout, dtype=torch.float64, requires_grad=True))
    Xt = torch.tensor(X, dtype=torch.float64)
    yt = torch.tensor(y, dtype=torch.float64)
    times, values = [], []
    for k in range(steps):
        start = time.perf_counter()
        h = Xt
        for i in range(0, len(params), 2):
            h = h @ params[i].T + params[i + 1]
            if i < len(params) - 2:
                h = torch.relu(h)
        data_loss = torch.relu(1 - yt * h[:, 0]).mean()
        total = data_loss + 1e-4 * sum((p * p).sum() for p in params)
        for p in params:
            p.grad = None
        total.backward()
        with torch.no_grad():
            for p in params:
                p -= (1.0 - 0.9 * k / 100) * p.grad
        times.append(time.perf_counter() - start)
        values.append(total.item())
    return {"seconds": times, "loss": values}


def _value_class(engine: str) -> Any:
    if engine == "micrograd":
        from micrograd.engine import Value
    else:
        from chainrule import Value
    return Value


def chain(engine: str, n: int) -> dict[str, Any]:
    """A chain of ``n`` nodes, ``y = y + x``: build, then backward."""
    Value = _value_class(engine)
    x = Value(0.5)
    start = time.perf_counter()
    y = x
    for _ in range(n - 1):
        y = y + x
    built = time.perf_counter()
    try:
        y.backward()
    except RecursionError:
        return {"error": "RecursionError", "build": built - start}
    done = time.perf_counter()
    assert x.grad == n
    return {"nodes": n, "build": built - start, "backward": done - built, "total": done - start}


def wide(engine: str, width: int, depth: int) -> dict[str, Any]:
    """A random graph ``width`` nodes wide and ``depth`` deep, every node reused."""
    Value = _value_class(engine)
    rng = random.Random(0)
    leaves = [Value(rng.uniform(-1, 1)) for _ in range(width)]
    start = time.perf_counter()
    layer = leaves
    for d in range(depth):
        nxt = []
        for i in range(width):
            a, b = layer[rng.randrange(width)], layer[rng.randrange(width)]
            op = (i + d) % 3
            nxt.append(a * b if op == 0 else (a + b) * 0.5 if op == 1 else (a - b).relu())
        layer = nxt
    while len(layer) > 1:  # a balanced sum keeps the graph shallow (micrograd recurses)
        layer = [a + b for a, b in zip(layer[::2], layer[1::2], strict=False)] + layer[
            len(layer) - len(layer) % 2 :
        ]
    out = layer[0]
    built = time.perf_counter()
    out.backward()
    done = time.perf_counter()
    count = len(_reachable(out))
    return {"nodes": count, "build": built - start, "backward": done - built, "total": done - start}


def _reachable(root: Any) -> set[int]:
    seen, stack = set(), [root]
    while stack:
        v = stack.pop()
        if id(v) not in seen:
            seen.add(id(v))
            stack.extend(v._prev)
    return seen


def memory(engine: str, n: int) -> dict[str, Any]:
    """Bytes per node (tracemalloc) for ``y = y * x + x`` repeated: 2 nodes a round,
    then the same graph after ``backward()`` has filled in the gradients."""
    Value = _value_class(engine)
    x = Value(0.5)
    gc.collect()
    tracemalloc.start()
    y = x
    for _ in range(n // 2):
        y = y * x + x
    built, _ = tracemalloc.get_traced_memory()
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 4 * n + 100))  # micrograd recurses
    y.backward()
    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"nodes": n, "bytes_per_node": built / n, "bytes_per_node_after_backward": after / n}


def inference(engine: str, reps: int) -> dict[str, Any]:
    """The demo model's forward pass over the 100 points: graph recorded vs no_grad()."""
    from chainrule import Value, no_grad
    from chainrule.nn import MLP

    X, _ = moons()
    model = MLP(2, [16, 16, 1], activation="relu", rng=random.Random(1337))
    rows = [[Value(v) for v in row] for row in X]
    recorded, bare = [], []
    for _ in range(reps):
        start = time.perf_counter()
        [model(r) for r in rows]
        recorded.append(time.perf_counter() - start)
        start = time.perf_counter()
        with no_grad():
            [model(r) for r in rows]
        bare.append(time.perf_counter() - start)
    return {"recorded": recorded, "no_grad": bare}


# -- eager per-node workloads: micrograd's own nn, and a small scalar GPT ------------------
# Each takes (engine, steps) and returns, per step, the seconds, the seconds the cyclic
# garbage collector ran within them, and the loss; bench/run.py checks that the engines
# agree on the losses and reports the figures.


class CollectorClock:
    """Seconds the cyclic garbage collector has run in this process, from ``gc.callbacks``."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0
        gc.callbacks.append(self._hook)

    def _hook(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started


def micrograd_nn(engine: str, steps: int) -> dict[str, Any]:
    """The demo step (as :func:`demo_step`) on micrograd 0.1.0's OWN ``nn`` module.

    For ``chainrule`` (and ``tiny``, the 40-line Value of the ``gpt`` workload, as a
    reference) the module's source is run with its one import line swapped (as
    ``tests/test_micrograd_compat.py`` does), so every neuron is micrograd's
    ``sum(wi * xi ...)`` of ``*`` and ``+`` nodes: no fused ``dot``.
    """
    import inspect
    import types

    import micrograd.nn

    nn: Any = micrograd.nn
    if engine != "micrograd":
        line = "from micrograd.engine import Value"
        swapped = (
            "from chainrule import Value"
            if engine == "chainrule"
            else "from tiny_value import Value"
        )
        source = inspect.getsource(micrograd.nn)
        assert line in source
        nn = types.ModuleType(f"micrograd_nn_on_{engine}")
        exec(compile(source.replace(line, swapped), "nn", "exec"), nn.__dict__)
    X, y = moons()
    random.seed(1337)
    model = nn.MLP(2, [16, 16, 1])
    Value = nn.Value

    collector = CollectorClock()
    times, in_gc, values = [], [], []
    loss = demo_loss(Value, model, X, y)
    for k in range(steps):
        gc_before, start = collector.seconds, time.perf_counter()
        total = loss()
        backward_and_update(model, total, k)
        times.append(time.perf_counter() - start)
        in_gc.append(collector.seconds - gc_before)
        values.append(total.data)
    return {"seconds": times, "gc": in_gc, "loss": values}


def gpt(engine: str, steps: int) -> dict[str, Any]:
    """A small scalar GPT's training step (``bench/scalar_gpt.py``), one name per step.

    Engines: ``chainrule`` and ``tiny`` (``bench/tiny_value.py``, the ~40-line Value that
    stores local derivatives in the forward pass); same code, seed and initial weights.
    """
    import scalar_gpt

    if engine == "tiny":
        from tiny_value import Value
    else:
        from chainrule import Value
    seed = 42
    names = scalar_gpt.pseudo_names(500, seed)
    model = scalar_gpt.ScalarGPT(Value, "".join(sorted(set("".join(names)))), seed)
    optimizer = scalar_gpt.Adam(model.params)
    order = random.Random(seed).sample(names, len(names))

    collector = CollectorClock()
    times, in_gc, values = [], [], []
    for k in range(steps):
        gc_before, start = collector.seconds, time.perf_counter()
        loss = model.loss(order[k % len(order)])
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
        in_gc.append(collector.seconds - gc_before)
        values.append(loss.data)
    return {"seconds": times, "gc": in_gc, "loss": values}


EAGER_WORKLOADS = {"micrograd_nn": micrograd_nn, "gpt": gpt}
EAGER_STEPS = {("micrograd_nn", "micrograd"): 4}  # micrograd's step takes over a second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "workload", choices=["demo", "chain", "wide", "memory", "inference", *EAGER_WORKLOADS]
    )
    parser.add_argument("engine", choices=["chainrule", "micrograd", "torch", "tiny"])
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args()
    if args.workload in EAGER_WORKLOADS:
        steps = args.steps or EAGER_STEPS.get((args.workload, args.engine), 20)
        result = EAGER_WORKLOADS[args.workload](args.engine, steps)
    elif args.workload == "demo":
        result = demo_step(args.engine, args.steps or STEPS[args.engine])
    elif args.workload == "chain":
        result = chain(args.engine, 1_000_000)
    elif args.workload == "wide":
        result = wide(args.engine, 1000, 100)
    elif args.workload == "memory":
        result = memory(args.engine, 100_000)
    else:
        result = inference(args.engine, args.steps or 10)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
