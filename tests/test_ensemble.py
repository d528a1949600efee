"""lw.ensemble: K networks of one shape as one network whose output is their mean."""

from __future__ import annotations

import numpy as np
import pytest

import layerwise as lw


def _members(sizes, K=3, **kw):
    return [lw.mlp(sizes, dtype=np.float64, rng=k, **kw) for k in range(K)]


@pytest.mark.parametrize("sizes,kw", [
    ([5, 7, 3], {}),                                         # one hidden layer
    ([5, 7, 6, 2], {"activation": ["tanh", "gelu"]}),        # block-diagonal middle layer
    ([5, 3], {}),                                            # no hidden layer: the mean of W
    ([4, 6, 1], {"dropout": 0.3, "activation": "leaky_relu"}),
])
def test_the_merged_network_outputs_the_mean_of_the_members(sizes, kw):
    members = _members(sizes, **kw)
    X = np.random.default_rng(0).normal(size=(50, sizes[0]))
    merged = lw.ensemble(members)
    mean = np.mean([m.predict(X) for m in members], axis=0)
    np.testing.assert_allclose(merged.predict(X), mean, rtol=1e-12, atol=1e-12)
    hidden = [layer.n_out for layer in merged.layers if isinstance(layer, lw.Dense)][:-1]
    assert hidden == [3 * s for s in sizes[1:-1]]
    assert merged.metadata["ensemble"] == 3


def test_an_ensemble_saves_loads_and_keeps_the_loss(tmp_path):
    members = _members([4, 5, 3])
    for m in members:
        m.loss = lw.CrossEntropy()
    merged = lw.ensemble(members)
    merged.save(tmp_path / "e.lw")
    back = lw.load(tmp_path / "e.lw")
    X = np.random.default_rng(1).normal(size=(9, 4))
    np.testing.assert_array_equal(back.predict(X), merged.predict(X))
    assert back.loss.kind == "ce"
    np.testing.assert_allclose(back.predict_proba(X).sum(axis=1), 1.0)


def test_ensemble_refuses_what_it_cannot_merge():
    with pytest.raises(lw.ValidationError, match="one shape"):
        lw.ensemble([lw.mlp([3, 4, 2], rng=0), lw.mlp([3, 5, 2], rng=0)])
    with pytest.raises(lw.ValidationError, match="last layer to be Dense"):
        lw.ensemble(_members([3, 4, 2], output="sigmoid"))
    with pytest.raises(lw.ValidationError, match="mixes units"):
        lw.ensemble(_members([3, 4, 2], norm="layer"))
    with pytest.raises(lw.ValidationError, match="non-empty"):
        lw.ensemble([])


def test_an_ensemble_too_large_for_memory_is_refused_before_anything_is_allocated(
        monkeypatch):
    """Hidden layers merge block-diagonally, k² times their size: the merged weights are
    counted before anything is built or trained."""
    from layerwise import _utils, network
    model = lw.mlp([10, 100, 100, 3], rng=0)
    # k = 50: 10·5000 + 5000·5000 + 5000·3 weights and 10,003 biases, float32
    need = (10 * 5000 + 5000 * 5000 + 5000 * 3 + 5000 + 5000 + 3) * 4
    monkeypatch.setattr(_utils, "physical_memory", lambda: need - 1)
    with pytest.raises(lw.ValidationError, match="an ensemble of 50 networks needs"):
        network.check_ensemble(model, 50)
    monkeypatch.setattr(_utils, "physical_memory", lambda: need)
    network.check_ensemble(model, 50)                       # exactly fits: accepted
