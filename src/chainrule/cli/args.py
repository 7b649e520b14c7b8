"""What the commands share: exit codes, flag types, the common flags, the checks of files.

Every command module builds its parser from these pieces, so that a flag reads and is
checked the same way everywhere: the argument types (:func:`number`, :func:`count`,
:func:`seed`, :func:`sizes`, ...), which turn a bad value into argparse's one-line
error; the flag groups (:func:`training_flags`, :func:`run_flags`, :func:`debug_flag`,
...); the run's :class:`~chainrule.training.TrainConfig` from the flags given
(:func:`train_config`); and the checks made on an output file before any work
(:func:`check_output_file`, :func:`refuse_overwriting_inputs`).

It is also the one place the command line imports the file writers from (atomic
writes, staged folders), so that they can move without touching every command.
"""

from __future__ import annotations

import argparse
import math
import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn

from chainrule.io.files import (
    atomic_write_bytes,
    atomic_write_text,
    ensure_writable_folder,
    replace_folder,
    staged_folder,
)

__all__ = [
    "CHECKPOINT_FILE",
    "DEFAULT_TEST_FRACTION",
    "EXIT_BROKEN_PIPE",
    "EXIT_BUG",
    "EXIT_INTERRUPTED",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "GPT_RUN_FILES",
    "RUN_FILES",
    "TRAIN_RUN_FILES",
    "Parser",
    "UsageError",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_output_file",
    "count",
    "debug_flag",
    "eager_flag",
    "ensure_writable_folder",
    "force_flag",
    "given_settings",
    "non_negative",
    "number",
    "out_folder",
    "output_flag",
    "port",
    "positive",
    "refuse_overwriting_inputs",
    "refused_flag",
    "replace_folder",
    "row",
    "run_flags",
    "seed",
    "sizes",
    "staged_folder",
    "train_config",
    "training_flags",
]

EXIT_BUG = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a process stopped by Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader of the output went away (`| head`)

#: The files a training run writes into its --out folder.
RUN_FILES = ("metrics.json", "model.json", "loss.png", "decision_boundary.png")

#: The checkpoint of `chainrule train` in its folder: the whole state of the run, to
#: resume from or to extend it (`chainrule train --resume FOLDER`).
CHECKPOINT_FILE = "checkpoint.json"

#: The files `chainrule train` writes: the results and the final checkpoint.
TRAIN_RUN_FILES = (*RUN_FILES, CHECKPOINT_FILE)

#: The files `chainrule gpt train` writes (it may replace any run's folder).
GPT_RUN_FILES = ("metrics.json", "model.json", "loss.png")

#: The share of the data `chainrule train` holds out for testing unless told otherwise.
DEFAULT_TEST_FRACTION = 0.2


class UsageError(Exception):
    """A bad argument, reported as one line with exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but errors are one line (``chainrule train: error: ...``), exit 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: error: {message} (see --help)")


# -- argument types -----------------------------------------------------------------------


def number(text: str) -> float:
    """A finite number."""
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(x):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return x


def positive(text: str) -> float:
    """A finite number greater than 0."""
    x = number(text)
    if x <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return x


def non_negative(text: str) -> float:
    """A finite number, 0 or more."""
    x = number(text)
    if x < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
    return x


def count(minimum: int) -> Callable[[str], int]:
    """The type of a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if n < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be at least {minimum}")
        return n

    parse.__name__ = "whole number"
    return parse


def seed(text: str) -> int:
    """A random seed: a whole number from 0 to 2**32 - 1, as the datasets' generator takes."""
    from chainrule.training import MAX_SEED

    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(
            f"seed must be from 0 to {MAX_SEED} (a whole number of 32 bits), got {text!r:.40}"
        )
    return value


def sizes(text: str) -> tuple[int, ...]:
    """Hidden layer sizes, comma-separated: ``16,16``."""
    try:
        layers = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of layer sizes, e.g. 16,16"
        ) from None
    if not layers or any(n < 1 for n in layers):
        raise argparse.ArgumentTypeError(f"layer sizes must be positive, got {text!r}")
    return layers


def row(text: str) -> list[float]:
    """One point of ``predict --input``: comma-separated numbers."""
    parts = [p.strip() for p in text.split(",")]
    try:
        return [number(p) for p in parts]
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(
            f"--input must be comma-separated numbers, e.g. 0.5,0.25 ({exc})"
        ) from None


def port(text: str) -> int:
    """A TCP port number, 0 (any free one) to 65535."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, got {text!r}")
    return value


# -- flags --------------------------------------------------------------------------------


def _per_dataset(key: str) -> str:
    """``moons, circles 100; spiral 300``: a per-dataset default, for --help."""
    from chainrule.data import DEFAULTS

    groups: dict[float, list[str]] = {}
    for name, values in DEFAULTS.items():
        groups.setdefault(getattr(values, key), []).append(name)
    return "; ".join(f"{', '.join(names)} {value:g}" for value, names in groups.items())


def training_flags(
    p: argparse.ArgumentParser, out: str, held_out: bool = True, sweep: bool = False
) -> None:
    """The flags of a training run. ``held_out``: --test-fraction defaults to
    :data:`DEFAULT_TEST_FRACTION` and --eval-every and --patience exist. ``sweep``
    (lr-find, which sets each short run's learning rate, schedule and steps itself):
    --lr, --schedule and --steps are not listed, and are refused with a hint.

    A setting's default is filled in by :func:`train_config`, not by argparse (its value
    is None when it is not given), so that ``--resume`` can tell the flags given apart.
    """
    _data_flags(p, held_out)
    _model_flags(p)
    _optimizer_flags(p, sweep)
    p.add_argument("--out", type=Path, help=f"output folder ({out})")
    p.set_defaults(default_out=Path(out))
    eager_flag(p)


def _data_flags(p: argparse.ArgumentParser, held_out: bool) -> None:
    """The "data" group of :func:`training_flags`."""
    from chainrule.data import DATASETS
    from chainrule.training import TrainConfig

    d = TrainConfig()
    g = p.add_argument_group("data")
    g.add_argument(
        "--data",
        metavar="FILE.csv",
        help="train on your own points instead of a generated dataset: a CSV file, one "
        "point a line, its features then its label (0.5,-1.2,1); a first line with no "
        "number in it (x1,x2,label) is a header. Labels are whole numbers: 0 and 1 or -1 "
        "and 1 for two classes, 0..k-1 for k classes (each the label of a point). The "
        "model takes as many inputs as there are features; a bad line is refused, named. "
        "Not with --dataset, --samples, --noise or --classes",
    )
    g.add_argument("--dataset", choices=tuple(DATASETS), help=f"{d.dataset}")
    g.add_argument("--samples", type=count(2), help=f"points ({_per_dataset('samples')})")
    g.add_argument("--noise", type=non_negative, help=f"noise ({_per_dataset('noise')})")
    g.add_argument(
        "--classes",
        type=count(2),
        help=f"classes; only blobs and spiral have more than 2 ({_per_dataset('classes')})",
    )
    g.add_argument(
        "--test-fraction",
        type=non_negative,
        default=None if held_out else 0.0,
        help="share of the data held out for testing; 0 trains on all of it "
        f"({DEFAULT_TEST_FRACTION if held_out else 0.0})",
    )
    if held_out:
        g.add_argument(
            "--eval-every",
            type=count(1),
            metavar="K",
            help="with held-out data: loss and accuracy on the training and test sets "
            f"after every K steps and the last, into metrics.json ({d.eval_every})",
        )
        g.add_argument(
            "--patience",
            type=count(1),
            metavar="N",
            help="stop when the test loss has not improved for N evaluations and keep "
            "the weights of the best one (off)",
        )


def _model_flags(p: argparse.ArgumentParser) -> None:
    """The "model" group of :func:`training_flags`."""
    from chainrule.nn import ACTIVATIONS, INITS
    from chainrule.training import TrainConfig

    d = TrainConfig()
    g = p.add_argument_group("model")
    g.add_argument(
        "--layers",
        dest="hidden",
        type=sizes,
        help=f"hidden layer sizes, comma-separated ({','.join(map(str, d.hidden))})",
    )
    g.add_argument("--activation", choices=ACTIVATIONS, help=f"{d.activation}")
    g.add_argument("--init", choices=INITS, help=f"weights ({d.init})")


def _optimizer_flags(p: argparse.ArgumentParser, sweep: bool) -> None:
    """The "training" group of :func:`training_flags`."""
    from chainrule.optim import SCHEDULES
    from chainrule.training import DEFAULT_LR, LOSSES, OPTIMIZERS, TrainConfig

    d = TrainConfig()
    g = p.add_argument_group("training")
    g.add_argument(
        "--loss",
        choices=LOSSES,
        help=f"auto: hinge for 2 classes, softmax cross-entropy for more ({d.loss})",
    )
    g.add_argument("--l2", type=non_negative, help=f"L2 weight ({d.l2})")
    g.add_argument("--optimizer", choices=OPTIMIZERS, help=f"{d.optimizer}")
    lrs = ", ".join(f"{name} {lr:g}" for name, lr in DEFAULT_LR.items())
    g.add_argument("--momentum", type=non_negative, help=f"SGD only, [0, 1) ({d.momentum})")
    if sweep:
        refused_flag(p, "--lr", "lr-find tries the learning rates from --min-lr to --max-lr")
        refused_flag(p, "--schedule", "each run of lr-find keeps its learning rate constant")
        refused_flag(p, "--steps", "lr-find runs --run-steps steps at each learning rate")
    else:
        g.add_argument("--lr", type=positive, help=f"learning rate ({lrs})")
        g.add_argument("--schedule", choices=SCHEDULES, help=f"{d.schedule}")
        g.add_argument("--steps", type=count(1), help=f"steps ({d.steps})")
    g.add_argument("--batch-size", type=count(1), help="examples per step (all)")
    g.add_argument("--seed", type=seed, help=f"random seed, 0 to 2**32 - 1 ({d.seed})")


def refused_flag(p: argparse.ArgumentParser, flag: str, hint: str) -> None:
    """``flag``, which this command does not take: not listed in --help, and refused
    with ``hint`` (rather than argparse's bare "unrecognized arguments")."""

    def refuse(text: str) -> None:
        raise argparse.ArgumentTypeError(f"not taken here: {hint}")

    p.add_argument(flag, type=refuse, dest=f"refused_{flag[2:]}", help=argparse.SUPPRESS)


def force_flag(p: argparse.ArgumentParser) -> None:
    """--force: start over in a folder that holds an unfinished run."""
    p.add_argument(
        "--force",
        action="store_true",
        help="start over in an --out folder that holds an unfinished `chainrule train` run, "
        f"deleting its {CHECKPOINT_FILE} (without --force such a folder is refused: resume "
        "the run with `chainrule train --resume DIR`)",
    )


def run_flags(p: argparse.ArgumentParser, out: str) -> None:
    """The flags of a command that trains from a fixed recipe: where the results go, the
    progress bar, the engine and tracebacks."""
    p.add_argument("--out", type=Path, default=Path(out), help="output folder (%(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    eager_flag(p)
    debug_flag(p)


def eager_flag(p: argparse.ArgumentParser) -> None:
    """--eager: train on the graph of Values instead of the compiled replay."""
    p.add_argument(
        "--eager",
        action="store_true",
        help="build the graph of Values at every step instead of replaying it compiled "
        "(chainrule.compile); the results agree to rounding",
    )


def output_flag(p: argparse.ArgumentParser, help: str) -> None:
    """-o/--output FILE."""
    p.add_argument("-o", "--output", type=Path, metavar="FILE", help=help)


def debug_flag(p: argparse.ArgumentParser, default: Any = argparse.SUPPRESS) -> None:
    """--debug: Python's traceback instead of the one-line error."""
    # On the subcommands the default is SUPPRESS, so `chainrule --debug train` is not
    # undone by the subcommand's own default.
    p.add_argument(
        "--debug",
        action="store_true",
        default=default,
        help="show Python's traceback instead of a one-line error",
    )


# -- the flags read -----------------------------------------------------------------------


def given_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`TrainConfig` settings given as flags (the others are None)."""
    from chainrule.training import TrainConfig

    fields = TrainConfig.__dataclass_fields__
    return {k: v for k, v in vars(args).items() if k in fields and v is not None}


def train_config(args: argparse.Namespace) -> Any:
    """The run's :class:`~chainrule.training.TrainConfig` from the parsed flags of
    ``train`` or ``lr-find``: the flags given, and the defaults for the rest, among them
    the per-optimiser one for --lr (:class:`TrainConfig` fills the dataset's own
    --samples, --noise and --classes)."""
    from chainrule.training import DEFAULT_LR, TrainConfig

    given = given_settings(args)
    if "data" in given:
        _check_data_file(given)
    optimizer = given.get("optimizer", TrainConfig().optimizer)
    defaults: dict[str, Any] = {
        "lr": DEFAULT_LR[optimizer],
        "test_fraction": DEFAULT_TEST_FRACTION,
    }
    config = TrainConfig(**{**defaults, **given})  # reads --data, naming it as given
    config.compiled = not args.eager
    if config.data is not None:
        config.data = os.path.abspath(config.data)  # so that the run resumes from anywhere
    return config


#: The settings of a generated dataset, by flag: --data replaces them.
_GENERATED = ("--dataset", "--samples", "--noise", "--classes")


def _check_data_file(given: Mapping[str, Any]) -> None:
    """Refuse --data (in the settings ``given``) with a generated dataset's flags, or
    naming no file; the file's lines are checked as the run's config reads it."""
    clash = [flag for flag in _GENERATED if flag[2:] in given]
    if clash:
        raise UsageError(
            f"--data and {clash[0]} do not go together: --data trains on the points of a "
            "file, --dataset, --samples, --noise and --classes make a generated dataset"
        )
    path = Path(given["data"])
    if path.is_dir():
        raise UsageError(f"--data {path} is a folder; name a CSV file")
    if not path.exists():
        raise UsageError(f"--data {path} does not exist; name a CSV file")


def out_folder(args: argparse.Namespace) -> Path:
    """--out, or the command's default folder."""
    out: Path = args.out if args.out is not None else args.default_out
    return out


# -- output files -------------------------------------------------------------------------


def check_output_file(path: Path, example: str = "graph.svg") -> None:
    """Refuse, before any work, an output that is a folder or lies in a missing folder."""
    if path.is_dir():
        raise UsageError(f"-o {path} is a folder; name a file, such as {path / example}")
    if not path.parent.is_dir():
        problem = "is not a folder" if path.parent.exists() else "does not exist"
        raise UsageError(f"-o {path}: {path.parent} {problem}")


def refuse_overwriting_inputs(
    output: Path, inputs: Mapping[str, Path | None], flag: str | None = "-o"
) -> None:
    """Refuse, before anything is written, an output file that is one of the files the
    command reads, however it is spelled (``./x``, a symbolic or hard link to it):
    writing it would replace what is being read. ``inputs``: each input file by a
    description ("MODEL, the model being exported"); None or ``-`` (standard input) is
    no file. ``flag`` names the output in the message, or None for a default output."""
    for what, source in inputs.items():
        if source is not None and str(source) != "-" and _same_file(output, source):
            where = f"{flag} {output}" if flag else f"the output {output}"
            raise UsageError(f"{where} is {what}; write to another file (-o FILE)")


def _same_file(output: Path, source: Path) -> bool:
    """Whether ``output`` is the regular file ``source`` (a device such as /dev/stdout
    may be both read and written)."""
    try:
        return os.path.samefile(output, source) and stat.S_ISREG(os.stat(output).st_mode)
    except (OSError, ValueError):  # one of them missing (or a NUL in a name): not one file
        return False
