"""The training plots: written, not blank, with the colours, legend, colour bar, hollow
test points, equal scales and curves they promise. (The images were also looked at.)"""

from __future__ import annotations

import ast
import json
import random
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb, to_rgba
from matplotlib.figure import Figure
from matplotlib.image import imread

from chainrule.nn import MLP
from chainrule.plots import (
    CLASS_COLORS,
    REGION_TINT,
    class_colors,
    class_grid,
    draw_decision_boundary,
    draw_history,
    draw_points,
    margin_grid,
    plot_decision_boundary,
    plot_history,
)
from chainrule.training import Task, TrainConfig, train

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def run() -> object:
    """Three classes, held-out points: every element of both plots."""
    config = TrainConfig(dataset="blobs", classes=3, samples=60, hidden=(8,), steps=30,
                         optimizer="adam", lr=0.05, test_fraction=0.25, eval_every=5)  # fmt: skip
    return train(config)


def pixels(path: Path) -> np.ndarray:
    image = np.asarray(imread(path))[..., :3]
    assert image.shape[0] > 200 and image.shape[1] > 200
    assert image.std() > 0.05  # not a blank canvas
    return image


def has_colour(image: np.ndarray, color: object, share: float) -> bool:
    """Whether at least ``share`` of the pixels are ``color`` (to rounding)."""
    close = np.abs(image - np.asarray(to_rgb(color))).max(axis=-1) < 0.02  # type: ignore[arg-type]
    return bool(close.mean() >= share)


def tint(color: str) -> tuple[float, ...]:
    return tuple(REGION_TINT * c + 1 - REGION_TINT for c in to_rgb(color))


def test_decision_boundary_png_has_each_class_colour_in_regions_and_points(
    run, tmp_path: Path
) -> None:
    path = plot_decision_boundary(run.model, run.X, run.y, tmp_path / "db.png",
                                  X_test=run.X_test, y_test=run.y_test, classes=3)  # fmt: skip
    image = pixels(path)
    for color in CLASS_COLORS[:3]:
        assert has_colour(image, tint(color), 0.05)  # a region of each class
        assert has_colour(image, color, 0.0005)  # and its points


def test_decision_boundary_axes_legend_colour_bar_aspect_and_hollow_test_points(run) -> None:
    fig = Figure()
    ax = fig.subplots()
    draw_decision_boundary(ax, run.model, run.X, run.y, X_test=run.X_test, y_test=run.y_test,
                           classes=3, resolution=60)  # fmt: skip
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [
        "class 0", "class 1", "class 2", "training point", "test point"]  # fmt: skip
    assert ax.get_aspect() == 1.0
    (bar,) = ax.child_axes  # the colour bar, as tall as the axes
    assert [t.get_text() for t in bar.get_yticklabels()] == ["0", "1", "2"]
    assert bar.get_ylabel() == "predicted class"
    train_points, test_points = ax.collections[-2:]
    palette = [to_rgba(c) for c in class_colors(3)]
    assert len(train_points.get_offsets()) == len(run.X)
    assert [tuple(c) for c in train_points.get_facecolors()] == [palette[c] for c in run.y]
    assert len(test_points.get_facecolors()) == 0  # hollow: no fill at all
    assert [tuple(c) for c in test_points.get_edgecolors()] == [palette[c] for c in run.y_test]


@pytest.mark.parametrize(("loss", "outputs"), [("hinge", 1), ("bce", 1), ("softmax", 3)])
def test_the_regions_are_where_the_task_predicts_each_class(loss: str, outputs: int) -> None:
    model = MLP(2, [8, outputs], rng=random.Random(4))
    task = Task(loss, max(outputs, 2))
    X = [[-2.0, -2.0], [2.0, 2.0]]
    _, _, classes = class_grid(model, task.predict, X, resolution=40)
    _, _, margins = margin_grid(model, X, resolution=40)
    assert len(set(classes.ravel())) > 1  # a boundary crosses the grid
    assert (margins.argmax(axis=0) == classes).all()
    assert ((margins > 0).sum(axis=0) == 1).all()  # one class wins at every point


def test_loss_plot_has_train_and_test_curves_and_the_lr_on_a_second_axis(run, tmp_path) -> None:
    history, ev = run.history, run.evaluations
    pixels(plot_history(history.loss, history.accuracy, tmp_path / "loss.png",
                        lr=history.lr, evaluations=ev))  # fmt: skip
    fig = Figure()
    ax_loss, ax_acc = fig.subplots(1, 2)
    draw_history(ax_loss, ax_acc, history.loss, history.accuracy, lr=history.lr, evaluations=ev)
    labels = [t.get_text() for t in ax_loss.get_legend().get_texts()]
    assert labels == ["train (each step's batch)", "train (whole set)", "test", "learning rate"]
    (lr_axis,) = [a for a in fig.axes if a not in (ax_loss, ax_acc)]
    assert lr_axis.get_ylabel() == "learning rate"
    assert list(lr_axis.lines[0].get_ydata()) == history.lr
    test_curve = ax_loss.lines[2]
    assert list(test_curve.get_xdata()) == ev.step and list(test_curve.get_ydata()) == ev.test_loss
    FigureCanvasAgg(fig).draw()


def notebook_code(notebook: Path) -> ast.Module:
    """The code cells of ``notebook`` as one parsed module (IPython's ``%`` and ``!``
    lines left out)."""
    cells = json.loads(notebook.read_text())["cells"]
    lines = [
        line
        for cell in cells
        if cell["cell_type"] == "code"
        for line in "".join(cell["source"]).splitlines()
        if not line.lstrip().startswith(("%", "!"))
    ]
    return ast.parse("\n".join(lines), filename=notebook.name)


#: Matplotlib's calls that colour points or regions by a value: a notebook making one
#: would choose class colours of its own instead of chainrule.plots' palette.
COLOURING_CALLS = {"scatter", "contourf", "contour", "pcolormesh", "imshow", "tricontourf"}


def test_one_palette_for_every_plot_and_notebook() -> None:
    assert class_colors(3) == list(CLASS_COLORS[:3])
    many = class_colors(12)
    assert len(set(many)) == 12  # more classes than the palette: still apart
    # draw_points as the demo calls it (classes from the labels): each point in the
    # colour of its class, from the one palette.
    ax = Figure().subplots()
    labels = [0, 1, 1, 0, 1]
    points = draw_points(ax, [[float(i), 0.0] for i in range(5)], labels)
    palette = [to_rgba(c) for c in CLASS_COLORS]
    assert [tuple(c) for c in points.get_facecolors()] == [palette[c] for c in labels]
    # The notebooks draw classes only through chainrule.plots: no colouring call or
    # colour map of their own (a call, not a word in a comment or a string).
    drawers = {}
    for notebook in sorted((ROOT / "examples").glob("*.ipynb")):
        tree = notebook_code(notebook)
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
        names = {getattr(c.func, "attr", getattr(c.func, "id", None)) for c in calls}
        own = names & COLOURING_CALLS
        assert not own, f"{notebook.name} colours classes itself ({', '.join(sorted(own))})"
        keywords = {k.arg for c in calls for k in c.keywords}
        assert "cmap" not in keywords, f"{notebook.name} picks its own colour map"
        drawers[notebook.name] = {
            alias.name
            for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and n.module == "chainrule.plots"
            for alias in n.names
        } & names
    assert {"draw_decision_boundary", "draw_points"} <= drawers["demo.ipynb"]


def test_the_gpt_plot_averages_the_same_steps_as_the_printed_loss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import chainrule.plots
    from chainrule.cli import main
    from chainrule.plots import moving_average

    drawn: list[tuple[list[float], int]] = []
    real = chainrule.plots.plot_smoothed_loss

    def recording(loss: list[float], path: Path, **kwargs: object) -> Path:
        drawn.append((list(loss), kwargs["window"]))  # type: ignore[arg-type]
        return real(loss, path, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(chainrule.plots, "plot_smoothed_loss", recording)
    tiny = ["--steps", "400", "--dim", "4", "--heads", "1", "--block-size", "4", "--no-progress"]
    assert main(["gpt", "train", *tiny, "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    ((loss, window),) = drawn
    assert window == metrics["loss_window"] == 100 and "the last 100 steps" in printed
    assert moving_average(loss, window)[-1] == pytest.approx(metrics["loss"])  # the line's end
    assert f"{metrics['loss']:.4f}" in printed
