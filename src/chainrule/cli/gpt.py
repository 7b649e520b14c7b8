"""`chainrule gpt train` and `chainrule gpt sample`: a character-level GPT on names."""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

from chainrule.cli.args import (
    GPT_RUN_FILES,
    RUN_FILES,
    Parser,
    UsageError,
    atomic_write_text,
    count,
    debug_flag,
    non_negative,
    positive,
    run_flags,
    seed,
    staged_folder,
)

__all__ = ["DEFAULT_MODEL", "DEFAULT_OUT", "add_parser", "run_sample", "run_train"]

#: Where `gpt train` writes by default, and so where `gpt sample` looks by default.
DEFAULT_OUT = Path("runs/gpt")
DEFAULT_MODEL = DEFAULT_OUT / "model.json"


def add_parser(subparsers: Any) -> None:
    """Add `chainrule gpt` and its commands, train and sample, to ``subparsers``."""
    p = subparsers.add_parser(
        "gpt",
        help="train a character-level GPT on names, and sample new names from it",
        description="A character-level GPT (token and position embeddings, causal "
        "self-attention, a ReLU MLP, RMSNorm) trained on the 30,869 US first names that "
        "ship with chainrule, one name per step.",
    )
    debug_flag(p)
    gpt_sub = p.add_subparsers(dest="gpt_command", metavar="COMMAND", parser_class=Parser)
    gpt_sub.required = True
    _add_train_parser(gpt_sub)
    _add_sample_parser(gpt_sub)


def _add_train_parser(gpt_sub: Any) -> None:
    """`chainrule gpt train`."""
    from chainrule.training import GPTConfig

    d = GPTConfig()
    p = gpt_sub.add_parser(
        "train",
        help="train a GPT; write model.json, metrics.json and loss.png",
        description="Train a GPT on the shipped names, shuffled with --seed, one name per "
        "step, with Adam (betas 0.85, 0.99) and a learning rate falling linearly from --lr "
        "to 0. Compiled by default: one program per name length. Writes model.json, "
        "metrics.json and loss.png into --out.",
    )
    p.add_argument("--steps", type=count(1), default=d.steps, help="names (%(default)s)")
    p.add_argument("--lr", type=positive, default=d.lr, help="learning rate (%(default)s)")
    p.add_argument("--layers", type=count(1), default=d.layers, help="layers (%(default)s)")
    p.add_argument("--dim", type=count(1), default=d.dim, help="embedding width (%(default)s)")
    p.add_argument("--heads", type=count(1), default=d.heads, help="heads (%(default)s)")
    p.add_argument(
        "--block-size", type=count(1), default=d.block_size, help="context (%(default)s)"
    )
    p.add_argument(
        "--seed", type=seed, default=d.seed, help="random seed, 0 to 2**32 - 1 (%(default)s)"
    )
    run_flags(p, str(DEFAULT_OUT))
    p.set_defaults(func=run_train)


def _add_sample_parser(gpt_sub: Any) -> None:
    """`chainrule gpt sample`."""
    p = gpt_sub.add_parser(
        "sample",
        help="print names sampled from a GPT model file",
        description="Load a model.json written by `chainrule gpt train` and print -n "
        "names, one per line, each drawn a character at a time from softmax(logits / "
        "temperature); --temperature 0 takes the most likely character every time.",
    )
    p.add_argument(
        "--model",
        type=Path,
        default=DEFAULT_MODEL,
        help="a model.json of `gpt train` (%(default)s, where `gpt train` writes by default)",
    )
    p.add_argument("-n", type=count(1), default=20, help="how many names (%(default)s)")
    p.add_argument(
        "--temperature",
        type=non_negative,
        default=0.5,
        help="below 1: safer names; above 1: wilder; 0: always the likeliest (%(default)s)",
    )
    p.add_argument("--seed", type=seed, default=0, help="random seed, 0 to 2**32 - 1 (%(default)s)")
    debug_flag(p)
    p.set_defaults(func=run_sample)


def run_train(args: argparse.Namespace) -> int:
    """Train a GPT on the shipped names; write model.json, metrics.json and loss.png."""
    from chainrule import gpt
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
            window=metrics["loss_window"],  # the same mean as the line printed below
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


def run_sample(args: argparse.Namespace) -> int:
    """Print ``-n`` names sampled from a GPT model file, one per line."""
    from chainrule import gpt

    if args.model == DEFAULT_MODEL and not DEFAULT_MODEL.exists():
        raise UsageError(
            f"no model at {DEFAULT_MODEL}: train one with `chainrule gpt train`, "
            "or name one with --model"
        )
    model, tokenizer = gpt.load(args.model)  # size, shapes, numbers checked
    rng = random.Random(args.seed)
    for name in gpt.sample_names(model, tokenizer, args.n, rng, args.temperature):
        print(name)
    return 0
