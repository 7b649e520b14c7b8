"""A small character-level GPT written once in scalar code, for any ``Value`` class.

The model of the single-file scalar GPTs: token and position embeddings, one
transformer layer (RMSNorm, 4-head causal self-attention, a ReLU MLP 4× wide, residual
connections), an output head, cross-entropy as ``-log(softmax prob)`` and Adam. Every
number is a ``Value`` and every operation is a plain ``+ - * / ** exp log relu`` or
``sum()``: the code exercises an engine's per-node path and nothing else. The engine is
a parameter, so the same code, seed and initial weights run on each engine.

Training data are pseudo-names made from syllables by a seeded generator (no download).
The training loop is `gpt` in `bench/workloads.py`.
"""

from __future__ import annotations

import random
from typing import Any

EMBED, HEADS, CONTEXT, LAYERS = 16, 4, 16, 1
HEAD = EMBED // HEADS
LEARNING_RATE, BETA1, BETA2, EPS = 0.01, 0.85, 0.99, 1e-8
DECAY_STEPS = 1000  # the learning rate falls linearly to 0 over this many steps

Vector = list[Any]  # of Values
Matrix = list[Vector]


def pseudo_names(count: int, seed: int) -> list[str]:
    """``count`` name-like words of one to four syllables, lower case a-z."""
    rng = random.Random(seed)
    onsets = "b br c ch d dr f g gr h j k l m n p pr r s sh st t th tr v w y z".split()  # noqa: SIM905
    vowels = "a e i o u a e i o ai ea ie ou y".split()  # noqa: SIM905
    codas = [""] * 6 + "n l r s m th x nd".split()  # noqa: SIM905
    names = []
    for _ in range(count):
        syllables = rng.choice((1, 2, 2, 2, 3, 3, 4))
        word = "".join(
            rng.choice(onsets if i or rng.random() < 0.8 else [""])
            + rng.choice(vowels)
            + rng.choice(codas)
            for i in range(syllables)
        )
        names.append(word[: CONTEXT - 1])
    return names


class ScalarGPT:
    """The model's parameters as ``Value`` matrices, its forward pass and its loss."""

    def __init__(self, value: type, vocab: str, seed: int) -> None:
        rng = random.Random(seed)
        self.Value = value
        self.stoi = {c: i + 1 for i, c in enumerate(vocab)}  # token 0 starts and ends a name
        n = len(vocab) + 1

        def matrix(rows: int, cols: int, std: float = 0.08) -> Matrix:
            return [[value(rng.gauss(0.0, std)) for _ in range(cols)] for _ in range(rows)]

        self.wte, self.wpe = matrix(n, EMBED), matrix(CONTEXT, EMBED)
        self.layers = [
            {
                "wq": matrix(EMBED, EMBED),
                "wk": matrix(EMBED, EMBED),
                "wv": matrix(EMBED, EMBED),
                "wo": matrix(EMBED, EMBED),
                "fc1": matrix(4 * EMBED, EMBED),
                "fc2": matrix(EMBED, 4 * EMBED),
            }
            for _ in range(LAYERS)
        ]
        self.head = matrix(n, EMBED)
        matrices = [self.wte, self.wpe, *(m for layer in self.layers for m in layer.values())]
        self.params = [p for m in [*matrices, self.head] for row in m for p in row]

    def forward(self, token: int, pos: int, keys: list[Matrix], values: list[Matrix]) -> Vector:
        """The logits for the token after ``token`` at position ``pos``; appends to the cache."""
        x = rmsnorm([t + p for t, p in zip(self.wte[token], self.wpe[pos], strict=True)])
        for layer, k_cache, v_cache in zip(self.layers, keys, values, strict=True):
            residual = x
            x = rmsnorm(x)
            q = linear(x, layer["wq"])
            k_cache.append(linear(x, layer["wk"]))
            v_cache.append(linear(x, layer["wv"]))
            attended: Vector = []
            for h in range(0, EMBED, HEAD):
                qh = q[h : h + HEAD]
                scores = [
                    sum(qi * ki for qi, ki in zip(qh, k[h : h + HEAD], strict=True)) / HEAD**0.5
                    for k in k_cache
                ]
                weights = softmax(scores)
                attended += [
                    sum(w * v[h + j] for w, v in zip(weights, v_cache, strict=True))
                    for j in range(HEAD)
                ]
            x = [a + r for a, r in zip(linear(attended, layer["wo"]), residual, strict=True)]
            residual = x
            hidden = [u.relu() for u in linear(rmsnorm(x), layer["fc1"])]
            x = [a + r for a, r in zip(linear(hidden, layer["fc2"]), residual, strict=True)]
        return linear(x, self.head)

    def loss(self, name: str) -> Any:
        """Mean cross-entropy of predicting each next character of ``name``, then the end."""
        tokens = [0, *(self.stoi[c] for c in name), 0]
        n = min(CONTEXT, len(tokens) - 1)
        keys: list[Matrix] = [[] for _ in self.layers]
        values: list[Matrix] = [[] for _ in self.layers]
        losses = []
        for pos in range(n):
            probs = softmax(self.forward(tokens[pos], pos, keys, values))
            losses.append(-probs[tokens[pos + 1]].log())
        return (1.0 / n) * sum(losses)


def linear(x: Vector, w: Matrix) -> Vector:
    return [sum(wi * xi for wi, xi in zip(row, x, strict=True)) for row in w]


def softmax(logits: Vector) -> Vector:
    top = max(v.data for v in logits)
    exps = [(v - top).exp() for v in logits]
    total = sum(exps)
    return [e / total for e in exps]


def rmsnorm(x: Vector) -> Vector:
    scale = (sum(xi * xi for xi in x) / len(x) + 1e-5) ** -0.5
    return [xi * scale for xi in x]


class Adam:
    """Adam on plain floats, betas 0.85/0.99, the learning rate decaying linearly."""

    def __init__(self, params: list[Any]) -> None:
        self.params = params
        self.m = [0.0] * len(params)
        self.v = [0.0] * len(params)
        self.t = 0

    def step(self) -> None:
        self.t += 1
        lr = LEARNING_RATE * (1.0 - (self.t - 1) / DECAY_STEPS)
        c1, c2 = 1.0 - BETA1**self.t, 1.0 - BETA2**self.t
        m, v = self.m, self.v
        for i, p in enumerate(self.params):
            g = p.grad
            m[i] = BETA1 * m[i] + (1.0 - BETA1) * g
            v[i] = BETA2 * v[i] + (1.0 - BETA2) * g * g
            p.data -= lr * (m[i] / c1) / ((v[i] / c2) ** 0.5 + EPS)
            p.grad = 0.0
