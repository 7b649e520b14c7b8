"""The lecture's networks: :class:`Neuron`, :class:`Layer` and the multi-layer
perceptron :class:`MLP`.

A neuron computes ``act(w · x + b)``; a layer is a list of neurons that see the same
inputs; a multi-layer perceptron feeds each layer's outputs to the next. Weights start
as an ``init`` scheme draws them: the lecture's U(-1, 1), Xavier or He. Model files of
an MLP are :mod:`chainrule.io.model_files`.

This module needs only the standard library.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any, Literal, TypeAlias

from chainrule.core import Value, fused_dot
from chainrule.nn.module import Input, Module, as_inputs, check_choice, check_size

__all__ = [
    "ACTIVATIONS",
    "DEFAULT_ACTIVATION",
    "INITS",
    "MLP",
    "Activation",
    "Init",
    "Layer",
    "Neuron",
    "check_mlp_config",
    "count_parameters",
]

Activation: TypeAlias = Literal["tanh", "relu", "sigmoid", "linear"]
Init: TypeAlias = Literal["uniform", "xavier", "he"]

ACTIVATIONS: tuple[str, ...] = ("tanh", "relu", "sigmoid", "linear")
INITS: tuple[str, ...] = ("uniform", "xavier", "he")

#: The activation of ``Neuron``, ``Layer`` and ``MLP``'s hidden layers unless one is given:
#: tanh, the lecture's neuron. The lecture trains ``MLP(3, [4, 4, 1])`` on its four examples
#: with the summed squared error and a step of 0.1; with ReLU hidden layers (the reference
#: implementation's ``nn``), most seeds kill every hidden unit in the first steps and stay at
#: loss 4.0, while with tanh every seed trains. The reference's ReLU network is
#: ``MLP(2, [16, 16, 1], activation="relu")`` (or ``nonlin=True`` on a ``Neuron``), and
#: ``chainrule train`` keeps ReLU as its own default (``TrainConfig.activation``).
DEFAULT_ACTIVATION: Activation = "tanh"


def _draw_weight(init: str, nin: int, nout: int, rng: Any) -> float:
    """One initial weight: the lecture's U(-1, 1), or Xavier/He scaled to the fan-in."""
    if init == "uniform":
        return float(rng.uniform(-1.0, 1.0))
    if init == "xavier":  # Glorot: U(-a, a), a = sqrt(6 / (fan_in + fan_out))
        a = math.sqrt(6.0 / (nin + nout))
        return float(rng.uniform(-a, a))
    return float(rng.gauss(0.0, math.sqrt(2.0 / nin)))  # He: N(0, 2 / fan_in), for ReLU


class Neuron(Module):
    """``act(w · x + b)`` with ``nin`` weights ``w`` and a bias ``b``.

    ``act`` is :data:`DEFAULT_ACTIVATION` (tanh, the lecture's) unless ``activation``
    names another. ``nonlin=True`` / ``nonlin=False`` is the reference implementation's
    spelling, ReLU / linear as there (``Neuron(nin, nonlin=False)``); give it or
    ``activation``, not both. Weights start as the ``init`` scheme draws them from
    ``rng`` (the ``random`` module by default, so ``random.seed`` reproduces them); the
    bias starts at 0.
    """

    def __init__(
        self,
        nin: int,
        activation: Activation | None = None,
        *,
        init: Init = "uniform",
        rng: random.Random | None = None,
        fan_out: int = 1,
        nonlin: bool | None = None,
    ) -> None:
        check_size("nin", nin)
        activation = _with_nonlin(activation, nonlin)
        check_choice("activation", activation, ACTIVATIONS)
        check_choice("init", init, INITS)
        draw: Any = rng if rng is not None else random  # the module's functions share one state
        self.w = [Value(_draw_weight(init, nin, fan_out, draw)) for _ in range(nin)]
        self.b = Value(0.0)
        self.activation: str = activation

    def __call__(self, x: Input) -> Value:
        xs = as_inputs(x, len(self.w), "Neuron")
        return self.forward(xs)

    def forward(self, xs: Sequence[Value]) -> Value:
        """The output for ``xs``: ``nin`` Values, not checked again (``__call__`` checks
        and converts its input, then calls this; a bigger block calls it directly)."""
        return _activate(fused_dot(self.w, xs, self.b), self.activation)  # w · x + b: one node

    def __repr__(self) -> str:
        return f"Neuron({len(self.w)}, activation={self.activation!r})"


def _with_nonlin(activation: Activation | None, nonlin: bool | None) -> Activation:
    """The activation given, or the one micrograd's ``nonlin=`` names (True: ReLU, False:
    linear), or :data:`DEFAULT_ACTIVATION`."""
    if nonlin is None:
        return DEFAULT_ACTIVATION if activation is None else activation
    if not isinstance(nonlin, bool):
        raise TypeError(f"nonlin must be True or False, got {nonlin!r:.40}")
    if activation is not None:
        raise ValueError(
            f"give activation={activation!r} or nonlin={nonlin!r} (micrograd's spelling of "
            "relu or linear), not both"
        )
    return "relu" if nonlin else "linear"


def _activate(v: Value, activation: str) -> Value:
    if activation == "tanh":
        return v.tanh()
    if activation == "relu":
        return v.relu()
    if activation == "sigmoid":
        return v.sigmoid()
    return v


class Layer(Module):
    """``nout`` neurons that all see the same ``nin`` inputs (tanh unless told otherwise;
    ``nonlin=`` as on :class:`Neuron`)."""

    def __init__(
        self,
        nin: int,
        nout: int,
        activation: Activation | None = None,
        *,
        init: Init = "uniform",
        rng: random.Random | None = None,
        nonlin: bool | None = None,
    ) -> None:
        check_size("nout", nout)
        activation = _with_nonlin(activation, nonlin)
        self.neurons = [
            Neuron(nin, activation, init=init, rng=rng, fan_out=nout) for _ in range(nout)
        ]

    def __call__(self, x: Input) -> Value | list[Value]:
        out = self.forward(as_inputs(x, self.nin, "Layer"))
        return out[0] if len(out) == 1 else out

    def forward(self, xs: Sequence[Value]) -> list[Value]:
        """The outputs (always a list) for ``xs``, ``nin`` Values not checked again."""
        return [n.forward(xs) for n in self.neurons]

    @property
    def nin(self) -> int:
        return len(self.neurons[0].w)

    @property
    def nout(self) -> int:
        return len(self.neurons)

    @property
    def activation(self) -> str:
        return self.neurons[0].activation

    def __repr__(self) -> str:
        return f"Layer({self.nin}, {self.nout}, activation={self.activation!r})"


class MLP(Module):
    """A multi-layer perceptron: ``nin`` inputs, then one layer per entry of ``nouts``.

    ``activation`` (:data:`DEFAULT_ACTIVATION`, tanh, unless given) applies to the hidden
    layers, ``output_activation`` to the last (``None`` or ``"linear"``: none).
    ``MLP(3, [4, 4, 1])`` trains as the lecture's network does (41 parameters; the
    lecture's own has a tanh output too: ``output_activation="tanh"``);
    ``MLP(2, [16, 16, 1], activation="relu")`` is the reference demo's.
    """

    def __init__(
        self,
        nin: int,
        nouts: Sequence[int],
        activation: Activation = DEFAULT_ACTIVATION,
        output_activation: Activation | None = None,
        *,
        init: Init = "uniform",
        rng: random.Random | None = None,
    ) -> None:
        check_size("nin", nin)
        nouts = list(nouts) if not isinstance(nouts, int) else [nouts]
        check_mlp_config(nin, nouts, activation, output_activation)
        sizes = [nin, *nouts]
        last = len(nouts) - 1
        self.layers = [
            Layer(
                sizes[i],
                sizes[i + 1],
                activation if i < last else (output_activation or "linear"),
                init=init,
                rng=rng,
            )
            for i in range(len(nouts))
        ]
        self.nin = nin
        self.nouts = nouts
        self.activation: str = activation
        self.output_activation: str | None = output_activation
        self.init: str = init

    def __call__(self, x: Input) -> Value | list[Value]:
        out = self.forward(as_inputs(x, self.nin, "MLP"))
        return out[0] if len(out) == 1 else out

    def forward(self, xs: Sequence[Value]) -> list[Value]:
        """The outputs (always a list) for ``xs``, ``nin`` Values not checked again."""
        for layer in self.layers:
            xs = layer.forward(xs)
        return list(xs)

    def architecture(self) -> dict[str, Any]:
        """What it takes to build this model again (the model file's header)."""
        return {
            "type": "MLP",
            "nin": self.nin,
            "nouts": list(self.nouts),
            "activation": self.activation,
            "output_activation": self.output_activation,
        }

    def __repr__(self) -> str:
        inner = ",\n".join(f"  {layer!r}" for layer in self.layers)
        return f"MLP(\n{inner}\n)  # {self.num_parameters()} parameters"


def check_mlp_config(
    nin: object, nouts: Sequence[object], activation: object, output_activation: object
) -> None:
    """Raise ``ValueError`` unless these are an :class:`MLP`'s arguments: positive sizes,
    at least one layer, known activations. The one check of :class:`MLP` and of the
    architecture in a model file (:func:`chainrule.io.model_files.check_architecture`)."""
    check_size("nin", nin)
    if not nouts:
        raise ValueError("nouts must list at least one layer size")
    for n in nouts:
        check_size("each layer size in nouts", n)
    check_choice("activation", activation, ACTIVATIONS)
    if output_activation is not None:
        check_choice("output_activation", output_activation, ACTIVATIONS)


def count_parameters(nin: int, nouts: Sequence[int]) -> int:
    """How many parameters an :class:`MLP` of this shape has, without building it:
    ``(inputs + 1) × neurons`` per layer (the weights and a bias per neuron).

    >>> count_parameters(2, [16, 16, 1])
    337
    """
    sizes = [nin, *nouts]
    return sum((sizes[i] + 1) * sizes[i + 1] for i in range(len(nouts)))
