"""The character-level GPT: its tokenizer, the model, and sampling names from it.

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
A token enters as an id, or as a one-hot row (a compiled loss's input: see
:mod:`chainrule.gpt`). Standard library only.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from typing import Any

from chainrule.core import Value, no_grad
from chainrule.losses import softmax_cross_entropy
from chainrule.nn import (
    INIT_STD,
    CausalSelfAttention,
    Embedding,
    KVCache,
    Linear,
    Module,
    RMSNorm,
)

__all__ = [
    "BETAS",
    "BOS",
    "GPT",
    "Block",
    "CharTokenizer",
    "Token",
    "count_parameters",
    "lone_surrogate",
    "one_hot",
    "sample_names",
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
        bad = lone_surrogate(chars)
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


def lone_surrogate(chars: str) -> str | None:
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


def _apply(layer: Linear | RMSNorm, xs: list[Value]) -> list[Value]:
    """``layer`` on a vector of Values already checked (nn's per-layer forward, without
    the input checks of calling it): the one place this module calls it."""
    return layer.forward(xs)


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
        attended = self.attn.step(_apply(self.attn_norm, x), cache)
        x = [a + r for a, r in zip(attended, x, strict=True)]
        hidden = [h.relu() for h in _apply(self.fc1, _apply(self.mlp_norm, x))]
        return [a + r for a, r in zip(_apply(self.fc2, hidden), x, strict=True)]


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
        x = _apply(self.norm, [t + p for t, p in zip(self.wte(token), self.wpe(pos), strict=True)])
        for block, cache in zip(self.blocks, caches, strict=True):
            x = block.step(x, cache)
        return _apply(self.lm_head, x)

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
