"""The operator's fast paths agree with its plain iteration: the closed form for small dense graphs, the CSR
product for sparse and knn graphs (forward and backward), and plain attention builds no graph at all."""

import pytest
import torch

from operator_cases import B, HEADS, N, qkv, random_graph, transitions
from qgfd_gen import AdjacencyTransition, KNNTransition, qgfd_attention
from qgfd_gen.operator import diffuse_values
from qgfd_gen.sparse_products import csr_step
from qgfd_gen.transitions import Transition, as_transition

NEVER = 1e-300  # a tol no residual reaches: the loop runs every iteration, and the closed form is not used


@pytest.mark.parametrize("name", ["adjacency-dense", "matrix"])
@pytest.mark.parametrize("alpha", [0.7, torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)])
def test_small_dense_graphs_closed_form_equals_the_iteration(name, alpha):
    _, k, _ = qkv()
    v = torch.randn(B, HEADS, N, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(5))  # N 12 < d 16
    operator = as_transition(transitions()[name]).bind(k)
    a = alpha if isinstance(alpha, float) else alpha.reshape(1, -1, 1, 1)
    assert operator.diffuse_in_closed_form(v, a, 4) is not None
    closed, closed_stats = diffuse_values(v, operator, alpha=alpha, iterations=4)
    looped, looped_stats = diffuse_values(v, operator, alpha=alpha, iterations=4, tol=NEVER)
    assert (closed - looped).abs().max() < 1e-12
    assert torch.allclose(closed_stats.residual, looped_stats.residual, rtol=1e-9, atol=0)
    assert closed_stats.iterations_used.tolist() == looped_stats.iterations_used.tolist() == [4, 4]


def test_closed_form_is_skipped_where_powers_of_p_cost_more():
    _, k, v = qkv()
    per_head = transitions()["dense"].bind(k)  # a [B, heads, N, N] P with N = 12 > d = 4
    assert per_head.diffuse_in_closed_form(v, 0.5, 3) is None
    shared = as_transition(transitions()["matrix"]).bind(k)  # one [N, N] P, but a per-head alpha makes M per head
    assert shared.diffuse_in_closed_form(v, 0.5, 3) is not None
    assert shared.diffuse_in_closed_form(v, torch.tensor([0.2, 0.5, 0.9]).reshape(1, -1, 1, 1), 3) is None


def test_closed_form_gradients_match_the_iteration():
    _, k, v = qkv(requires_grad=True)
    alpha = torch.tensor(0.6, dtype=torch.float64, requires_grad=True)
    operator = AdjacencyTransition(random_graph()).bind(k)
    grads = []
    for tol in (None, NEVER):
        v.grad = alpha.grad = None
        out, _ = diffuse_values(v, operator, alpha=alpha, iterations=3, tol=tol)
        (out * torch.arange(out.numel(), dtype=out.dtype).view(out.shape)).sum().backward()
        grads.append((v.grad.clone(), alpha.grad.clone()))
    assert torch.allclose(grads[0][0], grads[1][0]) and torch.allclose(grads[0][1], grads[1][1])


def _sparse(weight_requires_grad: bool):
    adjacency = random_graph() * torch.rand(random_graph().shape, generator=torch.Generator().manual_seed(3))
    batch, row, col = adjacency.nonzero(as_tuple=True)
    weight = adjacency[batch, row, col].clone().requires_grad_(weight_requires_grad)
    return AdjacencyTransition(edge_index=torch.stack([row, col]), edge_weight=weight, edge_batch=batch), weight


def test_sparse_csr_product_equals_the_gather_path_forward_and_backward():
    """Weights that need a gradient take the gather / index_add path; the same graph without takes CSR."""
    q, k, v = qkv(requires_grad=True)
    results = []
    for needs_grad in (False, True):
        transition, weight = _sparse(needs_grad)
        assert (transition.bind(k)._csr.get(v) is None) == needs_grad
        for t in (q, k, v):
            t.grad = None
        out = qgfd_attention(q, k, v, transition, alpha=0.8, iterations=4)
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view(out.shape)).sum().backward()
        results.append([out.detach(), q.grad.clone(), k.grad.clone(), v.grad.clone()])
    for csr, gathered in zip(*results):
        assert (csr - gathered).abs().max() < 1e-12


def test_gradient_through_sparse_edge_weights():
    q, k, v = (t.detach() for t in qkv(lq=3))
    transition, weight = _sparse(True)
    rows, cols, batch = transition.edge_index[0], transition.edge_index[1], transition.edge_batch

    def through_weights(w):
        return qgfd_attention(q, k, v, AdjacencyTransition(edge_index=torch.stack([rows, cols]), edge_weight=w,
                                                           edge_batch=batch), alpha=0.6, iterations=3)

    assert torch.autograd.gradcheck(through_weights, (weight.detach().clone().requires_grad_(),))


def test_knn_csr_product_equals_the_gather_path():
    _, k, v = qkv()
    operator = KNNTransition(3).bind(k)
    native = operator.to_native(v)
    csr = operator.matmul_native(native)
    operator._csr.get = lambda h, transpose=False: None  # the gather path, as taken when P needs a gradient
    assert (csr - operator.matmul_native(native)).abs().max() < 1e-12


@pytest.mark.parametrize("name", ["knn", "adjacency-sparse"])
@pytest.mark.parametrize("alpha", [0.7, torch.tensor(0.7, dtype=torch.float64)])
def test_fused_diffusion_step_equals_the_product_then_the_blend(name, alpha):
    """The CSR graphs take a step source + alpha P H as one sparse addmm; taken apart it must agree, forward
    and backward (a 0-dim alpha that needs no gradient is fused too)."""
    _, k, v = qkv()
    operator = transitions()[name].bind(k)
    native = operator.to_native(v)
    results = []
    for fused in (True, False):
        h = native.clone().requires_grad_()
        source = (0.3 * native).clone().requires_grad_()
        if fused:
            assert csr_step(operator._csr, source, alpha, h) is not None
            out = operator.step_native(source, alpha, h)
        else:
            out = source + alpha * operator.matmul_native(h)
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view(out.shape)).sum().backward()
        results.append([out.detach(), h.grad, source.grad])
    for fused, apart in zip(*results):
        assert (fused - apart).abs().max() < 1e-12


def test_a_learnable_alpha_is_not_fused_and_gets_its_gradient():
    """A learnable alpha's gradient needs P H itself: the step is taken apart, and the gradient checks out."""
    q, k, v = (t.detach() for t in qkv(lq=3))
    transition = transitions()["adjacency-sparse"]
    alpha = torch.tensor(0.6, dtype=torch.float64, requires_grad=True)
    operator = transition.bind(k)
    native = operator.to_native(v)
    assert csr_step(operator._csr, native, alpha, native) is None
    assert torch.autograd.gradcheck(lambda a: qgfd_attention(q, k, v, transition, alpha=a, iterations=3), (alpha,))


def test_plain_attention_builds_no_graph():
    class Refuses(Transition):
        def bind(self, k, key_padding_mask=None):
            raise AssertionError("bound a graph for plain attention")

    q, k, v = qkv()
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    assert torch.equal(qgfd_attention(q, k, v, Refuses(), alpha=0.0, iterations=5), expected)
    assert torch.equal(qgfd_attention(q, k, v, Refuses(), alpha=0.5, iterations=0), expected)
