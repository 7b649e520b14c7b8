"""What the explorer page runs: chainrule itself, inside the browser (under Pyodide).

The page's Web Worker loads this package's own source and calls the two classes here;
every method returns plain data (numbers, strings, lists, dicts) that the worker sends
to the page as JSON. Nothing here needs more than the standard library and chainrule's
engine, ``nn``, losses, optimisers and training (a :class:`~chainrule.training.Run`)
-- the same code ``chainrule train`` runs, not a copy of it in JavaScript or here.

- :class:`ExpressionSession`: an expression typed by a learner, its graph as DOT source
  (drawn by :func:`chainrule.graph.draw_dot`), the backward pass one node at a time
  (:func:`chainrule.engine.backward_steps`), and a finite-difference check.
- :class:`TrainingSession`: a small MLP trained step by step on a 2-D dataset whose
  points the learner may add and remove, with what the page draws: the decision
  regions on a grid, the loss and accuracy, and the weights.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from chainrule import losses
from chainrule.colors import CLASS_COLORS
from chainrule.core import BackwardStep, Value, backward_steps, no_grad, topological_order
from chainrule.errors import ChainruleError
from chainrule.expr import ExpressionError, evaluate, parse_assignments, variable_names
from chainrule.nn import MLP
from chainrule.training import ConfigError, Run, Task, TrainConfig

__all__ = ["DEFAULT_EXPRESSION", "ExpressionSession", "TrainingSession", "call"]

#: The lecture's neuron: tanh(x1·w1 + x2·w2 + b), with its values, as the first view.
DEFAULT_EXPRESSION = "tanh(x1*w1 + x2*w2 + b)"
DEFAULT_AT = "x1=2,x2=0,w1=-3,w2=1,b=6.8813735870195432"

#: Variables the learner has not given a value yet start at this one.
DEFAULT_VARIABLE = 1.0

#: The largest network the training view builds: wider or deeper ones would take
#: seconds per step in the browser, and their drawing would be a blur.
MAX_LAYERS, MAX_WIDTH = 4, 64

#: Digits after the point in every number the page shows (the drawings' precision).
PRECISION = 4


def _describe(node: Value, ids: dict[Value, str]) -> str:
    """How the page names a node: its label, else its id and what made it."""
    if node.label:
        return node.label
    if not node._prev:
        return f"{ids[node]} (the constant {node.data:g})"
    from chainrule.graph import op_symbol

    return f"{ids[node]} ({op_symbol(node)})"


def _formula(node: Value, i: int, name: Callable[[Value], str]) -> str | None:
    """The local derivative ``∂node/∂input_i`` as a formula, for the ops a learner meets
    first (the number itself comes from the engine's rule table); None for the rest."""
    op, prev, me = node._op, node._prev, name(node)

    def other(j: int) -> str:
        return name(prev[j])

    if op in ("+", "sum"):
        return "1"
    if op == "-":
        return "1" if i == 0 else "−1"
    if op == "*":
        return other(1 - i)  # the other factor
    if op == "/":
        return f"1/{other(1)}" if i == 0 else f"−{me}/{other(1)}"
    if op == "neg":
        return "−1"
    if op == "**" and node.arg is not None:
        k = node.arg
        return f"{k:g}·{other(0)}^{k - 1:g}"
    simple = {
        "exp": me,  # e^x is its own derivative
        "log": f"1/{other(0)}",
        "tanh": f"1 − {me}²",
        "sigmoid": f"{me}·(1 − {me})",
        "relu": f"1 if {other(0)} > 0, else 0",
        "square": f"2·{other(0)}",
        "sqrt": f"1/(2·{me})",
        "sin": f"cos {other(0)}",
        "cos": f"−sin {other(0)}",
    }
    return simple.get(op)


class ExpressionSession:
    """One expression at one point: value, gradients, graph and a stepped backward pass.

    ``at`` gives variables' values like ``x=2,y=-3`` (the command line's ``--at``);
    variables it leaves out start at :data:`DEFAULT_VARIABLE`. ``rankdir`` lays the
    graph out left to right (``"LR"``, the lecture's) or top to bottom (``"TB"``, for a
    narrow screen). Raises
    :class:`~chainrule.expr.ExpressionError` for text the safe parser refuses, and the
    engine's errors (``log(-1)``, ...) as they are.
    """

    def __init__(
        self, text: str = DEFAULT_EXPRESSION, at: str = DEFAULT_AT, rankdir: str = "LR"
    ) -> None:
        from chainrule.graph import RANKDIRS

        if rankdir not in RANKDIRS:
            raise ValueError(f"rankdir must be 'LR' or 'TB', got {rankdir!r}")
        self.rankdir = rankdir
        given = parse_assignments(at)
        self.text = text
        self.names = variable_names(text)
        self.values = {n: given.get(n, DEFAULT_VARIABLE) for n in self.names}
        self.root, self.leaves = evaluate(self.text, self.values)
        self.order = topological_order(self.root)
        self.ids = {node: f"v{i}" for i, node in enumerate(self.order)}  # draw_dot's names
        self._steps: Iterator[BackwardStep] | None = None
        self.root.backward()

    def _short(self, node: Value) -> str:
        """A node's name in a formula: its label, its id, or a constant's value."""
        if node.label:
            return node.label
        if not node._prev:
            return f"{node.data:g}"
        return self.ids[node]

    def at(self) -> str:
        """The variables' values in ``--at`` form, exactly (``repr`` of each float)."""
        return ",".join(f"{n}={self.values[n]!r}" for n in self.names)

    def dot(self) -> str:
        """The graph as DOT source, by :func:`chainrule.graph.draw_dot`: node ``v<i>``
        is the ``i``-th Value in topological order (``<id>_op`` its operation), and an
        unlabelled one shows ``v<i>`` in its box, the name the step text gives it."""
        from chainrule.graph import draw_dot

        drawing = draw_dot(
            self.root, rankdir=self.rankdir, max_nodes=300, precision=PRECISION, show_ids=True
        )
        return str(drawing.source)

    def state(self) -> dict[str, Any]:
        """Everything the expression view shows, after a full ``backward()``."""
        return {
            "text": self.text,
            "at": self.at(),
            "names": self.names,
            "values": self.values,
            "value": self.root.data,
            "grads": {n: self.leaves[n].grad for n in self.names},
            "dot": self.dot(),
            "nodes": len(self.order),
            "order": [self.ids[n] for n in reversed(self.order)],
        }

    # -- the backward pass, one node at a time ------------------------------------------

    def begin_steps(self) -> dict[str, Any]:
        """Start a stepped backward pass afresh: every gradient back at 0, none taken."""
        for node in self.order:
            node.grad = 0.0
        self._steps = backward_steps(self.root)
        return {"dot": self.dot(), "total": len(self.order)}

    def step(self) -> dict[str, Any]:
        """Take the next step of the backward pass and say what it did.

        Returns the node's id and name, its gradient, each chain-rule term (local
        derivative × upstream gradient = contribution, and the input's gradient before
        and after: a running sum when a value is used more than once), a sentence for
        each, and the DOT source with the gradients as they now are. After the last
        node ``done`` is true.
        """
        if self._steps is None:
            self.begin_steps()
        assert self._steps is not None
        step = next(self._steps, None)
        if step is None:
            self._steps = None
            return {"done": True}
        p = PRECISION
        name = _describe(step.node, self.ids)
        me = self._short(step.node)
        terms, lines = [], []
        for t in step.terms:
            other = self._short(t.input)
            whose = other if t.input._prev or t.input.label else _describe(t.input, self.ids)
            terms.append(
                {
                    "input": self.ids[t.input],
                    "name": _describe(t.input, self.ids),
                    "local": t.local,
                    "upstream": t.upstream,
                    "contribution": t.contribution,
                    "before": t.before,
                    "after": t.after,
                }
            )
            formula = _formula(step.node, len(terms) - 1, self._short)
            shown = f"{formula} = " if formula is not None else ""
            line = (
                f"∂{me}/∂{other} = {shown}{t.local:.{p}f} × upstream {t.upstream:.{p}f}"
                f" = {t.contribution:.{p}f}"
            )
            if t.before:  # a value used more than once: its gradient is a running sum
                line += (
                    f"; {whose} is used again, its grad adds up: {t.before:.{p}f} + "
                    f"{t.contribution:.{p}f} = {t.after:.{p}f}"
                )
            else:
                line += f"; grad of {whose} = {t.after:.{p}f}"
            lines.append(line)
        if not step.terms:
            lines.append(f"{name} is a leaf: its gradient {step.grad:.{p}f} is final")
        if step.node is self.root:
            lines.insert(0, f"{name} is the output: its gradient starts at 1")
        return {
            "done": False,
            "id": self.ids[step.node],
            "name": name,
            "grad": step.grad,
            "terms": terms,
            "lines": lines,
            "dot": self.dot(),
        }

    # -- a finite-difference check -------------------------------------------------------

    def nudge(self, name: str, h: float = 1e-6) -> dict[str, Any]:
        """Compare ``∂out/∂name`` with the central difference ``(f(x+h) - f(x-h)) / 2h``."""
        if name not in self.values:
            raise ExpressionError(f"the expression has no variable `{name}`")
        if not (math.isfinite(h) and h > 0):
            raise ExpressionError(f"the nudge h must be a positive number, got {h!r}")
        with no_grad():
            up = evaluate(self.text, {**self.values, name: self.values[name] + h})[0].data
            down = evaluate(self.text, {**self.values, name: self.values[name] - h})[0].data
        numeric = (up - down) / (2.0 * h)
        analytic = self.leaves[name].grad
        return {
            "name": name,
            "h": h,
            "up": up,
            "down": down,
            "numeric": numeric,
            "analytic": analytic,
            "difference": abs(numeric - analytic),
        }


class TrainingSession:
    """A small MLP learning a 2-D dataset one step at a time, as the training view shows it.

    The very run of ``chainrule train``: a :class:`~chainrule.training.Run` of a
    :class:`~chainrule.training.TrainConfig` (checked as the command line's is), which
    makes the model, task (hinge loss for two classes, softmax for more), optimiser
    and mini-batches, and takes each step. The points are the dataset's defaults
    (:data:`chainrule.data.DEFAULTS`: size, noise, classes) with ``chainrule train``'s
    seed, unless ``samples`` or ``noise`` are given. The learning rate stays as set
    (no schedule), since a learner may play for as long as they like.
    """

    def __init__(
        self,
        dataset: str = "moons",
        layers: Sequence[int] = (16, 16),
        activation: str = "relu",
        lr: float = 0.1,
        batch_size: int | None = None,
        samples: int | None = None,
        noise: float | None = None,
        optimizer: str = "sgd",
        seed: int = 1337,
    ) -> None:
        if not 1 <= len(layers) <= MAX_LAYERS or any(
            isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_WIDTH for n in layers
        ):
            raise ConfigError(
                f"hidden layers: 1 to {MAX_LAYERS} layers of 1 to {MAX_WIDTH} neurons each "
                f"(a scalar engine in a browser tab), got {list(layers)}"
            )
        config = TrainConfig(  # samples, noise, classes: the dataset's own (data.DEFAULTS)
            dataset=dataset,
            hidden=tuple(layers),
            activation=activation,
            lr=lr,
            optimizer=optimizer,
            batch_size=batch_size,
            seed=seed,
            schedule="constant",
            compiled=False,
        )
        if samples is not None:
            config.samples = samples
        if noise is not None:
            config.noise = noise
        self.run = Run(config)
        self.model: MLP = self.run.model
        self.task: Task = self.run.task
        self.X, self.y = self.run.X, self.run.y  # the run's own lists: edits reach it
        self.view = self.extent()  # fixed, so that a click means the same place all along
        self.loss: list[float] = self.run.history.loss
        self.accuracy: list[float] = []

    @property
    def config(self) -> TrainConfig:
        """The run's config (its ``lr`` as last set)."""
        return self.run.config

    @property
    def steps(self) -> int:
        """How many steps have been taken."""
        return self.run.done

    def set_lr(self, lr: float) -> None:
        """Go on at learning rate ``lr``, checked as ``chainrule train --lr`` is."""
        self.run.set_lr(lr)

    def step(self, n: int = 1) -> dict[str, Any]:
        """Take ``n`` gradient steps; return the step count and the last loss/accuracy.

        Each step's loss and accuracy are those of the model the step started from (as
        in ``chainrule train``): on the whole set for full batches; for mini-batches the
        loss is the batch's and the accuracy is measured on every point.
        """
        if not self.X:
            raise ConfigError("there are no points to learn: add some by clicking")
        for _ in range(n):
            size = len(self.X)
            taken = self.run.step()
            # the whole set: its accuracy as the step found it; else measured on every point
            self.accuracy.append(taken.accuracy if taken.batch_size == size else self.evaluate())
        return {**self.summary(), "losses": self.loss[-n:], "accuracies": self.accuracy[-n:]}

    def evaluate(self) -> float:
        """The fraction of the points the model now classifies correctly."""
        with no_grad():
            predicted = [self.task.predict(self.model(x))[0] for x in self.X]
        return losses.accuracy(predicted, self.y)

    def summary(self) -> dict[str, Any]:
        return {
            "step": self.steps,
            "loss": self.loss[-1] if self.loss else None,
            "accuracy": self.accuracy[-1] if self.accuracy else self.evaluate(),
        }

    def grid(self, size: int = 40, extent: Sequence[float] | None = None) -> dict[str, Any]:
        """The predicted class and score at the centres of a ``size`` × ``size`` grid.

        ``extent`` is ``(xmin, xmax, ymin, ymax)``; by default the view fixed when the
        session began (the dataset's box with a margin). Rows run from ``ymax`` down,
        so row 0 is the top of a picture.
        """
        x0, x1, y0, y1 = extent if extent is not None else self.view
        classes, scores = [], []
        with no_grad():
            for r in range(size):
                yv = y1 - (r + 0.5) * (y1 - y0) / size
                for c in range(size):
                    xv = x0 + (c + 0.5) * (x1 - x0) / size
                    label, score = self.task.predict(self.model([xv, yv]))
                    classes.append(label)
                    scores.append(score)
        return {"size": size, "extent": [x0, x1, y0, y1], "classes": classes, "scores": scores}

    def extent(self) -> list[float]:
        """The points' bounding box with a 15% margin (a unit square with no points)."""
        if not self.X:
            return [-1.5, 1.5, -1.5, 1.5]
        xs, ys = [p[0] for p in self.X], [p[1] for p in self.X]
        mx = 0.15 * max(max(xs) - min(xs), 1e-3)
        my = 0.15 * max(max(ys) - min(ys), 1e-3)
        return [min(xs) - mx, max(xs) + mx, min(ys) - my, max(ys) + my]

    def weights(self) -> list[list[list[float]]]:
        """Per layer, per neuron: its weights then its bias, as floats."""
        return [
            [[w.data for w in n.w] + [n.b.data] for n in layer.neurons]
            for layer in self.model.layers
        ]

    def points(self) -> dict[str, Any]:
        """The points, their classes, and each class's colour (as in every plot)."""
        k = self.task.classes
        return {"X": self.X, "y": self.y, "classes": k, "colors": list(CLASS_COLORS[:k])}

    def add_point(self, x: float, y: float, label: int) -> dict[str, Any]:
        """Add a point of class ``label`` at (``x``, ``y``)."""
        if not (isinstance(label, int) and 0 <= label < self.task.classes):
            raise ConfigError(f"class must be 0 to {self.task.classes - 1}, got {label!r}")
        if not (math.isfinite(x) and math.isfinite(y)):
            raise ConfigError("a point needs finite coordinates")
        self.X.append([float(x), float(y)])
        self.y.append(label)
        return self.points()

    def remove_point(self, x: float, y: float, radius: float) -> dict[str, Any]:
        """Remove the point nearest (``x``, ``y``) if it lies within ``radius``."""
        best, where = radius * radius, None
        for i, (px, py) in enumerate(self.X):
            d = (px - x) ** 2 + (py - y) ** 2
            if d <= best:
                best, where = d, i
        if where is not None:
            del self.X[where]
            del self.y[where]
        return self.points()


def error_message(exc: BaseException) -> str:
    """The one line the page shows for an error: chainrule's own messages as they are."""
    if isinstance(exc, (ChainruleError, ValueError, TypeError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


# -- the worker's entry point ------------------------------------------------------------

_sessions: dict[str, Any] = {}


_S = TypeVar("_S", ExpressionSession, TrainingSession)


def _session(kind: type[_S], missing: ChainruleError) -> _S:
    """The page's current session of ``kind``; ``missing`` if it has none yet."""
    session = _sessions.get(kind.__name__)
    if not isinstance(session, kind):
        raise missing
    return session


def _expression() -> ExpressionSession:
    return _session(ExpressionSession, ExpressionError("no expression yet: type one first"))


def _training() -> TrainingSession:
    return _session(TrainingSession, ConfigError("no training run yet: choose a dataset first"))


def _expr_set(text: str, at: str, rankdir: str = "LR") -> dict[str, Any]:
    session = ExpressionSession(text, at, rankdir)
    _sessions[ExpressionSession.__name__] = session
    return session.state()


def _train_new(**options: Any) -> dict[str, Any]:
    session = TrainingSession(**options)
    _sessions[TrainingSession.__name__] = session
    return _train_view()


def _train_step(n: int = 1, view: bool = False, lr: float | None = None) -> dict[str, Any]:
    session = _training()
    if lr is not None:
        session.set_lr(lr)
    out = session.step(n)
    return {**out, **_train_view()} if view else out


def _train_view() -> dict[str, Any]:
    session = _training()
    return {
        **session.summary(),
        **session.points(),
        "grid": session.grid(),
        "weights": session.weights(),
        "history": {"loss": session.loss, "accuracy": session.accuracy},
    }


_COMMANDS: dict[str, Any] = {
    "expr_set": _expr_set,
    "expr_state": lambda: _expression().state(),
    "expr_begin": lambda: _expression().begin_steps(),
    "expr_step": lambda: _expression().step(),
    "expr_nudge": lambda name, h=1e-6: _expression().nudge(name, h),
    "train_new": _train_new,
    "train_step": _train_step,
    "train_view": _train_view,
    "train_add": lambda x, y, label: _training().add_point(x, y, label),
    "train_remove": lambda x, y, radius: _training().remove_point(x, y, radius),
}


def call(request: str) -> str:
    """Run one request of the page, ``{"cmd": ..., "args": {...}}`` as JSON, and answer
    ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "one line"}`` as JSON."""
    try:
        message = json.loads(request)
        command = _COMMANDS.get(message.get("cmd"))
        if command is None:
            raise ValueError(f"unknown command {message.get('cmd')!r}")
        result = command(**message.get("args", {}))
        return json.dumps({"ok": True, "result": result})
    except Exception as exc:  # every failure reaches the page as one line
        return json.dumps({"ok": False, "error": error_message(exc)})
