"""Packaging and set-up: pyproject.toml is read by the build backend without a single warning;
the Makefile needs no Node for the demo and checks the prerequisites of the tests first."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version
from setuptools.config.pyprojecttoml import apply_configuration, read_configuration
from setuptools.dist import Distribution

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"


def test_metadata_is_applied_without_deprecation_warnings() -> None:
    """The licence is an SPDX expression with its file listed; no licence classifier."""
    dist = Distribution()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # setuptools' SetuptoolsDeprecationWarning included
        apply_configuration(dist, str(PYPROJECT))
        dist.finalize_options()
    assert dist.metadata.license_expression == "MIT"
    assert [Path(f).name for f in dist.metadata.license_files] == ["LICENSE"]
    assert not any(c.startswith("License ::") for c in dist.metadata.classifiers)


def test_the_build_backend_version_understands_spdx_licences() -> None:
    """setuptools reads `license = "MIT"` and `license-files` from version 77 on."""
    config = read_configuration(str(PYPROJECT))
    (setuptools,) = (
        Requirement(r)
        for r in config["build-system"]["requires"]
        if Requirement(r).name == "setuptools"
    )
    assert Version("77.0.0") in setuptools.specifier
    assert Version("76.1.0") not in setuptools.specifier


def test_the_console_script_is_the_cli_main_function() -> None:
    """`chainrule = "chainrule.cli:main"` names the function, not the module cli/main.py."""
    from chainrule.cli.main import main

    config = read_configuration(str(PYPROJECT))
    module, _, name = config["project"]["scripts"]["chainrule"].partition(":")
    assert getattr(importlib.import_module(module), name) is main
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0


def test_star_import_leaves_the_builtin_compile_alone() -> None:
    import builtins

    import chainrule

    names: dict[str, object] = {}
    exec("from chainrule import *", names)
    assert "compile" not in names and "Value" in names and "grad" in names
    assert names.get("compile", builtins.compile) is builtins.compile
    from chainrule.compiler import compile as chainrule_compile

    assert chainrule.compile is chainrule_compile  # still there by its full name


def make_in_a_copy(
    tmp_path: Path, *args: str, path: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """`make ARGS` in a copy of the Makefile and tools/, with PATH set to ``path``."""
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "tools", tmp_path / "tools")
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PATH": path, **env},
    )


def a_path_of(tmp_path: Path, *programs: str) -> str:
    """A PATH holding only links to ``programs`` (where this machine has them)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for program in programs:
        # python3: this very interpreter's binary (a pyenv shim would need bash)
        found = os.path.realpath(sys.executable) if program == "python3" else shutil.which(program)
        assert found is not None, program
        (folder / program).symlink_to(found)
    return str(folder)


def test_make_demo_needs_neither_node_nor_npm(tmp_path: Path) -> None:
    path = a_path_of(tmp_path, "python3", "make")
    done = make_in_a_copy(tmp_path, "-n", "demo", path=path)
    assert done.returncode == 0, done.stderr
    assert "npm" not in done.stdout and "pip" in done.stdout and "chainrule demo" in done.stdout


def test_make_test_names_missing_prerequisites_before_anything_runs(tmp_path: Path) -> None:
    path = a_path_of(tmp_path, "python3", "make")  # no `dot`
    nowhere = str(tmp_path / "nowhere")
    done = make_in_a_copy(tmp_path, "test", path=path, CHAINRULE_CHROMIUM=nowhere)
    assert done.returncode != 0
    hints = ("apt-get install graphviz", "brew install graphviz", "apt-get install chromium")
    for words in ("Graphviz", "Chromium at", "brew install --cask chromium", *hints):
        assert words in done.stderr, words
    assert not (tmp_path / ".venv").exists()  # nothing installed, nothing run
    # with both there (as on this machine), the preflight passes in silence
    ready = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "preflight.py")], capture_output=True, text=True
    )
    assert (ready.returncode, ready.stderr) == (0, "")
