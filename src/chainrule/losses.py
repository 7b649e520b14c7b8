"""Loss functions: how far predictions are from targets, as one Value to minimise.

Each loss averages over the examples it is given (``reduction="mean"``) or adds them up
(``"sum"``, as the lecture does). Targets are plain numbers; predictions are Values (or
numbers). This module needs only the standard library.

No loss reads the ``data`` of a Value: each is one fixed expression of engine ops, with
no Python branch on a traced number, so ``chainrule.compile`` can trace it once and
replay it. Where stability needs a branch (the sign of a logit, the largest logit), the
branch lives inside a fused op's float computation (``softplus``, ``logsumexp``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Literal, TypeAlias

from chainrule.core import Value, dot, logsumexp, sum_values

__all__ = [
    "accuracy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "hinge",
    "l2",
    "log_softmax",
    "mse",
    "softmax",
    "softmax_cross_entropy",
]

Reduction: TypeAlias = Literal["mean", "sum"]
Scalar: TypeAlias = "Value | float"


def _reduce(terms: list[Value], reduction: Reduction, who: str) -> Value:
    if not terms:
        raise ValueError(f"{who}: no examples given")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"{who}: reduction must be 'mean' or 'sum', got {reduction!r}")
    total = sum_values(terms)  # one node for the whole sum
    return total * (1.0 / len(terms)) if reduction == "mean" else total


def _pairs(
    preds: Sequence[Scalar],
    targets: Sequence[Scalar],
    who: str,
    allowed: tuple[float, ...] = (),
    shown: str = "",
) -> list[tuple[Value, Scalar]]:
    """Predictions as Values beside their targets.

    Number targets are checked against ``allowed`` (when given). Value targets -- such
    as labels passed as inputs to a compiled function -- are used as they are: their
    numbers are not read, so they are not checked.
    """
    if len(preds) != len(targets):
        raise ValueError(f"{who}: {len(preds)} predictions but {len(targets)} targets")
    pairs: list[tuple[Value, Scalar]] = []
    for p, t in zip(preds, targets, strict=True):
        if not isinstance(t, Value):
            t = float(t)
            if allowed and t not in allowed:
                raise ValueError(f"{who}: labels must be {shown}, got {t:g}")
        pairs.append((p if isinstance(p, Value) else Value(p), t))
    return pairs


def mse(preds: Sequence[Scalar], targets: Sequence[Scalar], reduction: Reduction = "mean") -> Value:
    """Mean squared error: the average of ``(prediction - target)²``."""
    return _reduce([(p - t) ** 2 for p, t in _pairs(preds, targets, "mse")], reduction, "mse")


def hinge(
    scores: Sequence[Scalar], labels: Sequence[Scalar], reduction: Reduction = "mean"
) -> Value:
    """The SVM max-margin loss ``max(0, 1 - y·score)`` for labels ``y`` of -1 or +1
    (``chainrule.data.to_signed`` turns classes 0/1 into them)."""
    pairs = _pairs(scores, labels, "hinge", (-1.0, 1.0), "-1 or +1 (see chainrule.data.to_signed)")
    return _reduce([(1.0 - y * s).relu() for s, y in pairs], reduction, "hinge")


def binary_cross_entropy_with_logits(
    logits: Sequence[Scalar], labels: Sequence[Scalar], reduction: Reduction = "mean"
) -> Value:
    """Cross-entropy of ``sigmoid(logit)`` against labels 0 or 1, computed stably.

    ``-[y log σ(z) + (1-y) log(1-σ(z))] = softplus(z) - y·z``, with
    ``softplus(z) = log(1 + e^z)`` computed without overflow inside one node: large
    logits neither overflow nor lose precision, and there is no branch on ``z``.
    """
    pairs = _pairs(logits, labels, "binary_cross_entropy_with_logits", (0.0, 1.0), "0 or 1")
    terms = [z.softplus() - y * z for z, y in pairs]
    return _reduce(terms, reduction, "binary_cross_entropy_with_logits")


def log_softmax(logits: Sequence[Scalar]) -> list[Value]:
    """``z_i - log Σ exp(z_j)``: one ``logsumexp`` node, stable for any logits."""
    zs = [z if isinstance(z, Value) else Value(z) for z in logits]
    if not zs:
        raise ValueError("log_softmax: no logits given")
    log_total = logsumexp(zs)
    return [z - log_total for z in zs]


def softmax(logits: Sequence[Scalar]) -> list[Value]:
    """``exp(z_i) / Σ exp(z_j)`` as ``exp(z_i - logsumexp(z))``: stable and branch-free.

    The largest logit is taken out inside the ``logsumexp`` node, so no exponent is
    positive and nothing overflows; no ``data`` is read, so it compiles. The
    probabilities add up to 1 to rounding at the scale of the logits (``z - logsumexp``
    is rounded there: ~1e-13 for logits near 1000). PyTorch: ``torch.softmax``.
    """
    return [z.exp() for z in log_softmax(logits)]


def cross_entropy(logits: Sequence[Scalar], target: int | Sequence[Scalar]) -> Value:
    """``-log softmax(z)_c`` for one row of logits: the loss of one prediction.

    ``target`` is a class index ``c`` (the loss is ``logsumexp(z) - z_c``) or, as in
    PyTorch's ``cross_entropy``, a row of class probabilities ``t`` adding up to 1, such
    as a one-hot row (the loss is ``logsumexp(z) - Σ t_i z_i``). A one-hot row of
    Values lets the target be an input of a compiled function, which cannot index by a
    traced number; for a one-hot row both forms give the very same float. For rows of
    logits and labels, averaged, see :func:`softmax_cross_entropy`.
    """
    zs = [z if isinstance(z, Value) else Value(z) for z in logits]
    k = len(zs)
    if not k:
        raise ValueError("cross_entropy: no logits given")
    if isinstance(target, Sequence) and not isinstance(target, str):
        return logsumexp(zs) - dot(_probabilities(target, k, "cross_entropy"), zs)
    if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < k:
        raise ValueError(f"cross_entropy: target {target!r} is not a class index 0..{k - 1}")
    return logsumexp(zs) - zs[target]


def softmax_cross_entropy(
    logits: Sequence[Sequence[Scalar]],
    labels: Sequence[int | Sequence[Scalar]],
    reduction: Reduction = "mean",
) -> Value:
    """Cross-entropy of the softmax of each row of ``logits`` against its label.

    A label is a class index ``c`` -- the term is ``-log softmax(z)_c = logsumexp(z) - z_c``
    -- or, as in PyTorch's ``cross_entropy``, a row of class probabilities ``t`` (such
    as a one-hot row), numbers or Values, adding up to 1: the term is
    ``logsumexp(z) - Σ t_i z_i``. Probability rows let labels be inputs of a compiled
    function, which cannot index by a traced number.
    """
    if len(logits) != len(labels):
        raise ValueError(
            f"softmax_cross_entropy: {len(logits)} rows of logits but {len(labels)} labels"
        )
    terms = []
    for row, label in zip(logits, labels, strict=True):
        k = len(row)
        if isinstance(label, Sequence) and not isinstance(label, str):
            terms.append(logsumexp(row) - dot(_probabilities(label, k), row))
            continue
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < k:
            raise ValueError(
                f"softmax_cross_entropy: label {label!r} is not a class index 0..{k - 1}"
            )
        terms.append(logsumexp(row) - row[label])
    return _reduce(terms, reduction, "softmax_cross_entropy")


def _probabilities(
    row: Sequence[Scalar], k: int, who: str = "softmax_cross_entropy"
) -> Sequence[Scalar]:
    """A row of k class probabilities; numbers are checked, Values used as they are."""
    if len(row) != k:
        raise ValueError(f"{who}: a probability row needs {k} entries, got {len(row)}")
    numbers = [t for t in row if not isinstance(t, Value)]
    if len(numbers) == k and (any(t < 0 for t in numbers) or abs(math.fsum(numbers) - 1.0) > 1e-9):
        raise ValueError(f"{who}: a probability row must be >= 0 and add up to 1, got {list(row)}")
    return row


def l2(params: Iterable[Value]) -> Value:
    """``Σ p²`` over ``params``: multiply by a small factor and add to the loss."""
    ps = list(params)
    if not ps:
        raise ValueError("l2: no parameters given")
    return dot(ps, ps)  # Σ p·p as one node; each p receives 2p


def accuracy(predicted: Sequence[int | float], labels: Sequence[int | float]) -> float:
    """The fraction of predictions equal to their labels."""
    if len(predicted) != len(labels) or not labels:
        raise ValueError("accuracy: need as many predictions as labels, and at least one")
    return sum(p == y for p, y in zip(predicted, labels, strict=True)) / len(labels)
