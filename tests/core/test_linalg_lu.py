"""LU factorisation, lu_solve, solve_triangular and the determinant at singular matrices
(metajit.linalg_lu) against torch.linalg (values and gradients) and numpy oracles."""
import itertools

import numpy as np
import pytest

import metajit as jt
from metajit import linalg
from tests.core.test_linalg import check, matrices

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("shape", [(4, 4), (2, 3, 3), (5, 3), (3, 5), (1, 1)])
def test_lu_factor_and_lu_match_torch(rng, shape):
    a = matrices(rng, *shape, conditioned=False)
    packed, pivots = linalg.lu_factor(jt.array(a))
    torch_packed, torch_pivots = torch.linalg.lu_factor(torch.tensor(a, dtype=torch.float64))
    np.testing.assert_array_equal(pivots.numpy(), torch_pivots.numpy())
    assert pivots.dtype == jt.int32
    check(lambda x: linalg.lu_factor(x).LU, lambda x: torch.linalg.lu_factor(x).LU, a)
    check(lambda x: tuple(linalg.lu(x)), lambda x: tuple(torch.linalg.lu(x)), a)


def test_lu_pivots_on_ties_and_singular_matrices_as_lapack():
    cases = [np.zeros((3, 3)), [[1.0, 2.0], [2.0, 4.0]], [[0.0, 1.0, 2.0], [0.0, 3.0, 4.0], [0.0, 5.0, 7.0]],
             [[1.0, 1.0], [-1.0, 1.0]], [[2.0, 1.0, 1.0], [2.0, 3.0, 1.0], [-2.0, 0.0, 5.0]]]
    for case in cases:
        a = np.array(case, np.float32)
        packed, pivots = linalg.lu_factor(jt.array(a))
        want_packed, want_pivots, _ = torch.linalg.lu_factor_ex(torch.tensor(a))
        np.testing.assert_array_equal(pivots.numpy(), want_pivots.numpy(), err_msg=str(case))
        np.testing.assert_allclose(packed.numpy(), want_packed.numpy(), atol=1e-6, err_msg=str(case))
        p, lower, upper = linalg.lu(jt.array(a))
        np.testing.assert_allclose((p @ lower @ upper).numpy(), a, atol=1e-6)


def test_lu_without_pivoting_is_the_doolittle_factorisation(rng):
    a = matrices(rng, 2, 4, 4)  # diagonally dominant: no pivoting needed
    p, lower, upper = linalg.lu(jt.array(a), pivot=False)
    assert tuple(p.shape) == (0,)
    np.testing.assert_allclose((lower @ upper).numpy(), a, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.triu(lower.numpy(), 1), 0)
    np.testing.assert_array_equal(np.diagonal(lower.numpy(), axis1=-2, axis2=-1), 1)
    np.testing.assert_array_equal(np.tril(upper.numpy(), -1), 0)
    packed, pivots = linalg.lu_factor(jt.array(a), pivot=False)
    np.testing.assert_array_equal(pivots.numpy(), np.tile(np.arange(1, 5, dtype=np.int32), (2, 1)))
    b = rng.standard_normal((2, 4, 2)).astype(np.float32)
    np.testing.assert_allclose(linalg.lu_solve(packed, pivots, jt.array(b)).numpy(), np.linalg.solve(a, b),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("left,adjoint", list(itertools.product([True, False], [False, True])))
def test_lu_solve_matches_torch(rng, left, adjoint):
    a = matrices(rng, 2, 4, 4, conditioned=False) + 2 * np.eye(4, dtype=np.float32)
    packed, pivots = torch.linalg.lu_factor(torch.tensor(a, dtype=torch.float64))
    b = rng.standard_normal((2, 4, 3) if left else (2, 3, 4)).astype(np.float32)
    settings = dict(left=left, adjoint=adjoint)
    check(lambda lu, rhs: linalg.lu_solve(lu, jt.array(pivots.numpy()), rhs, **settings),
          lambda lu, rhs: torch.linalg.lu_solve(lu, pivots, rhs, **settings), packed.numpy().astype(np.float32), b)
    x = linalg.lu_solve(*linalg.lu_factor(jt.array(a)), jt.array(b), **settings).numpy()
    matrix = a.swapaxes(-1, -2) if adjoint else a
    np.testing.assert_allclose(x, np.linalg.solve(matrix, b) if left else
                               np.linalg.solve(matrix.swapaxes(-1, -2), b.swapaxes(-1, -2)).swapaxes(-1, -2),
                               rtol=1e-4, atol=1e-4)


def test_lu_solve_broadcasts_batches(rng):
    a = matrices(rng, 3, 3)
    b = rng.standard_normal((2, 3, 2)).astype(np.float32)
    x = linalg.lu_solve(*linalg.lu_factor(jt.array(a)), jt.array(b))
    np.testing.assert_allclose(x.numpy(), np.linalg.solve(a, b), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("upper,left,unitriangular", list(itertools.product([True, False], repeat=3)))
def test_solve_triangular_matches_torch(rng, upper, left, unitriangular):
    a = matrices(rng, 2, 4, 4)
    b = rng.standard_normal((2, 4, 3) if left else (2, 3, 4)).astype(np.float32)
    settings = dict(upper=upper, left=left, unitriangular=unitriangular)
    check(lambda m, rhs: linalg.solve_triangular(m, rhs, **settings),
          lambda m, rhs: torch.linalg.solve_triangular(m, rhs, **settings), a, b)


def cofactors(a):
    """The cofactor matrix (the gradient of det) from minors, in float64."""
    n = a.shape[0]
    return np.array([[(-1) ** (i + j) * np.linalg.det(np.delete(np.delete(a, i, 0), j, 1)) if n > 1 else 1.0
                      for j in range(n)] for i in range(n)])


def test_det_gradient_at_singular_matrices_is_the_adjugate_as_torch_tracks_it():
    """torch's first-order det backward returns 0 at an exactly singular matrix (its LU
    solve of a zero right-hand side); with gradients tracked (create_graph) it takes the
    SVD path, which gives the adjugate: the true derivative. metajit gives the adjugate."""
    cases = [[[1.0, 2.0], [2.0, 4.0]], [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]], np.diag([1.0, 0.0, 2.0]),
             [[0.0, 0.0], [0.0, 1.0]], np.zeros((3, 3)), np.ones((3, 3))]
    for case in cases:
        a = np.array(case, np.float64)
        x = jt.array(a)
        assert linalg.det(x).item() == pytest.approx(0.0, abs=1e-12)
        t = torch.tensor(a, requires_grad=True)
        (tracked,) = torch.autograd.grad(torch.linalg.det(t), t, create_graph=True)
        got = jt.grad(linalg.det(x), x).numpy()
        np.testing.assert_allclose(got, tracked.detach().numpy(), atol=1e-6, err_msg=str(case))
        np.testing.assert_allclose(got, cofactors(a), atol=1e-6, err_msg=str(case))


def test_slogdet_and_inverse_of_singular_matrices_are_not_finite():
    singular = jt.array(np.array([[1.0, 2.0], [2.0, 4.0]], np.float32))
    sign, logabsdet = linalg.slogdet(singular)
    assert sign.item() == 0.0 and logabsdet.item() == -np.inf
    assert not np.isfinite(jt.grad(logabsdet, singular).numpy()).any()
    assert not np.isfinite(jt.grad(linalg.inv(singular).sum(), singular).numpy()).all()


def test_lu_functions_name_bad_inputs():
    with pytest.raises(jt.MetajitShapeError, match=r"linalg.lu_factor expects a matrix .* got shape \(3,\)"):
        linalg.lu_factor(jt.zeros(3))
    packed, pivots = linalg.lu_factor(jt.array(np.eye(3, dtype=np.float32)))
    with pytest.raises(jt.MetajitShapeError, match=r"integer pivots \(\.\.\., 3\) from lu_factor, got float32"):
        linalg.lu_solve(packed, pivots.float32(), jt.zeros(3, 1))
    with pytest.raises(jt.MetajitShapeError, match=r"expects B of shape \(\.\.\., n, k\), got shape \(3,\)"):
        linalg.lu_solve(packed, pivots, jt.zeros(3))
    with pytest.raises(jt.MetajitShapeError, match=r"3 unknowns, 2 rows in B"):
        linalg.lu_solve(packed, pivots, jt.zeros(2, 1))
    with pytest.raises(jt.MetajitShapeError, match="linalg.solve_triangular expects square matrices"):
        linalg.solve_triangular(jt.zeros(2, 3), jt.zeros(2, 1), upper=True)
    with pytest.raises(jt.MetajitShapeError, match=r"A of shape \(2, 2\) and B of shape \(3, 1\) do not match"):
        linalg.solve_triangular(jt.eye(2), jt.zeros(3, 1), upper=False)
