"""Training plots with matplotlib: loss and accuracy curves, decision boundaries, lr-find,
and the noisy one-name-per-step loss of a GPT, smoothed.

Figures are made with matplotlib's object API and the Agg canvas, so nothing here
touches pyplot's global state or needs a display. Every function writes a PNG (or any
format matplotlib knows, by the file's suffix) and returns the path.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from chainrule._io import atomic_write_bytes
from chainrule.engine import no_grad
from chainrule.nn import MLP

__all__ = [
    "moving_average",
    "plot_decision_boundary",
    "plot_history",
    "plot_lr_find",
    "plot_smoothed_loss",
]


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Render ``fig`` in the format of ``path``'s suffix and write it atomically."""
    FigureCanvasAgg(fig)
    target = Path(path)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=target.suffix.lstrip(".") or "png", dpi=110, bbox_inches="tight")
    return atomic_write_bytes(target, buffer.getvalue())  # never a half-written image


def plot_history(
    loss: Sequence[float],
    accuracy: Sequence[float],
    path: str | os.PathLike[str],
    title: str = "training",
) -> Path:
    """Loss (log scale when it spans a decade or more) and accuracy against the step."""
    if not loss or len(loss) != len(accuracy):
        raise ValueError("plot_history: need equally many loss and accuracy values, at least one")
    steps = np.arange(len(loss))
    fig = Figure(figsize=(9, 3.6))
    ax_loss, ax_acc = fig.subplots(1, 2)
    ax_loss.plot(steps, loss, color="tab:blue")
    ax_loss.set(xlabel="step", ylabel="loss", title=f"{title}: loss")
    positive = [v for v in loss if v > 0]
    if positive and max(positive) / min(positive) >= 10:
        ax_loss.set_yscale("log")
    ax_acc.plot(steps, [100 * a for a in accuracy], color="tab:green")
    ax_acc.set(xlabel="step", ylabel="accuracy (%)", title=f"{title}: accuracy", ylim=(0, 102))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """The mean of the last ``window`` values at each step (fewer at the start).

    Entry ``k`` is ``mean(values[max(0, k - window + 1) : k + 1])``: a trailing
    average, so the curve lags the raw one but never looks ahead, and it has one
    point per step.
    """
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"moving_average: window must be a positive integer, got {window!r}")
    x = np.asarray(values, dtype=float)
    sums = np.concatenate([[0.0], np.cumsum(x)])
    k = np.arange(1, len(x) + 1)
    lo = np.maximum(k - window, 0)
    return np.asarray((sums[k] - sums[lo]) / (k - lo))


def plot_smoothed_loss(
    loss: Sequence[float],
    path: str | os.PathLike[str],
    *,
    window: int | None = None,
    reference: float | None = None,
    reference_label: str = "reference",
    title: str = "training loss",
) -> Path:
    """A noisy per-step loss: the raw curve faint, its moving average on top.

    ``window`` defaults to a twentieth of the steps (at least 1, at most 100). An
    optional ``reference`` loss is drawn as a dashed line (for a language model, the
    loss of guessing uniformly: ``log(vocab_size)``).
    """
    if not loss:
        raise ValueError("plot_smoothed_loss: need at least one loss value")
    if window is None:
        window = min(100, max(1, len(loss) // 20))
    steps = np.arange(len(loss))
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    ax.plot(steps, loss, color="tab:blue", alpha=0.25, linewidth=0.8, label="loss per step")
    ax.plot(
        steps,
        moving_average(loss, window),
        color="tab:blue",
        linewidth=2.0,
        label=f"mean of the last {window} steps",
    )
    if reference is not None:
        ax.axhline(reference, color="tab:red", linestyle="--", linewidth=1.2, label=reference_label)
    ax.set(xlabel="step", ylabel="loss", title=title)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def class_grid(
    model: MLP,
    predict: Any,
    X: Sequence[Sequence[float]],
    resolution: int = 80,
    margin: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The predicted class on a ``resolution``² grid covering ``X`` (no graph recorded)."""
    pts = np.asarray(X, dtype=float)
    (x0, y0), (x1, y1) = pts.min(axis=0) - margin, pts.max(axis=0) + margin
    gx, gy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    with no_grad():
        classes = [
            predict(model([float(a), float(b)]))[0]
            for a, b in zip(gx.ravel(), gy.ravel(), strict=True)
        ]
    return gx, gy, np.asarray(classes, dtype=float).reshape(gx.shape)


def plot_decision_boundary(
    model: MLP,
    predict: Any,
    X: Sequence[Sequence[float]],
    y: Sequence[int],
    path: str | os.PathLike[str],
    title: str = "decision boundary",
    resolution: int = 80,
) -> Path:
    """The regions where ``model`` predicts each class, with the data points on top.

    ``predict(output) -> (class, score)`` turns the model's output into a class, as
    :meth:`chainrule.training.Task.predict` does.
    """
    gx, gy, classes = class_grid(model, predict, X, resolution)
    k = max(int(classes.max()), max(y)) + 1
    pts = np.asarray(X, dtype=float)
    fig = Figure(figsize=(5.2, 4.6))
    ax = fig.subplots()
    levels = np.arange(k + 1) - 0.5
    ax.contourf(gx, gy, classes, levels=levels, cmap="Spectral", alpha=0.35)
    ax.scatter(
        pts[:, 0],
        pts[:, 1],
        c=list(y),
        cmap="Spectral",
        vmin=0,
        vmax=k - 1,
        s=22,
        edgecolors="black",
        linewidths=0.5,
    )
    ax.set(xlabel="x₁", ylabel="x₂", title=title)
    fig.tight_layout()
    return _save(fig, path)


def plot_lr_find(
    lrs: Sequence[float],
    losses: Sequence[float],
    path: str | os.PathLike[str],
    suggested: tuple[float, float] | None = None,
) -> Path:
    """Final loss of short runs against their learning rate (log scale).

    Diverged runs (``inf``) are drawn as red crosses at the top of the plot, so the
    point where larger learning rates stop working is plain to see.
    """
    if len(lrs) != len(losses) or not lrs:
        raise ValueError("plot_lr_find: need one loss per learning rate")
    finite = [v for v in losses if math.isfinite(v)]
    top = max(finite) * 1.5 if finite else 1.0
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    ok = [(lr, v) for lr, v in zip(lrs, losses, strict=True) if math.isfinite(v)]
    bad = [lr for lr, v in zip(lrs, losses, strict=True) if not math.isfinite(v)]
    if ok:
        ax.plot(*zip(*ok, strict=True), marker="o", color="tab:blue", label="final loss")
    if bad:
        ax.scatter(bad, [top] * len(bad), marker="x", s=60, color="tab:red", label="diverged")
    if suggested:
        ax.axvspan(*suggested, color="tab:green", alpha=0.15, label="suggested range")
    ax.set_xscale("log")
    ax.set(xlabel="learning rate", ylabel="loss after a short run", title="learning-rate finder")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)
