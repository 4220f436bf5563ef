"""The operator: exactness of the fast form, limits, gradients, padding, early stopping, bad input."""

import pytest
import torch
import torch.nn.functional as F

from qgfd_gen import (
    AdjacencyTransition,
    DenseTransition,
    GridTransition,
    KNNTransition,
    qgfd_attention,
    qgfd_fixed_point,
    qgfd_reference,
)
from operator_cases import B, HEADS, N, qkv, random_graph, transitions


@pytest.mark.parametrize("name", list(transitions()))
def test_fast_form_equals_seed_formula(name):
    q, k, v = qkv()
    transition = transitions()[name]
    for alpha, iterations in [(0.3, 1), (0.7, 6), (0.95, 20)]:
        fast = qgfd_attention(q, k, v, transition, alpha=alpha, iterations=iterations)
        slow = qgfd_reference(q, k, v, transition, alpha=alpha, iterations=iterations)
        assert (fast - slow).abs().max() < 1e-10, (name, alpha, iterations)


@pytest.mark.parametrize("name", list(transitions()))
def test_alpha_zero_or_no_iterations_is_sdpa(name):
    q, k, v = qkv(torch.float32)
    transition = transitions()[name]
    if isinstance(transition, torch.Tensor):
        transition = transition.float()
    sdpa = F.scaled_dot_product_attention(q, k, v)
    assert (qgfd_attention(q, k, v, transition, alpha=0.0, iterations=5) - sdpa).abs().max() < 1e-6
    assert (qgfd_attention(q, k, v, transition, alpha=0.8, iterations=0) - sdpa).abs().max() < 1e-6


@pytest.mark.parametrize("name", ["grid8", "knn", "dense", "adjacency-sparse"])
def test_converges_to_closed_form_and_residual_decays_like_alpha_power(name):
    q, k, v = qkv()
    transition, alpha = transitions()[name], 0.6
    limit = qgfd_fixed_point(q, k, v, transition, alpha=alpha)
    assert (qgfd_attention(q, k, v, transition, alpha=alpha, iterations=80) - limit).abs().max() < 1e-12
    residuals = [
        qgfd_attention(q, k, v, transition, alpha=alpha, iterations=t, return_stats=True)[1].residual.max().item()
        for t in range(1, 12)
    ]
    for t in range(1, len(residuals)):
        assert residuals[t] <= alpha * residuals[t - 1] * (1 + 1e-9)


@pytest.mark.parametrize("name", ["grid8", "grid4", "knn", "adjacency-sparse"])
def test_gradcheck_q_k_v(name):
    q, k, v = qkv(requires_grad=True, lq=3)
    transition = transitions()[name]
    if name == "knn":  # P is held fixed (grad=False): gradients flow through q, v and the final softmax only
        k = k.detach()
        assert torch.autograd.gradcheck(lambda q, v: qgfd_attention(q, k, v, transition, alpha=0.6, iterations=3), (q, v))
        return
    assert torch.autograd.gradcheck(lambda q, k, v: qgfd_attention(q, k, v, transition, alpha=0.6, iterations=3), (q, k, v))


def test_gradcheck_through_p():
    q, k, v = qkv(requires_grad=True, lq=3)
    assert torch.autograd.gradcheck(
        lambda q, k, v: qgfd_attention(q, k, v, DenseTransition(), alpha=0.6, iterations=3), (q, k, v)
    )
    assert torch.autograd.gradcheck(
        lambda q, k, v: qgfd_attention(q, k, v, KNNTransition(3, grad=True), alpha=0.6, iterations=3), (q, k, v)
    )
    logits = torch.randn(N, N, dtype=torch.float64, requires_grad=True)
    q, k, v = (t.detach() for t in (q, k, v))
    assert torch.autograd.gradcheck(
        lambda l: qgfd_attention(q, k, v, torch.softmax(l, -1), alpha=0.6, iterations=3), (logits,)
    )
    # alpha itself, as a learnable tensor
    alpha = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: qgfd_attention(q, k, v, GridTransition(3, 4), alpha=a, iterations=3), (alpha,))


@pytest.mark.parametrize("kind", ["adjacency-dense", "adjacency-sparse", "knn", "dense"])
def test_padding_invariance(kind):
    """Outputs for real positions equal a run on the real positions alone."""
    n_real = [7, 12]
    q, k, v = qkv(n=N, lq=N)
    adjacency = random_graph()
    mask = torch.zeros(B, N, dtype=torch.bool)
    mask[0, n_real[0]:] = True
    garbage = torch.randn_like(k) * 50  # padded keys and values hold junk
    k = torch.where(mask[:, None, :, None], garbage, k)
    v = torch.where(mask[:, None, :, None], garbage, v)

    def transition(adj):
        if kind == "adjacency-dense":
            return AdjacencyTransition(adj)
        if kind == "adjacency-sparse":
            batch, row, col = adj.nonzero(as_tuple=True)
            return AdjacencyTransition(edge_index=torch.stack([row, col]), edge_batch=batch)
        return KNNTransition(3) if kind == "knn" else DenseTransition()

    padded = qgfd_attention(q, k, v, transition(adjacency), alpha=0.7, iterations=5, key_padding_mask=mask)
    for b, n in enumerate(n_real):
        alone = qgfd_attention(
            q[b : b + 1, :, :n], k[b : b + 1, :, :n], v[b : b + 1, :, :n], transition(adjacency[b : b + 1, :n, :n]),
            alpha=0.7, iterations=5,
        )
        assert (padded[b : b + 1, :, :n] - alone).abs().max() < 1e-12, b
    reference = qgfd_reference(q, k, v, transition(adjacency), alpha=0.7, iterations=5, key_padding_mask=mask)
    assert (padded - reference).abs().max() < 1e-10


def test_early_stopping_stops_each_sample_at_its_first_residual_under_tol():
    q, k, v = qkv()
    v = v * torch.tensor([1.0, 100.0], dtype=torch.float64)[:, None, None, None]  # samples converge at different steps
    transition, alpha, tol = GridTransition(3, 4), 0.5, 1e-3
    residuals = torch.stack([
        qgfd_attention(q, k, v, transition, alpha=alpha, iterations=t, return_stats=True)[1].residual for t in range(1, 40)
    ])  # [t, B]: the residual of step t (1-based)
    expected = [(int((residuals[:, b] < tol).nonzero()[0]) + 1) for b in range(B)]
    assert expected[0] != expected[1]
    out, stats = qgfd_attention(q, k, v, transition, alpha=alpha, iterations=40, tol=tol, return_stats=True)
    assert stats.iterations_used.tolist() == expected
    assert (stats.residual < tol).all()
    for b in range(B):  # each sample's output is the fixed-step output at its own stopping step
        fixed = qgfd_attention(q, k, v, transition, alpha=alpha, iterations=expected[b])
        assert torch.allclose(out[b], fixed[b], atol=0, rtol=0)
    capped = qgfd_attention(q, k, v, transition, alpha=alpha, iterations=2, tol=tol, return_stats=True)[1]
    assert capped.iterations_used.tolist() == [2, 2]


def test_per_head_alpha():
    q, k, v = qkv()
    alpha = torch.tensor([0.0, 0.5, 0.9], dtype=torch.float64)
    out = qgfd_attention(q, k, v, GridTransition(3, 4), alpha=alpha, iterations=4)
    for h in range(HEADS):
        one = qgfd_attention(q, k, v, GridTransition(3, 4), alpha=float(alpha[h]), iterations=4)
        assert torch.allclose(out[:, h], one[:, h])
    assert torch.allclose(out, qgfd_reference(q, k, v, GridTransition(3, 4), alpha=alpha, iterations=4))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(alpha=1.0, iterations=2), "alpha=1.0"),
        (dict(alpha=-0.1, iterations=2), "alpha=-0.1"),
        (dict(alpha=0.5, iterations=-1), "iterations=-1"),
        (dict(alpha=0.5, iterations=2.5), "iterations=2.5"),
        (dict(alpha=0.5, iterations=2, tol=0.0), "tol=0.0"),
        (dict(alpha=0.5, iterations=2, tol=-1e-3), "tol=-0.001"),
    ],
)
def test_bad_arguments_name_the_value(kwargs, message):
    q, k, v = qkv()
    with pytest.raises(ValueError, match=message.replace(".", r"\.").replace("-", r"\-")):
        qgfd_attention(q, k, v, GridTransition(3, 4), **kwargs)


def test_bad_shapes_and_transitions():
    q, k, v = qkv()
    with pytest.raises(ValueError, match="rows must sum to 1"):
        qgfd_attention(q, k, v, torch.rand(N, N, dtype=torch.float64) + 0.1, alpha=0.5, iterations=2)
    with pytest.raises(ValueError, match=r"\[12, 12\]"):
        qgfd_attention(q, k, v, torch.eye(5, dtype=torch.float64), alpha=0.5, iterations=2)
    with pytest.raises(ValueError, match="needs N = 16"):
        qgfd_attention(q, k, v, GridTransition(4, 4), alpha=0.5, iterations=2)
    with pytest.raises(ValueError, match="must agree"):
        qgfd_attention(q, k[:, :, :5], v, GridTransition(3, 4), alpha=0.5, iterations=2)
    with pytest.raises(ValueError, match=r"\[B, H, L, d\]"):
        qgfd_attention(q[0], k, v, GridTransition(3, 4), alpha=0.5, iterations=2)
    with pytest.raises(ValueError, match="neighbours=6"):
        GridTransition(3, 4, neighbours=6)
    with pytest.raises(TypeError, match="transition must be"):
        qgfd_attention(q, k, v, "grid", alpha=0.5, iterations=2)
    with pytest.raises(ValueError, match="key_padding_mask"):
        qgfd_attention(q, k, v, DenseTransition(), alpha=0.5, iterations=2, key_padding_mask=torch.zeros(B, N))


def test_attention_bias_with_padding_matches_reference():
    q, k, v = qkv(n=N, lq=N)
    bias = torch.randn(B, HEADS, N, N, dtype=torch.float64)
    mask = torch.zeros(B, N, dtype=torch.bool)
    mask[1, 9:] = True
    transition = AdjacencyTransition(random_graph())
    fast = qgfd_attention(q, k, v, transition, alpha=0.6, iterations=4, key_padding_mask=mask, attn_bias=bias)
    slow = qgfd_reference(q, k, v, transition, alpha=0.6, iterations=4, key_padding_mask=mask, attn_bias=bias)
    assert (fast - slow).abs().max() < 1e-10
    plain = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    assert (qgfd_attention(q, k, v, transition, alpha=0.0, iterations=4, attn_bias=bias) - plain).abs().max() < 1e-12


def test_every_transition_gives_zeros_for_a_sample_whose_keys_are_all_padded():
    q, k, v = qkv(n=N, lq=N)
    mask = torch.zeros(B, N, dtype=torch.bool)
    mask[1] = True  # sample 1 has nothing to attend to
    for name, transition in transitions().items():
        if name == "grid8" or name == "grid4":
            continue  # the grid has no padding: every pixel is real
        for fn in (qgfd_attention, qgfd_reference):
            out = fn(q, k, v, transition, alpha=0.6, iterations=3, key_padding_mask=mask)
            assert torch.isfinite(out).all() and (out[1] == 0).all(), (name, fn.__name__)
            assert out[0].abs().max() > 0
    q, k, v = qkv(n=N, lq=N, requires_grad=True)
    qgfd_attention(q, k, v, DenseTransition(), alpha=0.6, iterations=3, key_padding_mask=mask).sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))  # no NaN leaks into the gradients either


@pytest.mark.parametrize("make, message", [
    (lambda q, k, v: (q, k[:, :, :0], v[:, :, :0], {}), "no keys"),
    (lambda q, k, v: (q.long(), k.long(), v.long(), {}), "floating point"),
    (lambda q, k, v: (q, k, v, {"alpha": torch.tensor([0.1, 0.2], dtype=torch.float64)}), r"alpha has shape \(2,\)"),
    (lambda q, k, v: (q, k, v, {"alpha": torch.tensor(float("nan"))}), "holds NaN"),
])
def test_degenerate_inputs_are_refused_by_name(make, message):
    q, k, v, kwargs = make(*qkv())
    kwargs = {"alpha": 0.5, **kwargs}
    with pytest.raises(ValueError, match=message):
        qgfd_attention(q, k, v, DenseTransition(), iterations=2, **kwargs)
