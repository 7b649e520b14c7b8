"""The ``chainrule`` command: train, predict, export, find a learning rate, draw a graph, GPT.

    chainrule demo                       the reference demo: moons, MLP 2-16-16-1, 100 steps
    chainrule train --dataset spiral --classes 3 --optimizer adam --lr 0.05 --steps 300
    chainrule train --resume runs/train --steps 500   go on with a run, or train it longer
    chainrule predict --model runs/demo/model.json --input 0.5,0.25
    chainrule predict --model runs/demo/model.json --input-file points.csv > predictions.csv
    chainrule lr-find --dataset moons
    chainrule graph "3*x**2 - 4*x + 5" --at x=3   prints 20 and d/dx = 14, writes graph.svg
    chainrule export runs/demo/model.json -o model.safetensors   (or --format onnx)
    chainrule import model.safetensors -o model.json
    chainrule gpt train                  a character-level GPT on names: runs/gpt/
    chainrule gpt sample --model runs/gpt/model.json -n 20 --temperature 0.5

Every bad argument or file, and a training run that diverges, gets one line saying
what is wrong and exit code 2. Anything else that goes wrong is a bug in chainrule: one
line saying so and exit code 1; ``--debug`` shows the traceback instead.

The package has one module per command, each with ``add_parser(subparsers)`` and the
function that runs it: :mod:`~chainrule.cli.demo`, :mod:`~chainrule.cli.train` (the two
share :mod:`~chainrule.cli.training_run`), :mod:`~chainrule.cli.predict`,
:mod:`~chainrule.cli.lr_find`, :mod:`~chainrule.cli.graph`,
:mod:`~chainrule.cli.explore`, :mod:`~chainrule.cli.export` (export and import) and
:mod:`~chainrule.cli.gpt` (train and sample). :mod:`~chainrule.cli.args` holds what they
share (exit codes, flag types and groups, output-file checks) and
:mod:`~chainrule.cli.main` the parser and the entry point, :func:`main`.
"""

from __future__ import annotations

from chainrule.cli.args import (
    CHECKPOINT_FILE,
    DEFAULT_TEST_FRACTION,
    EXIT_BROKEN_PIPE,
    EXIT_BUG,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    GPT_RUN_FILES,
    RUN_FILES,
    TRAIN_RUN_FILES,
    UsageError,
    train_config,
)
from chainrule.cli.main import build_parser, main
from chainrule.cli.train import RESUME_FLAGS

__all__ = [
    "CHECKPOINT_FILE",
    "DEFAULT_TEST_FRACTION",
    "EXIT_BROKEN_PIPE",
    "EXIT_BUG",
    "EXIT_INTERRUPTED",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "GPT_RUN_FILES",
    "RESUME_FLAGS",
    "RUN_FILES",
    "TRAIN_RUN_FILES",
    "UsageError",
    "build_parser",
    "main",
    "train_config",
]
