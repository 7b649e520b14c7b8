"""A character-level GPT in scalar code: the model, its tokenizer, sampling and training.

The model (:mod:`~chainrule.gpt.model`'s docstring gives its equations) is that of the
small single-file scalar GPTs, built from ``chainrule.nn``'s blocks; a name is one
sequence, token 0 (:data:`BOS`) marking both its start and its end.

**How tokens enter a compiled loss.** ``chainrule.compile`` traces the loss once and
replays it with NumPy; its inputs arrive as Values, and a traced Value cannot index a
Python list (the index would be frozen at its traced number). So :meth:`GPT.loss`
accepts each token either as an ``int`` (the eager path: a plain table look-up) or as
a **one-hot row** (the compiled path): the embedding is then ``row · table``, one
``dot`` node per column, which the compiler turns into one matrix product for all
positions, and the target's log-probability is ``row · log_softmax(logits)``. For a
one-hot row both give the very same floats, so eager and compiled losses agree to
rounding. The one-hot matrix of a name has one row per token, so its shape -- and the
compiled program, cached by input shape -- depends only on the name's length: one
program per length, built once. Compiling one program per name (tokens as constants
in a closure) would trace for every new name, far slower than running it eagerly.
:class:`Trainer` does this for you.

**Model files** are the versioned JSON of :func:`chainrule.nn.save`, with the
architecture ``{"type": "GPT", ...}``, every parameter by its :meth:`~GPT.state_dict`
name, and the tokenizer's characters in the metadata: :func:`save` writes one
atomically, :func:`load` checks it all before building the model.

The model and tokenizer need only the standard library; ``Trainer(compiled=True)``
loads the compiler (and NumPy) on first use.

The modules: :mod:`~chainrule.gpt.model` (CharTokenizer, Block, GPT, sampling),
:mod:`~chainrule.gpt.train` (Trainer, GPTConfig, train_gpt) and
:mod:`~chainrule.gpt.files` (save, load).
"""

from __future__ import annotations

from chainrule.gpt.files import load, load_with_metadata, save
from chainrule.gpt.model import (
    BETAS,
    BOS,
    GPT,
    Block,
    CharTokenizer,
    count_parameters,
    one_hot,
    sample_names,
)
from chainrule.gpt.train import GPTConfig, GPTResult, Trainer, train_gpt
from chainrule.nn import ModelFileError as ModelFileError  # as the single-module gpt had it

__all__ = [
    "BETAS",
    "BOS",
    "GPT",
    "Block",
    "CharTokenizer",
    "GPTConfig",
    "GPTResult",
    "Trainer",
    "count_parameters",
    "load",
    "load_with_metadata",
    "one_hot",
    "sample_names",
    "save",
    "train_gpt",
]
