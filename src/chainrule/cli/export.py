"""`chainrule export` and `chainrule import`: a model as safetensors or ONNX, and back."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from chainrule.cli.args import (
    CHECKPOINT_FILE,
    UsageError,
    check_output_file,
    debug_flag,
    output_flag,
    refuse_overwriting_inputs,
)

__all__ = ["RUN_MARKS", "add_parser", "default_export_path", "run_export", "run_import"]

#: A folder holding one of these is a run's folder (demo, train, gpt train).
RUN_MARKS = ("metrics.json", CHECKPOINT_FILE)


def default_export_path(model: Path, suffix: str) -> Path:
    """Where `chainrule export MODEL` writes without -o: MODEL with the format's suffix,
    but beside a run's folder, not into it (``runs/demo/model.json`` gives
    ``runs/demo.safetensors``): a file in a run's folder that is not a result of a
    run stops the next run (`make demo`) from replacing that folder."""
    folder = model.parent
    if not any((folder / name).is_file() for name in RUN_MARKS):
        return model.with_suffix(suffix)
    named = folder if folder.name not in ("", "..") else folder.resolve()  # `export model.json`
    if not named.name:  # the root folder: there is nothing to write beside
        return model.with_suffix(suffix)
    stem = named.name if model.stem == "model" else f"{named.name}-{model.stem}"
    return named.with_name(stem + suffix)


def add_parser(subparsers: Any) -> None:
    """Add `chainrule export` and `chainrule import` to ``subparsers``."""
    from chainrule.io.export import EXPORT_FORMATS

    p = subparsers.add_parser(
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
    output_flag(
        p,
        "file to write, atomically (MODEL with the format's suffix; for the model of a "
        "run, beside the run's folder: runs/demo/model.json gives runs/demo.safetensors)",
    )
    p.add_argument(
        "--format",
        choices=tuple(EXPORT_FORMATS),
        help=f"{' or '.join(EXPORT_FORMATS)} (from the output's suffix, else safetensors)",
    )
    debug_flag(p)
    p.set_defaults(func=run_export)

    p = subparsers.add_parser(
        "import",
        help="turn a .safetensors file written by export back into a model.json",
        description="Read a .safetensors file written by `chainrule export` (names, "
        "shapes and numbers checked) and write the model file it holds, for predict.",
    )
    p.add_argument("weights", type=Path, metavar="FILE", help="a .safetensors file of export")
    output_flag(p, "model file to write, atomically (FILE with the suffix .json)")
    debug_flag(p)
    p.set_defaults(func=run_import)


def _export_format(args: argparse.Namespace) -> str:
    """--format, else the output's suffix, else safetensors; a contradiction is refused."""
    from chainrule.io.export import EXPORT_FORMATS

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


def run_export(args: argparse.Namespace) -> int:
    """Write the model as safetensors (and print the PyTorch to load it) or ONNX."""
    from chainrule.io.export import EXPORT_FORMATS, pytorch_lines, to_onnx, to_safetensors
    from chainrule.nn import load_with_metadata

    fmt = _export_format(args)
    path: Path = args.output or default_export_path(args.model, EXPORT_FORMATS[fmt])
    check_output_file(path, example=f"model{EXPORT_FORMATS[fmt]}")
    model, metadata = load_with_metadata(args.model)  # size, shapes, numbers checked
    flag = "-o" if args.output else None
    refuse_overwriting_inputs(path, {"MODEL, the model being exported": args.model}, flag)
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


def run_import(args: argparse.Namespace) -> int:
    """Write the model file held in a .safetensors file of `chainrule export`."""
    from chainrule import nn
    from chainrule.io.export import from_safetensors

    path: Path = args.output or args.weights.with_suffix(".json")
    check_output_file(path, example="model.json")
    model, metadata = from_safetensors(args.weights)  # names, shapes and numbers checked
    flag = "-o" if args.output else None
    refuse_overwriting_inputs(path, {"FILE, the file being imported": args.weights}, flag)
    written = nn.save(model, path, metadata)
    print(f"wrote {written} ({model.num_parameters()} parameters)")
    return 0
