"""Sequence-model blocks (``chainrule.nn``) and the character-level GPT (``chainrule.gpt``).

Every block is checked against PyTorch float64 on one input, values and gradients. The
GPT trains identically eagerly, compiled, and as a plain PyTorch tensor program with the
same initial weights and the same Adam; a test-sized run learns; sampling is
reproducible.
"""

from __future__ import annotations

import copy
import json
import math
import random

import pytest
import torch
import torch.nn.functional as F

import chainrule
from chainrule import Value
from chainrule.gpt import BETAS, BOS, GPT, CharTokenizer, Trainer, one_hot, sample_names
from chainrule.losses import cross_entropy, log_softmax, softmax
from chainrule.nn import CausalSelfAttention, Embedding, KVCache, Linear, RMSNorm

NAMES = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "charlotte", "amelia", "zoe"]

f64 = torch.float64


def tensor(rows, grad: bool = True) -> torch.Tensor:
    """A float64 tensor of the ``data`` of (nested lists of) Values, or of numbers."""

    def data(x):
        return [data(v) for v in x] if isinstance(x, list | tuple) else getattr(x, "data", x)

    return torch.tensor(data(rows), dtype=f64, requires_grad=grad)


def grads(rows):
    return [grads(v) for v in rows] if isinstance(rows, list | tuple) else rows.grad


def close(ours, theirs: torch.Tensor, tol: float = 1e-12) -> None:
    """Nested lists of floats equal to a tensor, to ``tol`` (relative and absolute)."""
    expected = theirs.detach().tolist()
    assert torch.allclose(
        torch.tensor(ours, dtype=f64), torch.tensor(expected, dtype=f64), rtol=tol, atol=tol
    ), (
        ours,
        expected,
    )


def weighted_sum(outputs: list[Value], rng: random.Random) -> tuple[Value, list[float]]:
    """``Σ c_i y_i`` with random ``c``: a scalar whose gradient reaches every output."""
    c = [rng.uniform(-1.0, 1.0) for _ in outputs]
    return chainrule.dot(c, outputs), c


# -- blocks against PyTorch -------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(bias: bool) -> None:
    rng = random.Random(1)
    layer = Linear(3, 4, bias=bias, rng=rng)
    if bias:
        for b in layer.bias or []:
            b.data = rng.uniform(-1.0, 1.0)  # not zeros, so that the bias is seen
    x = [Value(v) for v in (0.5, -1.2, 2.0)]
    y = layer(x)
    loss, c = weighted_sum(y, rng)
    loss.backward()

    W, X = tensor(layer.weight), tensor(x)
    B = tensor(layer.bias) if bias else None
    Y = F.linear(X, W, B)
    (Y * torch.tensor(c, dtype=f64)).sum().backward()
    close([v.data for v in y], Y)
    close(grads(layer.weight), W.grad)
    close(grads(x), X.grad)
    if bias:
        close(grads(layer.bias), B.grad)  # type: ignore[union-attr]
    else:
        assert layer.bias is None and len(layer.parameters()) == 12
    assert {op for op in (v._op for v in y)} == {"dot"}  # one node per output


def test_embedding_by_index_and_by_one_hot_row_match_torch() -> None:
    rng = random.Random(2)
    emb = Embedding(5, 3, rng=rng)
    by_index = emb(3)
    by_row = emb(one_hot([3], 5)[0])
    assert [v.data for v in by_row] == [v.data for v in by_index] == [w.data for w in emb.weight[3]]
    assert by_index[0] is emb.weight[3][0] and by_index is not emb.weight[3]
    loss, c = weighted_sum(by_index + by_row, rng)
    loss.backward()

    W = tensor(emb.weight)
    E = F.embedding(torch.tensor([3, 3]), W)
    (E.reshape(-1) * torch.tensor(c, dtype=f64)).sum().backward()
    close(grads(emb.weight), W.grad)


@pytest.mark.parametrize("affine", [True, False])
def test_rmsnorm_matches_torch(affine: bool) -> None:
    rng = random.Random(3)
    norm = RMSNorm(4, eps=1e-5, elementwise_affine=affine)
    if norm.weight is not None:
        for g in norm.weight:
            g.data = rng.uniform(0.5, 1.5)
    x = [Value(v) for v in (0.3, -2.0, 1.5, 0.01)]
    y = norm(x)
    loss, c = weighted_sum(y, rng)
    loss.backward()

    X = tensor(x)
    G = tensor(norm.weight) if norm.weight is not None else None
    Y = F.rms_norm(X, (4,), G, eps=1e-5)
    (Y * torch.tensor(c, dtype=f64)).sum().backward()
    close([v.data for v in y], Y)
    close(grads(x), X.grad)
    if G is not None:
        close(grads(norm.weight), G.grad)
    assert norm.num_parameters() == (4 if affine else 0)


@pytest.mark.parametrize("logits", [[0.5, -1.0, 2.0, 0.0], [1000.0, -1000.0, 999.0]])
def test_softmax_and_log_softmax_match_torch_and_are_stable(logits: list[float]) -> None:
    rng = random.Random(4)
    for ours_fn, theirs_fn in ((softmax, torch.softmax), (log_softmax, torch.log_softmax)):
        z = [Value(v) for v in logits]
        y = ours_fn(z)
        loss, c = weighted_sum(y, rng)
        loss.backward()
        Z = tensor(logits)
        Y = theirs_fn(Z, dim=0)
        (Y * torch.tensor(c, dtype=f64)).sum().backward()
        close([v.data for v in y], Y)
        close(grads(z), Z.grad)
    # exp(z - logsumexp(z)): the exponent is rounded at the scale of the logits
    assert math.fsum(v.data for v in softmax(logits)) == pytest.approx(1.0, abs=1e-13)


@pytest.mark.parametrize("target", [2, [0.0, 0.0, 1.0, 0.0], [0.25, 0.25, 0.0, 0.5]])
def test_cross_entropy_matches_torch(target) -> None:
    z = [Value(v) for v in (0.5, -1.0, 2.0, 0.0)]
    loss = cross_entropy(z, target)
    loss.backward()
    Z = tensor([[v.data for v in z]])
    T = torch.tensor([target]) if isinstance(target, int) else torch.tensor([target], dtype=f64)
    L = F.cross_entropy(Z, T)
    L.backward()
    assert loss.data == pytest.approx(L.item(), rel=1e-14)
    close(grads(z), Z.grad[0])


def test_cross_entropy_one_hot_row_is_exactly_the_index_form() -> None:
    z = [Value(v) for v in (0.1, 3.0, -2.5)]
    rows = one_hot([1], 3)[0]
    assert cross_entropy(z, rows).data == cross_entropy(z, 1).data
    with pytest.raises(ValueError, match=r"cross_entropy: target 3 is not a class index 0\.\.2"):
        cross_entropy(z, 3)
    with pytest.raises(ValueError, match="cross_entropy: a probability row must be >= 0"):
        cross_entropy(z, [0.5, 0.6, 0.0])


def test_causal_self_attention_matches_torch() -> None:
    rng = random.Random(5)
    dim, heads, n = 8, 2, 4
    attn = CausalSelfAttention(dim, heads, rng=rng)
    xs = [[Value(rng.gauss(0.0, 1.0)) for _ in range(dim)] for _ in range(n)]
    ys = attn(xs)
    loss, c = weighted_sum([v for y in ys for v in y], rng)
    loss.backward()

    X = tensor(xs)
    Ws = [tensor(p.weight) for p in (attn.q_proj, attn.k_proj, attn.v_proj, attn.out_proj)]
    q, k, v = (F.linear(X, W).reshape(n, heads, dim // heads).transpose(0, 1) for W in Ws[:3])
    o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    Y = F.linear(o.transpose(0, 1).reshape(n, dim), Ws[3])
    (Y.reshape(-1) * torch.tensor(c, dtype=f64)).sum().backward()
    close([[v.data for v in y] for y in ys], Y)
    close(grads(xs), X.grad)
    for p, W in zip((attn.q_proj, attn.k_proj, attn.v_proj, attn.out_proj), Ws, strict=True):
        close(grads(p.weight), W.grad)


def test_attention_one_position_at_a_time_equals_the_whole_sequence() -> None:
    rng = random.Random(6)
    attn = CausalSelfAttention(4, 2, rng=rng)
    xs = [[rng.gauss(0.0, 1.0) for _ in range(4)] for _ in range(3)]
    cache = KVCache()
    stepped = [[v.data for v in attn.step(x, cache)] for x in xs]
    assert stepped == [[v.data for v in y] for y in attn(xs)]
    assert len(cache) == 3
    # position 0 sees only itself, so it does not change when later positions do
    assert [v.data for v in attn([xs[0], [9.0] * 4])[0]] == stepped[0]


def test_block_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="dim 6 is not divisible by heads 4"):
        CausalSelfAttention(6, 4)
    emb = Embedding(3, 2, rng=random.Random(0))
    with pytest.raises(IndexError, match="index 3 is out of range for a table of 3 rows"):
        emb(3)
    with pytest.raises(TypeError, match="a traced Value cannot index a table"):
        emb(Value(1.0))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Embedding: expected 3 inputs, got 2"):
        emb([1.0, 0.0])
    with pytest.raises(ValueError, match="Linear: expected 2 inputs, got 3"):
        Linear(2, 1)([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="eps must be a finite number > 0"):
        RMSNorm(3, eps=0.0)
    with pytest.raises(ValueError, match="std must be a finite number >= 0"):
        Linear(2, 2, std=-1.0)


def test_blocks_initialise_from_the_rng_with_the_documented_spread() -> None:
    a = Linear(40, 50, rng=random.Random(7)).state_dict()
    assert a == Linear(40, 50, rng=random.Random(7)).state_dict()
    weights = [v for k, v in a.items() if k.startswith("weight.")]
    std = math.sqrt(sum(w * w for w in weights) / len(weights))
    assert std == pytest.approx(0.08, rel=0.05)
    assert all(v == 0.0 for k, v in a.items() if k.startswith("bias."))


# -- the GPT -----------------------------------------------------------------------------


TOKENIZER = CharTokenizer.from_names(NAMES)


def test_tokenizer_round_trip_and_errors() -> None:
    ids = TOKENIZER.encode("zoe")
    assert ids[0] == ids[-1] == BOS and len(ids) == 5 and BOS not in ids[1:-1]
    assert TOKENIZER.decode(ids) == "zoe"
    assert TOKENIZER.vocab_size == len(set("".join(NAMES))) + 1
    with pytest.raises(ValueError, match="the character 'x', which is not in the vocabulary"):
        TOKENIZER.encode("max")
    with pytest.raises(ValueError, match="distinct"):
        CharTokenizer("aba")


def test_gpt_parameters_are_registered_from_attributes() -> None:
    model = GPT(27, rng=random.Random(0))
    names = [name for name, _ in model.named_parameters()]
    assert model.num_parameters() == len(set(map(id, model.parameters()))) == 3328 + 32 * 27
    assert names[0] == "wte.weight.0.0"
    assert "blocks.0.attn.q_proj.weight.15.15" in names and "blocks.0.fc2.weight.15.63" in names
    assert names[-1] == "lm_head.weight.26.15"
    assert GPT(27, layers=2, rng=random.Random(0)).num_parameters() == 27 * 32 + 256 + 2 * 3072


def torch_reference(model: GPT) -> tuple[dict[str, torch.Tensor], object]:
    """The model's weights as float64 leaf tensors, and its loss written with tensors."""
    W: dict[str, torch.Tensor] = {"wte": tensor(model.wte.weight), "wpe": tensor(model.wpe.weight)}
    for i, block in enumerate(model.blocks):
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            W[f"{i}.{name}"] = tensor(getattr(block.attn, name).weight)
        W[f"{i}.fc1"], W[f"{i}.fc2"] = tensor(block.fc1.weight), tensor(block.fc2.weight)
    W["lm_head"] = tensor(model.lm_head.weight)
    d, h = model.dim, model.heads

    def rms(x: torch.Tensor) -> torch.Tensor:
        return x * (x.pow(2).mean(dim=-1, keepdim=True) + 1e-5).rsqrt()

    def loss(tokens: list[int]) -> torch.Tensor:
        n = min(model.block_size, len(tokens) - 1)
        x = rms(W["wte"][torch.tensor(tokens[:n])] + W["wpe"][:n])
        mask = torch.ones(n, n, dtype=torch.bool).triu(1)
        for i in range(len(model.blocks)):
            q, k, v = (
                (rms(x) @ W[f"{i}.{p}"].T).reshape(n, h, d // h).transpose(0, 1)
                for p in ("q_proj", "k_proj", "v_proj")
            )
            att = (q @ k.transpose(1, 2) / math.sqrt(d // h)).masked_fill(mask, -math.inf)
            mixed = (att.softmax(dim=-1) @ v).transpose(0, 1).reshape(n, d)
            x = x + mixed @ W[f"{i}.out_proj"].T
            x = x + torch.relu(rms(x) @ W[f"{i}.fc1"].T) @ W[f"{i}.fc2"].T
        return F.cross_entropy(x @ W["lm_head"].T, torch.tensor(tokens[1 : n + 1]))

    return W, loss


CONFIGS = {
    "default": {},  # 1 layer, 16 wide, 4 heads, context 16
    "deep-short-context": {"block_size": 5, "dim": 8, "heads": 2, "layers": 2},
}


@pytest.mark.parametrize("config", CONFIGS.values(), ids=list(CONFIGS))
def test_training_eager_compiled_and_torch_give_the_same_losses(config) -> None:
    steps, lr = 5, 0.01
    model = GPT(TOKENIZER.vocab_size, **config, rng=random.Random(42))
    batches = [TOKENIZER.encode(name) for name in ("charlotte", "mia", "olivia", "mia", "zoe")]
    eager = Trainer(copy.deepcopy(model), lr=lr, steps=steps)
    compiled = Trainer(copy.deepcopy(model), lr=lr, steps=steps, compiled=True)
    W, torch_loss = torch_reference(model)
    opt = torch.optim.Adam(list(W.values()), lr=lr, betas=BETAS, eps=1e-8)

    for k, tokens in enumerate(batches):
        ours = eager.step(tokens)
        replayed = compiled.step(tokens)
        for group in opt.param_groups:
            group["lr"] = lr * (1.0 - k / steps)
        opt.zero_grad()
        theirs = torch_loss(tokens)
        theirs.backward()
        opt.step()
        assert abs(ours - replayed) <= 1e-9, (k, ours, replayed)
        assert abs(ours - theirs.item()) <= 1e-9, (k, ours, theirs.item())

    assert not compiled.compiled.fell_back
    lengths = {min(len(b), model.block_size + 1) for b in batches}  # one program per length
    assert repr(compiled.compiled).endswith(f"{len(lengths)} program(s)>")
    # after the steps, the weights agree too
    ref = torch_reference(eager.model)[0]
    for name in W:
        assert torch.allclose(ref[name], W[name], rtol=0, atol=1e-9), name
    assert compiled.model.state_dict() == pytest.approx(eager.model.state_dict(), abs=1e-9)


def test_the_compiled_trainers_adam_state_is_true_and_resumes_identically() -> None:
    """After N compiled steps the optimiser's state is the eager trainer's (it was all
    zeros before); a checkpoint resumed, in a new trainer or in the same one, goes on
    exactly as the run that did not stop."""
    small = {"block_size": 5, "dim": 8, "heads": 2}
    model = GPT(TOKENIZER.vocab_size, **small, rng=random.Random(7))
    names = [TOKENIZER.encode(name) for name in ("mia", "zoe", "ava", "emma", "olivia")]
    eager = Trainer(copy.deepcopy(model), lr=0.01, steps=10)
    compiled = Trainer(copy.deepcopy(model), lr=0.01, steps=10, compiled=True)
    for tokens in names[:3]:
        eager.step(tokens)
        compiled.step(tokens)
    state, expected = compiled.optimizer.state_dict(), eager.optimizer.state_dict()
    assert state["steps"] == 3 and state["lr"] == expected["lr"]
    for name in ("m", "v"):
        assert any(state[name])
        assert state[name] == pytest.approx(expected[name], rel=0, abs=1e-12)
    checkpoint = json.loads(json.dumps([compiled.model.state_dict(), state]))

    def resumed(trainer: Trainer) -> Trainer:
        trainer.model.load_state_dict(checkpoint[0])
        trainer.optimizer.load_state_dict(checkpoint[1])
        return trainer

    fresh = resumed(Trainer(GPT(TOKENIZER.vocab_size, **small), lr=0.01, steps=10, compiled=True))
    losses = {"on": [], "fresh": [], "same": []}
    for tokens in names[3:]:
        losses["on"].append(compiled.step(tokens))
        losses["fresh"].append(fresh.step(tokens))
    after = (compiled.model.state_dict(), compiled.optimizer.state_dict())
    same = resumed(compiled)  # the same trainer, rolled back to the checkpoint
    for tokens in names[3:]:
        losses["same"].append(same.step(tokens))
    assert losses["on"] == losses["fresh"] == losses["same"]
    for trainer in (fresh, same):
        assert (trainer.model.state_dict(), trainer.optimizer.state_dict()) == after


def test_the_loss_compiles_with_one_hot_tokens_and_equals_eager() -> None:
    model = GPT(TOKENIZER.vocab_size, rng=random.Random(0))
    tokens = TOKENIZER.encode("sophia")
    step = chainrule.compile(lambda rows: model.loss(rows), model.parameters())
    value, grad = step.value_and_grad(one_hot(tokens, model.vocab_size))
    eager = model.loss(tokens)
    eager.backward()
    assert value == pytest.approx(eager.data, abs=1e-12)
    assert grad.tolist() == pytest.approx([p.grad for p in model.parameters()], abs=1e-12)


def test_a_test_sized_run_learns_well_below_the_uniform_loss() -> None:
    names = ["emma", "olivia", "zoe", "isabella"]
    model = GPT(TOKENIZER.vocab_size, rng=random.Random(0))
    encoded = [TOKENIZER.encode(name) for name in names]
    uniform = math.log(TOKENIZER.vocab_size)
    before = sum(model.loss(t).data for t in encoded) / len(names)
    assert before == pytest.approx(uniform, rel=0.05)  # small weights: nearly uniform
    trainer = Trainer(model, steps=300, compiled=True)
    for k in range(300):
        trainer.step(encoded[k % len(names)])
    after = sum(model.loss(t).data for t in encoded) / len(names)
    assert after < 0.2 * uniform, (before, after)
    assert TOKENIZER.decode(model.sample(random.Random(0), temperature=0.0)) in names


def test_sampling_at_temperature_zero_is_greedy_and_deterministic() -> None:
    model = GPT(TOKENIZER.vocab_size, rng=random.Random(3))
    trainer = Trainer(model, steps=40)
    for k in range(40):  # a little training, so that the greedy name is not empty
        trainer.step(TOKENIZER.encode(NAMES[k % 3]))
    greedy = model.sample(random.Random(1), temperature=0.0)
    assert greedy == model.sample(random.Random(2), temperature=0.0)
    assert model.sample(random.Random(3), temperature=1e-9) == greedy  # the limit T -> 0
    assert model.sample(random.Random(3), temperature=1e-320) == greedy  # no inf - inf
    # the same greedy walk, recomputing the whole prefix with model(tokens) at each step
    tokens = [BOS]
    while len(tokens) <= model.block_size:
        logits = [v.data for v in model(tokens)[-1]]
        nxt = logits.index(max(logits))
        if nxt == BOS:
            break
        tokens.append(nxt)
    assert greedy == tokens[1:] and greedy
    assert len(model.sample(random.Random(0), 0.0, max_len=2)) <= 2


def test_sampling_at_temperature_one_is_reproducible_with_a_seeded_rng() -> None:
    model = GPT(TOKENIZER.vocab_size, rng=random.Random(4))
    first = sample_names(model, TOKENIZER, 8, random.Random(11), temperature=1.0)
    assert first == sample_names(model, TOKENIZER, 8, random.Random(11), temperature=1.0)
    assert first != sample_names(model, TOKENIZER, 8, random.Random(12), temperature=1.0)
    assert len(set(first)) > 1  # an untrained model spreads its choices
    assert all(set(name) <= set(TOKENIZER.chars) for name in first)
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        model.sample(random.Random(0), temperature=-1.0)


def test_gpt_input_errors() -> None:
    model = GPT(5, block_size=3, dim=4, heads=2, rng=random.Random(0))
    with pytest.raises(ValueError, match="4 tokens do not fit the context of 3"):
        model([0, 1, 2, 3])
    with pytest.raises(ValueError, match="at least two tokens"):
        model.loss([0])
    with pytest.raises(IndexError, match="index 5 is out of range"):
        model.loss([0, 5, 0])
    with pytest.raises(ValueError, match=r"label 7 is not a class index 0\.\.4"):
        model.loss([0, 7])
    with pytest.raises(ValueError, match="heads"):
        GPT(5, dim=6, heads=4)
    # a long name is cut to the context: block_size predictions
    assert model.loss([0, 1, 2, 3, 4, 1, 0]).data == model.loss([0, 1, 2, 3]).data
