"""The layer protocol: a layer describes itself (kind, config, parameters by name, array shapes),
so a layer class defined here, outside the package, trains, saves and loads with no edit to it."""

from __future__ import annotations

import json
import pickle
import zipfile
from typing import Any

import numpy as np
import pytest

import layerwise as lw
from layerwise import io as lw_io
from layerwise.explain import explain
from layerwise.layers import LAYERS

F64 = np.float64


class Affine(lw.Layer):
    """A user's layer: ``A = Z ⊙ g + h`` per feature, parameters under names of its own.

    dg = Σ_batch dA ⊙ Z,  dh = Σ_batch dA,  dZ = dA ⊙ g. It also keeps a non-trained array
    (``seen``: how many training rows went through), to show state travels with the model.
    """

    kind = "user_affine"

    def __init__(self, n: int, scale: float = 1.0, dtype: Any = np.float32) -> None:
        super().__init__()
        self.n, self.scale = n, scale
        self.gain = self.add_param("g", np.full(n, scale, dtype))
        self.shift = self.add_param("h", np.zeros(n, dtype), decay=False)
        self.add_state("seen", np.zeros(1, dtype))
        self.backward_calls: list[bool] = []

    def forward(self, A: np.ndarray, training: bool = False) -> np.ndarray:
        self._Z = A
        if training:
            self.state("seen")[0] += len(A)
        return A * self.gain.value + self.shift.value

    def backward(self, dA: np.ndarray, input_grad: bool = True) -> np.ndarray:
        self.backward_calls.append(input_grad)
        np.sum(dA * self._Z, axis=0, out=self.gain.grad)       # dg = Σ_batch dA ⊙ Z
        np.sum(dA, axis=0, out=self.shift.grad)                # dh = Σ_batch dA
        return dA * self.gain.value if input_grad else None  # type: ignore[return-value]

    def config(self) -> dict[str, Any]:
        return {"n": self.n, "scale": self.scale}


def data(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4)).astype(np.float32)
    return X, (X[:, 0] - X[:, 1] > 0).astype(np.int64)


def user_model() -> lw.Sequential:
    return lw.Sequential(lw.Dense(4, 6, rng=0), Affine(6, 0.5), lw.Tanh(), lw.Dense(6, 2, rng=1))


def test_defining_a_layer_registers_its_kind():
    assert LAYERS["user_affine"] is Affine
    assert lw_io.LAYERS is LAYERS                       # io looks kinds up there, no own table
    assert {"dense", "dropout", "standardize", "relu", "softmax"} <= set(LAYERS)


def test_a_second_class_cannot_take_a_kind():
    with pytest.raises(lw.ConfigError, match="already taken"):
        class Impostor(lw.Layer):
            kind = "dense"


def test_add_param_refuses_a_repeated_name():
    layer = Affine(3)
    with pytest.raises(lw.ConfigError, match="'g'"):
        layer.add_param("g", np.zeros(3))
    with pytest.raises(lw.ConfigError, match="'seen'"):
        layer.add_param("seen", np.zeros(3))


def test_params_are_the_layers_own():
    layer = Affine(3)
    assert [p.name for p in layer.params()] == ["g", "h"]
    assert layer.params()[0] is layer.gain and layer.trainable
    assert layer.params()[1].no_decay == ((0, 3),) and layer.params()[0].no_decay == ()
    assert set(layer.arrays()) == {"g", "h", "seen"}
    assert not lw.ReLU().trainable and lw.ReLU().params() == []
    dense = lw.Dense(3, 2, rng=0)
    assert dense.params()[0].value is dense.W and dense.params()[1].grad is dense.db


def test_a_user_layer_trains_with_fit():
    """Its parameters join the flat buffer the optimizer updates, under names of its own."""
    X, y = data()
    model = user_model()
    g0 = model.layers[1].gain.value.copy()
    hist = model.fit(X, y, loss="ce", optimizer=lw.Adam(1e-2), epochs=30, batch_size=32, rng=0)
    assert hist.history["loss"][-1] < 0.5 * hist.history["loss"][0]
    layer = model.layers[1]
    flat = model.flat_parameters()[0]
    assert layer.gain.value.base is flat.value and layer.gain.grad.base is flat.grad
    assert not np.array_equal(layer.gain.value, g0)                  # it did train
    assert np.abs(layer.shift.value).max() > 0
    assert layer.state("seen")[0] == 30 * len(X)


def test_the_first_layer_with_parameters_is_asked_for_no_input_gradient():
    X, y = data(40)
    model = lw.Sequential(Affine(4), lw.Dense(4, 2, rng=0))
    model.fit(X, y, loss="ce", optimizer="sgd", epochs=1, batch_size=40, rng=0)
    assert model.layers[0].backward_calls == [False]


def test_a_user_layer_saves_and_loads(tmp_path):
    X, y = data()
    model = user_model()
    model.fit(X, y, loss="ce", optimizer=lw.Adam(1e-2), epochs=5, batch_size=32, rng=0)
    model.save(tmp_path / "m.lw")
    back = lw.load(tmp_path / "m.lw")
    layer = back.layers[1]
    assert isinstance(layer, Affine) and layer.config() == {"n": 6, "scale": 0.5}
    for name, a in model.layers[1].arrays().items():
        np.testing.assert_array_equal(layer.arrays()[name], a)
    np.testing.assert_array_equal(back.predict(X), model.predict(X))
    # and it trains on after loading
    back.fit(X, y, loss="ce", optimizer=lw.Adam(1e-2), epochs=1, batch_size=32, rng=0)


def test_a_user_layer_with_a_wrong_array_is_refused(tmp_path):
    model = user_model()
    model.save(tmp_path / "m.lw")
    with zipfile.ZipFile(tmp_path / "m.lw") as z:
        members = {n: z.read(n) for n in z.namelist()}
    doc = json.loads(members["model.json"])
    doc["layers"][1]["config"]["n"] = 5                  # the stored arrays hold 6 numbers
    members["model.json"] = json.dumps(doc).encode()
    with zipfile.ZipFile(tmp_path / "bad.lw", "w") as z:
        for n, b in members.items():
            z.writestr(n, b)
    with pytest.raises(lw.ModelFileError, match=r"layer 1 needs \(5,\)"):
        lw.load(tmp_path / "bad.lw")


def test_a_user_layer_passes_gradcheck():
    X, y = data(8)
    model = lw.Sequential(lw.Dense(4, 5, rng=0, dtype=F64), Affine(5, 0.7, dtype=F64),
                          lw.Tanh(), lw.Dense(5, 2, rng=1, dtype=F64))
    model.layers[1].shift.value[...] = np.linspace(-0.3, 0.3, 5)
    report = lw.gradcheck(model, "ce", X, y)
    assert report.passed, str(report)
    assert {"1.g", "1.h"} <= set(report.max_rel_error)


def test_explain_opens_a_row_for_every_layer_with_parameters():
    X, y = data(16)
    report = explain(user_model(), "ce", X, y)
    assert [r.kind for r in report.layers] == ["dense", "user_affine", "dense"]
    assert [r.activation for r in report.layers] == ["identity", "tanh", "identity"]
    assert report.layers[1].shapes["dW"] == (6,) and report.layers[1].shapes["dX"] == (16, 6)
    assert "2 user_affine" in str(report)


def test_astype_casts_parameters_and_state():
    model = user_model().astype(F64)
    layer = model.layers[1]
    assert all(a.dtype == F64 for a in layer.arrays().values())
    assert layer.gain.grad.dtype == F64 and model.dtype == F64


def test_model_without_parameters_is_still_refused():
    with pytest.raises(lw.ValidationError, match="no Dense layer"):
        lw.Sequential(lw.ReLU()).save("never.lw")


def test_the_estimators_pickle_a_model_rebuilt_through_the_protocol():
    pytest.importorskip("sklearn")
    from layerwise.sklearn import _compact
    X, y = data(50)
    model = user_model()
    model.fit(X, y, loss="ce", epochs=1, rng=0)
    copy = pickle.loads(pickle.dumps(_compact(model)))
    assert isinstance(copy.layers[1], Affine)
    np.testing.assert_array_equal(copy.predict(X), model.predict(X))


def test_loading_a_user_layer_whose_class_is_not_defined_says_how_to_fix_it(tmp_path):
    """A model file with a layer kind of the user's own, loaded in a process that has not
    defined the class: the error names the kind and says to import or define it first."""
    import subprocess
    import sys
    code = f"""
import numpy as np, layerwise as lw
class Scale(lw.Layer):
    kind = "scale_only_in_the_writer"
    def __init__(self, n):
        super().__init__()
        self.n = n
        self.s = self.add_param("s", np.ones(n, dtype=np.float32))
    def forward(self, A, training=False):
        return A * self.s.value
    def backward(self, dA, input_grad=True):
        return dA * self.s.value
    def config(self):
        return {{"n": self.n}}
lw.Sequential(lw.Dense(3, 4, rng=0), Scale(4)).save({str(tmp_path / "m.lw")!r})
"""
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    with pytest.raises(lw.ModelFileError) as e:
        lw.load(tmp_path / "m.lw")
    assert "unknown kind 'scale_only_in_the_writer'" in str(e.value)
    assert "import or define it before loading" in str(e.value)
