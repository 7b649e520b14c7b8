"""Optimisers against torch.optim, schedules, and divergence."""

from __future__ import annotations

import json
import math

import numpy as np
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


def snapshot(opt):
    state = {k: list(v) for k, v in vars(opt).items() if isinstance(v, list)}
    return [p.data for p in opt.params], state, opt.steps


@pytest.mark.parametrize(
    ("make", "grads", "message"),
    [
        # the second parameter overflows: the first must not move either
        (lambda p: SGD(p, lr=1e300), [1.0, 1e10], r"parameter 1 would become -inf"),
        (lambda p: SGD(p, lr=1.0, momentum=0.9), [1.0, math.inf], r"parameter 1 would become"),
        # weight decay adds 1e8 * -1e300 to the gradient -1e308: it overflows
        (
            lambda p: SGD(p, lr=1e-20, weight_decay=1e8),
            [0.0, -1e308],
            "parameter 1 would become inf",
        ),
        (lambda p: Adam(p, lr=0.1), [1.0, math.nan], r"parameter 1 would become nan"),
        # g² overflows: the step itself stays finite, but v would be poisoned for good
        (lambda p: Adam(p, lr=0.1), [1.0, 1e200], r"running state of parameter 1 would become inf"),
    ],
    ids=["sgd", "sgd-momentum", "sgd-weight-decay", "adam-nan", "adam-state"],
)
def test_a_step_that_fails_changes_nothing(make, grads, message) -> None:
    params = [Value(0.5), Value(-1e300)]
    opt = make(params)
    twin = make([Value(p.data) for p in params])  # sees only the good steps
    for _ in range(2):  # a couple of good steps first, so that the state is not all zeros
        for ps in (opt.params, twin.params):
            for p, g in zip(ps, [0.25, -0.5], strict=True):
                p.grad = g
        opt.step()
        twin.step()
    before = snapshot(opt)
    for p, g in zip(params, grads, strict=True):
        p.grad = g
    with pytest.raises(NumericOverflowError, match=message) as info:
        opt.step()
    assert "step 3" in str(info.value) and "nothing was updated" in str(info.value)
    assert snapshot(opt) == before  # every parameter, the state and the step count
    for ps in (opt.params, twin.params):  # and the next good step is the twin's
        for p, g in zip(ps, [0.125, 0.75], strict=True):
            p.grad = g
    opt.step()
    twin.step()
    assert snapshot(opt) == snapshot(twin)


def test_adams_array_step_is_its_step_with_the_same_state() -> None:
    """``step_arrays`` and ``step`` make the same update from the same state, bit for
    bit, and either continues from the other's state (its true state at every step)."""
    start = [0.5, -1.25, 3.0]
    grads = [[0.25, -0.5, 1e-3], [0.125, 0.75, -2.0], [-1.0, 0.0, 0.5], [0.3, 0.3, 0.3]]
    scalar = Adam([Value(x) for x in start], lr=0.05, betas=(0.8, 0.99), weight_decay=0.1)
    arrays = Adam([Value(x) for x in start], lr=0.05, betas=(0.8, 0.99), weight_decay=0.1)
    theta = np.array(start)
    for k, g in enumerate(grads):
        for p, gi in zip(scalar.params, g, strict=True):
            p.grad = gi
        scalar.step()
        if k == 2:  # a checkpoint of the array path, resumed by a new optimiser
            saved = json.loads(json.dumps(arrays.state_dict()))
            arrays = Adam([Value(x) for x in theta], lr=1.0)
            arrays.load_state_dict(saved)
        theta = arrays.step_arrays(theta, np.array(g))
        assert theta.tolist() == [p.data for p in scalar.params]
        assert arrays.state_dict() == scalar.state_dict()
        assert arrays.steps == k + 1 and any(arrays.m) and any(arrays.v)
    assert [p.data for p in arrays.params] != theta.tolist()  # the Values are the caller's


def test_a_failing_array_step_changes_nothing() -> None:
    opt = Adam([Value(0.5), Value(-1.0)], lr=0.1)
    theta = opt.step_arrays(np.array([0.5, -1.0]), np.array([0.25, -0.5]))
    before = opt.state_dict()
    with pytest.raises(NumericOverflowError, match=r"running state of parameter 1.*step 2"):
        opt.step_arrays(theta, np.array([1.0, 1e200]))
    assert opt.state_dict() == before
    with pytest.raises(ValueError, match="need 2 numbers each"):
        opt.step_arrays(theta, np.array([1.0]))


def test_a_large_but_finite_step_is_not_mistaken_for_divergence() -> None:
    params = [Value(1e308), Value(1e308)]  # their sum overflows; each is finite
    opt = SGD(params, lr=1.0)
    for p in params:
        p.grad = -1e307
    opt.step()
    assert [p.data for p in params] == [1e308 + 1e307] * 2


def test_duplicated_parameters_are_refused() -> None:
    a, b = Value(1.0), Value(2.0)
    for make in (SGD, Adam):
        with pytest.raises(ValueError, match=r"parameter 2 is parameter 0 again"):
            make([a, b, a], lr=0.1)
    opt = SGD([a, b], lr=0.1)
    assert opt.params == (a, b)  # fixed: a tuple


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
