"""Grad mode: per thread and per asyncio task; set_grad_enabled, no_grad, enable_grad."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from chainrule import Value, enable_grad, is_grad_enabled, no_grad, set_grad_enabled


def training_step(w: Value, x: float) -> float:
    """d/dw of tanh(w x) + w², computed with backward(); the exact value is known."""
    w.grad = 0.0
    out = (w * x).tanh() + w * w
    out.backward()
    return w.grad


def expected_grad(w: float, x: float) -> float:
    import math

    return (1.0 - math.tanh(w * x) ** 2) * x + 2.0 * w


def test_no_grad_in_another_thread_leaves_this_thread_recording() -> None:
    entered, release = threading.Event(), threading.Event()
    seen: list[bool] = []

    def evaluator() -> None:
        with no_grad():
            entered.set()
            release.wait()
            seen.append(is_grad_enabled())

    t = threading.Thread(target=evaluator)
    t.start()
    try:
        entered.wait()
        assert is_grad_enabled()
        w = Value(0.3)
        assert training_step(w, 2.0) == pytest.approx(expected_grad(0.3, 2.0), rel=1e-15)
    finally:
        release.set()
        t.join()
    assert seen == [False]
    assert is_grad_enabled()


def test_overlapping_no_grad_blocks_in_two_threads_restore_each_thread() -> None:
    """A enters, B enters, A leaves, B leaves: a process-wide flag would stay off."""
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    after: dict[str, bool] = {}

    def a() -> None:
        with no_grad():
            a_in.set()
            b_in.wait()
        after["a"] = is_grad_enabled()
        a_out.set()

    def b() -> None:
        a_in.wait()
        with no_grad():
            b_in.set()
            a_out.wait()
        after["b"] = is_grad_enabled()

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert after == {"a": True, "b": True}
    assert is_grad_enabled()
    w = Value(-0.4)
    assert training_step(w, 1.5) == pytest.approx(expected_grad(-0.4, 1.5), rel=1e-15)


def test_training_and_evaluating_threads_run_concurrently() -> None:
    """Real threads, no ordering imposed: every training step's gradient is right."""
    stop = threading.Event()
    evaluated: list[int] = []
    errors: list[BaseException] = []

    def evaluate() -> None:
        try:
            v = Value(0.5)
            n = 0
            while not stop.is_set():
                with no_grad():
                    for _ in range(50):
                        y = (v * 3.0).tanh() * v
                        assert y._prev == ()
                    n += 1
            evaluated.append(n)
        except BaseException as exc:  # reported to the main thread
            errors.append(exc)

    def train(results: list[float], seed: float) -> None:
        try:
            for k in range(400):
                w = Value(seed + k * 1e-3)
                x = 1.0 + (k % 7) * 0.25
                got = training_step(w, x)
                assert got == pytest.approx(expected_grad(w.data, x), rel=1e-15), k
                results.append(got)
        except BaseException as exc:
            errors.append(exc)

    evaluator = threading.Thread(target=evaluate)
    trained: list[list[float]] = [[], []]
    trainers = [threading.Thread(target=train, args=(trained[i], 0.1 * i)) for i in range(2)]
    evaluator.start()
    for t in trainers:
        t.start()
    for t in trainers:
        t.join()
    stop.set()
    evaluator.join()
    assert errors == []
    assert [len(r) for r in trained] == [400, 400]
    assert evaluated and evaluated[0] > 0


def test_a_task_awaiting_inside_no_grad_does_not_affect_other_tasks() -> None:
    async def main() -> tuple[list[float], bool]:
        inside, done = asyncio.Event(), asyncio.Event()

        async def evaluator() -> bool:
            with no_grad():
                inside.set()
                await done.wait()
                return is_grad_enabled()

        async def trainer() -> list[float]:
            await inside.wait()
            grads = []
            for k in range(20):
                w = Value(0.1 * k)
                grads.append(training_step(w, 2.0))
                await asyncio.sleep(0)  # let the evaluator run in between
            done.set()
            return grads

        grads, evaluator_mode = await asyncio.gather(trainer(), evaluator())
        return grads, evaluator_mode

    grads, evaluator_mode = asyncio.run(main())
    assert grads == pytest.approx([expected_grad(0.1 * k, 2.0) for k in range(20)], rel=1e-15)
    assert evaluator_mode is False
    assert is_grad_enabled()


def test_decorated_coroutine_runs_without_grad_only_in_its_own_task() -> None:
    async def main() -> tuple[bool, bool, float]:
        gate = asyncio.Event()

        @no_grad
        async def infer(v: Value) -> bool:
            await gate.wait()
            return (v * v)._prev == () and not is_grad_enabled()

        task = asyncio.create_task(infer(Value(2.0)))
        await asyncio.sleep(0)  # infer is now suspended inside its no_grad body
        here = is_grad_enabled()
        w = Value(0.7)
        g = training_step(w, -1.0)
        gate.set()
        return await task, here, g

    detached, here, g = asyncio.run(main())
    assert detached and here
    assert g == pytest.approx(expected_grad(0.7, -1.0), rel=1e-15)


def test_set_grad_enabled_as_call_context_manager_and_decorator() -> None:
    assert is_grad_enabled()
    with set_grad_enabled(False):
        assert not is_grad_enabled()
        with set_grad_enabled(True):
            assert is_grad_enabled()
        assert not is_grad_enabled()
    assert is_grad_enabled()

    @set_grad_enabled(False)
    def infer(v: Value) -> Value:
        assert not is_grad_enabled()
        return v * v

    assert is_grad_enabled()  # decorating changes nothing until the call
    assert infer(Value(3.0))._prev == ()
    assert is_grad_enabled()

    set_grad_enabled(False)  # as a call: from now on
    try:
        assert not is_grad_enabled()
        assert (Value(1.0) + 1.0)._prev == ()
    finally:
        set_grad_enabled(True)
    assert is_grad_enabled()
    with pytest.raises(TypeError, match="True or False"):
        set_grad_enabled(0)  # type: ignore[arg-type]


def test_bare_and_called_decorators_and_enable_grad_inside_no_grad() -> None:
    @no_grad
    def bare(v: Value) -> Value:
        return v * 2.0

    @no_grad()
    def called(v: Value) -> Value:
        return v * 2.0

    @enable_grad
    def recording(v: Value) -> Value:
        return v * 2.0

    v = Value(1.5)
    assert bare(v)._prev == () and called(v)._prev == ()
    assert bare.__name__ == "bare"
    with no_grad():
        assert recording(v)._prev[0] is v
        assert not is_grad_enabled()
    with pytest.raises(ValueError, match="boom"), no_grad():
        raise ValueError("boom")
    assert is_grad_enabled()


def test_one_no_grad_object_entered_twice_and_from_two_threads() -> None:
    mode = no_grad()
    with mode:
        with mode:
            assert not is_grad_enabled()
        assert not is_grad_enabled()
    assert is_grad_enabled()

    inside, release = threading.Event(), threading.Event()
    after: list[bool] = []

    def other() -> None:
        with mode:
            inside.set()
            release.wait()
        after.append(is_grad_enabled())

    t = threading.Thread(target=other)
    t.start()
    inside.wait()
    with mode:
        assert not is_grad_enabled()
    assert is_grad_enabled()  # this thread's exit undid this thread's entry
    release.set()
    t.join()
    assert after == [True]


def test_decorated_generator_runs_its_steps_without_grad_and_the_caller_with() -> None:
    w = Value(0.5)

    @no_grad
    def predictions(xs: list[float]) -> Iterator[Value]:
        for x in xs:
            assert not is_grad_enabled()
            received = yield w * x
            assert received in (None, "ping")
        return None

    gen = predictions([1.0, 2.0, 3.0])
    first = next(gen)
    assert first._prev == () and first.data == 0.5
    assert is_grad_enabled()  # the caller records between steps
    assert (w * 2.0)._prev[0] is w
    assert gen.send("ping").data == 1.0
    assert is_grad_enabled()
    assert [p.data for p in gen] == [1.5]
    assert is_grad_enabled()

    @no_grad
    def catcher() -> Iterator[bool]:
        try:
            yield is_grad_enabled()
        except KeyError:
            yield is_grad_enabled()

    g = catcher()
    assert next(g) is False
    assert g.throw(KeyError("k")) is False  # the handler also runs without grad
    g.close()
    assert is_grad_enabled()


def test_async_generator_functions_are_refused_clearly() -> None:
    async def agen() -> object:
        yield 1

    with pytest.raises(TypeError, match="async generator"):
        no_grad(agen)
