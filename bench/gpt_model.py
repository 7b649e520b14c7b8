"""The library GPT's training step, eager and compiled: ``python bench/gpt_model.py``.

``chainrule.gpt.GPT`` with its defaults (1 layer, 16 wide, 4 heads, context 16) and a
27-token vocabulary, one Adam step (``chainrule.gpt.Trainer``) on a 6-letter name per
step; the compiled trainer's program is built before timing (its build time is printed
separately). Prints one JSON object: median milliseconds per step for each path.
BLAS runs on one thread.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import statistics
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from chainrule.gpt import GPT, CharTokenizer, Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--name", default="olivia")
    args = parser.parse_args()
    tokenizer = CharTokenizer("abcdefghijklmnopqrstuvwxyz")
    model = GPT(tokenizer.vocab_size, rng=random.Random(0))
    tokens = tokenizer.encode(args.name)
    result: dict[str, float] = {"parameters": model.num_parameters()}
    for path in ("eager", "compiled"):
        trainer = Trainer(copy.deepcopy(model), steps=10 * args.steps, compiled=path == "compiled")
        start = time.perf_counter()
        trainer.step(tokens)  # compiled: traces and builds the program for this length
        result[f"{path}_first_step_ms"] = (time.perf_counter() - start) * 1e3
        times = []
        for _ in range(args.steps):
            start = time.perf_counter()
            trainer.step(tokens)
            times.append(time.perf_counter() - start)
        result[f"{path}_ms_per_step"] = statistics.median(times) * 1e3
    result["ratio"] = result["eager_ms_per_step"] / result["compiled_ms_per_step"]
    print(json.dumps({k: round(v, 3) for k, v in result.items()}))


if __name__ == "__main__":
    main()
