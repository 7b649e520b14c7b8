"""Packaging: pyproject.toml is read by the build backend without a single warning."""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version
from setuptools.config.pyprojecttoml import apply_configuration, read_configuration
from setuptools.dist import Distribution

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


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
