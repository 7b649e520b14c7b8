"""Losses against PyTorch's, and their stability and input checks."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F

from chainrule import Value, topological_order
from chainrule.losses import (
    accuracy,
    binary_cross_entropy_with_logits,
    hinge,
    l2,
    log_softmax,
    mse,
    softmax_cross_entropy,
)


def leaves(values):
    return [Value(v) for v in values], torch.tensor(values, dtype=torch.float64, requires_grad=True)


def check(ours_loss, ours_leaves, torch_loss, torch_leaves) -> None:
    ours_loss.backward()
    torch_loss.backward()
    assert ours_loss.data == pytest.approx(torch_loss.item(), rel=1e-12)
    assert [v.grad for v in ours_leaves] == pytest.approx(torch_leaves.grad.tolist(), rel=1e-10)


def test_mse_mean_and_sum() -> None:
    xs, t = leaves([0.5, -1.0, 2.0])
    check(
        mse(xs, [1.0, -1.0, 0.0]),
        xs,
        F.mse_loss(t, torch.tensor([1.0, -1.0, 0.0], dtype=torch.float64)),
        t,
    )
    assert mse([Value(1.0), Value(3.0)], [0.0, 0.0], reduction="sum").data == 10.0


def test_hinge_matches_torch_and_needs_signed_labels() -> None:
    xs, t = leaves([0.5, -2.0, 0.3, 1.5])
    y = [1.0, -1.0, -1.0, -1.0]
    check(hinge(xs, y), xs, torch.relu(1 - torch.tensor(y, dtype=torch.float64) * t).mean(), t)
    with pytest.raises(ValueError, match=r"labels must be -1 or \+1"):
        hinge([Value(1.0)], [0])


def test_bce_with_logits_matches_torch_and_is_stable() -> None:
    xs, t = leaves([0.5, -2.0, 30.0, -800.0, 800.0])
    y = [1.0, 0.0, 0.0, 1.0, 1.0]
    expected = F.binary_cross_entropy_with_logits(t, torch.tensor(y, dtype=torch.float64))
    check(binary_cross_entropy_with_logits(xs, y), xs, expected, t)
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        binary_cross_entropy_with_logits([Value(1.0)], [-1])


def test_softmax_cross_entropy_matches_torch_even_for_huge_logits() -> None:
    rows = [[1.0, 2.0, -1.0], [1000.0, -1000.0, 999.0], [0.1, 0.1, 0.1]]
    labels = [1, 2, 0]
    ours = [[Value(v) for v in row] for row in rows]
    t = torch.tensor(rows, dtype=torch.float64, requires_grad=True)
    loss = softmax_cross_entropy(ours, labels)
    loss.backward()
    expected = F.cross_entropy(t, torch.tensor(labels))
    expected.backward()
    assert loss.data == pytest.approx(expected.item(), rel=1e-12)
    for row, trow in zip(ours, t.grad.tolist(), strict=True):
        assert [v.grad for v in row] == pytest.approx(trow, rel=1e-9, abs=1e-15)
    with pytest.raises(ValueError, match=r"label 3 is not a class index 0\.\.2"):
        softmax_cross_entropy(ours[:1], [3])
    assert sum(v.exp().data for v in log_softmax([Value(0.2), Value(-1.0)])) == pytest.approx(1.0)


def test_l2_and_accuracy() -> None:
    ps, t = leaves([0.5, -2.0, 3.0])
    check(l2(ps), ps, (t * t).sum(), t)
    assert accuracy([1, 0, 1, 1], [1, 1, 1, 1]) == 0.75
    with pytest.raises(ValueError, match="as many predictions as labels"):
        accuracy([1], [1, 0])


@pytest.mark.parametrize("loss", [mse, hinge])
def test_mismatched_lengths_and_empty_input(loss) -> None:
    with pytest.raises(ValueError, match="2 predictions but 1 targets"):
        loss([Value(1.0), Value(2.0)], [1.0])
    with pytest.raises(ValueError, match="no examples"):
        loss([], [])
    with pytest.raises(ValueError, match="reduction must be"):
        loss([Value(1.0)], [1.0], reduction="max")


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_bce_with_logits_far_out_matches_torch_without_overflow(reduction) -> None:
    logits = [800.0, -800.0, 800.0, -800.0, 30.0, -30.0, 40.0, 0.0]
    y = [0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0]
    xs, t = leaves(logits)
    expected = F.binary_cross_entropy_with_logits(
        t, torch.tensor(y, dtype=torch.float64), reduction=reduction
    )
    ours = binary_cross_entropy_with_logits(xs, y, reduction=reduction)
    check(ours, xs, expected, t)
    assert ours.data > 1600 / (1 if reduction == "sum" else len(y))  # 800 twice, not inf


def test_softmax_cross_entropy_far_out_matches_torch_without_overflow() -> None:
    rows = [[800.0, -800.0, 0.0], [-800.0, 800.0, 799.0], [800.0, 800.0, 800.0], [-800.0, 0.0, 1.5]]
    labels = [1, 2, 0, 0]
    ours = [[Value(v) for v in row] for row in rows]
    t = torch.tensor(rows, dtype=torch.float64, requires_grad=True)
    loss = softmax_cross_entropy(ours, labels, reduction="sum")
    loss.backward()
    expected = F.cross_entropy(t, torch.tensor(labels), reduction="sum")
    expected.backward()
    assert loss.data == pytest.approx(expected.item(), rel=1e-12)
    for row, trow in zip(ours, t.grad.tolist(), strict=True):
        assert [v.grad for v in row] == pytest.approx(trow, rel=1e-9, abs=1e-15)
    log_probs = log_softmax([Value(v) for v in rows[1]])
    reference = F.log_softmax(torch.tensor(rows[1], dtype=torch.float64), dim=0).tolist()
    assert [v.data for v in log_probs] == pytest.approx(reference, rel=1e-12)


def test_cross_entropies_are_built_from_the_fused_ops() -> None:
    def ops(root: Value) -> set[str]:
        return {node._op for node in topological_order(root)} - {""}

    bce = binary_cross_entropy_with_logits([Value(3.0), Value(-1.0)], [1.0, 0.0])
    assert ops(bce) == {"softplus", "*", "-", "sum"}  # softplus(z) - y·z, then the mean
    row = [Value(1.0), Value(2.0)]
    assert ops(softmax_cross_entropy([row], [0], reduction="sum")) == {"logsumexp", "-", "sum"}
    assert {"logsumexp", "-"} == set().union(*(ops(v) for v in log_softmax(row)))


@pytest.fixture
def data_reads(monkeypatch):
    """Record every read of ``Value.data`` made outside the engine, e.g. by a loss.

    ``chainrule.compile`` traces a loss once and replays it; a loss that reads ``data``
    can branch on a number, and then the replay would be wrong. The engine's own ops
    read ``data`` to compute their values; that is not user code and is not recorded.
    """
    slot = Value.data  # the __slots__ descriptor that stores the float
    reads: list[str] = []

    def read(self: Value) -> float:
        caller = sys._getframe(1)
        module = caller.f_globals.get("__name__")
        if module not in (
            "chainrule.core.value",
            "chainrule.core.rules",
            "chainrule.core.traverse",
        ):
            reads.append(f"{module}.{caller.f_code.co_name} line {caller.f_lineno}")
        return slot.__get__(self, Value)

    monkeypatch.setattr(Value, "data", property(read, slot.__set__))
    return reads


def test_losses_never_read_the_data_of_a_value(data_reads) -> None:
    def vs(*xs: float) -> list[Value]:
        return [Value(x) for x in xs]

    _ = vs(1.0)[0].data  # the recorder does see a read from outside the engine
    assert len(data_reads) == 1 and "test_losses" in data_reads[0]
    data_reads.clear()
    calls = {
        "mse": lambda: mse(vs(0.5, -1.0, 2.0), [1.0, -1.0, 0.0]),
        "mse sum": lambda: mse(vs(0.5, -1.0), [1.0, -1.0], reduction="sum"),
        "hinge": lambda: hinge(vs(0.5, -2.0, 0.3), [1.0, -1.0, -1.0]),
        "bce": lambda: binary_cross_entropy_with_logits(vs(0.5, -2.0, 30.0), [1.0, 0.0, 1.0]),
        "log_softmax": lambda: log_softmax(vs(1.0, 2.0, -1.0)),
        "softmax_cross_entropy": lambda: softmax_cross_entropy(
            [vs(1.0, 2.0, -1.0), vs(1000.0, -1000.0, 999.0)], [1, 2]
        ),
        "l2": lambda: l2(vs(0.5, -2.0)),
    }
    for name, call in calls.items():
        call()
        assert data_reads == [], f"{name} read .data: {data_reads}"
