"""A warmed-up training step allocates no batch- or parameter-sized array and reuses buffers.

Measured with tracemalloc (NumPy reports its data allocations to it). The bound is a quarter of
the smallest hidden activation (B x 256 float32 = 256 KiB here) and far below every weight
matrix; what remains under it is NumPy's own fixed-size ufunc iteration buffer (at most 8192
elements, whatever the batch) and a few (B,)-length index vectors.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import layerwise as lw
from layerwise.training import train_step

B = 256


def setup(activation, loss, optimizer, dropout):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((B, 784)).astype(np.float32)
    L = lw.losses.get(loss)
    labels = rng.integers(0, 10, B)
    y = L.prepare_target(labels if loss == "ce" else np.eye(10)[labels], 10, np.float32)
    model = lw.mlp([784, 512, 256, 10], activation=activation, dropout=dropout, rng=0)
    return model, L, optimizer, X, y, model.flat_parameters()


CASES = [
    ("relu", "ce", lambda: lw.SGD(0.01, momentum=0.9, nesterov=True, weight_decay=1e-4), 0.2),
    ("tanh", "mse", lambda: lw.Adam(1e-3, weight_decay=1e-4), 0.0),
    ("sigmoid", "bce", lambda: lw.RMSprop(1e-3, momentum=0.9, centered=True), 0.1),
    ("leaky_relu", "ce", lambda: lw.AdamW(1e-3), 0.0),
]


@pytest.mark.parametrize(("activation", "loss", "make_opt", "dropout"), CASES)
def test_steps_after_warm_up_allocate_nothing_batch_sized(activation, loss, make_opt, dropout):
    model, L, opt, X, y, params = setup(activation, loss, make_opt(), dropout)
    for _ in range(2):                               # warm-up: buffers and optimizer state
        train_step(model, L, opt, X, y, params)
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        for _ in range(3):
            train_step(model, L, opt, X, y, params)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    smallest_hidden = B * 256 * 4
    assert peak < smallest_hidden // 4, f"{peak} bytes allocated during steady-state steps"


def test_an_allocating_step_would_be_caught():
    """The measurement can fail: a step that copies one activation exceeds the bound."""
    model, L, opt, X, y, params = setup("relu", "ce", lw.SGD(0.01), 0.0)
    train_step(model, L, opt, X, y, params)
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        train_step(model, L, opt, X, y, params)
        kept = model.layers[1]._A.copy()             # what a careless layer would do
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert kept.nbytes == B * 512 * 4 and peak >= kept.nbytes > B * 256 * 4 // 4


def test_layer_buffers_are_reused_across_steps_and_sliced_for_a_short_batch():
    model, L, opt, X, y, params = setup("relu", "ce", lw.SGD(0.01), 0.0)
    train_step(model, L, opt, X, y, params)
    dense, relu = model.layers[0], model.layers[1]
    Z1, A1, dA1 = dense._Z, relu._A, model.layers[2]._dA
    train_step(model, L, opt, X, y, params)
    assert np.shares_memory(Z1, dense._Z) and np.shares_memory(A1, relu._A)
    assert np.shares_memory(dA1, model.layers[2]._dA)
    train_step(model, L, opt, X[:37], y[:37], params)  # a short last batch: same memory, sliced
    assert dense._Z.shape == (37, 512) and np.shares_memory(Z1, dense._Z)
    assert dense._Z.flags.c_contiguous
    # parameters and gradients stay views of the one flat buffer the optimizer updates
    flat = params[0]
    assert all(p.value.base is flat.value and p.grad.base is flat.grad
               for p in model.parameters())


class _TraceSecondEpoch(lw.Callback):
    """Trace allocations from the end of epoch 1 to the end of epoch 2."""

    peak = -1

    def on_epoch_end(self, state, logs):
        if state.epoch == 0:
            tracemalloc.start()
            tracemalloc.reset_peak()
        elif state.epoch == 1:
            self.peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()


def test_a_fit_epoch_allocates_only_the_shuffled_index():
    """Within fit, an epoch gathers every batch into the buffers made at the start of fit:
    it allocates one shuffled index (N int64 = 16 KiB here) and nothing batch-sized."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2048, 784)).astype(np.float32)
    y = rng.integers(0, 10, 2048)
    model = lw.mlp([784, 512, 256, 10], rng=0)
    probe = _TraceSecondEpoch()
    model.fit(X, y, optimizer=lw.SGD(0.01, momentum=0.9), epochs=2, batch_size=B, verbose=0,
              rng=0, callbacks=[probe])
    assert 2048 * 8 <= probe.peak < B * 256 * 4 // 4
