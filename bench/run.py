"""Run every benchmark and print the table: ``make bench`` (or ``python bench/run.py``).

Each figure comes from separate processes, one engine each, the engines alternating
round by round so that a slow spell of the machine hits them all alike; medians are
reported. ``--write bench/RESULTS.md`` also records the table with the machine, the
commit and the command. ``--only vmap`` measures issue 19's section alone (``make
bench-vmap``, a few minutes).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from report import machine, write_block  # noqa: E402


def work(workload: str, *extra: str, script: str = "workloads.py") -> dict[str, Any]:
    """Run one workload on one engine in a fresh process; its JSON result."""
    done = subprocess.run(
        [sys.executable, str(HERE / script), workload, *extra],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def try_work(workload: str, *extra: str, script: str, timeout: float) -> dict[str, Any]:
    """:func:`work`, but a process that fails, crashes or outlives ``timeout`` seconds gives
    ``{"error": "<one line>"}`` instead of stopping the run (it is killed on a timeout)."""
    try:
        done = subprocess.run(
            [sys.executable, str(HERE / script), workload, *extra],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        return {"error": f"exit code {done.returncode}: {last[:200]}"}
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def rotate(engines: list[str], r: int) -> list[str]:
    return engines[r % len(engines) :] + engines[: r % len(engines)]


def demo(rounds: int) -> tuple[dict[str, float], list[float]]:
    times: dict[str, list[float]] = {"chainrule": [], "micrograd": [], "torch": []}
    losses: dict[str, list[float]] = {}
    for r in range(rounds):
        for engine in rotate(list(times), r):
            result = work("demo", engine)
            times[engine] += result["seconds"][1:]  # the first step warms up
            losses[engine] = result["loss"]
    n = min(len(v) for v in losses.values())
    for engine in ("micrograd", "torch"):  # the same mathematics in every engine
        for a, b in zip(losses["chainrule"][:n], losses[engine][:n], strict=True):
            assert abs(a - b) <= 1e-12 * max(1.0, abs(b)), (engine, a, b)
    return {e: median(t) for e, t in times.items()}, losses["chainrule"]


def graphs(rounds: int) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for workload in ("wide", "chain"):
        runs: dict[str, list[dict[str, Any]]] = {"chainrule": [], "micrograd": []}
        for r in range(rounds):
            for engine in rotate(list(runs), r):
                if engine == "micrograd" and workload == "chain" and runs[engine]:
                    continue  # it fails the same way every time
                runs[engine].append(work(workload, engine))
        for engine, results in runs.items():
            if "error" in results[0]:
                out[f"{workload}/{engine}"] = {"error": results[0]["error"]}
                continue
            total = median([x["total"] for x in results])
            out[f"{workload}/{engine}"] = {
                "nodes": results[0]["nodes"],
                "total": total,
                "build": median([x["build"] for x in results]),
                "backward": median([x["backward"] for x in results]),
                "rate": results[0]["nodes"] / total,
            }
    return out


# -- eager per-node workloads: micrograd's own nn, a small scalar GPT -----------------


def eager_workload(
    workload: str, engines: list[str], rounds: int, tol: float
) -> dict[str, dict[str, float]]:
    """Per engine: ``step``, a run's mean seconds per step (the first step warms up),
    median over the rounds, and ``gc``, the share of it the cyclic collector ran.

    A mean, not a median of steps: the GPT's names differ in length, and the collector's
    full passes fall on some steps and not on others. Checks the engines' losses agree.
    """
    runs: dict[str, list[dict[str, Any]]] = {e: [] for e in engines}
    for r in range(rounds):
        for engine in rotate(engines, r):
            runs[engine].append(work(workload, engine))
    out = {}
    for engine, results in runs.items():
        step = [statistics.fmean(x["seconds"][1:]) for x in results]
        gc_share = [sum(x["gc"][1:]) / sum(x["seconds"][1:]) for x in results]
        out[engine] = {"step": median(step), "gc": median(gc_share)}
        ours, reference = results[0]["loss"], runs[engines[0]][0]["loss"]
        n = min(len(ours), len(reference))
        for a, b in zip(ours[:n], reference[:n], strict=True):  # the same mathematics
            assert abs(a - b) <= tol * max(1.0, abs(b)), (workload, engine, a, b)
    return out


def eager(rounds: int) -> tuple[list[str], list[str]]:
    """The eager engine's per-node path: a table of its own, and rows for the targets table."""
    nn = eager_workload("micrograd_nn", ["chainrule", "micrograd", "tiny"], rounds, 1e-12)
    gpt = eager_workload("gpt", ["chainrule", "tiny"], rounds, 1e-9)
    base = nn["micrograd"]["step"]
    own = nn["chainrule"]["step"] * (1.0 - nn["chainrule"]["gc"])
    nn_ratio = base / nn["chainrule"]["step"]
    gpt_ratio = gpt["tiny"]["step"] / gpt["chainrule"]["step"]

    def row(name: str, engine: str, figures: dict[str, float], ratio: str) -> str:
        return (
            f"| {name} | {engine} | {figures['step'] * 1e3:.1f} ms | "
            f"{figures['gc'] * 100:.0f}% | {ratio} |"
        )

    table = [
        f"| eager per-node workload (a run's mean step, median of {rounds} runs) | engine | "
        "step | of which the collector | baseline ÷ engine |",
        "|---|---|---|---|---|",
        row(
            "micrograd 0.1.0's own `nn`, the demo step (`*`, `+` nodes: no `dot`)",
            "micrograd 0.1.0 (baseline)",
            nn["micrograd"],
            "1×",
        ),
        row("", "chainrule", nn["chainrule"], f"**{nn_ratio:.1f}×**"),
        f"| | chainrule, the collector's time taken out | {own * 1e3:.1f} ms | — | "
        f"{base / own:.1f}× |",
        row("", "40-line `Value` (reference)", nn["tiny"], f"{base / nn['tiny']['step']:.1f}×"),
        row(
            "small scalar GPT (`bench/scalar_gpt.py`), one name per step",
            "40-line `Value` (`bench/tiny_value.py`, baseline)",
            gpt["tiny"],
            "1×",
        ),
        row("", "chainrule", gpt["chainrule"], f"**{gpt_ratio:.2f}×**"),
    ]
    targets = [
        f"| micrograd's own `nn` on chainrule vs micrograd | ≥ 15× | {nn_ratio:.1f}× | "
        f"{'yes' if nn_ratio >= 15 else 'NO'} |",
        f"| scalar GPT step vs the 40-line `Value` | faster (> 1×) | {gpt_ratio:.2f}× | "
        f"{'yes' if gpt_ratio > 1 else 'NO'} |",
    ]
    return table, targets


# -- compiled steps: chainrule.compile against PyTorch, NumPy and eager ----------------


def compiled(
    rounds: int, torch_step: float, eager_losses: list[float]
) -> tuple[list[str], list[str]]:
    """The compiled step: a table of its own, and rows for the targets table."""
    loop, array, comp, ratio_steps = [], [], [], []
    for _ in range(rounds):
        result = work("demo", "compiled", "--steps", "100", script="compiled.py")
        loop += result["seconds"][1:]
        for a, b in zip(result["loss"], eager_losses, strict=False):  # same losses as eager
            assert abs(a - b) <= 1e-9 * max(1.0, abs(b)), ("compiled demo", a, b)
        array += work("demo_array", "compiled", "--steps", "100", script="compiled.py")["seconds"][
            1:
        ]
        timing = work("compile_time", "compiled", "--steps", "10", script="compiled.py")
        comp.append(timing["compile"])
        ratio_steps.append(timing["compile"] / timing["eager_step"])
    scale: dict[str, dict[str, float]] = {}
    for points, width in ((1000, 64), (10_000, 64)):
        key = f"{points:,} × {width}"
        runs: dict[str, list[dict[str, Any]]] = {"compiled": [], "numpy": []}
        for r in range(1 if points >= 10_000 else rounds):  # compiling 2.6M nodes is slow
            for engine in rotate(list(runs), r):
                extra = ["--points", str(points), "--width", str(width), "--steps", "10"]
                runs[engine].append(work("mlp", engine, *extra, script="compiled.py"))
        a, b = runs["compiled"][0], runs["numpy"][0]
        assert abs(a["loss"] - b["loss"]) <= 1e-9 * abs(b["loss"]), ("mlp", a, b)
        assert abs(a["grad_norm"] - b["grad_norm"]) <= 1e-9 * b["grad_norm"], ("mlp", a, b)
        scale[key] = {
            e: median([t for x in results for t in x["seconds"][1:]]) for e, results in runs.items()
        }
        scale[key]["compile"] = median([x["compile"] for x in runs["compiled"]])
    # The chain with the collector on, as users run, and off: the engines' own work. The
    # target is judged on the second, since the collector's pauses follow the heap's
    # history (compiling leaves a different heap than building graphs does), which
    # moved the ratio with the collector on by ±10% between otherwise equal versions.
    chain: dict[str, float] = {}
    for flags in ((), ("--no-gc",)):
        chains: dict[str, list[float]] = {"eager": [], "compiled": []}
        for r in range(rounds):
            for engine in rotate(list(chains), r):
                steps = work("chain", engine, "--steps", "10", *flags, script="compiled.py")
                chains[engine] += steps["seconds"][1:]
        suffix = "_nogc" if flags else ""
        chain.update({e + suffix: median(t) for e, t in chains.items()})

    loop_t, array_t = median(loop), median(array)
    comp_steps = median(ratio_steps)
    table = [
        "| compiled (`chainrule.compile`) | time | vs PyTorch (f64, 1 thread) |",
        "|---|---|---|",
        f"| demo step, the user's loop with one line added | {loop_t * 1e3:.3f} ms | "
        f"{loop_t / torch_step:.2f}× |",
        f"| demo step, `value_and_grad` array path | {array_t * 1e3:.3f} ms | "
        f"{array_t / torch_step:.2f}× |",
        f"| compiling the demo (two traces, checks, planning, first replay) | "
        f"{median(comp) * 1e3:.0f} ms = {comp_steps:.1f} eager steps | |",
        "",
        "| moons, points × width (MLP 2-W-W-1, full batch) | compiled step | "
        "hand-written NumPy step | ratio | compile time |",
        "|---|---|---|---|---|",
        *[
            f"| {key} | {v['compiled'] * 1e3:.2f} ms | {v['numpy'] * 1e3:.2f} ms | "
            f"{v['compiled'] / v['numpy']:.2f}× | {v['compile']:.1f} s |"
            for key, v in scale.items()
        ],
        "",
        f"| 20,000-deep chain `y = tanh(y·w + 0.1)`, build + backward | eager "
        f"{chain['eager'] * 1e3:.1f} ms | compiled (falls back to eager) "
        f"{chain['compiled'] * 1e3:.1f} ms | |",
        f"| the same, the collector off during the steps | eager "
        f"{chain['eager_nogc'] * 1e3:.1f} ms | compiled (falls back to eager) "
        f"{chain['compiled_nogc'] * 1e3:.1f} ms | |",
    ]
    big = scale["10,000 × 64"]
    big_ratio = big["compiled"] / big["numpy"]
    chain_ratio = chain["compiled_nogc"] / chain["eager_nogc"]
    chain_ratio_gc = chain["compiled"] / chain["eager"]
    targets = [
        f"| compiled demo step, user's loop vs PyTorch | faster (< 1×) | "
        f"{loop_t / torch_step:.2f}× | {'yes' if loop_t < torch_step else 'NO'} |",
        f"| compiled demo step, array path vs PyTorch | ≤ 0.5× | {array_t / torch_step:.2f}× | "
        f"{'yes' if array_t <= 0.5 * torch_step else 'NO'} |",
        f"| compiled step at 10,000 × 64 vs hand-written NumPy | ≤ 1.7× | {big_ratio:.2f}× | "
        f"{'yes' if big_ratio <= 1.7 else 'NO'} |",
        f"| compiling the demo | ≤ 10 eager steps | {comp_steps:.1f} | "
        f"{'yes' if comp_steps <= 10 else 'NO'} |",
        f"| 20,000-deep chain, compiled vs eager | never slower (≤ 1×, within noise) | "
        f"{chain_ratio:.2f}× (collector on: {chain_ratio_gc:.2f}×) | "
        f"{'yes' if chain_ratio <= 1.05 else 'NO'} |",
    ]
    return table, targets


# -- the library GPT: chainrule gpt train, eager and compiled, against PyTorch ----------


def gpt(rounds: int) -> tuple[list[str], list[str]]:
    """``chainrule gpt train``'s 1,000 steps: a table of its own, and a target row."""
    runs: dict[str, list[dict[str, Any]]] = {"eager": [], "compiled": [], "torch": []}
    for r in range(rounds):
        for engine in rotate(list(runs), r):
            runs[engine].append(work(engine, "--steps", "1000", script="gpt_model.py"))
    losses = {e: results[0]["loss"] for e, results in runs.items()}
    for engine in ("compiled", "torch"):  # the same mathematics in every engine
        for a, b in zip(losses["eager"], losses[engine], strict=True):
            assert abs(a - b) <= 1e-9 * max(1.0, abs(a)), ("gpt", engine, a, b)
    total = {e: median([sum(x["seconds"]) for x in res]) for e, res in runs.items()}
    step = {e: median([t for x in res for t in x["seconds"][50:]]) for e, res in runs.items()}
    ratio = total["eager"] / total["compiled"]
    table = [
        "| GPT on names, 1,000 steps of one name (`chainrule gpt train`) | 1,000 steps "
        "end to end | median step (after the first 50) |",
        "|---|---|---|",
        f"| chainrule, eager | {total['eager']:.2f} s | {step['eager'] * 1e3:.2f} ms |",
        f"| chainrule, compiled (one program per name length, compiling included) | "
        f"{total['compiled']:.2f} s (**{ratio:.1f}×** faster) | "
        f"{step['compiled'] * 1e3:.2f} ms ({step['eager'] / step['compiled']:.1f}× faster) |",
        f"| PyTorch float64, one thread, one name per step | {total['torch']:.2f} s | "
        f"{step['torch'] * 1e3:.2f} ms (compiled ÷ PyTorch: "
        f"{step['compiled'] / step['torch']:.2f}×) |",
    ]
    targets = [
        f"| GPT training, compiled vs eager, 1,000 steps end to end | ≥ 10× | {ratio:.1f}× | "
        f"{'yes' if ratio >= 10 else 'NO'} |",
    ]
    return table, targets


# -- issue 19: chainrule.vmap against NumPy, PyTorch and JAX; GPT on batches of names ----

VMAP_ENGINES = {
    "chainrule": "chainrule (`vmap` + `compile`)",
    "numpy": "NumPy, written by hand (the floor)",
    "torch": "PyTorch float64, 1 thread",
    "jax": "JAX float64 `jit(value_and_grad)`, 1 thread",
}
VMAP_TOL = 1e-9  # absolute for figures up to 1, relative above
VMAP_POINTS = [1000, 10_000, 100_000]  # issue 19's sizes


def vmap_steps(points: int) -> int:
    """Calls per process, the first included: ~0.5-2 s of NumPy steps, at least 10."""
    return max(10, min(50, 3_000_000 // points))


def vmap_mlp(rounds: int, sizes: list[int], timeout: float) -> dict[int, dict[str, Any]]:
    """Per size, per engine: medians of the step and the first call, the largest memory
    growth of the rounds, and the largest difference from the NumPy step's loss and
    gradient; or ``{"error": ...}`` for an engine that failed (not run again)."""
    out: dict[int, dict[str, Any]] = {}
    for points in sizes:
        runs: dict[str, list[dict[str, Any]]] = {e: [] for e in VMAP_ENGINES}
        extra = ("--points", str(points), "--steps", str(vmap_steps(points)))
        for r in range(rounds):
            for engine in rotate(list(runs), r):
                if runs[engine] and "error" in runs[engine][0]:
                    continue  # it fails the same way every time
                runs[engine].append(try_work(engine, *extra, script="vmap.py", timeout=timeout))
        reference = runs["numpy"][0]
        out[points] = {e: summarize(results, reference) for e, results in runs.items()}
    return out


def summarize(results: list[dict[str, Any]], reference: dict[str, Any]) -> dict[str, Any]:
    if "error" in results[0]:
        return {"error": results[0]["error"]}
    memory = [x["memory"] for x in results]
    diffs = [abs(results[0]["loss"] - reference["loss"])]
    within = diffs[0] <= VMAP_TOL * max(1.0, abs(reference["loss"]))
    for a, b in zip(results[0]["grad"], reference["grad"], strict=True):
        diffs.append(abs(a - b))
        within = within and diffs[-1] <= VMAP_TOL * max(1.0, abs(b))
    return {
        "step": median([t for x in results for t in x["seconds"]]),
        "first": median([x["first"] for x in results]),
        "memory": None if None in memory else max(memory),
        "cpu": median([x["cpu_per_wall"] for x in results]),
        "diff": max(diffs),
        "equal": within,
    }


def vmap_gpt(rounds: int, names: int, timeout: float) -> dict[str, dict[str, Any]]:
    """Names per second on the first ``names`` shuffled names: per engine, the median
    rate, or ``{"error"|"unavailable": ...}``; and the chainrule batch engine's largest
    loss difference from PyTorch's on the same batches."""
    runs: dict[str, list[dict[str, Any]]] = {"one_name": [], "batch": [], "torch_batch": []}
    for r in range(rounds):
        for engine in rotate(list(runs), r):
            if runs[engine] and not {"error", "unavailable"}.isdisjoint(runs[engine][0]):
                continue
            extra = ("--names", str(names), "--batch-size", "32")
            runs[engine].append(try_work(engine, *extra, script="gpt_model.py", timeout=timeout))
    out: dict[str, dict[str, Any]] = {}
    for engine, results in runs.items():
        first = results[0]
        if "error" in first or "unavailable" in first:
            out[engine] = first
            continue
        out[engine] = {"rate": median([x["names"] / x["total"] for x in results])}
    if "rate" in out["batch"] and "rate" in out["torch_batch"]:
        ours, theirs = runs["batch"][0]["loss"], runs["torch_batch"][0]["loss"]
        n = min(len(ours), len(theirs))
        out["batch"]["loss_diff"] = max(
            abs(a - b) for a, b in zip(ours[:n], theirs[:n], strict=True)
        )
    return out


def ms(x: float) -> str:
    return f"{x * 1e3:.2f} ms"


def ratio(a: dict[str, Any], b: dict[str, Any]) -> str:
    return f"{a['step'] / b['step']:.2f}×" if "step" in a and "step" in b else "—"


def vmap_table(mlp: dict[int, dict[str, Any]], gpt: dict[str, dict[str, Any]], names: int) -> str:
    rows = [
        "| moons, MLP 2-64-64-1 ReLU, hinge + 1e-4·L2, full batch | engine | step (median) | "
        "÷ NumPy | ÷ PyTorch | ÷ JAX | first call + backward (compiling) | "
        "peak memory growth | CPU ÷ wall | max \\|diff\\| vs NumPy |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for points, engines in mlp.items():
        for k, (engine, r) in enumerate(engines.items()):
            where = f"{points:,} points" if k == 0 else ""
            name = VMAP_ENGINES[engine]
            if "error" in r:
                rows.append(
                    f"| {where} | {name} | failed: {r['error']} | — | — | — | — | — | — | — |"
                )
                continue
            mem = "—" if r["memory"] is None else f"{r['memory'] / 1e6:.0f} MB"
            rows.append(
                f"| {where} | {name} | {ms(r['step'])} | {ratio(r, engines['numpy'])} | "
                f"{ratio(r, engines['torch'])} | {ratio(r, engines['jax'])} | "
                f"{r['first']:.3f} s | {mem} | {r['cpu']:.2f} | {r['diff']:.1e} |"
            )
    rows += [
        "",
        f"| GPT on names (`chainrule gpt train`'s model), the first {names:,} shuffled names | "
        "names per step | names per second (end to end, compiling included) | "
        "÷ one name per step | ÷ PyTorch on the same batches |",
        "|---|---|---|---|---|",
    ]
    labels = {
        "one_name": ("chainrule, compiled, one name per step (today's trainer: the baseline)", 1),
        "batch": ("chainrule, `batch_size=32` (issue 19)", 32),
        "torch_batch": ("PyTorch float64, 1 thread, batches of 32", 32),
    }
    base, torch = gpt["one_name"].get("rate"), gpt["torch_batch"].get("rate")
    for engine, (label, per_step) in labels.items():
        r = gpt[engine]
        if "rate" not in r:
            reason = r.get("unavailable") or f"failed: {r['error']}"
            rows.append(f"| {label} | {per_step} | {reason} | — | — |")
            continue
        over_base = f"{r['rate'] / base:.1f}×" if base else "—"
        over_torch = f"{r['rate'] / torch:.2f}×" if torch else "—"
        rows.append(f"| {label} | {per_step} | {r['rate']:,.0f} | {over_base} | {over_torch} |")
    if "loss_diff" in gpt["batch"]:
        rows += [
            "",
            f"chainrule's batch losses vs PyTorch's: max |diff| {gpt['batch']['loss_diff']:.1e}.",
        ]
    return "\n".join(rows)


def judge(
    mlp: dict[int, dict[str, Any]], sizes: list[int], figure: Any, fmt: Any, ok: Any
) -> tuple[str, str]:
    """A target over ``sizes`` on the chainrule engine: the measured text and PASS / MISS
    (or "not measured" when a size was not run and none run missed)."""
    parts, verdicts = [], []
    for points in sizes:
        r = mlp.get(points, {}).get("chainrule")
        if r is None:
            parts.append(f"{points:,}: not run")
            verdicts.append(None)
        elif "error" in r:
            parts.append(f"{points:,}: failed ({r['error']})")
            verdicts.append(False)
        else:
            value = figure(r, mlp[points])
            parts.append(f"{points:,}: {fmt(value, mlp[points])}")
            verdicts.append(value is not None and ok(value))
    if False in verdicts:
        met = "MISS"
    elif None in verdicts:
        met = "not measured"
    else:
        met = "PASS"
    errors = {mlp[p]["chainrule"].get("error") for p in sizes if p in mlp}
    if len(errors) == 1 and None not in errors and None not in verdicts:  # one reason for all
        return f"failed at every size ({errors.pop()})", met
    return "; ".join(parts), met


def vmap_targets(mlp: dict[int, dict[str, Any]], gpt: dict[str, dict[str, Any]]) -> list[str]:
    """Issue 19's targets, each measured on the chainrule engine, PASS or MISS."""

    def others(value: float, engines: dict[str, Any]) -> str:
        ours = engines["chainrule"]["step"]
        text = [f"**{value:.2f}×**"]
        text += [
            f"{label} {ours / engines[e]['step']:.2f}×"
            for e, label in (("torch", "÷ PyTorch"), ("jax", "÷ JAX"))
            if "step" in engines[e]
        ]
        return ", ".join(text)

    compiling = judge(
        mlp,
        VMAP_POINTS,
        lambda r, _: r["first"],
        lambda v, _: f"{v:.2f} s",
        lambda v: v <= 3.0,
    )
    step = judge(
        mlp,
        [10_000, 100_000],
        lambda r, e: r["step"] / e["numpy"]["step"] if "step" in e["numpy"] else None,
        lambda v, e: "no NumPy figure" if v is None else others(v, e),
        lambda v: v <= 1.3,
    )
    memory = judge(
        mlp,
        [100_000],
        lambda r, _: r["memory"],
        lambda v, _: "not measurable here" if v is None else f"{v / 1e6:.0f} MB",
        lambda v: v <= 800e6,
    )
    equal = judge(
        mlp,
        sorted(mlp),
        lambda r, _: (r["diff"], r["equal"]),
        lambda v, _: f"max \\|diff\\| {v[0]:.1e}",
        lambda v: v[1],
    )
    base, ours, torch = gpt["one_name"], gpt["batch"], gpt["torch_batch"]
    if "rate" in ours and "rate" in base:
        gain = ours["rate"] / base["rate"]
        vs_torch = (
            f" (÷ PyTorch on the same batches {ours['rate'] / torch['rate']:.2f}×)"
            if "rate" in torch
            else ""
        )
        batch = (f"**{gain:.1f}×**{vs_torch}", "PASS" if gain >= 10 else "MISS")
    else:
        why = ours.get("unavailable") or ours.get("error") or base.get("error")
        batch = (f"— ({why})", "MISS")
    return [
        "| target (issue 19, chainrule's figures) | required | measured | met |",
        "|---|---|---|---|",
        f"| compiling: first call + backward | ≤ 3 s at 1,000, 10,000 and 100,000 points | "
        f"{compiling[0]} | {compiling[1]} |",
        f"| the step ÷ the hand-written NumPy step | ≤ 1.3× at 10,000 and 100,000 points | "
        f"{step[0]} | {step[1]} |",
        f"| peak memory growth (compiling and steps) | ≤ 800 MB at 100,000 points | "
        f"{memory[0]} | {memory[1]} |",
        f"| the loss and every gradient vs the NumPy step | equal to 1e-9 (absolute; relative "
        f"above 1) | {equal[0]} | {equal[1]} |",
        f"| GPT, `--batch-size 32`: names per second ÷ today's compiled trainer (one name per "
        f"step) | ≥ 10× | {batch[0]} | {batch[1]} |",
    ]


def vmap(rounds: int, sizes: list[int], names: int, timeout: float) -> str:
    """Issue 19's section: its tables and its targets."""
    mlp = vmap_mlp(rounds, sizes, timeout)
    gpt = vmap_gpt(rounds, names, timeout)
    return "\n".join([vmap_table(mlp, gpt, names), "", *vmap_targets(mlp, gpt)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (3)")
    parser.add_argument("--write", type=Path, help="also write the results to this file")
    parser.add_argument(
        "--only", choices=["vmap"], help="measure only this section (vmap: issue 19's targets)"
    )
    parser.add_argument(
        "--vmap-points",
        type=int,
        nargs="+",
        default=VMAP_POINTS,
        help="the vmap section's sizes (1000 10000 100000)",
    )
    parser.add_argument(
        "--gpt-names", type=int, default=6400, help="the vmap section's GPT names (6400)"
    )
    parser.add_argument(
        "--timeout", type=float, default=900, help="seconds a vmap process may take (900)"
    )
    args = parser.parse_args()

    vmap_section = vmap(args.rounds, args.vmap_points, args.gpt_names, args.timeout)
    print(vmap_section)
    if args.write:
        write_block(args.write, "vmap", header(args), vmap_section)
        print(f"wrote {args.write}")
    if args.only == "vmap":
        return

    step, eager_losses = demo(args.rounds)
    compiled_table, compiled_targets = compiled(args.rounds, step["torch"], eager_losses)
    graph = graphs(args.rounds)
    mem = {e: work("memory", e) for e in ("chainrule", "micrograd")}
    infer = [work("inference", "chainrule") for _ in range(args.rounds)]
    eager_table, eager_targets = eager(args.rounds)
    gpt_table, gpt_targets = gpt(args.rounds)
    recorded = median([t for x in infer for t in x["recorded"][1:]])
    bare = median([t for x in infer for t in x["no_grad"][1:]])

    def fmt_graph(key: str) -> str:
        g = graph[key]
        if "error" in g:
            return f"fails: {g['error']}"
        return f"{g['total']:.2f} s ({g['rate'] / 1e6:.2f} M nodes/s)"

    rows = [
        "| measure | chainrule | micrograd 0.1.0 | PyTorch (CPU, f64, 1 thread) |",
        "|---|---|---|---|",
        f"| demo training step, median | {step['chainrule'] * 1e3:.1f} ms | "
        f"{step['micrograd'] * 1e3:.0f} ms | {step['torch'] * 1e3:.2f} ms |",
        f"| demo step: micrograd ÷ engine | **{step['micrograd'] / step['chainrule']:.1f}×** "
        f"| 1× | {step['micrograd'] / step['torch']:.0f}× |",
        f"| demo step: engine ÷ PyTorch | {step['chainrule'] / step['torch']:.0f}× | "
        f"{step['micrograd'] / step['torch']:.0f}× | 1× |",
        f"| wide random graph, {graph['wide/chainrule']['nodes']:,} nodes, build + backward | "
        f"{fmt_graph('wide/chainrule')} | {fmt_graph('wide/micrograd')} | |",
        f"| 1,000,000-node chain, build + backward | {fmt_graph('chain/chainrule')} | "
        f"{fmt_graph('chain/micrograd')} | |",
        f"| memory per node (tracemalloc), built | "
        f"{mem['chainrule']['bytes_per_node']:.0f} B | "
        f"{mem['micrograd']['bytes_per_node']:.0f} B | |",
        f"| memory per node, after backward | "
        f"{mem['chainrule']['bytes_per_node_after_backward']:.0f} B | "
        f"{mem['micrograd']['bytes_per_node_after_backward']:.0f} B | |",
        f"| demo forward pass (100 points), graph recorded | {recorded * 1e3:.1f} ms | | |",
        f"| demo forward pass under `no_grad()` | {bare * 1e3:.1f} ms "
        f"({recorded / bare:.1f}× faster) | | |",
        "",
        *eager_table,
        "",
        *compiled_table,
        "",
        *gpt_table,
    ]
    ratio = step["micrograd"] / step["chainrule"]
    mem_ratio = mem["chainrule"]["bytes_per_node"] / mem["micrograd"]["bytes_per_node"]
    chain_s = graph["chain/chainrule"]["total"]
    rows += [
        "",
        "| target | required | measured | met |",
        "|---|---|---|---|",
        f"| demo step vs micrograd, collector on | ≥ 15× (aim 25×) | {ratio:.1f}× | "
        f"{'yes' if ratio >= 15 else 'NO'} |",
        f"| memory per node | ≤ ⅓ of micrograd's | {mem_ratio:.2f} of it | "
        f"{'yes' if mem_ratio <= 1 / 3 else 'NO'} |",
        f"| 1,000,000-node chain, build + backward | < 3 s | {chain_s:.2f} s | "
        f"{'yes' if chain_s < 3 else 'NO'} |",
        *eager_targets,
        *compiled_targets,
        *gpt_targets,
    ]
    table = "\n".join(rows)
    print(table)
    if args.write:
        write_block(args.write, "results", header(args), table)
        print(f"wrote {args.write}")


MAKE = {  # the Makefile's commands, named by their targets in the file
    "python bench/run.py --rounds 3 --write bench/RESULTS.md": "make bench",
    "python bench/run.py --rounds 3 --only vmap --write bench/RESULTS.md": "make bench-vmap",
}


def header(args: argparse.Namespace) -> str:
    """The block's first lines: the machine, the commit and the command that measured it."""
    command = f"python bench/run.py --rounds {args.rounds}"
    if args.only:
        command += f" --only {args.only}"
    if args.vmap_points != VMAP_POINTS:
        command += " --vmap-points " + " ".join(map(str, args.vmap_points))
    if args.gpt_names != 6400:
        command += f" --gpt-names {args.gpt_names}"
    command += f" --write {args.write}"
    named = f"`{MAKE[command]}` (`{command}`)" if command in MAKE else f"`{command}`"
    return f"{machine()}\nCommand: {named}.\n"


if __name__ == "__main__":
    main()
