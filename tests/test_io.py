"""Model files: bit-identical round trips, atomic writes, refusal of damaged or hostile files."""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest

import layerwise as lw


def trained(dtype=np.float32):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 5)).astype(dtype)
    y = rng.integers(0, 3, 64)
    model = lw.Sequential(lw.Dense(5, 8, init="he", rng=0, dtype=dtype), lw.LeakyReLU(0.2),
                          lw.Dropout(0.1, rng=0), lw.Dense(8, 6, rng=1, dtype=dtype),
                          lw.GELU("tanh"), lw.Dense(6, 3, bias=False, rng=2, dtype=dtype))
    model.fit(X, y, loss=lw.CrossEntropy(label_smoothing=0.05), epochs=2, batch_size=16,
              verbose=0, rng=0)
    model.metadata["note"] = "hello"
    return model, X, y


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_save_load_round_trip_is_bit_identical(tmp_path, dtype):
    model, X, y = trained(dtype)
    path = tmp_path / "m.lw"
    model.save(path)
    loaded = lw.load(path)
    assert [layer.kind for layer in loaded.layers] == [layer.kind for layer in model.layers]
    assert loaded.dtype == dtype
    for p, q in zip(model.parameters(), loaded.parameters()):
        assert p.name == q.name
        np.testing.assert_array_equal(p.value, q.value)
    np.testing.assert_array_equal(model.predict(X), loaded.predict(X))
    assert loaded.loss.kind == "ce" and loaded.loss.label_smoothing == 0.05
    assert loaded.metadata == {"note": "hello"}
    assert loaded.layers[1].alpha == 0.2 and loaded.layers[4].approximate == "tanh"
    assert loaded.layers[5].bias is False
    assert loaded.evaluate(X, y) == model.evaluate(X, y)


def test_file_is_a_zip_of_json_and_npy_without_pickle(tmp_path):
    model, _, _ = trained()
    model.save(tmp_path / "m.lw")
    with zipfile.ZipFile(tmp_path / "m.lw") as z:
        names = set(z.namelist())
        doc = json.loads(z.read("model.json"))
    assert "model.json" in names and "arrays/0.W.npy" in names
    assert doc["format"] == "layerwise-model" and doc["format_version"] == 1
    assert doc["layers"][0]["config"] == {"n_in": 5, "n_out": 8, "init": "he_normal",
                                          "bias": True}


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path, monkeypatch):
    model, _, _ = trained()
    path = tmp_path / "m.lw"
    model.save(path)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(zipfile.ZipFile, "writestr", boom)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before                         # the old file is intact
    assert os.listdir(tmp_path) == ["m.lw"]                     # no temporary left behind


def _rewrite(src, dst, edit_doc=None, replace=None):
    """Copy a model zip, optionally editing model.json or replacing members."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "model.json" and edit_doc:
                doc = json.loads(data)
                edit_doc(doc)
                data = json.dumps(doc).encode()
            if replace and item.filename in replace:
                data = replace[item.filename]
            zout.writestr(item.filename, data)


def test_pickled_array_is_refused(tmp_path):
    model, _, _ = trained()
    good, bad = tmp_path / "good.lw", tmp_path / "bad.lw"
    model.save(good)
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    payload = buf.getvalue()
    import hashlib

    def fix_hash(doc):
        doc["layers"][0]["arrays"]["W"]["sha256"] = hashlib.sha256(payload).hexdigest()

    _rewrite(good, bad, edit_doc=fix_hash, replace={"arrays/0.W.npy": payload})
    with pytest.raises(lw.ModelFileError, match="pickled objects are refused"):
        lw.load(bad)


def test_raw_pickle_file_is_refused(tmp_path):
    path = tmp_path / "evil.lw"
    path.write_bytes(pickle.dumps({"W": np.ones(3)}))
    with pytest.raises(lw.ModelFileError, match="not a zip archive"):
        lw.load(path)


def test_modified_array_fails_its_checksum(tmp_path):
    model, _, _ = trained()
    good, bad = tmp_path / "good.lw", tmp_path / "bad.lw"
    model.save(good)
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.zeros((8, 5), np.float32))
    _rewrite(good, bad, replace={"arrays/0.W.npy": buf.getvalue()})
    with pytest.raises(lw.ModelFileError, match="SHA-256"):
        lw.load(bad)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d.update(format_version=99), "upgrade layerwise"),
        (lambda d: d.update(format="something-else"), "does not describe a layerwise model"),
        (lambda d: d["layers"][0].update(kind="os.system"), "unknown kind 'os.system'"),
        (lambda d: d.update(dtype="int8"), "float32 or float64"),
        (lambda d: d["layers"][0]["config"].update(n_in=7), "has shape"),
        (lambda d: d["layers"][0]["config"].update(bogus=1), "invalid settings"),
    ],
)
def test_inconsistent_description_is_refused(tmp_path, edit, match):
    model, _, _ = trained()
    good, bad = tmp_path / "good.lw", tmp_path / "bad.lw"
    model.save(good)
    _rewrite(good, bad, edit_doc=edit)
    with pytest.raises(lw.ModelFileError, match=match):
        lw.load(bad)


def test_path_traversal_member_is_refused(tmp_path):
    model, _, _ = trained()
    good, bad = tmp_path / "good.lw", tmp_path / "bad.lw"
    model.save(good)
    _rewrite(good, bad)
    with zipfile.ZipFile(bad, "a") as z:
        z.writestr("../../etc/evil", b"x")
    with pytest.raises(lw.ModelFileError, match="unsafe path"):
        lw.load(bad)


def test_missing_and_truncated_files(tmp_path):
    with pytest.raises(lw.ModelFileError, match="no such file"):
        lw.load(tmp_path / "nope.lw")
    model, _, _ = trained()
    path = tmp_path / "m.lw"
    model.save(path)
    data = path.read_bytes()
    (tmp_path / "cut.lw").write_bytes(data[: len(data) // 2])
    with pytest.raises(lw.ModelFileError):
        lw.load(tmp_path / "cut.lw")


def test_model_file_error_is_a_value_error_and_layerwise_error(tmp_path):
    with pytest.raises(ValueError):
        lw.load(tmp_path / "nope.lw")
    assert issubclass(lw.ModelFileError, lw.LayerwiseError)
