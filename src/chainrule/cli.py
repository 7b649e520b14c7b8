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
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
import random
import shlex
import signal
import stat
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from chainrule import __version__
from chainrule.errors import ChainruleError, DivergedError
from chainrule.io.files import atomic_write_bytes, atomic_write_text, ensure_writable_folder

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


class UsageError(Exception):
    """A bad argument, reported as one line with exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line (``chainrule train: error: ...``), exit 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: error: {message} (see --help)")


# -- argument types -----------------------------------------------------------------------


def _number(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(x):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return x


def _positive(text: str) -> float:
    x = _number(text)
    if x <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return x


def _non_negative(text: str) -> float:
    x = _number(text)
    if x < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
    return x


def _count(minimum: int) -> Callable[[str], int]:
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


def _seed(text: str) -> int:
    """A random seed: a whole number from 0 to 2**32 - 1, as the datasets' generator takes."""
    from chainrule.training import MAX_SEED

    try:
        seed = int(text)
    except ValueError:
        seed = -1
    if not 0 <= seed <= MAX_SEED:
        raise argparse.ArgumentTypeError(
            f"seed must be from 0 to {MAX_SEED} (a whole number of 32 bits), got {text!r:.40}"
        )
    return seed


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of layer sizes, e.g. 16,16"
        ) from None
    if not sizes or any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError(f"layer sizes must be positive, got {text!r}")
    return sizes


def _row(text: str) -> list[float]:
    parts = [p.strip() for p in text.split(",")]
    try:
        return [_number(p) for p in parts]
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(
            f"--input must be comma-separated numbers, e.g. 0.5,0.25 ({exc})"
        ) from None


# -- commands -----------------------------------------------------------------------------


#: The share of the data `chainrule train` holds out for testing unless told otherwise.
DEFAULT_TEST_FRACTION = 0.2


def _per_dataset(key: str) -> str:
    """``moons, circles 100; spiral 300``: a per-dataset default, for --help."""
    from chainrule.data import DEFAULTS

    groups: dict[float, list[str]] = {}
    for name, values in DEFAULTS.items():
        groups.setdefault(getattr(values, key), []).append(name)
    return "; ".join(f"{', '.join(names)} {value:g}" for value, names in groups.items())


def _training_flags(
    p: argparse.ArgumentParser, out: str, held_out: bool = True, sweep: bool = False
) -> None:
    """The flags of a training run. ``held_out``: --test-fraction defaults to
    :data:`DEFAULT_TEST_FRACTION` and --eval-every and --patience exist. ``sweep``
    (lr-find, which sets each short run's learning rate, schedule and steps itself):
    --lr, --schedule and --steps are not listed, and are refused with a hint.

    A setting's default is filled in by :func:`_config`, not by argparse (its value is
    None when it is not given), so that ``--resume`` can tell the flags given apart.
    """
    from chainrule.data import DATASETS
    from chainrule.nn import ACTIVATIONS, INITS
    from chainrule.optim import SCHEDULES
    from chainrule.training import DEFAULT_LR, LOSSES, OPTIMIZERS, TrainConfig

    d = TrainConfig()
    g = p.add_argument_group("data")
    g.add_argument("--dataset", choices=tuple(DATASETS), help=f"{d.dataset}")
    g.add_argument("--samples", type=_count(2), help=f"points ({_per_dataset('samples')})")
    g.add_argument("--noise", type=_non_negative, help=f"noise ({_per_dataset('noise')})")
    g.add_argument(
        "--classes",
        type=_count(2),
        help=f"classes; only blobs and spiral have more than 2 ({_per_dataset('classes')})",
    )
    g.add_argument(
        "--test-fraction",
        type=_non_negative,
        default=None if held_out else 0.0,
        help="share of the data held out for testing; 0 trains on all of it "
        f"({DEFAULT_TEST_FRACTION if held_out else 0.0})",
    )
    if held_out:
        g.add_argument(
            "--eval-every",
            type=_count(1),
            metavar="K",
            help="with held-out data: loss and accuracy on the training and test sets "
            f"after every K steps and the last, into metrics.json ({d.eval_every})",
        )
        g.add_argument(
            "--patience",
            type=_count(1),
            metavar="N",
            help="stop when the test loss has not improved for N evaluations and keep "
            "the weights of the best one (off)",
        )
    g = p.add_argument_group("model")
    g.add_argument(
        "--layers",
        dest="hidden",
        type=_sizes,
        help=f"hidden layer sizes, comma-separated ({','.join(map(str, d.hidden))})",
    )
    g.add_argument("--activation", choices=ACTIVATIONS, help=f"{d.activation}")
    g.add_argument("--init", choices=INITS, help=f"weights ({d.init})")
    g = p.add_argument_group("training")
    g.add_argument(
        "--loss",
        choices=LOSSES,
        help=f"auto: hinge for 2 classes, softmax cross-entropy for more ({d.loss})",
    )
    g.add_argument("--l2", type=_non_negative, help=f"L2 weight ({d.l2})")
    g.add_argument("--optimizer", choices=OPTIMIZERS, help=f"{d.optimizer}")
    lrs = ", ".join(f"{name} {lr:g}" for name, lr in DEFAULT_LR.items())
    g.add_argument("--momentum", type=_non_negative, help=f"SGD only, [0, 1) ({d.momentum})")
    if sweep:
        _refused_flag(p, "--lr", "lr-find tries the learning rates from --min-lr to --max-lr")
        _refused_flag(p, "--schedule", "each run of lr-find keeps its learning rate constant")
        _refused_flag(p, "--steps", "lr-find runs --run-steps steps at each learning rate")
    else:
        g.add_argument("--lr", type=_positive, help=f"learning rate ({lrs})")
        g.add_argument("--schedule", choices=SCHEDULES, help=f"{d.schedule}")
        g.add_argument("--steps", type=_count(1), help=f"steps ({d.steps})")
    g.add_argument("--batch-size", type=_count(1), help="examples per step (all)")
    g.add_argument("--seed", type=_seed, help=f"random seed, 0 to 2**32 - 1 ({d.seed})")
    p.add_argument("--out", type=Path, help=f"output folder ({out})")
    p.set_defaults(default_out=Path(out))
    _eager_flag(p)


def _refused_flag(p: argparse.ArgumentParser, flag: str, hint: str) -> None:
    """``flag``, which this command does not take: not listed in --help, and refused
    with ``hint`` (rather than argparse's bare "unrecognized arguments")."""

    def refuse(text: str) -> None:
        raise argparse.ArgumentTypeError(f"not taken here: {hint}")

    p.add_argument(flag, type=refuse, dest=f"refused_{flag[2:]}", help=argparse.SUPPRESS)


def _force_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--force",
        action="store_true",
        help="start over in an --out folder that holds an unfinished `chainrule train` run, "
        f"deleting its {CHECKPOINT_FILE} (without --force such a folder is refused: resume "
        "the run with `chainrule train --resume DIR`)",
    )


def _run_flags(p: argparse.ArgumentParser, out: str) -> None:
    """The flags of a command that trains from a fixed recipe: where the results go, the
    progress bar, the engine and tracebacks."""
    p.add_argument("--out", type=Path, default=Path(out), help="output folder (%(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _eager_flag(p)
    _debug_flag(p)


def _eager_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--eager",
        action="store_true",
        help="build the graph of Values at every step instead of replaying it compiled "
        "(chainrule.compile); the results agree to rounding",
    )


def _given(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`TrainConfig` settings given as flags (the others are None)."""
    from chainrule.training import TrainConfig

    fields = TrainConfig.__dataclass_fields__
    return {k: v for k, v in vars(args).items() if k in fields and v is not None}


def _config(args: argparse.Namespace) -> Any:
    """The run's :class:`TrainConfig`: the flags given, and the defaults for the rest,
    among them the per-optimiser one for --lr (:class:`TrainConfig` fills the dataset's
    own --samples, --noise and --classes)."""
    from chainrule.training import DEFAULT_LR, TrainConfig

    given = _given(args)
    optimizer = given.get("optimizer", TrainConfig().optimizer)
    defaults: dict[str, Any] = {
        "lr": DEFAULT_LR[optimizer],
        "test_fraction": DEFAULT_TEST_FRACTION,
    }
    config = TrainConfig(**{**defaults, **given})
    config.compiled = not args.eager
    return config


def _out(args: argparse.Namespace) -> Path:
    """--out, or the command's default folder."""
    out: Path = args.out if args.out is not None else args.default_out
    return out


def _run_training(
    config: Any,
    out: Path,
    progress: bool,
    *,
    checkpoints: bool = False,
    every: int | None = None,
    stop_after: int | None = None,
    resume: Any = None,
    force: bool = False,
) -> int:
    """Train, then write :data:`RUN_FILES` (with ``checkpoints``, also
    :data:`CHECKPOINT_FILE`) into ``out`` as one unit.

    The configuration and the folder are checked before training starts. The results
    are written into a hidden temporary folder that is renamed to ``out`` at the end,
    so ``out`` never mixes two runs: it holds the previous results until this run
    saves its first checkpoint, then this run's checkpoint alone (a run in progress,
    interrupted or stopped with --stop-after), then this run's results. A diverged run
    writes no results.

    With ``checkpoints`` the run saves a checkpoint every ``every`` steps, at the end,
    and on Ctrl-C or SIGTERM, which then prints how to resume and returns exit code 130
    (143 for SIGTERM).
    ``resume`` is the :class:`~chainrule.training.Checkpoint` that the run in ``out``
    goes on from; a new run (no ``resume``) does not replace an unfinished one in
    ``out`` unless ``force`` is given.
    """
    from chainrule import nn
    from chainrule.io.files import staged_folder
    from chainrule.plots import plot_decision_boundary, plot_history
    from chainrule.training import train

    config.validate()
    if resume is None and not force:
        _refuse_replacing_a_run_in_progress(out)
    writer = _CheckpointWriter(out, own=resume is not None) if checkpoints else None
    files = TRAIN_RUN_FILES if checkpoints else RUN_FILES
    resume_line = f"chainrule train --resume {shlex.quote(str(out))}"
    try:
        with staged_folder(out, TRAIN_RUN_FILES) as staging:
            result = train(
                config,
                progress=progress,
                checkpoint_every=every,
                on_checkpoint=writer,
                resume_from=resume,
                stop_after=stop_after,
            )
            if not result.finished:
                raise _Paused  # the checkpoint alone, as after Ctrl-C
            metrics = result.metrics()
            atomic_write_text(staging / "metrics.json", json.dumps(metrics, indent=1))
            nn.save(
                result.model,
                staging / "model.json",
                metadata={"task": result.task.to_json(), "dataset": config.dataset},
            )
            ev = result.evaluations if result.X_test else None
            plot_history(
                result.history.loss,
                result.history.accuracy,
                staging / "loss.png",
                title=config.dataset,
                lr=result.history.lr,
                evaluations=ev,
                step_label="train (each step's batch" + (", + L2)" if config.l2 else ")"),
            )
            accuracy = f"train accuracy {metrics['accuracy']:.1%}"
            if "test_accuracy" in metrics:
                accuracy += f", test accuracy {metrics['test_accuracy']:.1%}"
            plot_decision_boundary(
                result.model,
                result.X,
                result.y,
                staging / "decision_boundary.png",
                title=f"{config.dataset}: {accuracy}",
                X_test=result.X_test,
                y_test=result.y_test,
                classes=result.task.classes,
            )
            if checkpoints and result.checkpoint is not None:
                result.checkpoint.save(staging / CHECKPOINT_FILE)
    except _Paused:
        print(
            f"stopped after step {writer.step if writer else 0} of {config.steps}; the checkpoint "
            f"is {out / CHECKPOINT_FILE}; continue with: {resume_line}"
        )
        return 0
    except KeyboardInterrupt as exc:
        if writer is None or writer.step is None:
            raise  # nothing saved: the usual "interrupted"
        terminated = getattr(exc, "signum", signal.SIGINT) == signal.SIGTERM
        print(
            f"chainrule train: {'terminated (SIGTERM)' if terminated else 'interrupted'} "
            f"after step {writer.step} of {config.steps}; checkpoint saved in "
            f"{out / CHECKPOINT_FILE}; resume with: {resume_line}",
            file=sys.stderr,
        )
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    test = ""
    if "test_accuracy" in metrics:
        test = (
            f"; test loss {metrics['test_loss']:.4f}, test accuracy {metrics['test_accuracy']:.1%}"
        )
        if metrics["stopped_early"]:
            test += f" (stopped early; kept the weights of step {metrics['best_step']})"
    resumed = f", resumed at step {result.resumed_at[-1]}" if result.resumed_at else ""
    print(
        f"trained {metrics['parameters']} parameters for {metrics['steps']} steps in "
        f"{metrics['seconds']:.1f} s ({metrics['engine']}{resumed}): loss {metrics['loss']:.4f}, "
        f"training accuracy {metrics['accuracy']:.1%}{test}"
    )
    print("wrote " + ", ".join(str(out / name) for name in files))
    return 0


def _refuse_replacing_a_run_in_progress(out: Path) -> None:
    """Refuse a new run into ``out`` when it holds the checkpoint of a run that has not
    finished (stopped, interrupted or killed): the new run would delete it."""
    from chainrule.training import CheckpointError, load_checkpoint

    path = out / CHECKPOINT_FILE
    if not path.is_file():
        return
    try:
        checkpoint = load_checkpoint(path)
    except CheckpointError:
        what = f"a {CHECKPOINT_FILE} that cannot be read"
    else:
        if checkpoint.finished and (out / "model.json").is_file():
            return  # a finished run with its results: replaced like any earlier results
        what = f"an unfinished run (step {checkpoint.step} of {checkpoint.config.steps})"
    quoted = shlex.quote(str(out))
    raise UsageError(
        f"--out {out} holds {what}; resume it with: chainrule train --resume {quoted} "
        "(or give --force to start over, deleting its checkpoint)"
    )


class _Paused(Exception):
    """Raised inside the staged results folder to drop it: a run stopped by --stop-after
    keeps only its checkpoint, as an interrupted one does."""


class _CheckpointWriter:
    """Saves each checkpoint of a run into its folder, as :data:`CHECKPOINT_FILE`.

    A new run's first checkpoint replaces the folder as a unit (the previous run's
    results go, this run's checkpoint comes: never a mix); later ones, and those of a
    resumed run (``own``: the folder is already this run's), replace the file
    atomically. :attr:`step` is the step of the last one saved.
    """

    def __init__(self, out: Path, own: bool) -> None:
        self.out = out
        self.own = own
        self.step: int | None = None

    def __call__(self, checkpoint: Any) -> None:
        from chainrule.io.files import replace_folder

        if self.own:
            checkpoint.save(self.out / CHECKPOINT_FILE)
        else:
            replace_folder(self.out, {CHECKPOINT_FILE: checkpoint.dumps().encode("utf-8")})
            self.own = True
        self.step = checkpoint.step


def cmd_demo(args: argparse.Namespace) -> int:
    from chainrule.training import demo_config

    config = demo_config()
    config.compiled = not args.eager
    return _run_training(config, args.out, progress=not args.no_progress, force=args.force)


#: The flags that may be given with --resume; every other setting is the checkpoint's.
RESUME_FLAGS = ("--steps", "--checkpoint-every", "--stop-after", "--no-progress", "--debug")


def cmd_train(args: argparse.Namespace) -> int:
    if args.resume is not None:
        return _resume_training(args)
    return _run_training(
        _config(args),
        _out(args),
        progress=not args.no_progress,
        checkpoints=True,
        every=args.checkpoint_every,
        stop_after=args.stop_after,
        force=args.force,
    )


def _resume_training(args: argparse.Namespace) -> int:
    """``chainrule train --resume DIR``: go on from DIR/checkpoint.json, into DIR."""
    from chainrule.training import load_checkpoint

    folder: Path = args.resume
    if not folder.is_dir():
        what = "is a file" if folder.exists() else "does not exist"
        raise UsageError(
            f"--resume {folder} {what}; name the run's folder, the one holding {CHECKPOINT_FILE}"
        )
    if args.out is not None and args.out.resolve() != folder.resolve():
        raise UsageError(f"--out {args.out}: a resumed run writes into its own folder, {folder}")
    if args.force:
        raise UsageError("--force starts a new run; --resume goes on with the one in its folder")
    checkpoint = load_checkpoint(folder / CHECKPOINT_FILE)  # every entry checked
    saved = checkpoint.config
    given = _given(args)
    given.pop("steps", None)
    if args.eager:
        given["compiled"] = False
    for name, value in given.items():
        if value != getattr(saved, name):
            flag = "--eager" if name == "compiled" else _flag(name)
            shown = _shown(getattr(saved, name))
            raise UsageError(
                f"{flag} conflicts with the run being resumed ({_flag(name)} {shown}); "
                f"its settings come from {folder / CHECKPOINT_FILE}: only "
                f"{', '.join(RESUME_FLAGS[:3])} may be given with --resume"
            )
    config = _replace_steps(saved, args.steps)
    if checkpoint.finished and config.steps == saved.steps:
        print(f"the run in {folder} is complete ({checkpoint.step} steps); writing its results")
    return _run_training(
        config,
        folder,
        progress=not args.no_progress,
        checkpoints=True,
        every=args.checkpoint_every,
        stop_after=args.stop_after,
        resume=checkpoint,
    )


def _flag(name: str) -> str:
    if name == "compiled":
        return "engine"
    return "--layers" if name == "hidden" else "--" + name.replace("_", "-")


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    if value is True:
        return "compiled"
    if value is False:
        return "eager"
    return str(value)


def _replace_steps(config: Any, steps: int | None) -> Any:
    from dataclasses import replace

    return replace(config, steps=config.steps if steps is None else steps)


def cmd_predict(args: argparse.Namespace) -> int:
    from chainrule.engine import no_grad
    from chainrule.nn import ModelFileError, load_with_metadata
    from chainrule.training import Task

    to_stdout = args.output is None or str(args.output) == "-"
    if args.output is not None and args.input_file is None:
        raise UsageError("-o goes with --input-file; --input prints to the terminal")
    if not to_stdout:
        _check_output_file(args.output, example="predictions.csv")
        _refuse_overwriting_inputs(
            args.output,
            {
                "--model, the model being read": args.model,
                "--input-file, the points being read": args.input_file,
            },
        )
    model, metadata = load_with_metadata(args.model)  # size, shapes, numbers checked
    try:
        task = Task.from_json(metadata.get("task"), model.nouts[-1])
    except ModelFileError as exc:
        raise ModelFileError(f"{args.model}: {exc}") from None
    if args.input_file is not None:
        rows = _read_input_file(args.input_file, model.nin)  # every row checked first
        with no_grad():
            results = [task.predict(model(row)) for row in rows]
        text = "class,score\n" + "".join(f"{cls},{score!r}\n" for cls, score in results)
        if to_stdout:
            sys.stdout.write(text)
            return 0
        written = atomic_write_text(args.output, text)
        print(f"wrote {len(results)} predictions to {written}")
        return 0
    for row in args.input:
        if len(row) != model.nin:
            raise UsageError(
                f"--input {','.join(map(str, row))}: the model takes {model.nin} numbers, "
                f"got {len(row)}"
            )
        with no_grad():
            cls, score = task.predict(model(row))
        print(f"class {cls}  score {score:.6g}")
    return 0


def _read_input_file(path: Path, width: int) -> list[list[float]]:
    """The rows of ``--input-file`` (``-``: standard input), each ``width`` numbers."""
    from chainrule.csvrows import read_rows

    if str(path) == "-":  # bytes when there are (a replaced sys.stdin may be text only)
        return read_rows(getattr(sys.stdin, "buffer", sys.stdin), width, "stdin")
    if path.is_dir():
        raise UsageError(f"--input-file {path} is a folder; name a CSV file")
    with open(path, "rb") as f:  # decoded line by line, so a bad byte names its line
        return read_rows(f, width, str(path))


def cmd_lr_find(args: argparse.Namespace) -> int:
    from chainrule.plots import plot_lr_find
    from chainrule.training import lr_find

    if not args.min_lr < args.max_lr:
        raise UsageError("--min-lr must be below --max-lr")
    config = _config(args)
    config.validate()
    out = _out(args)
    ensure_writable_folder(out)  # before the runs, not after them
    found = lr_find(config, args.min_lr, args.max_lr, args.num, args.run_steps)
    for lr, loss in zip(found.lrs, found.losses, strict=True):
        shown = f"{loss:.4f}" if math.isfinite(loss) else "diverged"
        print(f"lr {lr:10.4g}   loss after {args.run_steps} steps: {shown}")
    path = plot_lr_find(found.lrs, found.losses, out / "lr_find.png", found.suggested)
    if found.suggested is None:
        print(f"wrote {path}")
        raise DivergedError(
            f"every learning rate from {args.min_lr:g} to {args.max_lr:g} diverged; "
            f"try smaller ones, e.g. --min-lr {args.min_lr / 1e4:g} --max-lr {args.min_lr:g}"
        )
    low, high = found.suggested
    if low == high:
        print(f"suggested learning rate: {low:.3g}")
    else:
        print(f"suggested learning rates: {low:.3g} to {high:.3g}")
    print(f"wrote {path}")
    return 0


def cmd_gpt_train(args: argparse.Namespace) -> int:
    """Train a GPT on the shipped names; write model.json, metrics.json and loss.png."""
    from chainrule import gpt
    from chainrule.io.files import staged_folder
    from chainrule.plots import plot_smoothed_loss
    from chainrule.training import GPTConfig, train_gpt

    config = GPTConfig(
        steps=args.steps,
        lr=args.lr,
        layers=args.layers,
        dim=args.dim,
        heads=args.heads,
        block_size=args.block_size,
        seed=args.seed,
        compiled=not args.eager,
    )
    config.validate()
    out: Path = args.out
    with staged_folder(out, RUN_FILES) as staging:  # checked before training starts
        result = train_gpt(config, progress=not args.no_progress)
        metrics = result.metrics()
        atomic_write_text(staging / "metrics.json", json.dumps(metrics, indent=1))
        gpt.save(
            result.model,
            result.tokenizer,
            staging / "model.json",
            metadata={"dataset": "names", "steps": config.steps, "seed": config.seed},
        )
        plot_smoothed_loss(
            result.loss,
            staging / "loss.png",
            reference=metrics["uniform_loss"],
            reference_label=f"log(vocab) = {metrics['uniform_loss']:.2f}: a uniform guess",
            title=f"GPT on names: {metrics['parameters']:,} parameters, "
            f"{metrics['steps']:,} steps ({metrics['engine']})",
        )
    print(
        f"trained a GPT of {metrics['parameters']:,} parameters for {metrics['steps']:,} steps "
        f"(one name each) in {metrics['seconds']:.1f} s ({metrics['engine']}): mean loss of "
        f"the last {metrics['loss_window']} steps {metrics['loss']:.4f} "
        f"(uniform guess {metrics['uniform_loss']:.4f})"
    )
    print("wrote " + ", ".join(str(out / name) for name in GPT_RUN_FILES))
    return 0


def cmd_gpt_sample(args: argparse.Namespace) -> int:
    """Print ``-n`` names sampled from a GPT model file, one per line."""
    from chainrule import gpt

    model, tokenizer = gpt.load(args.model)  # size, shapes, numbers checked
    rng = random.Random(args.seed)
    for name in gpt.sample_names(model, tokenizer, args.n, rng, args.temperature):
        print(name)
    return 0


def _export_format(args: argparse.Namespace) -> str:
    """--format, else the output's suffix, else safetensors; a contradiction is refused."""
    from chainrule.export import EXPORT_FORMATS

    named = next(
        (
            f
            for f, sfx in EXPORT_FORMATS.items()
            if args.output and args.output.suffix.lower() == sfx
        ),
        None,
    )
    if args.format:
        if named is not None and named != args.format:
            raise UsageError(
                f"-o {args.output} asks for {named} but --format is {args.format}; "
                "make them agree or leave one out"
            )
        return str(args.format)
    return named or "safetensors"


def cmd_export(args: argparse.Namespace) -> int:
    from chainrule.export import EXPORT_FORMATS, pytorch_lines, to_onnx, to_safetensors
    from chainrule.nn import load_with_metadata

    fmt = _export_format(args)
    path: Path = args.output or args.model.with_suffix(EXPORT_FORMATS[fmt])
    _check_output_file(path, example=f"model{EXPORT_FORMATS[fmt]}")
    model, metadata = load_with_metadata(args.model)  # size, shapes, numbers checked
    flag = "-o" if args.output else None
    _refuse_overwriting_inputs(path, {"MODEL, the model being exported": args.model}, flag)
    if fmt == "onnx":
        written = to_onnx(model, path, metadata)
        print(
            f"wrote {written} (ONNX, float64: input `input` (batch, {model.nin}), "
            f"output `output` (batch, {model.nouts[-1]}))"
        )
        return 0
    written = to_safetensors(model, path, metadata)
    print(f"wrote {written}; in PyTorch:")
    print("\n".join(pytorch_lines(model, written)))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from chainrule import nn
    from chainrule.export import from_safetensors

    path: Path = args.output or args.weights.with_suffix(".json")
    _check_output_file(path, example="model.json")
    model, metadata = from_safetensors(args.weights)  # names, shapes, numbers checked
    flag = "-o" if args.output else None
    _refuse_overwriting_inputs(path, {"FILE, the file being imported": args.weights}, flag)
    written = nn.save(model, path, metadata)
    print(f"wrote {written} ({model.num_parameters()} parameters)")
    return 0


def _short(x: float) -> str:
    """A number as a person writes it: ``20``, ``14``, ``0.4199743416``; ``0``, not ``-0``."""
    return f"{x + 0.0:.10g}"  # -0.0 + 0.0 is 0.0


def _graph_format(args: argparse.Namespace) -> str:
    """The drawing format: --format, else the output's suffix (any case), else svg.

    A suffix that names another format than --format, or that names no format at all
    (without --format), is refused rather than guessed.
    """
    from chainrule.graph import format_for_suffix

    output: Path | None = args.output
    if output is None or str(output) == "-":
        return str(args.format or "svg")
    named = format_for_suffix(output)
    if args.format:
        if named is not None and named != args.format:
            raise UsageError(
                f"-o {output} asks for {named} but --format is {args.format}; "
                "make them agree or leave one out"
            )
        return str(args.format)
    if named is not None:
        return named
    if output.suffix:
        raise UsageError(
            f"-o {output}: cannot tell the drawing format from {output.suffix!r}; "
            "end the name in .svg, .png, .pdf or .dot, or give --format"
        )
    return "svg"


def _check_output_file(path: Path, example: str = "graph.svg") -> None:
    """Refuse, before any work, an output that is a folder or lies in a missing folder."""
    if path.is_dir():
        raise UsageError(f"-o {path} is a folder; name a file, such as {path / example}")
    if not path.parent.is_dir():
        problem = "is not a folder" if path.parent.exists() else "does not exist"
        raise UsageError(f"-o {path}: {path.parent} {problem}")


def _refuse_overwriting_inputs(
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


def cmd_graph(args: argparse.Namespace) -> int:
    from chainrule.expr import evaluate, parse_assignments
    from chainrule.graph import GraphTooLargeError, render_bytes

    fmt = _graph_format(args)
    to_stdout = args.output is not None and str(args.output) == "-"
    path: Path = args.output or Path(f"graph.{fmt}")
    if not to_stdout:
        _check_output_file(path)
    values: dict[str, float] = {}
    for text in args.at or []:
        for name, value in parse_assignments(text).items():
            if name in values:
                raise UsageError(f"--at gives `{name}` twice")
            values[name] = value
    out, leaves = evaluate(args.expression, values)  # refuses anything outside the grammar
    unused = [n for n in values if n not in leaves]
    if unused:
        raise UsageError(f"--at {unused[0]}=...: the expression has no variable `{unused[0]}`")
    out.backward()
    try:  # draw before printing anything: a failure leaves no half-reported result
        drawing = render_bytes(out, fmt, rankdir=args.rankdir, max_nodes=args.max_nodes)
    except GraphTooLargeError as exc:
        raise UsageError(
            f"the graph has {exc.nodes} Values, more than --max-nodes {exc.max_nodes}; "
            f"draw a smaller expression, or raise the limit with --max-nodes {exc.nodes}"
        ) from None
    results = [f"{args.expression} = {_short(out.data)}"]
    results += [f"d/d{name} = {_short(leaf.grad)}" for name, leaf in leaves.items()]
    if to_stdout:  # the drawing is the output; the numbers go to the terminal
        sys.stdout.flush()
        sys.stdout.buffer.write(drawing)
        sys.stdout.buffer.flush()
        print("\n".join(results), file=sys.stderr)
        return 0
    written = atomic_write_bytes(path, drawing)  # straight into /dev/null or a pipe
    print("\n".join(results))
    print(f"wrote {written}")
    return 0


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, got {text!r}")
    return port


def cmd_explore(args: argparse.Namespace) -> int:
    from chainrule.explorer import server

    if args.site is not None:
        folder = server.write_site(args.site)
        print(f"wrote the explorer to {folder}/ (open index.html through a web server)")
        return 0
    try:
        server.serve(args.port, open_browser=not args.no_browser)
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            raise UsageError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror}") from None
        raise
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="chainrule",
        description="Train small neural networks on chainrule's autograd engine, "
        "predict with them, and draw computational graphs.",
    )
    parser.add_argument("--version", action="version", version=f"chainrule {__version__}")
    _debug_flag(parser, default=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser(
        "demo",
        help="train the reference demo (moons, MLP 2-16-16-1) and write metrics, model, plots",
        description="The reference demo exactly: 100 moons points (noise 0.1, seed 1337), "
        "MLP 2-16-16-1 ReLU, hinge loss + 1e-4 L2, SGD with lr decaying linearly from "
        "1.0 to 0.1, 100 full-batch steps. Writes metrics.json, model.json, loss.png "
        "and decision_boundary.png.",
    )
    _run_flags(p, "runs/demo")
    _force_flag(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "train",
        help="train a classifier with every choice a flag",
        description="Train an MLP classifier on a generated 2-D dataset. Multi-class data "
        "uses softmax cross-entropy. Writes the same files as `demo`.",
    )
    _training_flags(p, "runs/train")
    g = p.add_argument_group(
        "checkpoints",
        f"The run's folder always gets {CHECKPOINT_FILE}, the whole state of the run, at "
        "the end; Ctrl-C (or SIGTERM) saves one too, after the step under way, and prints "
        "how to resume. A folder with a checkpoint alone is a run in progress: a new run "
        "into it is refused (resume it, or give --force).",
    )
    g.add_argument(
        "--checkpoint-every",
        type=_count(1),
        metavar="N",
        help=f"also save {CHECKPOINT_FILE} after every N steps (off)",
    )
    g.add_argument(
        "--resume",
        type=Path,
        metavar="DIR",
        help="go on with the run in DIR from its checkpoint, with its saved settings, "
        "exactly as if it had never stopped; only --steps (to train longer or shorter; "
        "the schedule then spans the new total), --checkpoint-every, --stop-after and "
        "--no-progress may be given",
    )
    g.add_argument(
        "--stop-after",
        type=_count(1),
        metavar="K",
        help="stop after step K with a checkpoint, to go on later with --resume (e.g. to "
        "train in sessions)",
    )
    _force_flag(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _debug_flag(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "predict",
        help="classify points with a saved model: one on the command line, or a CSV file",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Classify points with a model.json written by train or demo.

--input X1,X2 prints "class C  score S" for each point given. --input-file FILE
reads a CSV file (- for standard input): one point per line, exactly as many
numbers as the model takes; a first line with no numbers in it (x1,x2) is a
header and skipped, as are empty lines. Every line is checked before anything is
written: a bad line stops the command with an error naming it, and no output.
It writes CSV, "class,score" and then one line per input point in the same order,
to standard output or, with -o FILE, atomically to FILE.

The class is 0..k-1. What the score means depends on the loss the model was
trained with (stored in model.json):
  hinge, mse  the model's output, a margin: class 1 when it is > 0, class 0
              otherwise; the farther from 0, the surer
  bce         the probability of class 1, sigmoid(output); class 1 when > 0.5
  softmax     the probability of the predicted class, its softmax share (1/k..1)""",
    )
    p.add_argument("--model", type=Path, required=True, help="a model.json written by train/demo")
    points = p.add_mutually_exclusive_group(required=True)
    points.add_argument(
        "--input",
        type=_row,
        action="append",
        metavar="X1,X2",
        help="comma-separated input numbers; repeat for several points "
        "(write --input=-1,0.5 when the first number is negative)",
    )
    points.add_argument(
        "--input-file",
        type=Path,
        metavar="FILE",
        help="a CSV file of points, one per line; - reads standard input",
    )
    _output_flag(p, "with --input-file: write the CSV here (atomically) instead of standard output")
    _debug_flag(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "lr-find",
        help="short runs over exponentially spaced learning rates; plot and suggestion",
        description="Train briefly at each of several learning rates from the same start, "
        "plot the final loss against the learning rate, and suggest a range.",
    )
    _training_flags(p, "runs/lr-find", held_out=False, sweep=True)
    p.add_argument("--min-lr", type=_positive, default=1e-3, help="smallest lr (%(default)s)")
    p.add_argument("--max-lr", type=_positive, default=1e3, help="largest lr (%(default)s)")
    p.add_argument("--num", type=_count(2), default=13, help="learning rates (%(default)s)")
    p.add_argument("--run-steps", type=_count(1), default=20, help="steps each (%(default)s)")
    _debug_flag(p)
    p.set_defaults(func=cmd_lr_find)

    p = sub.add_parser(
        "graph",
        help="evaluate an expression, backpropagate, and draw its computational graph",
        description="Evaluate EXPR with chainrule, run backward(), print the value and "
        "the gradient with respect to every variable, and draw the graph with data and "
        "grad on every node. EXPR may use numbers, variables, + - * / **, parentheses "
        "and one-argument functions (tanh exp log relu sigmoid sin cos tan asin acos atan "
        "sinh cosh asinh acosh atanh sqrt abs log2 log10 log1p expm1 exp2 square "
        "reciprocal erf softplus gelu silu); nothing else is accepted, and nothing is run. "
        'An expression may start with a minus sign: chainrule graph "-x*2" --at x=1.',
    )
    p.add_argument("expression", metavar="EXPR", help='e.g. "3*x**2 - 4*x + 5"')
    p.add_argument(
        "--at",
        action="append",
        metavar="x=3,y=-2",
        help="variable values (repeatable; write --at=x=-3 for a leading minus)",
    )
    p.add_argument(
        "-o", "--output", type=Path, help="file to write (graph.FORMAT); - for standard output"
    )
    p.add_argument(
        "--format",
        choices=("svg", "png", "pdf", "dot"),
        help="drawing format (from the output's suffix, else svg)",
    )
    p.add_argument("--rankdir", choices=("LR", "TB"), default="LR", help="layout (%(default)s)")
    p.add_argument(
        "--max-nodes", type=_count(1), default=500, help="largest graph drawn (%(default)s)"
    )
    _debug_flag(p)
    p.set_defaults(func=cmd_graph)

    p = sub.add_parser(
        "explore",
        help="open the explorer: step through backprop and watch a network train, in the browser",
        description="Serve the explorer on 127.0.0.1 (this machine only) and open it in "
        "the browser. The page runs chainrule's own engine under Pyodide, offline: type "
        "an expression and step through its backward pass node by node, or train an MLP "
        "on a 2-D dataset and watch its decision regions. Ctrl-C stops the server.",
    )
    p.add_argument(
        "--port",
        type=_port,
        default=0,
        help="port to listen on (default: a free one, printed at start)",
    )
    p.add_argument("--no-browser", action="store_true", help="only print the address")
    p.add_argument(
        "--site",
        type=Path,
        metavar="DIR",
        help="instead of serving, write the explorer as a static site to DIR (new or "
        "empty), to publish on any web server",
    )
    _debug_flag(p)
    p.set_defaults(func=cmd_explore)

    p = sub.add_parser(
        "export",
        help="write a model's weights for PyTorch (safetensors) or as an ONNX model",
        description="Export a model.json written by train or demo. safetensors (the "
        "default): float64 weights named as the state_dict of the equivalent "
        "torch.nn.Sequential of Linear and activation modules, with the architecture and "
        "task in the file's metadata; prints the three lines of PyTorch that rebuild and "
        "load it. onnx: an ONNX model (float64, checked with onnx.checker) for onnxruntime "
        "and other runtimes. No pickle. Needs pip install 'chainrule[export]'.",
    )
    p.add_argument("model", type=Path, metavar="MODEL", help="a model.json written by train/demo")
    _output_flag(p, "file to write, atomically (MODEL with the format's suffix)")
    p.add_argument(
        "--format",
        choices=("safetensors", "onnx"),
        help="safetensors or onnx (from the output's suffix, else safetensors)",
    )
    _debug_flag(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "import",
        help="turn a .safetensors file written by export back into a model.json",
        description="Read a .safetensors file written by `chainrule export` (names, "
        "shapes and numbers checked) and write the model file it holds, for predict.",
    )
    p.add_argument("weights", type=Path, metavar="FILE", help="a .safetensors file of export")
    _output_flag(p, "model file to write, atomically (FILE with the suffix .json)")
    _debug_flag(p)
    p.set_defaults(func=cmd_import)

    _gpt_parsers(sub)
    return parser


def _gpt_parsers(sub: Any) -> None:
    """``chainrule gpt train`` and ``chainrule gpt sample``."""
    from chainrule.training import GPTConfig

    d = GPTConfig()
    p = sub.add_parser(
        "gpt",
        help="train a character-level GPT on names, and sample new names from it",
        description="A character-level GPT (token and position embeddings, causal "
        "self-attention, a ReLU MLP, RMSNorm) trained on the 30,869 US first names that "
        "ship with chainrule, one name per step.",
    )
    _debug_flag(p)
    gpt_sub = p.add_subparsers(dest="gpt_command", metavar="COMMAND", parser_class=_Parser)
    gpt_sub.required = True

    p = gpt_sub.add_parser(
        "train",
        help="train a GPT; write model.json, metrics.json and loss.png",
        description="Train a GPT on the shipped names, shuffled with --seed, one name per "
        "step, with Adam (betas 0.85, 0.99) and a learning rate falling linearly from --lr "
        "to 0. Compiled by default: one program per name length. Writes model.json, "
        "metrics.json and loss.png into --out.",
    )
    p.add_argument("--steps", type=_count(1), default=d.steps, help="names (%(default)s)")
    p.add_argument("--lr", type=_positive, default=d.lr, help="learning rate (%(default)s)")
    p.add_argument("--layers", type=_count(1), default=d.layers, help="layers (%(default)s)")
    p.add_argument("--dim", type=_count(1), default=d.dim, help="embedding width (%(default)s)")
    p.add_argument("--heads", type=_count(1), default=d.heads, help="heads (%(default)s)")
    p.add_argument(
        "--block-size", type=_count(1), default=d.block_size, help="context (%(default)s)"
    )
    p.add_argument(
        "--seed", type=_seed, default=d.seed, help="random seed, 0 to 2**32 - 1 (%(default)s)"
    )
    _run_flags(p, "runs/gpt")
    p.set_defaults(func=cmd_gpt_train)

    p = gpt_sub.add_parser(
        "sample",
        help="print names sampled from a GPT model file",
        description="Load a model.json written by `chainrule gpt train` and print -n "
        "names, one per line, each drawn a character at a time from softmax(logits / "
        "temperature); --temperature 0 takes the most likely character every time.",
    )
    p.add_argument("--model", type=Path, required=True, help="a model.json of `gpt train`")
    p.add_argument("-n", type=_count(1), default=20, help="how many names (%(default)s)")
    p.add_argument(
        "--temperature",
        type=_non_negative,
        default=0.5,
        help="below 1: safer names; above 1: wilder; 0: always the likeliest (%(default)s)",
    )
    p.add_argument(
        "--seed", type=_seed, default=0, help="random seed, 0 to 2**32 - 1 (%(default)s)"
    )
    _debug_flag(p)
    p.set_defaults(func=cmd_gpt_sample)


def _output_flag(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("-o", "--output", type=Path, metavar="FILE", help=help)


def _debug_flag(p: argparse.ArgumentParser, default: Any = argparse.SUPPRESS) -> None:
    # On the subcommands the default is SUPPRESS, so `chainrule --debug train` is not
    # undone by the subcommand's own default.
    p.add_argument(
        "--debug",
        action="store_true",
        default=default,
        help="show Python's traceback instead of a one-line error",
    )


#: Options of `chainrule graph` that take a value, and those that do not.
_GRAPH_VALUE_OPTIONS = ("--at", "-o", "--output", "--format", "--rankdir", "--max-nodes")
_GRAPH_FLAGS = ("-h", "--help", "--debug")


def _leading_minus_expression(argv: list[str]) -> list[str]:
    """Let ``chainrule graph "-x*2" --at x=1`` mean the expression ``-x*2``.

    argparse takes any word that starts with ``-`` for an option. For ``graph``, the
    first word that starts with a single ``-`` and is neither one of its options nor an
    option's value is the expression: it is moved to the end, after ``--``. Command
    lines that already use ``--`` are left alone.
    """
    command = next((i for i, word in enumerate(argv) if not word.startswith("-")), None)
    if command is None or argv[command] != "graph" or "--" in argv:
        return argv
    rest = argv[command + 1 :]
    i = 0
    while i < len(rest):
        word = rest[i]
        name = word.split("=", 1)[0]
        if word in _GRAPH_VALUE_OPTIONS:
            i += 2  # the option and its value
        elif name in _GRAPH_VALUE_OPTIONS or word in _GRAPH_FLAGS:
            i += 1
        elif not word.startswith("-") or word == "-":
            return argv  # the expression is an ordinary word
        elif word.startswith("--") or (word.startswith("-o") and len(word) > 2):
            i += 1  # an unknown long option, or -oFILE: argparse decides
        else:
            expression = rest.pop(i)
            return [*argv[: command + 1], *rest, "--", expression]
    return argv


def _describe(exc: BaseException) -> str:
    """One line for an error a user can fix: the message, or the OS's words for a file."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename is not None else ""
        return f"{where}{exc.strerror}"
    if isinstance(exc, MemoryError):
        return "out of memory; use a smaller model or dataset"
    message = str(exc).strip()
    return message.splitlines()[0] if message else type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code.

    0: done. 2: a bad argument, input file or output path, or a training run that
    diverged -- one line on stderr saying what is wrong. 1: an unexpected error, which
    is a bug in chainrule -- one line saying so (``--debug`` shows the traceback).
    130: interrupted; 143: terminated (SIGTERM) during training. 141: the reader of
    the output went away (``chainrule gpt sample | head``), quietly, as Unix tools do.
    """
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args: argparse.Namespace | None = None
    try:
        args = parser.parse_args(_leading_minus_expression(words))
        code: int = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except UsageError as exc:
        _error(args, str(exc))
    except KeyboardInterrupt:
        print("chainrule: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ChainruleError, OSError, MemoryError) as exc:  # bad input, files, divergence
        if getattr(args, "debug", False):
            raise
        _error(args, _describe(exc))
    except Exception as exc:  # anything else is chainrule's fault, not the user's
        if getattr(args, "debug", False):
            raise
        _error(
            args,
            f"{type(exc).__name__}: {_describe(exc)} -- this is a bug in chainrule; run the "
            "command again with --debug to see the traceback, and please report it",
            kind="internal error",
        )
        return EXIT_BUG
    return EXIT_USAGE


def _silence_stdout() -> None:
    """Point standard output at the null device, so that Python's final flush of what is
    still buffered does not fail again on the closed pipe (Python's documented recipe)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real file (tests capture it)
        pass


def _error(args: argparse.Namespace | None, message: str, kind: str = "error") -> None:
    """Print one line, ``chainrule COMMAND: error: ...``, on stderr."""
    if not message.startswith("chainrule"):  # parser errors already name the command
        words = (getattr(args, "command", None), getattr(args, "gpt_command", None))
        command = " ".join(w for w in words if w)
        message = f"chainrule {command}: {kind}: {message}" if command else f"chainrule: {message}"
    print(message.splitlines()[0], file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
