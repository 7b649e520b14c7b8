"""Small classification datasets, generated in code (no downloads), seeded.

Every generator returns ``(X, y)``: ``X`` a list of rows of floats, ``y`` a list of
integer class labels ``0 .. k-1``; so does :func:`read_csv`, for a user's own points in
a CSV file. Use :func:`to_signed` for the ±1 labels that the hinge loss wants, and
:func:`train_test_split` to hold data out. :data:`DEFAULTS` holds each generated
dataset's default size, noise and number of classes, for every tool.

``moons`` reproduces scikit-learn's ``make_moons`` point for point (same algorithm and
the same random stream), so ``moons(100, noise=0.1, seed=1337)`` is the reference demo's
dataset exactly.

The random stream is NumPy's legacy ``np.random.RandomState(seed)`` (the one
scikit-learn draws from), reproduced bit for bit in pure Python by
:class:`LegacyRandomState`: this module needs only the standard library (it runs in
Pyodide, in the browser), and every generator returns exactly the numbers the NumPy
version of it did. Sines, cosines and logarithms come from :mod:`math`, that is from the
platform's C library, as NumPy's do: on one platform the numbers are NumPy's bit for bit;
another C library (Pyodide's, for one) rounds a few percent of the sines and cosines, and
rarely a logarithm, differently in the last bit or two.

:func:`names` is the one dataset that is not generated: 30,869 US first names that
ship inside the package (public-domain Social Security Administration data; source,
licence and the exact transformation in ``datasets/NAMES-SOURCE.md`` beside the list).
"""

from __future__ import annotations

import itertools
import math
import operator
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import TypeVar

from chainrule.io.csvrows import RowsError, numbered_rows

__all__ = [
    "DATASETS",
    "DEFAULTS",
    "MAX_SEED",
    "MULTICLASS",
    "DatasetDefaults",
    "LegacyRandomState",
    "blobs",
    "circles",
    "lecture",
    "linspace",
    "make",
    "moons",
    "names",
    "read_csv",
    "spiral",
    "to_signed",
    "train_test_split",
    "xor",
]

Dataset = tuple[list[list[float]], list[int]]
Rows = list[tuple[int, list[float]]]  # a CSV file's rows: (line number, numbers)
_T = TypeVar("_T")


@dataclass(frozen=True)
class DatasetDefaults:
    """What a dataset is made with when nothing else is asked for."""

    samples: int
    noise: float
    classes: int


#: Each generated dataset's defaults, written here only: the generators' default
#: arguments, :class:`chainrule.training.TrainConfig` (so ``chainrule train``) and the
#: explorer all take them from this table. Blobs and spiral have three classes; three
#: spiral arms need more than 100 points; each set's noise suits its shape (a circle's
#: radius, the blobs' distance apart, the spiral's turn).
DEFAULTS: dict[str, DatasetDefaults] = {
    "moons": DatasetDefaults(samples=100, noise=0.1, classes=2),
    "circles": DatasetDefaults(samples=100, noise=0.05, classes=2),
    "blobs": DatasetDefaults(samples=100, noise=0.5, classes=3),
    "spiral": DatasetDefaults(samples=300, noise=0.2, classes=3),
    "xor": DatasetDefaults(samples=100, noise=0.1, classes=2),
}

_MT_N = 624  # MT19937's state: 624 words of 32 bits
_MASK32 = 0xFFFFFFFF

#: The largest seed the generators take: NumPy's legacy seeding takes ``[0, 2**32 - 1]``.
MAX_SEED = _MASK32


class LegacyRandomState:
    """NumPy's legacy ``RandomState(seed)`` stream, the draws the generators make.

    The generator is MT19937, the Mersenne Twister that Python's :class:`random.Random`
    also runs; only the seeding differs. NumPy seeds an integer ``s`` with the
    reference ``init_genrand``: ``mt[0] = s`` and
    ``mt[i] = (1812433253 * (mt[i-1] ^ (mt[i-1] >> 30)) + i) mod 2**32``, which is
    installed here as the state of a :class:`random.Random`. From there the two agree:
    ``getrandbits(32)`` is NumPy's 32-bit output, and ``random()`` is its
    ``random_sample``, ``(a * 2**26 + b) / 2**53`` with ``a``, ``b`` the top 27 and
    26 bits of two outputs. On top of those:

    * :meth:`gauss`: the polar Box-Muller method. Draw ``x1, x2`` uniform in
      ``[-1, 1)`` until ``0 < r2 = x1**2 + x2**2 < 1``; with
      ``f = sqrt(-2 log(r2) / r2)`` return ``f * x2`` and keep ``f * x1`` for the next
      call.
    * :meth:`normal`: ``0.0 + scale * gauss()`` (loc is 0).
    * :meth:`interval`: a uniform integer in ``[0, high]`` by masked rejection: mask
      the output to the smallest all-ones ``2**k - 1 >= high`` and redraw while above.
    * :meth:`shuffle`: Fisher-Yates from the end, ``j = interval(i)`` for
      ``i = n-1 .. 1``; :meth:`permutation` shuffles ``0 .. n-1``.

    ``seed=None`` seeds from the operating system's entropy (like NumPy, though not its
    values); an integer seed must be in ``[0, 2**32 - 1]``, as NumPy requires.
    """

    __slots__ = ("_gauss", "bits")

    def __init__(self, seed: int | None) -> None:
        self.bits = random.Random()  # seeded from OS entropy; replaced for a given seed
        self._gauss: float | None = None  # the polar method's second value, kept
        if seed is not None:
            try:
                word = operator.index(seed)
            except TypeError:
                raise TypeError(f"seed must be an integer or None, got {seed!r}") from None
            if not 0 <= word <= _MASK32:
                raise ValueError("Seed must be between 0 and 2**32 - 1")
            state = [word]
            for i in range(1, _MT_N):
                word = (1812433253 * (word ^ (word >> 30)) + i) & _MASK32
                state.append(word)
            # position 624: the whole state is used up, so the next draw twists it first
            self.bits.setstate((3, (*state, _MT_N), None))

    def random_sample(self) -> float:
        """A uniform float in ``[0, 1)`` with 53 random bits."""
        return self.bits.random()

    def gauss(self) -> float:
        """A standard normal draw (the polar method; see the class docstring)."""
        kept = self._gauss
        if kept is not None:
            self._gauss = None
            return kept
        uniform = self.bits.random
        while True:
            x1 = 2.0 * uniform() - 1.0
            x2 = 2.0 * uniform() - 1.0
            r2 = x1 * x1 + x2 * x2
            if r2 < 1.0 and r2 != 0.0:
                break
        f = math.sqrt(-2.0 * math.log(r2) / r2)
        self._gauss = f * x1
        return f * x2

    def normal(self, scale: float, size: int) -> list[float]:
        """``size`` draws from a normal of mean 0 and std ``scale``, in NumPy's order."""
        gauss = self.gauss
        return [0.0 + scale * gauss() for _ in range(size)]

    def interval(self, high: int) -> int:
        """A uniform integer in ``[0, high]`` (masked rejection sampling)."""
        if high == 0:
            return 0
        mask = (1 << high.bit_length()) - 1
        draw = self.bits.getrandbits
        if high <= _MASK32:
            while (value := draw(32) & mask) > high:
                pass
        else:  # a 64-bit output is the first 32-bit output, then the second
            while (value := ((draw(32) << 32) | draw(32)) & mask) > high:
                pass
        return value

    def shuffle(self, items: list[_T]) -> None:
        """Shuffle ``items`` in place (Fisher-Yates from the end)."""
        interval = self.interval
        for i in range(len(items) - 1, 0, -1):
            j = interval(i)
            items[i], items[j] = items[j], items[i]

    def permutation(self, n: int) -> list[int]:
        """``0 .. n-1`` shuffled."""
        order = list(range(n))
        self.shuffle(order)
        return order


def linspace(start: float, stop: float, num: int, endpoint: bool = True) -> list[float]:
    """``num`` evenly spaced points from ``start`` to ``stop`` (excluded unless
    ``endpoint``), with ``np.linspace``'s arithmetic: ``i * step + start`` where
    ``step = (stop - start) / div`` and ``div = num - 1`` (``num`` without the endpoint),
    and the last point set to ``stop`` exactly when it is included."""
    start, stop = float(start), float(stop)
    div = num - 1 if endpoint else num
    delta = stop - start
    if div > 0:
        step = delta / div
        if step == 0:  # a step that underflows: scale afterwards instead
            points = [i / div * delta for i in range(num)]
        else:
            points = [i * step for i in range(num)]
    else:
        points = [i * delta for i in range(num)]
    points = [p + start for p in points]
    if endpoint and num > 1:
        points[-1] = stop
    return points


def _check(n_samples: int, noise: float, min_samples: int = 2) -> None:
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < min_samples:
        raise ValueError(f"n_samples must be an integer >= {min_samples}, got {n_samples!r}")
    if not (isinstance(noise, (int, float)) and math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")


def _finish(X: list[list[float]], y: list[int], order: list[int]) -> Dataset:
    """Rows and labels in the order ``order``."""
    return [X[i] for i in order], [y[i] for i in order]


def moons(
    n_samples: int = DEFAULTS["moons"].samples,
    noise: float = DEFAULTS["moons"].noise,
    seed: int | None = 0,
) -> Dataset:
    """Two interleaving half circles, shuffled, with Gaussian noise of std ``noise``."""
    _check(n_samples, noise)
    rs = LegacyRandomState(seed)
    n_out = n_samples // 2
    n_in = n_samples - n_out
    t_out, t_in = linspace(0.0, math.pi, n_out), linspace(0.0, math.pi, n_in)
    outer = [(math.cos(t), math.sin(t)) for t in t_out]
    inner = [(1 - math.cos(t), 1 - math.sin(t) - 0.5) for t in t_in]
    return _two_classes(rs, outer, inner, noise)


def circles(
    n_samples: int = DEFAULTS["circles"].samples,
    noise: float = DEFAULTS["circles"].noise,
    factor: float = 0.5,
    seed: int | None = 0,
) -> Dataset:
    """A small circle (class 1) inside a large one (class 0); ``factor`` is their ratio."""
    _check(n_samples, noise)
    if not 0 < factor < 1:
        raise ValueError(f"factor must be between 0 and 1, got {factor!r}")
    rs = LegacyRandomState(seed)
    n_out = n_samples // 2
    n_in = n_samples - n_out
    t_out = linspace(0.0, 2 * math.pi, n_out, endpoint=False)
    t_in = linspace(0.0, 2 * math.pi, n_in, endpoint=False)
    outer = [(math.cos(t), math.sin(t)) for t in t_out]
    scale = float(factor)
    inner = [(scale * math.cos(t), scale * math.sin(t)) for t in t_in]
    return _two_classes(rs, outer, inner, noise)


def _two_classes(
    rs: LegacyRandomState,
    outer: list[tuple[float, float]],
    inner: list[tuple[float, float]],
    noise: float,
) -> Dataset:
    """Class 0 from ``outer``, class 1 from ``inner``: shuffled, then Gaussian noise added
    (in scikit-learn's order of random draws, so ``moons`` matches ``make_moons``)."""
    points = outer + inner
    labels = [0] * len(outer) + [1] * len(inner)
    order = rs.permutation(len(points))
    e = rs.normal(float(noise), 2 * len(points))
    X = [[points[i][0] + e[2 * k], points[i][1] + e[2 * k + 1]] for k, i in enumerate(order)]
    return X, [labels[i] for i in order]


def blobs(
    n_samples: int = DEFAULTS["blobs"].samples,
    classes: int = DEFAULTS["blobs"].classes,
    noise: float = DEFAULTS["blobs"].noise,
    seed: int | None = 0,
) -> Dataset:
    """``classes`` Gaussian clusters of std ``noise`` around centres on a circle of radius 2."""
    _check(n_samples, noise)
    _check_classes(classes)
    rs = LegacyRandomState(seed)
    y = [i % classes for i in range(n_samples)]
    angles = [2 * math.pi * k / classes for k in range(min(classes, n_samples))]
    centres = [(2 * math.cos(a), 2 * math.sin(a)) for a in angles]
    e = rs.normal(float(noise), 2 * n_samples)
    X = [[centres[k][0] + e[2 * i], centres[k][1] + e[2 * i + 1]] for i, k in enumerate(y)]
    return _finish(X, y, rs.permutation(n_samples))


def spiral(
    n_samples: int = DEFAULTS["spiral"].samples,
    classes: int = DEFAULTS["spiral"].classes,
    noise: float = DEFAULTS["spiral"].noise,
    seed: int | None = 0,
) -> Dataset:
    """``classes`` interleaved spiral arms, ``n_samples`` points in all.

    The classic hard case for a linear model (CS231n's toy spiral): arm ``k`` sweeps one
    turn outward from the centre, with angular noise ``noise``.
    """
    _check(n_samples, noise, min_samples=classes if isinstance(classes, int) else 2)
    _check_classes(classes)
    rs = LegacyRandomState(seed)
    y = [i % classes for i in range(n_samples)]
    # point i is the (i // classes)-th of its arm; arm k has len(range(k, n, classes))
    radii = [linspace(0.05, 1.0, len(range(k, n_samples, classes))) for k in range(classes)]
    radius = [radii[k][i // classes] for i, k in enumerate(y)]
    turn = 2 * math.pi / classes
    e = rs.normal(float(noise), n_samples)
    theta = [r * 4.0 + k * turn + g for r, k, g in zip(radius, y, e, strict=True)]
    X = [[r * math.sin(t), r * math.cos(t)] for r, t in zip(radius, theta, strict=True)]
    return _finish(X, y, rs.permutation(n_samples))


def xor(
    n_samples: int = DEFAULTS["xor"].samples,
    noise: float = DEFAULTS["xor"].noise,
    seed: int | None = 0,
) -> Dataset:
    """Four clusters at (±1, ±1); class 1 where the signs differ (exclusive or)."""
    _check(n_samples, noise)
    rs = LegacyRandomState(seed)
    corners = [(1.0 if c % 2 == 0 else -1.0, 1.0 if c < 2 else -1.0) for c in range(4)]
    signs = [corners[i % 4] for i in range(n_samples)]
    e = rs.normal(float(noise), 2 * n_samples)
    X = [[sx + e[2 * i], sy + e[2 * i + 1]] for i, (sx, sy) in enumerate(signs)]
    y = [int(sx != sy) for sx, sy in signs]
    return _finish(X, y, rs.permutation(n_samples))


def lecture() -> tuple[list[list[float]], list[float]]:
    """The lecture's four examples: three inputs each, targets ±1 (a regression set)."""
    X = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
    y = [1.0, -1.0, -1.0, 1.0]
    return X, y


def read_csv(path: str | os.PathLike[str]) -> Dataset:
    """Labelled points from the CSV file ``path``: one a line, the features then the label.

    Every line holds the same number of numbers (the first line's), at least two; a
    first line with no number in it (``x1,x2,label``) is a header, and empty lines are
    skipped, as :func:`chainrule.io.csvrows.read_rows` reads them. The label, the last
    number, is a whole number (``1`` or ``1.0``): two classes are ``0`` and ``1``, or
    ``-1`` and ``1`` (the hinge loss's convention, read as 0 and 1); ``k`` classes are
    ``0 .. k-1``, each the label of at least one point. Returns ``(X, y)`` with ``y`` in
    ``0 .. k-1``, as the generators do.

    Raises :class:`~chainrule.io.csvrows.RowsError` at the first bad line, naming the
    file and line (``points.csv line 17: expected 3 numbers as on line 1, got '1,2'
    (2 values)``), and :class:`OSError` for a file that cannot be opened.
    """
    name = os.fspath(path)
    with open(path, "rb") as f:  # decoded line by line, so a bad byte names its line
        rows = list(numbered_rows(f, None, name))
    first, row = rows[0]
    if len(row) < 2:
        raise RowsError(
            f"{name} line {first}: one number a line; expected the features, then the "
            "label: at least 2 numbers a line"
        )
    return [row[:-1] for _, row in rows], _classes(rows, name)


def _classes(rows: Rows, name: str) -> list[int]:
    """Each row's label (its last number) as a class 0..k-1; a -1 among them makes the
    labels -1 and 1. The labels are checked as a set (a big file's are mostly alike);
    only a bad one is looked for line by line, to name its line."""
    labels = [row[-1] for _, row in rows]
    seen = set(labels)
    signed = -1.0 in seen
    if any(not x.is_integer() for x in seen):
        where = _first(rows, name, lambda x: not x.is_integer())
        raise RowsError(f"{where} is not a whole number; {_LABELS}")
    if signed and not seen <= {-1.0, 1.0}:
        where = _first(rows, name, lambda x: x not in (-1.0, 1.0))
        minus = _line(rows, lambda x: x == -1.0)
        raise RowsError(f"{where}, but line {minus} has label -1; {_LABELS}, not a mix")
    if (min(seen) < 0 and not signed) or min(seen) < -1.0:
        raise RowsError(f"{_first(rows, name, lambda x: x < 0)} is not a class; {_LABELS}")
    classes = [int(x > 0) for x in labels] if signed else [int(x) for x in labels]
    _check_every_class_used(rows, name, {int(x > 0) if signed else int(x) for x in seen})
    return classes


#: What :func:`read_csv` takes as labels, for its messages.
_LABELS = "the labels of k classes are 0..k-1, or -1 and 1 for two classes"


def _line(rows: Rows, bad: Callable[[float], bool]) -> int:
    """The line of the first row whose label is ``bad``."""
    return next(line for line, row in rows if bad(row[-1]))


def _first(rows: Rows, name: str, bad: Callable[[float], bool]) -> str:
    """``points.csv line 7: label 0.5``: the first row whose label is ``bad``."""
    line, label = next((line, row[-1]) for line, row in rows if bad(row[-1]))
    shown = str(int(label)) if label.is_integer() and abs(label) < 1e15 else repr(label)
    return f"{name} line {line}: label {shown}"


def _check_every_class_used(rows: Rows, name: str, used: set[int]) -> None:
    """Refuse fewer than 2 classes, or a class of 0..k-1 that no point has."""
    if len(used) < 2:
        where = _first(rows, name, lambda x: True)
        raise RowsError(f"{where}, as on every line; a classifier needs at least 2 classes")
    top = max(used)
    if len(used) <= top:  # a gap, and the first ones lie below len(used) + 3: soon found
        missing = list(itertools.islice((c for c in range(top) if c not in used), 3))
        hint = " (counted from 1? subtract 1)" if missing == [0] else ""
        raise RowsError(
            f"{_first(rows, name, lambda x: x == top)}, but no line has label "
            f"{' or '.join(map(str, missing))}: each of k classes 0..k-1 must label a "
            f"point{hint}"
        )


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
#: (and ``classes`` where the number of classes can vary), defaulting to :data:`DEFAULTS`.
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
