"""jt.linalg against numpy.linalg and torch.linalg (values and gradients), including
pivoting, singular and degenerate inputs, batches, and convergence of the Jacobi solvers."""
import numpy as np
import pytest

import metajit as jt
from metajit import linalg

torch = pytest.importorskip("torch")


def matrices(rng, *shape, conditioned=True):
    """float32 matrices; square ones get a diagonal boost so they are well conditioned."""
    data = rng.standard_normal(shape)
    if conditioned and shape[-1] == shape[-2]:
        data = data + 3 * np.eye(shape[-1])
    return data.astype(np.float32)


def symmetric(rng, *shape):
    data = rng.standard_normal(shape)
    return ((data + np.swapaxes(data, -1, -2)) / 2).astype(np.float32)


def check(ours, theirs, *arrays, rtol=1e-4, atol=1e-4, grad_rtol=1e-3, grad_atol=1e-3):
    """Outputs of ``ours`` (metajit) and ``theirs`` (torch, float64) agree, and so do the
    gradients of ``sum(output * weight)`` over all outputs with respect to every input."""
    inputs = [jt.array(a) for a in arrays]
    tensors = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    got, want = ours(*inputs), theirs(*tensors)
    got = list(got) if isinstance(got, tuple) else [got]
    want = list(want) if isinstance(want, tuple) else [want]
    rng = np.random.default_rng(5)
    loss, torch_loss = 0, 0
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.detach().numpy(), rtol=rtol, atol=atol)
        weight = rng.standard_normal(tuple(w.shape))
        loss = loss + (g * jt.array(weight.astype(np.float32))).sum()
        torch_loss = torch_loss + (w * torch.tensor(weight)).sum()
    torch_loss.backward()
    for g, t in zip(jt.grad(loss, inputs), tensors):  # None: no path from the input (a zero gradient)
        want_grad = t.grad.numpy() if t.grad is not None else np.zeros(t.shape)
        np.testing.assert_allclose(np.zeros(t.shape) if g is None else g.numpy(), want_grad,
                                   rtol=grad_rtol, atol=grad_atol)


def test_inv_det_slogdet_match_torch_on_a_batch(rng):
    a = matrices(rng, 2, 3, 3)
    check(linalg.inv, torch.linalg.inv, a)
    check(linalg.det, torch.linalg.det, a)
    check(lambda x: tuple(linalg.slogdet(x)), lambda x: tuple(torch.linalg.slogdet(x)), -a)


def test_elimination_pivots_past_zeros_and_handles_singular_matrices():
    swap = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 2.0]], np.float32)
    np.testing.assert_allclose(linalg.inv(jt.array(swap)).numpy(), np.linalg.inv(swap))
    assert linalg.det(jt.array(swap)).item() == pytest.approx(-2.0)
    tiny_pivot = np.array([[1e-8, 1.0], [1.0, 1.0]], np.float32)  # without pivoting: 1 - 1e8 cancels
    np.testing.assert_allclose(linalg.inv(jt.array(tiny_pivot)).numpy(), np.linalg.inv(tiny_pivot.astype(np.float64)),
                               rtol=1e-6, atol=1e-7)
    singular = np.array([[1.0, 2.0], [2.0, 4.0]], np.float32)
    assert linalg.det(jt.array(singular)).item() == 0.0
    sign, logabsdet = linalg.slogdet(jt.array(np.zeros((3, 3), np.float32)))
    assert sign.item() == 0.0 and logabsdet.item() == -np.inf
    assert np.isfinite(linalg.det(jt.array(np.zeros((3, 3), np.float32))).numpy()).all()
    assert not np.isfinite(linalg.inv(jt.array(singular)).numpy()).all()
    np.testing.assert_allclose(linalg.det(jt.array(np.eye(1, dtype=np.float32) * 5)).numpy(), 5.0)


@pytest.mark.parametrize("left", [True, False])
def test_solve_matches_torch(rng, left):
    a, b = matrices(rng, 2, 3, 3), rng.standard_normal((2, 3, 2)).astype(np.float32)
    b = b if left else np.swapaxes(b, -1, -2).copy()
    check(lambda x, y: linalg.solve(x, y, left=left), lambda x, y: torch.linalg.solve(x, y, left=left), a, b)


def test_solve_vector_and_broadcast_batches(rng):
    a, vector = matrices(rng, 3, 3), rng.standard_normal(3).astype(np.float32)
    check(linalg.solve, torch.linalg.solve, a, vector)
    batched = rng.standard_normal((4, 3, 1)).astype(np.float32)
    check(linalg.solve, torch.linalg.solve, a, batched)
    with pytest.raises(jt.MetajitShapeError, match=r"a of shape \(3, 3\) and b of shape \(4,\)"):
        linalg.solve(jt.array(a), jt.array(np.ones(4, np.float32)))


def test_square_only_ops_name_the_shape():
    with pytest.raises(jt.MetajitShapeError, match=r"linalg.inv expects square matrices, got shape \(2, 3\)"):
        linalg.inv(jt.array(np.ones((2, 3), np.float32)))
    with pytest.raises(jt.MetajitShapeError, match=r"linalg.det expects a matrix .* got shape \(3,\)"):
        linalg.det(jt.array(np.ones(3, np.float32)))


def test_cholesky_matches_torch(rng):
    base = rng.standard_normal((2, 4, 4)).astype(np.float32)
    boost = 4 * np.eye(4, dtype=np.float32)

    def spd(b):
        return b @ b.transpose(-1, -2) + (jt.array(boost) if isinstance(b, jt.Var) else torch.tensor(boost))
    check(lambda b: linalg.cholesky(spd(b)), lambda b: torch.linalg.cholesky(spd(b)), base)
    check(lambda b: linalg.cholesky(spd(b), upper=True), lambda b: torch.linalg.cholesky(spd(b), upper=True), base)
    indefinite = np.array([[1.0, 2.0], [2.0, 1.0]], np.float32)
    assert np.isnan(linalg.cholesky(jt.array(indefinite)).numpy()).any()


@pytest.mark.parametrize("shape", [(4, 4), (5, 3), (2, 3, 5)])
def test_qr_matches_numpy_and_torch(rng, shape):
    a = matrices(rng, *shape, conditioned=False)
    for mode in ("reduced", "complete"):
        q, r = linalg.qr(jt.array(a), mode)
        want_q, want_r = np.linalg.qr(a.astype(np.float64), mode=mode)
        np.testing.assert_allclose(q.numpy(), want_q, atol=1e-5)
        np.testing.assert_allclose(r.numpy(), want_r, atol=1e-5)
    np.testing.assert_allclose(linalg.qr(jt.array(a), "r")[1].numpy(), np.linalg.qr(a, mode="r"), atol=1e-5)
    if shape[-2] >= shape[-1]:  # torch differentiates reduced QR of tall and square matrices
        check(lambda x: tuple(linalg.qr(x)), lambda x: tuple(torch.linalg.qr(x)), a)


def test_qr_keeps_columns_already_triangular_as_lapack_does():
    upper = np.array([[2.0, 1.0, 0.5], [0.0, 3.0, 1.0], [0.0, 0.0, 4.0]], np.float32)
    q, r = linalg.qr(jt.array(upper))
    want_q, want_r = np.linalg.qr(upper)
    np.testing.assert_allclose(q.numpy(), want_q, atol=1e-7)
    np.testing.assert_allclose(r.numpy(), want_r, atol=1e-7)


def sign_fixed(vectors):
    """Columns scaled so their largest-magnitude entry is positive (signs are arbitrary)."""
    pivot = np.take_along_axis(vectors, np.abs(vectors).argmax(-2)[..., None, :], -2)
    return vectors * np.sign(pivot)


def test_eigh_matches_numpy_and_converges(rng):
    a = symmetric(rng, 2, 5, 5)
    w, v = linalg.eigh(jt.array(a))
    want_w, want_v = np.linalg.eigh(a.astype(np.float64))
    np.testing.assert_allclose(w.numpy(), want_w, atol=1e-5)
    np.testing.assert_allclose(sign_fixed(v.numpy()), sign_fixed(want_v), atol=1e-4)
    np.testing.assert_allclose(v.numpy() @ np.swapaxes(v.numpy(), -1, -2), np.broadcast_to(np.eye(5), a.shape),
                               atol=1e-5)
    np.testing.assert_allclose(linalg.eigvalsh(jt.array(np.triu(a)), UPLO="U").numpy(), want_w, atol=1e-5)
    np.testing.assert_allclose(linalg.eigvalsh(jt.array(np.tril(a) + 9 * np.triu(a, 1))).numpy(), want_w, atol=1e-5)


def test_eigh_gradients_match_torch(rng):
    base = rng.standard_normal((4, 4)).astype(np.float32)

    def invariant(eigh, b):  # eigenvalues and the sign-free projector of the top eigenvector
        w, v = eigh(b + b.transpose(-1, -2))
        return w, v[..., :, -1:] @ v[..., :, -1:].transpose(-1, -2)
    check(lambda b: invariant(linalg.eigh, b), lambda b: invariant(torch.linalg.eigh, b), base)


def test_eigh_of_diagonal_and_degenerate_matrices_is_exact_and_finite():
    diagonal = np.diag([3.0, -1.0, 2.0]).astype(np.float32)
    x = jt.array(diagonal)
    w, v = linalg.eigh(x)
    np.testing.assert_allclose(w.numpy(), [-1.0, 2.0, 3.0])
    np.testing.assert_allclose(np.abs(v.numpy()), np.eye(3)[:, [1, 2, 0]])
    gradient = jt.grad((w * jt.array([1.0, 2.0, 3.0])).sum(), x).numpy()
    np.testing.assert_allclose(gradient, np.diag([3.0, 1.0, 2.0]), atol=1e-6)
    np.testing.assert_allclose(linalg.eigvalsh(jt.array(np.eye(3, dtype=np.float32))).numpy(), [1, 1, 1])


@pytest.mark.slow
def test_jacobi_converges_for_larger_matrices(rng):
    a = symmetric(rng, 16, 16).astype(np.float64)
    w, v = linalg.eigh(jt.array(a))
    np.testing.assert_allclose(w.numpy(), np.linalg.eigvalsh(a), atol=1e-10)
    b = rng.standard_normal((20, 12))
    np.testing.assert_allclose(linalg.svdvals(jt.array(b)).numpy(), np.linalg.svd(b, compute_uv=False), atol=1e-10)


@pytest.mark.parametrize("shape", [(4, 3), (3, 5), (2, 3, 3)])
def test_svd_matches_numpy(rng, shape):
    a = matrices(rng, *shape, conditioned=False)
    u, s, vh = linalg.svd(jt.array(a))
    want_u, want_s, want_vh = np.linalg.svd(a.astype(np.float64), full_matrices=False)
    np.testing.assert_allclose(s.numpy(), want_s, atol=1e-5)
    np.testing.assert_allclose((u.numpy() * s.numpy()[..., None, :]) @ vh.numpy(), a, atol=1e-5)
    np.testing.assert_allclose(sign_fixed(u.numpy()), sign_fixed(want_u), atol=1e-4)
    full_u, _, full_vh = linalg.svd(jt.array(a), full_matrices=True)
    for orthogonal in (full_u.numpy(), full_vh.numpy()):
        size = orthogonal.shape[-1]
        np.testing.assert_allclose(np.swapaxes(orthogonal, -1, -2) @ orthogonal,
                                   np.broadcast_to(np.eye(size), orthogonal.shape), atol=1e-5)
    np.testing.assert_allclose(linalg.svdvals(jt.array(a)).numpy(), want_s, atol=1e-5)


def test_svd_gradients_match_torch(rng):
    a = matrices(rng, 4, 3, conditioned=False)

    def invariant(svd, x):  # singular values and the sign-free rank-one parts
        u, s, vh = svd(x)
        return s, u[..., :, :1] @ vh[..., :1, :]
    check(lambda x: invariant(linalg.svd, x), lambda x: invariant(lambda y: torch.linalg.svd(y, False), x), a)
    check(linalg.svdvals, torch.linalg.svdvals, a.T.copy())


def test_svd_of_rank_deficient_and_zero_matrices():
    rank_one = np.outer([1.0, 2.0, 3.0], [1.0, -1.0]).astype(np.float32)
    np.testing.assert_allclose(linalg.svdvals(jt.array(rank_one)).numpy(), np.linalg.svd(rank_one, compute_uv=False),
                               atol=1e-6)
    zero = jt.array(np.zeros((3, 2), np.float32))
    u, s, vh = linalg.svd(zero)
    assert (s.numpy() == 0).all() and np.isfinite(u.numpy()).all()
    assert np.isfinite(jt.grad(linalg.svdvals(zero).sum(), zero).numpy()).all()


@pytest.mark.parametrize("shape", [(4, 3), (2, 5)])
def test_pinv_matches_torch(rng, shape):
    check(linalg.pinv, torch.linalg.pinv, matrices(rng, *shape, conditioned=False))


def test_pinv_of_rank_deficient_and_hermitian_matrices(rng):
    rank_one = np.outer([1.0, 2.0, 3.0], [1.0, -1.0]).astype(np.float32)
    np.testing.assert_allclose(linalg.pinv(jt.array(rank_one)).numpy(), np.linalg.pinv(rank_one), atol=1e-6)
    a = symmetric(rng, 4, 4)
    np.testing.assert_allclose(linalg.pinv(jt.array(a), hermitian=True).numpy(), np.linalg.pinv(a), atol=1e-4)


@pytest.mark.parametrize("power", [0, 1, 3, -2])
def test_matrix_power_matches_torch(rng, power):
    check(lambda x: linalg.matrix_power(x, power), lambda x: torch.linalg.matrix_power(x, power),
          matrices(rng, 2, 3, 3) / 3)


@pytest.mark.parametrize("ord", [2, 1, float("inf"), float("-inf"), 0, 3.5])
def test_vector_norm_matches_torch(rng, ord):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    x[0, 1] = 0.0
    check(lambda v: linalg.vector_norm(v, ord, dim=1), lambda v: torch.linalg.vector_norm(v, ord, dim=1), x)
    check(lambda v: linalg.vector_norm(v, ord), lambda v: torch.linalg.vector_norm(v, ord), x)


def test_vector_norm_extreme_inputs():
    zero = jt.array(np.zeros(3, np.float32))
    assert linalg.vector_norm(zero).item() == 0.0
    np.testing.assert_array_equal(jt.grad(linalg.vector_norm(zero), zero).numpy(), np.zeros(3))
    assert linalg.vector_norm(jt.array([np.inf, 1.0])).item() == np.inf
    assert np.isnan(linalg.vector_norm(jt.array([np.nan, 1.0])).item())


@pytest.mark.parametrize("ord", ["fro", "nuc", 2, -2, 1, -1, float("inf"), float("-inf")])
def test_matrix_norm_matches_torch(rng, ord):
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    check(lambda v: linalg.matrix_norm(v, ord), lambda v: torch.linalg.matrix_norm(v, ord), x)


def test_norm_dispatches_as_torch(rng):
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    check(lambda v: linalg.norm(v), lambda v: torch.linalg.norm(v), x)
    check(lambda v: linalg.norm(v, 1, dim=-1, keepdim=True), lambda v: torch.linalg.norm(v, 1, dim=-1, keepdim=True), x)
    check(lambda v: linalg.norm(v, "fro", dim=(0, 2), keepdim=True),
          lambda v: torch.linalg.norm(v, "fro", dim=(0, 2), keepdim=True), x)
    check(lambda v: linalg.norm(v[0], float("inf")), lambda v: torch.linalg.norm(v[0], float("inf")), x)


def test_cross_broadcasts(rng):
    x, y = rng.standard_normal((1, 2, 3)).astype(np.float32), rng.standard_normal((4, 1, 3)).astype(np.float32)
    check(linalg.cross, torch.linalg.cross, x, y)


def test_diagonal(rng):
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    check(lambda v: linalg.diagonal(v, 1), lambda v: torch.linalg.diagonal(v, offset=1), x)
    check(lambda v: linalg.diagonal(v, -1, 0, 2), lambda v: torch.linalg.diagonal(v, offset=-1, dim1=0, dim2=2), x)


def test_second_order_gradient_of_det_matches_torch(rng):
    a = matrices(rng, 3, 3)
    x = jt.array(a)
    hessian_row = jt.grad(jt.grad(linalg.det(x), x)[0, 1], x)
    t = torch.tensor(a, dtype=torch.float64, requires_grad=True)
    (first,) = torch.autograd.grad(torch.linalg.det(t), t, create_graph=True)
    (second,) = torch.autograd.grad(first[0, 1], t)
    np.testing.assert_allclose(hessian_row.numpy(), second.numpy(), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("driver", [None, "gels", "gelsy", "gelsd", "gelss"])
@pytest.mark.parametrize("shape", [(6, 3), (2, 4, 4), (3, 5)])
def test_lstsq_matches_torch(rng, shape, driver):
    a = matrices(rng, *shape)
    b = rng.standard_normal(shape[:-1] + (2,)).astype(np.float32)
    got, want = linalg.lstsq(jt.array(a), jt.array(b), driver=driver), \
        torch.linalg.lstsq(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64), driver=driver)
    for name in ("residuals", "rank", "singular_values"):
        ours, theirs = getattr(got, name), getattr(want, name)
        assert tuple(ours.shape) == tuple(theirs.shape), name
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-4, atol=1e-4, err_msg=name)
    assert got.rank.dtype == jt.int64
    check(lambda x, y: linalg.lstsq(x, y, driver=driver).solution,
          lambda x, y: torch.linalg.lstsq(x, y, driver=driver).solution, a, b)


def test_lstsq_of_rank_deficient_systems_is_numpys_least_norm_solution(rng):
    a = rng.standard_normal((5, 3))
    a[:, 2] = a[:, 0] - 2 * a[:, 1]  # rank 2
    b = rng.standard_normal((5, 2))
    result = linalg.lstsq(jt.array(a), jt.array(b), driver="gelsd")
    solution, residuals, rank, singular_values = np.linalg.lstsq(a, b, rcond=None)
    np.testing.assert_allclose(result.solution.numpy(), solution, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(result.singular_values.numpy(), singular_values, rtol=1e-8, atol=1e-10)
    assert result.rank.item() == rank == 2
    np.testing.assert_allclose(linalg.lstsq(jt.array(np.zeros((3, 2))), jt.array(np.ones((3, 1)))).solution.numpy(),
                               np.zeros((2, 1)))


def test_lstsq_broadcasts_batches_and_names_bad_inputs(rng):
    a, b = matrices(rng, 6, 3), rng.standard_normal((2, 6, 1)).astype(np.float32)
    np.testing.assert_allclose(linalg.lstsq(jt.array(a), jt.array(b)).solution.numpy(),
                               np.stack([np.linalg.lstsq(a, b[k], rcond=None)[0] for k in range(2)]),
                               rtol=1e-4, atol=1e-5)
    with pytest.raises(jt.MetajitValueError, match="driver must be one of .* got 'qr'"):
        linalg.lstsq(jt.array(a), jt.array(b), driver="qr")
    with pytest.raises(jt.MetajitShapeError, match=r"B of shape \(\.\.\., m, k\) with A's m = 6 rows, got A "
                                                   r"\(6, 3\) and B \(6,\)"):
        linalg.lstsq(jt.array(a), jt.zeros(6))


def test_matrix_rank_matches_torch(rng):
    full = rng.standard_normal((4, 3))
    deficient = full @ rng.standard_normal((3, 5))  # 4 x 5 of rank 3
    cases = [full, deficient, np.zeros((3, 3)), np.ones((4, 4)), np.diag([1.0, 1e-3, 1e-9]),
             np.stack([np.eye(3), np.diag([1.0, 0.0, 0.0])])]
    for case in cases:
        x, t = jt.array(case), torch.tensor(case)
        for settings in ({}, {"atol": 1e-2}, {"rtol": 1e-2}, {"atol": 0.5, "rtol": 1e-6}):
            np.testing.assert_array_equal(linalg.matrix_rank(x, **settings).numpy(),
                                          torch.linalg.matrix_rank(t, **settings).numpy(), err_msg=str(settings))
        np.testing.assert_array_equal(linalg.matrix_rank(x, 1e-2).numpy(),
                                      torch.linalg.matrix_rank(t, atol=1e-2, rtol=0.0).numpy())
    symmetric_case = symmetric(rng, 4, 4).astype(np.float64)
    symmetric_case[:, 0] = symmetric_case[0, :] = 0.0
    assert linalg.matrix_rank(jt.array(symmetric_case), hermitian=True).item() == \
        torch.linalg.matrix_rank(torch.tensor(symmetric_case), hermitian=True).item() == 3
    assert linalg.matrix_rank(jt.array(full)).dtype == jt.int64


def test_norm_gradients_at_zero_match_torch():
    zero = np.zeros((2, 3))
    cases = [(lambda v: linalg.norm(v), lambda v: torch.linalg.norm(v)),
             (lambda v: linalg.norm(v, 3.0, dim=1), lambda v: torch.linalg.norm(v, 3.0, dim=1)),
             (lambda v: linalg.vector_norm(v, 0.5), lambda v: torch.linalg.vector_norm(v, 0.5)),
             (lambda v: linalg.matrix_norm(v), lambda v: torch.linalg.matrix_norm(v)),
             (lambda v: linalg.matrix_norm(v, 1), lambda v: torch.linalg.matrix_norm(v, 1)),
             (lambda v: linalg.matrix_norm(v, float("inf")), lambda v: torch.linalg.matrix_norm(v, float("inf"))),
             (lambda v: jt.norm(v), lambda v: torch.norm(v))]
    for ours, theirs in cases:
        x, t = jt.array(zero), torch.tensor(zero, requires_grad=True)
        theirs(t).sum().backward()
        np.testing.assert_array_equal(jt.grad(ours(x).sum(), x).numpy(), t.grad.numpy())
