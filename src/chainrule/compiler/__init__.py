"""``chainrule.compile``: trace a scalar loss once, replay it as NumPy array kernels.

The lecture's code builds a fresh graph of scalar Values at every step, and that is
what makes it slow. But a training step builds the *same* graph every time: only the
numbers change. So :func:`compile` runs the loss function once on Values (a *trace*),
flattens the recorded graph into arrays, and at every later call replays it with
NumPy -- forward, then backward -- reading the parameters' current ``data`` and
adding into their ``grad`` exactly as :meth:`Value.backward` does::

    step = chainrule.compile(loss_fn, model.parameters())
    for k in range(100):
        loss = step()              # replays the graph: loss.data is a float
        model.zero_grad()
        loss.backward()            # adds into every p.grad, as Value.backward() does
        for p in model.parameters():
            p.data -= 0.1 * p.grad

How the replay is organised: every node gets a slot in one flat array; nodes at the
same depth (*level*) of the graph that do the same operation form a *group*, and each
group is one vectorised kernel. A group of ``dot`` nodes that pairs every row of
weights with every row of inputs -- a layer applied to a batch -- is one matrix
product. Chains of ``+``/``-`` (Python's ``sum()`` over Values) are folded into one
n-ary sum first. Each operation's local derivative comes from the engine's own rule
table, called with arrays instead of floats.

A loss written for one example and mapped with :func:`chainrule.vmap` is traced on
*one* example, whatever the batch size: each per-example node becomes a row of N
numbers, a layer applied to the example becomes one matrix product over the batch, and
``reduce="mean"`` collapses the rows. One program then serves every batch size
(``batching.py``, ``batch_kernels.py``)::

    per_example = chainrule.vmap(lambda x, t: (1 - t * model(x)).relu(), reduce="mean")
    step = chainrule.compile(lambda X, y: per_example(X, y) + 1e-4 * l2, params)
    loss = step(X, y)              # X: (N, 2), y: (N,) -- any N, one trace

It refuses, with :class:`~chainrule.errors.CompileError` naming the file and line
responsible, what it cannot replay faithfully: Python control flow on traced numbers
(reading ``.data`` inside the loss), results of ``no_grad()`` computed from
parameters or inputs, graphs that differ between two calls, bad parameter lists and
operations it has no array form for. Graphs too narrow to gain from arrays (long
chains) run eagerly instead; :meth:`CompiledFunction.explain` says what happened.

After a replay there are no intermediate Values: no intermediate ``.grad`` and
nothing for :func:`~chainrule.draw_dot` to draw. Use the eager engine for that.
"""

from chainrule.compiler.ops import compilable_ops
from chainrule.compiler.program import CompiledFunction, CompiledLoss, compile

__all__ = ["CompiledFunction", "CompiledLoss", "compilable_ops", "compile"]
