"""Small classification datasets, generated in code (no downloads), seeded.

Every generator returns ``(X, y)``: ``X`` a list of rows of floats, ``y`` a list of
integer class labels ``0 .. k-1``. Use :func:`to_signed` for the ±1 labels that the
hinge loss wants, and :func:`train_test_split` to hold data out.

``moons`` reproduces scikit-learn's ``make_moons`` point for point (same algorithm and
the same NumPy legacy random stream), so ``moons(100, noise=0.1, seed=1337)`` is the
reference demo's dataset exactly.

:func:`names` is the one dataset that is not generated: 30,869 US first names that
ship inside the package (public-domain Social Security Administration data; source,
licence and the exact transformation in ``datasets/NAMES-SOURCE.md`` beside the list).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from importlib import resources

import numpy as np

__all__ = [
    "DATASETS",
    "MULTICLASS",
    "blobs",
    "circles",
    "lecture",
    "make",
    "moons",
    "names",
    "spiral",
    "to_signed",
    "train_test_split",
    "xor",
]

Dataset = tuple[list[list[float]], list[int]]


def _check(n_samples: int, noise: float, min_samples: int = 2) -> None:
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < min_samples:
        raise ValueError(f"n_samples must be an integer >= {min_samples}, got {n_samples!r}")
    if not (isinstance(noise, (int, float)) and math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")


def _finish(X: np.ndarray, y: np.ndarray) -> Dataset:
    return [[float(a), float(b)] for a, b in X], [int(c) for c in y]


def moons(n_samples: int = 100, noise: float = 0.1, seed: int | None = 0) -> Dataset:
    """Two interleaving half circles, shuffled, with Gaussian noise of std ``noise``."""
    _check(n_samples, noise)
    rs = np.random.RandomState(seed)
    n_out = n_samples // 2
    n_in = n_samples - n_out
    t_out, t_in = np.linspace(0, np.pi, n_out), np.linspace(0, np.pi, n_in)
    outer = np.column_stack([np.cos(t_out), np.sin(t_out)])
    inner = np.column_stack([1 - np.cos(t_in), 1 - np.sin(t_in) - 0.5])
    return _two_classes(rs, outer, inner, noise)


def circles(
    n_samples: int = 100, noise: float = 0.05, factor: float = 0.5, seed: int | None = 0
) -> Dataset:
    """A small circle (class 1) inside a large one (class 0); ``factor`` is their ratio."""
    _check(n_samples, noise)
    if not 0 < factor < 1:
        raise ValueError(f"factor must be between 0 and 1, got {factor!r}")
    rs = np.random.RandomState(seed)
    n_out = n_samples // 2
    n_in = n_samples - n_out
    t_out = np.linspace(0, 2 * np.pi, n_out, endpoint=False)
    t_in = np.linspace(0, 2 * np.pi, n_in, endpoint=False)
    outer = np.column_stack([np.cos(t_out), np.sin(t_out)])
    inner = factor * np.column_stack([np.cos(t_in), np.sin(t_in)])
    return _two_classes(rs, outer, inner, noise)


def _two_classes(
    rs: np.random.RandomState, outer: np.ndarray, inner: np.ndarray, noise: float
) -> Dataset:
    """Class 0 from ``outer``, class 1 from ``inner``: shuffled, then Gaussian noise added
    (in scikit-learn's order of random draws, so ``moons`` matches ``make_moons``)."""
    X = np.vstack([outer, inner])
    y = np.hstack([np.zeros(len(outer), dtype=int), np.ones(len(inner), dtype=int)])
    order = np.arange(len(X))
    rs.shuffle(order)
    X, y = X[order], y[order]
    X += rs.normal(scale=noise, size=X.shape)
    return _finish(X, y)


def blobs(
    n_samples: int = 100, classes: int = 3, noise: float = 0.5, seed: int | None = 0
) -> Dataset:
    """``classes`` Gaussian clusters of std ``noise`` around centres on a circle of radius 2."""
    _check(n_samples, noise)
    _check_classes(classes)
    rs = np.random.RandomState(seed)
    y = np.arange(n_samples) % classes
    angle = 2 * np.pi * y / classes
    X = np.stack([2 * np.cos(angle), 2 * np.sin(angle)], axis=1)
    X += rs.normal(scale=noise, size=X.shape)
    order = rs.permutation(n_samples)
    return _finish(X[order], y[order])


def spiral(
    n_samples: int = 300, classes: int = 3, noise: float = 0.2, seed: int | None = 0
) -> Dataset:
    """``classes`` interleaved spiral arms, ``n_samples`` points in all.

    The classic hard case for a linear model (CS231n's toy spiral): arm ``k`` sweeps one
    turn outward from the centre, with angular noise ``noise``.
    """
    _check(n_samples, noise, min_samples=classes if isinstance(classes, int) else 2)
    _check_classes(classes)
    rs = np.random.RandomState(seed)
    y = np.arange(n_samples) % classes
    per_class = np.bincount(y, minlength=classes)
    radius = np.empty(n_samples)
    for k in range(classes):
        radius[y == k] = np.linspace(0.05, 1.0, per_class[k])
    theta = radius * 4.0 + y * (2 * np.pi / classes) + rs.normal(scale=noise, size=n_samples)
    X = np.stack([radius * np.sin(theta), radius * np.cos(theta)], axis=1)
    order = rs.permutation(n_samples)
    return _finish(X[order], y[order])


def xor(n_samples: int = 100, noise: float = 0.1, seed: int | None = 0) -> Dataset:
    """Four clusters at (±1, ±1); class 1 where the signs differ (exclusive or)."""
    _check(n_samples, noise)
    rs = np.random.RandomState(seed)
    corner = np.arange(n_samples) % 4
    sx = np.where(corner % 2 == 0, 1.0, -1.0)
    sy = np.where(corner < 2, 1.0, -1.0)
    X = np.stack([sx, sy], axis=1) + rs.normal(scale=noise, size=(n_samples, 2))
    y = (sx != sy).astype(int)
    order = rs.permutation(n_samples)
    return _finish(X[order], y[order])


def lecture() -> tuple[list[list[float]], list[float]]:
    """The lecture's four examples: three inputs each, targets ±1 (a regression set)."""
    X = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
    y = [1.0, -1.0, -1.0, 1.0]
    return X, y


def names() -> list[str]:
    """US first names, most common first: 30,869 of them, lowercase ``a-z``, no repeats.

    Every name given to at least 150 babies in the United States from 1880 to 2017
    (both sexes counted together), from the Social Security Administration's
    public-domain counts, ordered by that total. The list ships in the package
    (``chainrule/datasets/names.txt``, read through :mod:`importlib.resources`, so it
    works from an installed wheel as from the source tree); nothing is downloaded.
    Its source and licence are in ``datasets/NAMES-SOURCE.md`` beside it.

    >>> everyone = names()
    >>> everyone[:3], len(everyone)
    (['james', 'john', 'robert'], 30869)
    """
    text = (resources.files("chainrule") / "datasets" / "names.txt").read_text(encoding="ascii")
    return text.split()


def _check_classes(classes: int) -> None:
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
        raise ValueError(f"classes must be an integer >= 2, got {classes!r}")


def to_signed(y: Sequence[int]) -> list[float]:
    """Binary labels 0/1 as -1.0/+1.0, the convention of the hinge loss."""
    if any(label not in (0, 1) for label in y):
        raise ValueError("to_signed: labels must be 0 or 1")
    return [2.0 * label - 1.0 for label in y]


def train_test_split(
    X: Sequence[Sequence[float]],
    y: Sequence[int],
    test_fraction: float = 0.25,
    seed: int | None = 0,
) -> tuple[list[list[float]], list[int], list[list[float]], list[int]]:
    """Shuffle and split into ``X_train, y_train, X_test, y_test``."""
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)} labels")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction!r}")
    order = list(range(len(X)))
    random.Random(seed).shuffle(order)
    n_test = max(1, round(len(X) * test_fraction))
    if n_test >= len(X):
        raise ValueError(f"cannot hold out {n_test} of {len(X)} samples and train on the rest")
    test, train = order[:n_test], order[n_test:]
    return (
        [list(X[i]) for i in train],
        [y[i] for i in train],
        [list(X[i]) for i in test],
        [y[i] for i in test],
    )


#: The generators the command line offers, by name; each takes samples, noise, seed
#: (and ``classes`` where the number of classes can vary).
DATASETS: dict[str, Callable[..., Dataset]] = {
    "moons": moons,
    "circles": circles,
    "blobs": blobs,
    "spiral": spiral,
    "xor": xor,
}

MULTICLASS = {"blobs", "spiral"}


def make(name: str, n_samples: int, noise: float, seed: int | None, classes: int = 2) -> Dataset:
    """Generate the dataset called ``name`` (one of :data:`DATASETS`)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if name in MULTICLASS:
        return DATASETS[name](n_samples, classes=classes, noise=noise, seed=seed)
    if classes != 2:
        raise ValueError(f"dataset {name!r} has 2 classes; --classes applies to blobs and spiral")
    return DATASETS[name](n_samples, noise=noise, seed=seed)
