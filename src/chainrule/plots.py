"""Training plots with matplotlib: loss and accuracy curves, decision boundaries, lr-find,
and the noisy one-name-per-step loss of a GPT, smoothed.

Figures are made with matplotlib's object API and the Agg canvas, so nothing here
touches pyplot's global state or needs a display. Every ``plot_*`` function writes a
PNG (or any format matplotlib knows, by the file's suffix) and returns the path; the
``draw_*`` functions draw the same pictures into axes you made (in a notebook, say).

Class ``k`` has the colour ``class_colors(n)[k]`` everywhere: in the regions and points
of a decision boundary, in its legend and colour bar, and in the notebooks.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import BoundaryNorm, ListedColormap, to_hex, to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from chainrule.colors import CLASS_COLORS
from chainrule.io.files import atomic_write_bytes
from chainrule.nn import MLP

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from chainrule.training import Evaluations

__all__ = [
    "CLASS_COLORS",
    "class_colors",
    "class_grid",
    "class_legend",
    "draw_decision_boundary",
    "draw_history",
    "draw_points",
    "margin_grid",
    "moving_average",
    "plot_decision_boundary",
    "plot_history",
    "plot_lr_find",
    "plot_smoothed_loss",
]

#: How strongly a class's colour tints its decision region (the rest is white), so
#: that the points, in the full colour, stand out on their own region.
REGION_TINT = 0.3

#: Curves of the loss plot: training, held-out test, learning rate.
TRAIN_COLOR, TEST_COLOR, LR_COLOR = "#0072B2", "#D55E00", "0.45"


def class_colors(n: int) -> list[str]:
    """The colours of classes ``0 .. n-1``: :data:`CLASS_COLORS`, or, for more classes
    than it has, ``n`` hues evenly spaced on matplotlib's ``turbo`` map."""
    if n <= len(CLASS_COLORS):
        return list(CLASS_COLORS[:n])
    from matplotlib import colormaps

    return [to_hex(c) for c in colormaps["turbo"](np.linspace(0.05, 0.95, n))]


def _tint(color: str) -> tuple[float, float, float]:
    """``color`` mixed with white: the colour of its class's region."""
    r, g, b = to_rgb(color)
    return tuple(REGION_TINT * c + (1.0 - REGION_TINT) for c in (r, g, b))  # type: ignore[return-value]


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Render ``fig`` in the format of ``path``'s suffix and write it atomically."""
    FigureCanvasAgg(fig)
    target = Path(path)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=target.suffix.lstrip(".") or "png", dpi=110)
    return atomic_write_bytes(target, buffer.getvalue())  # never a half-written image


def plot_history(
    loss: Sequence[float],
    accuracy: Sequence[float],
    path: str | os.PathLike[str],
    title: str = "training",
    *,
    lr: Sequence[float] | None = None,
    evaluations: Evaluations | None = None,
    step_label: str | None = None,
) -> Path:
    """Loss and accuracy against the step, side by side: :func:`draw_history`."""
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    draw_history(
        ax_loss, ax_acc, loss, accuracy, lr=lr, evaluations=evaluations, step_label=step_label
    )
    ax_loss.set_title(f"{title}: loss")
    ax_acc.set_title(f"{title}: accuracy")
    return _save(fig, path)


def draw_history(
    ax_loss: Axes,
    ax_acc: Axes,
    loss: Sequence[float],
    accuracy: Sequence[float],
    *,
    lr: Sequence[float] | None = None,
    evaluations: Evaluations | None = None,
    step_label: str | None = None,
) -> None:
    """The loss into ``ax_loss`` and the accuracy into ``ax_acc``, against the step.

    ``loss[k]`` and ``accuracy[k]`` are step ``k``'s, on its batch, before its update
    (a thin training curve; ``step_label`` names its loss, to say, for one, that it
    includes a penalty such as L2). ``evaluations`` adds the loss and accuracy of the whole
    training set and of the held-out test set after each evaluated step (thick
    curves with dots); ``lr``, the learning rate of each step, is drawn on a second
    y axis of the loss plot. The loss is on a log scale when it spans a decade.
    """
    if not loss or len(loss) != len(accuracy):
        raise ValueError("plot_history: need equally many loss and accuracy values, at least one")
    if lr is not None and len(lr) != len(loss):
        raise ValueError("plot_history: need one learning rate per step")
    steps = np.arange(len(loss))
    held_out = evaluations is not None and len(evaluations.step) > 0
    per_step = "train (each step's batch)" if held_out else "train"
    ax_loss.plot(
        steps,
        loss,
        color=TRAIN_COLOR,
        linewidth=1.0,
        alpha=0.55 if held_out else 1.0,
        label=step_label or per_step,
    )
    ax_acc.plot(
        steps,
        [100 * a for a in accuracy],
        color=TRAIN_COLOR,
        linewidth=1.0,
        alpha=0.55 if held_out else 1.0,
        label=per_step,
    )
    shown = list(loss)
    if held_out:
        assert evaluations is not None
        shown += _draw_evaluations(ax_loss, ax_acc, evaluations)
    positive = [v for v in shown if v > 0]
    if positive and max(positive) / min(positive) >= 10:
        ax_loss.set_yscale("log")
    ax_loss.set(xlabel="step", ylabel="loss")
    ax_acc.set(xlabel="step", ylabel="accuracy (%)", ylim=(0, 102))
    handles, labels = ax_loss.get_legend_handles_labels()
    if lr is not None:
        more, names = _draw_lr(ax_loss, steps, lr)
        handles, labels = handles + more, labels + names
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    ax_loss.legend(handles, labels, fontsize=8, loc="upper right")
    ax_acc.legend(fontsize=8, loc="lower right")


def _draw_evaluations(ax_loss: Axes, ax_acc: Axes, evaluations: Evaluations) -> list[float]:
    """The whole training set's and the test set's loss and accuracy at each evaluated
    step (thick curves with dots); returns the losses drawn, for the scale."""
    at = evaluations.step
    losses: list[float] = []
    for values, name, color in (
        (evaluations.train_loss, "train (whole set)", TRAIN_COLOR),
        (evaluations.test_loss, "test", TEST_COLOR),
    ):
        ax_loss.plot(at, values, color=color, linewidth=2.0, marker="o", markersize=3, label=name)
        losses += values
    for values, name, color in (
        (evaluations.train_accuracy, "train (whole set)", TRAIN_COLOR),
        (evaluations.test_accuracy, "test", TEST_COLOR),
    ):
        percent = [100 * a for a in values]
        ax_acc.plot(at, percent, color=color, linewidth=2.0, marker="o", markersize=3, label=name)
    return losses


def _draw_lr(ax_loss: Axes, steps: Any, lr: Sequence[float]) -> tuple[list[Any], list[str]]:
    """Each step's learning rate, dashed, on a second y axis of the loss plot; returns
    its legend entries."""
    ax_lr = ax_loss.twinx()
    ax_lr.plot(steps, lr, color=LR_COLOR, linestyle="--", linewidth=1.2, label="learning rate")
    ax_lr.set_ylabel("learning rate", color=LR_COLOR)
    ax_lr.tick_params(axis="y", colors=LR_COLOR)
    ax_lr.set_ylim(0, max(lr) * 1.1)
    handles, labels = ax_lr.get_legend_handles_labels()
    return list(handles), list(labels)


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
    fig = Figure(figsize=(7, 4), layout="constrained")
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
    return _save(fig, path)


#: How far the grid of a decision boundary reaches beyond the outermost points.
_GRID_MARGIN = 0.5


def class_grid(
    model: MLP,
    predict: Callable[[Any], tuple[int, float]],
    X: Sequence[Sequence[float]],
    resolution: int = 300,
    margin: float = _GRID_MARGIN,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The class ``predict`` gives at each point of a ``resolution``² grid covering
    ``X`` and ``margin`` more. ``predict(output) -> (class, score)`` gets the model's
    output as floats (a float, or a list for several outputs), as
    :meth:`chainrule.training.Task.predict` takes it."""
    gx, gy, outputs = _grid_outputs(model, X, resolution, margin)
    classes = [predict(o)[0] for o in outputs]
    return gx, gy, np.asarray(classes, dtype=float).reshape(gx.shape)


def margin_grid(
    model: MLP,
    X: Sequence[Sequence[float]],
    resolution: int = 300,
    margin: float = _GRID_MARGIN,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How far each class is from being predicted, on the grid of :func:`class_grid`.

    ``margins[c]`` (one ``resolution``² array per class) is positive exactly where
    class ``c`` is predicted, by the rule of every chainrule task: for one output
    ``z``, class 1 where ``z > 0`` (margins ``-z`` and ``z``); for several, the largest
    (``z_c - max_{j != c} z_j``). Being smooth, it can be contoured at 0 with no steps.
    """
    gx, gy, outputs = _grid_outputs(model, X, resolution, margin)
    z = np.asarray(outputs, dtype=float).reshape(len(outputs), -1)
    if z.shape[1] == 1:
        margins = np.stack([-z[:, 0], z[:, 0]])
    else:
        margins = np.empty((z.shape[1], len(z)))
        for c in range(z.shape[1]):
            margins[c] = z[:, c] - np.delete(z, c, axis=1).max(axis=1)
    return gx, gy, margins.reshape(len(margins), *gx.shape)


def _grid_outputs(
    model: MLP, X: Sequence[Sequence[float]], resolution: int, margin: float
) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    """The grid and the model's output (floats) at each of its points, row by row,
    computed by one compiled, vmapped forward pass (a 300² grid in a fraction of a
    second: :func:`chainrule.compiler.forward.batch_outputs`)."""
    from chainrule.compiler.forward import batch_outputs

    if resolution < 2:
        raise ValueError(f"the grid needs a resolution of at least 2, got {resolution}")
    pts = np.asarray(X, dtype=float)
    (x0, y0), (x1, y1) = pts.min(axis=0) - margin, pts.max(axis=0) + margin
    gx, gy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    return gx, gy, batch_outputs(model, grid).tolist()


def draw_points(
    ax: Axes,
    X: Sequence[Sequence[float]],
    y: Sequence[int],
    *,
    classes: int | None = None,
    test: bool = False,
) -> Any:
    """Scatter ``X`` in the colour of each point's class ``y``: filled training points,
    or with ``test`` hollow ones (a ring in the class's colour)."""
    k = classes if classes is not None else (max(y) + 1 if len(y) else 1)
    palette = class_colors(k)
    pts = np.asarray(X, dtype=float).reshape(-1, 2)
    colors = [palette[c] for c in y]
    if test:
        return ax.scatter(
            pts[:, 0],
            pts[:, 1],
            s=36,
            facecolors="none",
            edgecolors=colors,
            linewidths=1.6,
            zorder=3,
        )
    return ax.scatter(
        pts[:, 0], pts[:, 1], s=26, c=colors, edgecolors="0.15", linewidths=0.6, zorder=3
    )


def _dot(label: str, face: str, edge: str = "0.15", width: float = 0.6) -> Line2D:
    """A legend entry: one round marker, as the points are drawn."""
    return Line2D(
        [],
        [],
        linestyle="none",
        marker="o",
        markersize=7,
        markerfacecolor=face,
        markeredgecolor=edge,
        markeredgewidth=width,
        label=label,
    )


def class_legend(ax: Axes, classes: int, *, test: bool = False, **kwargs: Any) -> Any:
    """A legend naming each class by its colour, and with ``test`` saying which points
    are training points (filled) and which test points (hollow)."""
    handles = [_dot(f"class {c}", color) for c, color in enumerate(class_colors(classes))]
    if test:
        handles += [
            _dot("training point", "0.5"),
            _dot("test point", "none", edge="0.35", width=1.6),
        ]
    return ax.legend(handles=handles, **kwargs)


def draw_decision_boundary(
    ax: Axes,
    model: MLP,
    X: Sequence[Sequence[float]],
    y: Sequence[int],
    *,
    X_test: Sequence[Sequence[float]] = (),
    y_test: Sequence[int] = (),
    classes: int | None = None,
    resolution: int = 300,
) -> None:
    """Into ``ax``: the region where ``model`` predicts each class, tinted in the
    class's colour and outlined, the training points ``X`` filled and the test points
    ``X_test`` hollow (each in its class's colour), a legend, a colour bar of the
    regions and equal scales on both axes.

    Each region is the filled contour at 0 of its class's margin (:func:`margin_grid`,
    ``resolution`` points a side), so its edge follows the model's boundary with no
    steps. ``classes`` (by default, from the labels and the model's outputs) sets how
    many colours the legend and colour bar show.
    """
    gx, gy, margins = margin_grid(model, [*X, *X_test], resolution)
    labels = [*y, *y_test]
    k = classes if classes is not None else max(len(margins), max(labels, default=0) + 1)
    palette = class_colors(k)
    tints = [_tint(c) for c in palette]
    for c, m in enumerate(margins):
        top = float(m.max())
        if top > 0:
            ax.contourf(gx, gy, m, levels=[0.0, top + 1.0], colors=[tints[c]])
            ax.contour(gx, gy, m, levels=[0.0], colors=["0.3"], linewidths=0.8)
    draw_points(ax, X, y, classes=k)
    if len(X_test):
        draw_points(ax, X_test, y_test, classes=k, test=True)
    ax.set_xlim(gx.min(), gx.max())
    ax.set_ylim(gy.min(), gy.max())
    ax.set_aspect("equal", adjustable="box")
    ax.set(xlabel="x₁", ylabel="x₂")
    regions = ScalarMappable(
        norm=BoundaryNorm(np.arange(k + 1) - 0.5, k), cmap=ListedColormap(tints)
    )
    bar = ax.figure.colorbar(regions, cax=ax.inset_axes((1.03, 0.0, 0.04, 1.0)), ticks=range(k))
    bar.set_label("predicted class")
    test = len(X_test) > 0
    class_legend(
        ax,
        k,
        test=test,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.13),
        ncol=min(k + 2 * test, 5),
        fontsize=8,
        frameon=False,
    )


def plot_decision_boundary(
    model: MLP,
    X: Sequence[Sequence[float]],
    y: Sequence[int],
    path: str | os.PathLike[str],
    title: str = "decision boundary",
    resolution: int = 300,
    *,
    X_test: Sequence[Sequence[float]] = (),
    y_test: Sequence[int] = (),
    classes: int | None = None,
) -> Path:
    """:func:`draw_decision_boundary` in a figure of its own, titled, written to ``path``.

    The figure takes the shape of the data (the axes have equal scales), with room
    for the title, the colour bar and the legend below.
    """
    pts = np.asarray([*X, *X_test], dtype=float)
    width, height = np.ptp(pts, axis=0) + 2 * _GRID_MARGIN
    ratio = min(max(width / height, 0.5), 2.5)
    area = (5.0, 5.0 / ratio) if ratio >= 1 else (5.0 * ratio, 5.0)
    fig = Figure(figsize=(area[0] + 1.5, area[1] + 1.3), layout="constrained")
    ax = fig.subplots()
    draw_decision_boundary(
        ax, model, X, y, X_test=X_test, y_test=y_test, classes=classes, resolution=resolution
    )
    ax.set_title(title)
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
    fig = Figure(figsize=(6, 4), layout="constrained")
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
    return _save(fig, path)
