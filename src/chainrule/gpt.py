"""A character-level GPT in scalar code: the model, its tokenizer, sampling and training.

The model of the small single-file scalar GPTs, built from ``chainrule.nn``'s blocks:
token and position embeddings added and normalised, then per layer a pre-norm causal
self-attention and a pre-norm ReLU MLP (4× wide), each with a residual connection,
and a linear head to one logit per token::

    x_t = rmsnorm(wte[token_t] + wpe[t])
    x_t = x_t + attn(rmsnorm(x))_t              (per layer)
    x_t = x_t + fc2(relu(fc1(rmsnorm(x_t))))
    logits_t = lm_head(x_t)

RMSNorms have no gain and linear layers no bias, and every weight starts from
N(0, 0.08²) (:data:`chainrule.nn.INIT_STD`), as in those GPTs. A name is one
sequence: token 0 (:data:`BOS`) marks both its start and its end, so the model learns
where names stop; the loss is the mean cross-entropy of predicting each next token.

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
"""

from __future__ import annotations

import math
import os
import random
import warnings
from collections.abc import Iterable, Sequence
from operator import attrgetter
from pathlib import Path
from typing import Any

from chainrule import nn
from chainrule.engine import Value, no_grad
from chainrule.errors import CompileWarning
from chainrule.io.files import atomic_write_text
from chainrule.losses import softmax_cross_entropy
from chainrule.nn import (
    INIT_STD,
    CausalSelfAttention,
    Embedding,
    KVCache,
    Linear,
    ModelFileError,
    Module,
    RMSNorm,
)
from chainrule.optim import Adam, LinearDecay

__all__ = [
    "BETAS",
    "BOS",
    "GPT",
    "Block",
    "CharTokenizer",
    "Trainer",
    "count_parameters",
    "load",
    "load_with_metadata",
    "one_hot",
    "sample_names",
    "save",
]

#: The token that starts and ends every name (its id in every :class:`CharTokenizer`).
BOS = 0

#: Adam's ``(β1, β2)`` for the GPT, as in the small scalar GPTs (PyTorch's default is
#: (0.9, 0.999)).
BETAS = (0.85, 0.99)

Token = int | Sequence[Value | float]  # an id, or a one-hot row (see the module docstring)


class CharTokenizer:
    """Characters to token ids and back: id 0 is :data:`BOS`, the characters 1, 2, ...

    >>> tok = CharTokenizer.from_names(["ada", "bo"])
    >>> tok.chars, tok.vocab_size
    ('abdo', 5)
    >>> tok.encode("bad")
    [0, 2, 1, 3, 0]
    >>> tok.decode([2, 1, 3])
    'bad'
    """

    def __init__(self, chars: str) -> None:
        if not isinstance(chars, str) or not chars:
            raise ValueError(
                f"CharTokenizer: expected a non-empty string of characters, got {chars!r}"
            )
        if len(set(chars)) != len(chars):
            raise ValueError(f"CharTokenizer: characters must be distinct, got {chars!r}")
        bad = _not_text(chars)
        if bad is not None:
            raise ValueError(f"CharTokenizer: {bad!r} is half of a UTF-16 pair, not a character")
        self.chars = chars
        self.stoi = {c: i + 1 for i, c in enumerate(chars)}

    @classmethod
    def from_names(cls, names: Iterable[str]) -> CharTokenizer:
        """The tokenizer of every character in ``names``, in sorted order."""
        return cls("".join(sorted(set("".join(names)))))

    @property
    def vocab_size(self) -> int:
        """How many tokens: the characters and :data:`BOS`."""
        return len(self.chars) + 1

    def encode(self, name: str) -> list[int]:
        """``[BOS, *characters, BOS]`` as ids; an unknown character is a ``ValueError``."""
        try:
            return [BOS, *(self.stoi[c] for c in name), BOS]
        except KeyError as exc:
            raise ValueError(
                f"CharTokenizer: {name!r} has the character {exc.args[0]!r}, which is not in "
                f"the vocabulary {self.chars!r}"
            ) from None

    def decode(self, ids: Iterable[int]) -> str:
        """The characters of ``ids``, leaving out :data:`BOS`."""
        chars = self.chars
        return "".join(chars[i - 1] for i in ids if i != BOS)

    def __repr__(self) -> str:
        return f"CharTokenizer({self.chars!r})"


def _not_text(chars: str) -> str | None:
    """The first lone surrogate in ``chars`` (``"\\ud800"``: half of a UTF-16 pair, which
    JSON can spell but no text holds, and which cannot be printed), or None."""
    return next((c for c in chars if "\ud800" <= c <= "\udfff"), None)


def one_hot(tokens: Sequence[int], vocab_size: int) -> list[list[float]]:
    """One row per token, 1.0 at its id and 0.0 elsewhere: a compiled loss's input."""
    rows = []
    for t in tokens:
        if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < vocab_size:
            raise ValueError(f"one_hot: token {t!r} is not an id 0..{vocab_size - 1}")
        row = [0.0] * vocab_size
        row[t] = 1.0
        rows.append(row)
    return rows


class Block(Module):
    """One transformer layer: pre-norm attention and a pre-norm ReLU MLP, each residual."""

    def __init__(
        self, dim: int, heads: int, *, std: float = INIT_STD, rng: random.Random | None = None
    ) -> None:
        self.attn_norm = RMSNorm(dim, elementwise_affine=False)
        self.attn = CausalSelfAttention(dim, heads, std=std, rng=rng)
        self.mlp_norm = RMSNorm(dim, elementwise_affine=False)
        self.fc1 = Linear(dim, 4 * dim, bias=False, std=std, rng=rng)
        self.fc2 = Linear(4 * dim, dim, bias=False, std=std, rng=rng)

    def step(self, x: list[Value], cache: KVCache) -> list[Value]:
        """The block's output at the next position (earlier keys and values in ``cache``)."""
        attended = self.attn.step(self.attn_norm.forward(x), cache)
        x = [a + r for a, r in zip(attended, x, strict=True)]
        hidden = [h.relu() for h in self.fc1.forward(self.mlp_norm.forward(x))]
        return [a + r for a, r in zip(self.fc2.forward(hidden), x, strict=True)]


class GPT(Module):
    """A character-level GPT (see the module docstring for the architecture).

    ``vocab_size`` counts every token, :data:`BOS` included (``tokenizer.vocab_size``);
    ``block_size`` is the longest context (positions 0 .. block_size - 1); ``dim`` the
    width of every vector, split over ``heads`` attention heads; ``layers`` the number
    of :class:`Block`\\ s. Weights are drawn from N(0, std²) using ``rng`` (the
    ``random`` module if none), in the order of :meth:`named_parameters`. The defaults
    make 3,328 parameters plus 32 per vocabulary token (4,192 for 26 letters and BOS).
    """

    def __init__(
        self,
        vocab_size: int,
        block_size: int = 16,
        dim: int = 16,
        heads: int = 4,
        layers: int = 1,
        *,
        std: float = INIT_STD,
        rng: random.Random | None = None,
    ) -> None:
        for name, n in (("vocab_size", vocab_size), ("block_size", block_size), ("layers", layers)):
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError(f"GPT: {name} must be a positive integer, got {n!r}")
        self.wte = Embedding(vocab_size, dim, std=std, rng=rng)
        self.wpe = Embedding(block_size, dim, std=std, rng=rng)
        self.norm = RMSNorm(dim, elementwise_affine=False)
        self.blocks = [Block(dim, heads, std=std, rng=rng) for _ in range(layers)]
        self.lm_head = Linear(dim, vocab_size, bias=False, std=std, rng=rng)
        self.vocab_size = vocab_size
        self.block_size = block_size
        self.dim = dim
        self.heads = heads
        self.n_layers = layers

    def architecture(self) -> dict[str, Any]:
        """What it takes to build this model again (for a model file's header)."""
        return {
            "type": "GPT",
            "vocab_size": self.vocab_size,
            "block_size": self.block_size,
            "dim": self.dim,
            "heads": self.heads,
            "layers": self.n_layers,
        }

    def new_caches(self) -> list[KVCache]:
        """Empty key/value caches, one per layer, for :meth:`step`."""
        return [KVCache() for _ in self.blocks]

    def step(self, token: Token, caches: list[KVCache]) -> list[Value]:
        """The logits of the token after ``token``, at the next position of ``caches``."""
        pos = len(caches[0])
        if pos >= self.block_size:
            raise ValueError(f"GPT: the context is full ({self.block_size} positions)")
        x = self.norm.forward([t + p for t, p in zip(self.wte(token), self.wpe(pos), strict=True)])
        for block, cache in zip(self.blocks, caches, strict=True):
            x = block.step(x, cache)
        return self.lm_head.forward(x)

    def __call__(self, tokens: Sequence[Token]) -> list[list[Value]]:
        """One row of ``vocab_size`` logits per token: the prediction of the next one."""
        if len(tokens) > self.block_size:
            raise ValueError(
                f"GPT: {len(tokens)} tokens do not fit the context of {self.block_size}"
            )
        caches = self.new_caches()
        return [self.step(t, caches) for t in tokens]

    def loss(self, tokens: Sequence[Token]) -> Value:
        """Mean cross-entropy of predicting ``tokens[t + 1]`` from ``tokens[: t + 1]``.

        ``tokens`` is a whole encoded name, ``[BOS, ..., BOS]``: ids, or one-hot rows
        (the compiled path). At most ``block_size`` predictions are made: a longer name
        is cut to its first ``block_size + 1`` tokens. Reads no ``data``.
        """
        if len(tokens) < 2:
            raise ValueError("GPT.loss: need at least two tokens (BOS, ..., BOS)")
        n = min(self.block_size, len(tokens) - 1)
        logits = self(tokens[:n])
        return softmax_cross_entropy(logits, list(tokens[1 : n + 1]))

    def sample(
        self, rng: random.Random, temperature: float = 1.0, max_len: int | None = None
    ) -> list[int]:
        """Token ids drawn one at a time from :data:`BOS` until the model ends the name.

        Each next token is drawn from ``softmax(logits / temperature)`` with ``rng``;
        ``temperature=0`` takes the most likely token instead (the first, on a tie), so
        it is deterministic and ignores ``rng``. At most ``max_len`` tokens (default and
        upper bound: ``block_size``). The ids returned leave out the final :data:`BOS`.
        """
        if isinstance(temperature, bool) or not isinstance(temperature, int | float):
            raise TypeError(f"sample: temperature must be a number, got {temperature!r}")
        if not 0.0 <= temperature < math.inf:
            raise ValueError(f"sample: temperature must be >= 0, got {temperature!r}")
        limit = self.block_size if max_len is None else min(max_len, self.block_size)
        caches = self.new_caches()
        token, out = BOS, []
        with no_grad():
            for _ in range(limit):
                logits = [v.data for v in self.step(token, caches)]
                token = _draw(logits, temperature, rng)
                if token == BOS:
                    break
                out.append(token)
        return out

    def __repr__(self) -> str:
        return (
            f"GPT(vocab_size={self.vocab_size}, block_size={self.block_size}, dim={self.dim}, "
            f"heads={self.heads}, layers={self.n_layers})  # {self.num_parameters()} parameters"
        )


def _draw(logits: list[float], temperature: float, rng: random.Random) -> int:
    """An index drawn from ``softmax(logits / temperature)``; the argmax at temperature 0."""
    if temperature == 0.0:
        return max(range(len(logits)), key=logits.__getitem__)
    top = max(logits)
    # exp((z - top) / T): the largest weight is 1, so the total is >= 1; subtracting
    # before dividing keeps a tiny T from turning the logits into inf - inf.
    weights = [math.exp((z - top) / temperature) for z in logits]
    return rng.choices(range(len(logits)), weights=weights)[0]


def sample_names(
    model: GPT,
    tokenizer: CharTokenizer,
    n: int,
    rng: random.Random,
    temperature: float = 1.0,
) -> list[str]:
    """``n`` names sampled from ``model`` with ``rng`` (see :meth:`GPT.sample`)."""
    return [tokenizer.decode(model.sample(rng, temperature)) for _ in range(n)]


class Trainer:
    """Adam training of a :class:`GPT`, one encoded name per :meth:`step`, eager or compiled.

    Adam with ``betas`` :data:`BETAS` and ``eps`` 1e-8; the learning rate falls
    linearly from ``lr`` at step 0 towards 0 at step ``steps``
    (:class:`~chainrule.optim.LinearDecay`). With ``compiled=True`` the loss is
    compiled by :func:`chainrule.compile`, its tokens passed as one-hot rows: one
    program per name length, traced the first time a length is met. The compiled path
    updates with :meth:`~chainrule.optim.Adam.step_arrays` (a Python loop over 4,000
    parameters costs more than the compiled forward and backward together), from the
    model's Values as they are at each step and back into them, so the optimiser's
    :meth:`~chainrule.optim.Optimizer.state_dict` is always its true state. Both paths
    make the same updates (to rounding), and either resumes from the other's state.
    """

    def __init__(
        self, model: GPT, *, lr: float = 0.01, steps: int = 1000, compiled: bool = False
    ) -> None:
        nn.check_parameter_count(  # a model trained here can be saved and loaded
            model.num_parameters(), "Trainer: the model has", hint="; not training it"
        )
        self.model = model
        self.optimizer = Adam(model.parameters(), lr=lr, betas=BETAS, eps=1e-8)
        self.schedule = LinearDecay(lr, 0.0, steps)
        self.compiled: Any = None
        if compiled:
            from chainrule.compiler import compile

            self.compiled = compile(self._one_hot_loss, self.optimizer.params)

    def _one_hot_loss(self, rows: list[list[Value]]) -> Value:
        return self.model.loss(rows)

    def loss(self, tokens: Sequence[int]) -> Any:
        """The loss of one encoded name (a Value, or a compiled loss), not yet backpropagated."""
        model = self.model
        tokens = list(tokens[: model.block_size + 1])
        if self.compiled is None:
            return model.loss(tokens)
        rows = one_hot(tokens, model.vocab_size)
        with warnings.catch_warnings():
            # One program per name length is the plan, not a shape that keeps changing:
            # the compiler's warning about many input shapes does not apply.
            warnings.filterwarnings("ignore", r"compile: .* different input", CompileWarning)
            return self.compiled(rows)

    def step(self, tokens: Sequence[int]) -> float:
        """One Adam step on the loss of ``tokens`` (an encoded name); returns the loss."""
        if self.compiled is not None:
            return self._array_step(tokens)
        optimizer = self.optimizer
        optimizer.zero_grad()
        loss = self.loss(tokens)
        loss.backward()
        optimizer.lr = self.schedule(optimizer.steps)
        optimizer.step()
        return float(loss.data)

    def _array_step(self, tokens: Sequence[int]) -> float:
        """The compiled step: gradients from the program at the parameters' values, then
        Adam's update on arrays (:meth:`~chainrule.optim.Adam.step_arrays`), written back."""
        import numpy as np

        optimizer, model = self.optimizer, self.model
        params = optimizer.params
        theta = np.fromiter(map(_data, params), np.float64, len(params))
        rows = one_hot(list(tokens[: model.block_size + 1]), model.vocab_size)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", r"compile: .* different input", CompileWarning)
            loss, g = self.compiled.value_and_grad(rows, params=theta)
        optimizer.lr = self.schedule(optimizer.steps)
        new = optimizer.step_arrays(theta, g)
        for p, x in zip(params, new.tolist(), strict=True):
            p.data = x
        return float(loss)


_data = attrgetter("data")


# -- model files ------------------------------------------------------------------------


def count_parameters(vocab_size: int, block_size: int, dim: int, layers: int) -> int:
    """How many parameters a :class:`GPT` of this shape has, without building it.

    The token and position tables (``vocab_size × dim``, ``block_size × dim``), per
    layer four ``dim × dim`` attention projections and the MLP's ``dim × 4dim`` and
    ``4dim × dim``, and the head (``dim × vocab_size``):
    ``(2·vocab_size + block_size)·dim + 12·layers·dim²``.

    >>> count_parameters(27, 16, 16, 1)
    4192
    """
    return (2 * vocab_size + block_size) * dim + 12 * layers * dim * dim


def save(
    model: GPT,
    tokenizer: CharTokenizer,
    path: str | os.PathLike[str],
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` and its tokenizer to ``path`` as a versioned JSON model file, atomically.

    The file is the family of :func:`chainrule.nn.save`: ``format``, ``version``, the
    :meth:`GPT.architecture`, ``parameters`` (:meth:`GPT.state_dict`: each value by its
    name) and ``metadata``, which holds the tokenizer's characters under ``"chars"``
    beside any JSON-ready ``metadata`` given. A model with a non-finite parameter, a
    tokenizer that does not fit it, or a file that :func:`load` would refuse (over
    :data:`chainrule.nn.MAX_MODEL_PARAMETERS`, or metadata as
    :func:`chainrule.nn.model_file_text` refuses) is refused rather than saved.
    """
    if not isinstance(model, GPT):
        raise TypeError(f"save: expected a GPT, got {type(model).__name__}")
    if tokenizer.vocab_size != model.vocab_size:
        raise ValueError(
            f"save: the tokenizer has {tokenizer.vocab_size} tokens but the model "
            f"{model.vocab_size}"
        )
    nn.check_parameter_count(model.num_parameters(), "save: the model has", hint="; not writing it")
    state = model.state_dict()
    bad = next((name for name, v in state.items() if not math.isfinite(v)), None)
    if bad is not None:
        raise ValueError(
            f"save: parameter {bad} is {state[bad]} (training diverged?); not writing the model"
        )
    document = {
        "format": nn.FORMAT,
        "version": nn.VERSION,
        "architecture": model.architecture(),
        "parameters": state,
        "metadata": {**(metadata or {}), "chars": tokenizer.chars},
    }
    return atomic_write_text(path, nn.model_file_text(document))


def load(path: str | os.PathLike[str]) -> tuple[GPT, CharTokenizer]:
    """Read a GPT and its tokenizer written by :func:`save`.

    Raises :class:`~chainrule.nn.ModelFileError`, naming the file and what is wrong,
    for anything off. The cheap checks come first, before any model is built: the
    file's size (:data:`chainrule.nn.MAX_MODEL_BYTES`), format and version; every
    architecture field a positive integer, ``dim`` divisible by ``heads``, the
    parameter count (:func:`count_parameters`) at most
    :data:`chainrule.nn.MAX_MODEL_PARAMETERS` and equal to the number of parameters in
    the file, each a finite number; the tokenizer's characters distinct, text (no lone
    surrogate) and as many as the vocabulary needs. Only then is the model built (its
    size bounded by the numbers actually in the file) and the parameters matched by name.
    """
    model, tokenizer, _ = load_with_metadata(path)
    return model, tokenizer


def load_with_metadata(
    path: str | os.PathLike[str],
) -> tuple[GPT, CharTokenizer, dict[str, Any]]:
    """Like :func:`load`, and also return the file's metadata dictionary."""
    doc = nn.read_model_file(path)
    try:
        return _build(doc)
    except ModelFileError as exc:
        raise ModelFileError(f"{Path(path)}: {exc}") from None


_ARCHITECTURE_FIELDS = ("vocab_size", "block_size", "dim", "heads", "layers")


def _build(doc: dict[str, Any]) -> tuple[GPT, CharTokenizer, dict[str, Any]]:
    arch = doc.get("architecture")
    if not isinstance(arch, dict) or arch.get("type") != "GPT":
        kind = arch.get("type") if isinstance(arch, dict) else None
        hint = " (a classifier: use `chainrule predict`)" if kind == "MLP" else ""
        raise ModelFileError(f"not a GPT model file: its architecture type is {kind!r:.40}{hint}")
    sizes: dict[str, int] = {}
    for name in _ARCHITECTURE_FIELDS:
        n = arch.get(name)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ModelFileError(
                f"invalid architecture: {name} must be a positive integer, got {n!r:.40}"
            )
        sizes[name] = n
    if sizes["dim"] % sizes["heads"]:
        raise ModelFileError(
            f"invalid architecture: dim {sizes['dim']} is not divisible by heads {sizes['heads']}"
        )
    count = count_parameters(
        sizes["vocab_size"], sizes["block_size"], sizes["dim"], sizes["layers"]
    )
    nn.check_parameter_count(count, "the architecture has", ModelFileError)
    metadata = doc.get("metadata")
    if not isinstance(metadata, dict):
        raise ModelFileError("metadata must be an object holding the tokenizer's characters")
    chars = metadata.get("chars")
    if not isinstance(chars, str) or len(set(chars)) != len(chars) or not chars:
        raise ModelFileError(
            "metadata.chars must be a string of distinct characters (the tokenizer's), "
            f"got {chars!r:.40}"
        )
    bad = _not_text(chars)
    if bad is not None:
        raise ModelFileError(
            f"metadata.chars holds {bad!r}, half of a UTF-16 pair, not a character: "
            "the tokenizer's vocabulary must be text"
        )
    if len(chars) + 1 != sizes["vocab_size"]:
        raise ModelFileError(
            f"the tokenizer has {len(chars)} characters, so {len(chars) + 1} tokens, but the "
            f"architecture's vocab_size is {sizes['vocab_size']}"
        )
    params = doc.get("parameters")
    if not isinstance(params, dict) or len(params) != count:
        held = f"{len(params):,}" if isinstance(params, dict) else "no object of"
        raise ModelFileError(
            f"the architecture has {count:,} parameters but the file holds {held} parameters"
        )
    for name, x in params.items():
        if isinstance(x, bool) or not isinstance(x, int | float):
            raise ModelFileError(f"parameter {name:.60}: expected a number, found {x!r:.40}")
        try:
            finite = math.isfinite(x)
        except OverflowError:  # an integer too large for a float
            finite = False
        if not finite:
            raise ModelFileError(f"parameter {name:.60}: not a finite number")
    # Every check that needs no model is done; the model is bounded by the file's size.
    model = GPT(
        sizes["vocab_size"],
        sizes["block_size"],
        sizes["dim"],
        sizes["heads"],
        sizes["layers"],
        rng=random.Random(0),  # every parameter is overwritten below
    )
    expected = {name for name, _ in model.named_parameters()}
    if set(params) != expected:
        missing = sorted(expected - set(params))
        unexpected = sorted(set(params) - expected)
        raise ModelFileError(
            "the parameter names do not fit the architecture: "
            f"missing {_some(missing)}; unexpected {_some(unexpected)}"
        )
    model.load_state_dict(params)
    return model, CharTokenizer(chars), metadata


def _some(names: list[str], limit: int = 3) -> str:
    """A few of ``names`` for a message, each cut short."""
    if not names:
        return "none"
    shown = ", ".join(f"{n:.40}" for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
