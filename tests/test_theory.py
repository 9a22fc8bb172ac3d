import numpy as np
import pytest

from sgdsmooth import theory


def test_c2_bounds_reproduce_the_article():
    # §4.3: b* = 2^9, 2^10, 2^9 with η = 0.1, β = 0.9, ε = 0.5 → 1280, 25.318, 128.
    assert theory.c2_upper_bound("sgd", 2**9, 0.5, 0.1) == pytest.approx(1280)
    assert theory.c2_upper_bound("shb", 2**10, 0.5, 0.1, 0.9) == pytest.approx(
        25.318, abs=1e-3
    )  # the article truncates 25.3187
    assert theory.c2_upper_bound("nshb", 2**9, 0.5, 0.1, 0.9) == pytest.approx(128)


def test_beta_hat_by_hand():
    # β = 0.5: 0.5·(0.25 − 0.5 + 1)/0.25 = 1.5
    assert theory.beta_hat(0.5) == pytest.approx(1.5)
    assert theory.beta_hat(0.0) == 0.0


def test_delta_by_hand():
    # SGD: 0.1·sqrt(1280/512) = 0.1·1.5811…
    assert theory.degree_of_smoothing("sgd", 0.1, 512, 1280) == pytest.approx(0.1 * np.sqrt(2.5))
    # SHB with β = 0.5 (β̂ = 1.5), C² = 8, b = 4, K² = 2: 0.1·sqrt(2.5·2 + 3) = 0.1·sqrt(8)
    assert theory.degree_of_smoothing("shb", 0.1, 4, 8, beta=0.5, k2=2) == pytest.approx(
        0.1 * np.sqrt(8)
    )
    # NSHB with β = 0.5: 0.1·sqrt(8/(0.5·4)) = 0.2
    assert theory.degree_of_smoothing("nshb", 0.1, 4, 8, beta=0.5) == pytest.approx(0.2)


def test_sgd_and_nshb_coincide_with_the_articles_bounds():
    # The article's Fig. 5 shows δ_SGD ≡ δ_NSHB: C²_NSHB/(1−β) = C²_SGD for its numbers.
    b = 2.0 ** np.arange(3, 14)
    sgd = theory.degree_of_smoothing("sgd", 0.1, b, 1280)
    nshb = theory.degree_of_smoothing("nshb", 0.1, b, 128, beta=0.9)
    np.testing.assert_allclose(sgd, nshb)


def test_all_three_coincide_at_beta_zero():
    b = np.array([8, 64, 512])
    ref = theory.degree_of_smoothing("sgd", 0.05, b, 100)
    for opt in ("shb", "nshb"):
        np.testing.assert_allclose(
            theory.degree_of_smoothing(opt, 0.05, b, 100, beta=0.0, k2=7.0), ref
        )


def test_shb_delta_has_a_batch_independent_floor():
    b = np.array([2**10, 2**20, 2**40])
    d = theory.degree_of_smoothing("shb", 0.1, b, 25.0, beta=0.9, k2=4.0)
    floor = 0.1 * np.sqrt(theory.beta_hat(0.9) * 4.0)
    assert d[-1] == pytest.approx(floor, rel=1e-6)
    assert np.all(d > floor)


@pytest.mark.parametrize("delta", [0.2, 0.4, 0.7, 1.0, 3.0])
def test_rastrigin_smoothing_matches_gauss_hermite_quadrature(delta):
    # E_u[f(x − δu)] with u ~ N(0, 1) by 160-point Gauss–Hermite quadrature.
    nodes, weights = np.polynomial.hermite_e.hermegauss(160)
    x = np.linspace(-5, 5, 41)
    numeric = (theory.rastrigin(x[:, None] - delta * nodes) * weights).sum(1) / np.sqrt(2 * np.pi)
    np.testing.assert_allclose(theory.rastrigin_smoothed(x, delta), numeric, rtol=1e-10, atol=1e-10)


def test_rastrigin_smoothing_limits():
    x = np.linspace(-3, 3, 13)
    np.testing.assert_allclose(theory.rastrigin_smoothed(x, 0.0), theory.rastrigin(x))
    # Large δ removes the ripples: what is left is the convex x² + δ² + 10.
    np.testing.assert_allclose(theory.rastrigin_smoothed(x, 3.0), x**2 + 9 + 10, atol=1e-60)


def test_unknown_optimizer_is_rejected():
    with pytest.raises(ValueError, match="optimizer"):
        theory.degree_of_smoothing("adam", 0.1, 8, 1.0)


def test_bstar_lower_bound_inverts_the_c2_bound_and_reproduces_the_article():
    # The article: b*_SGD = 512 at η = 0.1, ε = 0.5 gives C² < 1280; read forwards, C² = 1280
    # implies b* ≥ 512; SHB's 25.318 implies 1024 (Section 7 of docs/method.md).
    assert theory.bstar_lower_bound("sgd", 1280, 0.5, 0.1) == pytest.approx(512)
    assert theory.bstar_lower_bound("nshb", 128, 0.5, 0.1, 0.9) == pytest.approx(512)
    assert theory.bstar_lower_bound("shb", 25.318, 0.5, 0.1, 0.9) == pytest.approx(1024, rel=1e-4)
    # The NSHB case: C² = 22 at η = 0.1, ε = 0.5, β = 0.9 implies b* ≥ 88.
    assert theory.bstar_lower_bound("nshb", 22, 0.5, 0.1, 0.9) == pytest.approx(88)
    for opt in ("sgd", "shb", "nshb"):
        c2 = theory.c2_upper_bound(opt, 48.0, 0.7, 0.3, 0.8)
        assert theory.bstar_lower_bound(opt, c2, 0.7, 0.3, 0.8) == pytest.approx(48.0)


def test_floor_share_by_hand_and_the_k2_that_sets_it():
    # β = 0.9: β̂ = 81.9. C² = 1.582, b = 256, K² = 0.0021: the issue's "floor > half of δ_SHB
    # whenever K² > 0.0021".
    bh = theory.beta_hat(0.9)
    share = theory.floor_share(256, 1.582, 0.9, 0.0021)
    assert share == pytest.approx(np.sqrt(bh * 0.0021 / ((1 + bh) * 1.582 / 256 + bh * 0.0021)))
    assert theory.k2_for_floor_share(0.5, 256, 1.582418, 0.9) == pytest.approx(0.0021, abs=5e-5)
    for s in (0.1, 0.5, 0.9):
        k2 = theory.k2_for_floor_share(s, 64, 3.0, 0.9)
        assert theory.floor_share(64, 3.0, 0.9, k2) == pytest.approx(s)
    # The share is the floor over δ_SHB itself.
    floor = theory.degree_of_smoothing("shb", 0.1, np.inf, 3.0, 0.9, 0.05)
    whole = theory.degree_of_smoothing("shb", 0.1, 64, 3.0, 0.9, 0.05)
    assert theory.floor_share(64, 3.0, 0.9, 0.05) == pytest.approx(floor / whole)
