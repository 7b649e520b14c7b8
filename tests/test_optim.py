"""Optimisers against torch.optim, schedules, and divergence."""

from __future__ import annotations

import math

import pytest
import torch

from chainrule import NumericOverflowError, Value
from chainrule.optim import SGD, Adam, Constant, Cosine, LinearDecay, StepDecay, make_schedule


def rosenbrock(x, y):
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (lambda p: SGD(p, lr=1e-3), lambda p: torch.optim.SGD(p, lr=1e-3)),
        (
            lambda p: SGD(p, lr=1e-3, momentum=0.9, weight_decay=0.01),
            lambda p: torch.optim.SGD(p, lr=1e-3, momentum=0.9, weight_decay=0.01),
        ),
        (lambda p: Adam(p, lr=0.01), lambda p: torch.optim.Adam(p, lr=0.01)),
        (
            lambda p: Adam(p, lr=0.01, betas=(0.8, 0.99), weight_decay=0.1),
            lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.99), weight_decay=0.1),
        ),
    ],
)
def test_optimisers_follow_torch_step_for_step(ours, theirs) -> None:
    params = [Value(-1.2), Value(1.0)]
    tparams = [torch.tensor(p.data, dtype=torch.float64, requires_grad=True) for p in params]
    opt, topt = ours(params), theirs(tparams)
    for _ in range(50):
        opt.zero_grad()
        rosenbrock(*params).backward()
        opt.step()
        topt.zero_grad()
        rosenbrock(*tparams).backward()
        topt.step()
    assert [p.data for p in params] == pytest.approx([t.item() for t in tparams], rel=1e-9)


def test_divergence_is_an_error_naming_the_learning_rate() -> None:
    x = Value(1.0)
    opt = SGD([x], lr=1e300)
    (x * 1e10).backward()
    with pytest.raises(NumericOverflowError, match=r"diverged.*lower the learning rate"):
        opt.step()
    assert x.data == 1.0  # the parameter keeps its last finite value


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="lr must be > 0"):
        SGD([Value(1.0)], lr=0)
    with pytest.raises(ValueError, match="no parameters"):
        Adam([], lr=0.1)
    with pytest.raises(TypeError, match="parameters must be Values"):
        SGD([1.0], lr=0.1)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="betas"):
        Adam([Value(1.0)], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="unknown schedule 'warm'"):
        make_schedule("warm", 0.1, 10)


def test_schedules() -> None:
    demo = LinearDecay(1.0, 0.1, 100)
    assert [demo(k) for k in (0, 50, 99)] == pytest.approx(
        [1.0 - 0.9 * k / 100 for k in (0, 50, 99)]
    )
    assert demo(100) == demo(500) == 0.1
    assert Constant(0.3)(1000) == 0.3
    assert [StepDecay(1.0, 10, 0.5)(k) for k in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]
    cos = Cosine(1.0, 10, min_lr=0.1)
    assert cos(0) == 1.0 and cos(10) == pytest.approx(0.1) and cos(5) == pytest.approx(0.55)
    assert make_schedule("linear", 2.0, 10)(10) == pytest.approx(0.2)
    assert make_schedule("step", 1.0, 30)(10) == pytest.approx(0.1)
    assert all(math.isfinite(make_schedule(n, 0.1, 7)(3)) for n in ("constant", "cosine"))
