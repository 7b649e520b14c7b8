"""chainrule's quick start: build an expression, backpropagate, read every gradient.

Run it with ``python examples/quickstart.py`` (after ``make demo``, which creates .venv:
``.venv/bin/python examples/quickstart.py``).
"""

from chainrule import Value, grad, gradcheck


def main() -> None:
    # The example from the lecture's reference implementation.
    a = Value(-4.0, label="a")
    b = Value(2.0, label="b")
    c = a + b
    d = a * b + b**3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g += 10.0 / f
    g.backward()
    print(f"g      = {g.data:.4f}")  # 24.7041, the outcome of the forward pass
    print(f"dg/da  = {a.grad:.4f}")  # 138.8338, the numerical value of dg/da
    print(f"dg/db  = {b.grad:.4f}")  # 645.5773, the numerical value of dg/db

    # Derivatives as function transforms, of any order.
    def poly(x: Value) -> Value:
        return 3 * x**2 - 4 * x + 5

    print(f"f(x) = 3x² - 4x + 5:  f'(3) = {grad(poly)(3.0)},  f''(3) = {grad(grad(poly))(3.0)}")
    print("gradcheck(tanh-neuron):", gradcheck(lambda x, w, b: (x * w + b).tanh(), 2.0, -3.0, 6.88))


if __name__ == "__main__":
    main()
