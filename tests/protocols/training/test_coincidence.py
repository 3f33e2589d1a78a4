"""Pulse-coincidence updates against their closed forms (mean, variance, row covariance)."""

from __future__ import annotations

import numpy as np
import pytest

from protocols.training.coincidence import (
    count_variance,
    draw_streams,
    expected_counts,
    signed_counts,
    stream_probabilities,
)

X = np.array([0.0, 0.2, 0.5, 1.0])
DELTA = np.array([0.3, -0.6, 0.05])
GAIN = 4.0  # pulses per unit of |x delta|
BL = 20


def test_the_mean_count_is_the_rounded_rules_target_and_the_streams_share_their_range():
    p, q = stream_probabilities(X, DELTA, GAIN, BL)
    assert p.max() == pytest.approx(q.max())  # update management: equal peak probabilities
    assert np.all((p >= 0) & (p <= 1)) and np.all((q >= 0) & (q <= 1))
    assert expected_counts(X, DELTA, GAIN, BL) == pytest.approx(GAIN * np.abs(np.multiply.outer(X, DELTA)))
    assert p[0] == 0.0  # a zero input never fires


def test_counts_match_the_binomial_mean_variance_and_the_shared_row_covariance():
    rng = np.random.default_rng(7)
    n = 6000
    samples = np.empty((n, X.size, DELTA.size))
    for k in range(n):
        plus, minus = signed_counts(draw_streams(X, DELTA, GAIN, BL, rng))
        samples[k] = plus + minus
    mean, var = expected_counts(X, DELTA, GAIN, BL), count_variance(X, DELTA, GAIN, BL)
    # the sample mean within 4 standard errors of the closed form, cell by cell
    se = np.sqrt(var / n) + 1e-12
    assert np.all(np.abs(samples.mean(axis=0) - mean) <= 4 * se)
    # the sample variance within 10 % where it is not tiny
    big = var > 0.5
    assert np.allclose(samples.var(axis=0, ddof=1)[big], var[big], rtol=0.1)
    # cells of one row share the row's stream: Cov(n_ij, n_ik) = BL p_i (1 - p_i) q_j q_k
    p, q = stream_probabilities(X, DELTA, GAIN, BL)
    i, j, k = 3, 0, 1
    cov = np.cov(samples[:, i, j], samples[:, i, k])[0, 1]
    expected = BL * p[i] * (1 - p[i]) * q[j] * q[k]
    se_cov = np.sqrt(var[i, j] * var[i, k] / n)  # standard error of a sample covariance (about)
    assert expected > 8 * se_cov  # far enough from 0 that independent per-cell draws would fail
    assert abs(cov - expected) < 4 * se_cov


def test_each_cells_pulses_go_to_the_device_of_its_changes_sign():
    rng = np.random.default_rng(1)
    plus, minus = signed_counts(draw_streams(X, DELTA, 50.0, BL, rng))
    direction = -np.multiply.outer(np.sign(X), np.sign(DELTA))
    assert np.all(plus[direction <= 0] == 0) and np.all(minus[direction >= 0] == 0)
    assert plus.sum() > 0 and minus.sum() > 0
    assert plus.max() <= BL and minus.max() <= BL  # at most one pulse per slot


def test_a_gain_beyond_the_streams_clips_at_one_pulse_per_slot():
    p, q = stream_probabilities(X, DELTA, 1e6, BL)
    assert p.max() == 1.0 and q.max() == 1.0
    n = expected_counts(X, DELTA, 1e6, BL)
    assert n.max() == pytest.approx(BL)


@pytest.mark.parametrize(("bit_length", "gain", "field"), [(0, 1.0, "bit_length"), (10, -1.0, "gain")])
def test_bad_settings_are_refused_by_name(bit_length: int, gain: float, field: str):
    with pytest.raises(ValueError, match=field):
        stream_probabilities(X, DELTA, gain, bit_length)


def test_the_twin_applies_the_closed_form_counts_under_program_streams(make_twin, monkeypatch) -> None:
    """Streams drawn as the training does, sent through the safety layer to the twin: the pulse
    counts that reach its programming kernel, cell by cell, have the closed-form mean and
    variance of the coincidence count (fixed seed)."""
    from hil.backend import Backend
    from hil.safety import SafeBackend, SafetyLimits
    from hil.types import ArraySpec, Pulse

    x = np.array([0.0, 0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 1.0])
    delta = np.array([0.02, -0.1, 0.25, -0.4, 0.5, -0.7, 0.85, -1.0])
    gain, bl = 6.0, 10
    twin = make_twin(arrays=[ArraySpec("A", 8, 8, 1e-12)], seed=2)
    applied: list[np.ndarray] = []
    model = twin.model("A")
    original = model.apply_pulses

    def capture(idx, amplitude_V, width_s, count, t):  # type: ignore[no-untyped-def]
        dense = np.zeros(64, dtype=np.int64)
        dense[np.asarray(idx)] = count
        applied.append(dense.reshape(8, 8))
        original(idx, amplitude_V, width_s, count, t)

    monkeypatch.setattr(model, "apply_pulses", capture)
    safe: Backend = SafeBackend(twin, SafetyLimits())
    rng = np.random.default_rng(11)
    n = 3000
    totals = 0
    for _ in range(n):
        s = draw_streams(x, delta, gain, bl, rng)
        before = len(applied)
        totals += safe.program_streams("A", s.rows, s.cols, Pulse(2.0, 1e-4)).pulses_applied
        if len(applied) == before:  # no coincidence at all: nothing reached the kernel
            applied.append(np.zeros((8, 8), dtype=np.int64))
    samples = np.stack(applied).astype(float)
    assert samples.shape == (n, 8, 8) and samples.sum() == totals
    mean, var = expected_counts(x, delta, gain, bl), count_variance(x, delta, gain, bl)
    assert mean.max() > 3.0  # counts well above one pulse are exercised
    se = np.sqrt(var / n) + 1e-12
    assert np.all(np.abs(samples.mean(axis=0) - mean) <= 4.5 * se)
    big = var > 0.5
    assert big.sum() >= 10
    assert np.allclose(samples.var(axis=0, ddof=1)[big], var[big], rtol=0.12)
    assert samples.max() <= bl
