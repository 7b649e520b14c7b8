"""Issue 19's moons step, one engine per process: ``python bench/vmap.py ENGINE --points N``.

Moons, MLP 2-64-64-1 ReLU, hinge + 1e-4·L2, one full-batch step: the forward pass and the
backward pass into the gradients. Every engine starts from the same data
(``compiled.mlp_problem``: ``chainrule.data.moons(N, noise=0.1, seed=1)``, labels ±1) and
the same weights (the chainrule model's initial parameters, ``random.Random(0)``). Engines:

- ``chainrule``: the loss written per example and lifted over the batch by
  ``chainrule.vmap``, compiled once, exactly as issue 19 writes it; the timed step is
  ``step(X, y)``, ``model.zero_grad()``, ``total.backward()``.
- ``numpy``: the step written by hand (``compiled.numpy_step``), the floor.
- ``torch``: the same network as float64 tensors, one thread; ``backward()`` into
  ``.grad``.
- ``jax``: ``jax.jit(jax.value_and_grad(loss))`` in float64, one thread.

Prints one JSON object: the seconds of each step after the first, the first call's
seconds (for chainrule and JAX: compiling, and for chainrule the first backward too), the
loss and the gradient in ``model.parameters()``'s order, the CPU seconds ÷ the wall
seconds of the timed steps (1.0: one thread working), and the peak memory growth
(:class:`PeakMemory`). An engine that raises prints ``{"error": "<one line>"}`` instead.
``bench/run.py --only vmap`` runs it; BLAS, PyTorch and XLA run on one thread.
"""

from __future__ import annotations

import os

# Before NumPy, PyTorch or JAX is imported: one BLAS thread, one XLA thread. jaxlib 0.10's
# CPU client ignores the two XLA flags and runs an Eigen pool of one thread per core (CPU ÷
# wall 1.4-1.9 on 2 cores); PJRT_NPROC=1 sizes that pool to one (CPU ÷ wall 1.0).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("PJRT_NPROC", "1")
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "")
    + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
).strip()

import argparse
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import compiled  # bench/compiled.py: the moons problem and the hand-written NumPy step
import numpy as np

WIDTH = 64
Run = Callable[[int], dict[str, Any]]


class PeakMemory:
    """The most resident memory the process gained inside a ``with`` block, in bytes.

    Linux keeps a process's resident high-water mark (``VmHWM`` in ``/proc/self/status``);
    writing ``5`` to ``/proc/self/clear_refs`` resets it to the current resident size.
    Reset on entry, read on exit: ``VmHWM − VmRSS at entry`` is the block's peak growth,
    however brief the peak, with nothing sampled (so nothing missed) and nothing added to
    the timed steps. What the process held before the block (interpreter, libraries,
    data) is not counted. ``growth`` stays ``None`` where the mark cannot be reset.
    """

    STATUS = Path("/proc/self/status")

    def __init__(self) -> None:
        self.growth: int | None = None
        self._start: int | None = None

    def _read(self, field: str) -> int:
        found = re.search(rf"^{field}:\s+(\d+) kB", self.STATUS.read_text(), re.MULTILINE)
        assert found, field
        return int(found.group(1)) * 1024

    def __enter__(self) -> PeakMemory:
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self._start = self._read("VmRSS")
        except OSError:
            self._start = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._start is not None:
            self.growth = self._read("VmHWM") - self._start


def timed(call: Callable[[], Any], steps: int) -> tuple[float, list[float], float, Any]:
    """``call()`` ``steps`` times: the first's seconds, the others', CPU ÷ wall seconds of
    the others, and the last result."""
    start = time.perf_counter()
    out = call()
    first = time.perf_counter() - start
    seconds = []
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(steps - 1):
        start = time.perf_counter()
        out = call()
        seconds.append(time.perf_counter() - start)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return first, seconds, cpu / wall if wall > 0 else 0.0, out


def result(timing: tuple[float, list[float], float, Any], loss: float, grad: Any) -> dict[str, Any]:
    first, seconds, cpu_share, _ = timing
    return {
        "first": first,
        "seconds": seconds,
        "cpu_per_wall": cpu_share,
        "loss": float(loss),
        "grad": np.asarray(grad, dtype=np.float64).tolist(),
    }


# -- the engines: each prepares outside the measured block, returns the measured run ------


def chainrule_engine(X: Any, ys: Any, model: Any) -> Run:
    """Issue 19's code, as written there (the model made by ``compiled.mlp_problem``)."""
    import chainrule

    params = model.parameters()

    def run(steps: int) -> dict[str, Any]:
        per_example = chainrule.vmap(lambda x, t: (1 - t * model(x)).relu(), reduce="mean")
        step = chainrule.compile(
            lambda X, y: per_example(X, y) + 1e-4 * sum(p * p for p in params), params
        )

        def one() -> Any:
            total = step(X, ys)
            model.zero_grad()
            total.backward()
            return total

        timing = timed(one, steps)
        return result(timing, timing[3].data, [p.grad for p in params])

    return run


def numpy_engine(X: Any, ys: Any, model: Any) -> Run:
    Ws, bs = compiled.numpy_weights(model)

    def run(steps: int) -> dict[str, Any]:
        timing = timed(lambda: compiled.numpy_step(X, ys, Ws, bs), steps)
        value, grads = timing[3]
        return result(timing, value, compiled.in_params_order(grads))

    return run


def torch_engine(X: Any, ys: Any, model: Any) -> Run:
    import torch

    torch.set_num_threads(1)
    Ws, bs = compiled.numpy_weights(model)
    params = [
        torch.tensor(a, requires_grad=True) for pair in zip(Ws, bs, strict=True) for a in pair
    ]
    Xt, yt = torch.tensor(X), torch.tensor(ys)
    assert Xt.dtype == yt.dtype == params[0].dtype == torch.float64

    def one() -> Any:
        h = Xt
        for i in range(0, len(params), 2):
            h = h @ params[i].T + params[i + 1]
            if i < len(params) - 2:
                h = torch.relu(h)
        total = torch.relu(1 - yt * h[:, 0]).mean() + 1e-4 * sum((p * p).sum() for p in params)
        for p in params:
            p.grad = None
        total.backward()
        return total

    def run(steps: int) -> dict[str, Any]:
        timing = timed(one, steps)
        grads = [p.grad.numpy() for p in params]
        return result(timing, timing[3].item(), compiled.in_params_order(grads))

    return run


def jax_engine(X: Any, ys: Any, model: Any) -> Run:
    import jax  # XLA_FLAGS is set above, before this import

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    Ws, bs = compiled.numpy_weights(model)
    params = [jnp.asarray(a) for pair in zip(Ws, bs, strict=True) for a in pair]
    Xj, yj = jnp.asarray(X), jnp.asarray(ys)
    assert Xj.dtype == yj.dtype == params[0].dtype == jnp.float64

    def loss(params: list[Any], X: Any, y: Any) -> Any:
        h = X
        for i in range(0, len(params), 2):
            h = h @ params[i].T + params[i + 1]
            if i < len(params) - 2:
                h = jax.nn.relu(h)
        return jax.nn.relu(1 - y * h[:, 0]).mean() + 1e-4 * sum((p * p).sum() for p in params)

    def run(steps: int) -> dict[str, Any]:
        step = jax.jit(jax.value_and_grad(loss))
        timing = timed(lambda: jax.block_until_ready(step(params, Xj, yj)), steps)
        value, grads = timing[3]
        return result(timing, value, compiled.in_params_order([np.asarray(g) for g in grads]))

    return run


ENGINES: dict[str, Callable[[Any, Any, Any], Run]] = {
    "chainrule": chainrule_engine,
    "numpy": numpy_engine,
    "torch": torch_engine,
    "jax": jax_engine,
}


def one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return (text.splitlines() or [type(exc).__name__])[0][:200]


def measure(engine: str, points: int, steps: int) -> dict[str, Any]:
    """The engine's run on ``points`` moons, its peak memory growth measured around it."""
    X, ys, model = compiled.mlp_problem(points, WIDTH)
    try:
        run = ENGINES[engine](X, ys, model)
        with PeakMemory() as memory:
            out = run(steps)
    except Exception as exc:  # reported as the engine's failure, the others still run
        return {"error": one_line(exc)}
    out["memory"] = memory.growth
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("engine", choices=list(ENGINES))
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=20, help="calls, the first included")
    args = parser.parse_args()
    print(json.dumps(measure(args.engine, args.points, args.steps)))


if __name__ == "__main__":
    main()
