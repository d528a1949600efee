"""Issue 12, item 5: images scaled by one factor."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

import layerwise as lw
from layerwise.cli import main
from layerwise.preprocessing import Standardize


# -- helpers ------------------------------------------------------------------------------------
def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(capsys, *argv) -> str:
    code, _out, err = run(capsys, *argv)
    assert code == 2 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("layerwise: error: "), err
    return lines[0]


def write_idx(path: Path, A: np.ndarray) -> None:
    """An IDX file: 00 00, type code 0x08 (uint8), ndim, each dimension as big-endian uint32."""
    assert A.dtype == np.uint8
    path.write_bytes(b"\0\0\x08" + bytes([A.ndim]) + struct.pack(f">{A.ndim}I", *A.shape)
                     + A.tobytes())


@pytest.fixture(scope="module")
def mnist_like(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    """A folder of IDX files, 6×6 uint8 images; pixel (0, 0) is 0 in every training image and
    255 in every test image (MNIST's border pixels are all but always 0 in training)."""
    folder = tmp_path_factory.mktemp("idx")
    rng = np.random.default_rng(0)
    X = rng.integers(0, 200, (120, 6, 6), dtype=np.uint8)
    X[:, 0, 0] = 0
    y = (X.reshape(120, -1).sum(1) > X.reshape(120, -1).sum(1).mean()).astype(np.uint8)
    Xt = rng.integers(0, 200, (30, 6, 6), dtype=np.uint8)
    Xt[:, 0, 0] = 255
    yt = rng.integers(0, 2, 30, dtype=np.uint8)
    for name, A in (("train-images-idx3-ubyte", X), ("train-labels-idx1-ubyte", y),
                    ("t10k-images-idx3-ubyte", Xt), ("t10k-labels-idx1-ubyte", yt)):
        write_idx(folder / name, A)
    return folder, X.reshape(120, -1), Xt.reshape(30, -1)


def table_csv(path: Path, n: int = 300, seed: int = 0) -> Path:
    """A CSV of 3 features and a 3-class text label, sorted by label (as iris is)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3)) * [1.0, 5.0, 0.1] + [0.0, 10.0, -3.0]
    s = X[:, 0] + (X[:, 1] - 10) / 5
    label = np.where(s > 0.5, "high", np.where(s < -0.5, "low", "mid"))
    order = np.argsort(label, kind="stable")
    lines = ["a,b,c,label"] + [f"{a!r},{b!r},{c!r},{t}" for (a, b, c), t in
                               zip(X[order].tolist(), label[order])]
    path.write_text("\n".join(lines) + "\n")
    return path


# -- item 5: images are scaled by one factor ----------------------------------------------------
def test_idx_images_are_divided_by_255_and_the_saved_model_does_it(capsys, tmp_path,
                                                                    mnist_like):
    folder, _X, Xt = mnist_like
    assert lw.datasets.load(str(folder)).full_scale == 255
    code, _, err = run(capsys, "train", folder, "--layers", "8", "--epochs", "1", "--quiet",
                       "--no-plots", "--threads", "1", "--out", tmp_path / "run")
    assert code == 0, err
    model = lw.load(tmp_path / "run" / "model.lw")
    first = model.layers[0]
    assert first.method == "image"
    np.testing.assert_array_equal(first.scale, 255)             # one factor, every pixel
    np.testing.assert_array_equal(first.offset, 0)
    A = first.infer(Xt.astype(np.float32))
    assert A.max() <= 1 and A[:, 0].max() == 1       # per-pixel min-max gave 255 here
    # the saved model applies it: predict on raw pixels is the network on pixels / 255
    net = lw.Sequential(model.layers[1:])
    np.testing.assert_array_equal(model.predict(Xt), net.predict(Xt.astype(np.float32) / 255))
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["scaling"] == "image"


def test_per_pixel_minmax_is_what_went_wrong(mnist_like):
    """The old default: a pixel always 0 in training gets scale 1, so test inputs reach 255."""
    _, X, Xt = mnist_like
    assert Standardize.fit(X, "minmax").transform(Xt).max() == 255
    assert Standardize.fit(X, "image", full_scale=255).transform(Xt).max() == 1


def test_image_scaling_of_other_data_uses_the_training_rows_largest_magnitude():
    X = np.array([[0.0, -8.0, 2.0], [1.0, 4.0, 0.0]])
    s = Standardize.fit(X, "image", np.float64)
    np.testing.assert_array_equal(s.scale, [8.0, 8.0, 8.0])        # max |x| over all of X
    np.testing.assert_array_equal(s.transform(X), X / 8)
    assert Standardize.fit(np.zeros((2, 3)), "image").scale.tolist() == [1, 1, 1]
    # float images carry no full scale: the training rows decide
    assert lw.datasets.load(_npy_pair(X)).full_scale is None


def _npy_pair(X: np.ndarray) -> str:
    import tempfile
    folder = Path(tempfile.mkdtemp())
    np.save(folder / "X.npy", np.repeat(X[:, None, :], 2, axis=1))        # (N, 2, 3) images
    np.save(folder / "y.npy", np.arange(len(X)))
    return f"{folder / 'X.npy'},{folder / 'y.npy'}"


def test_scaling_image_on_a_table_and_minmax_on_images_on_request(capsys, tmp_path,
                                                                 mnist_like):
    data = table_csv(tmp_path / "t.csv")
    assert run(capsys, "train", data, "--scaling", "image", "--epochs", "1", "--layers", "4",
               "--quiet", "--no-plots", "--out", tmp_path / "a")[0] == 0
    first = lw.load(tmp_path / "a" / "model.lw").layers[0]
    assert first.method == "image" and len(set(first.scale.tolist())) == 1
    assert first.scale[0] > 10                     # column b's values, near 10 ± 15
    folder, _X, _ = mnist_like
    assert run(capsys, "train", folder, "--scaling", "minmax", "--epochs", "1", "--layers", "4",
               "--quiet", "--no-plots", "--out", tmp_path / "b")[0] == 0
    first = lw.load(tmp_path / "b" / "model.lw").layers[0]
    assert first.method == "minmax" and first.scale[0] == 1         # asked for: per pixel


def test_tables_keep_per_feature_scaling(tmp_path):
    assert lw.datasets.load(str(table_csv(tmp_path / "t.csv"))).scaling == "standard"
    assert lw.datasets.load("digits").scaling == "standard"           # documented choice
    assert lw.datasets.load("digits").full_scale == 16


def test_model_files_with_per_feature_scaling_still_load_and_predict_the_same(capsys,
                                                                               tmp_path):
    """A model with a per-feature min-max first layer (what the command line saved for
    images before) loads and predicts (X − offset)/scale through its network, in the API and
    through ``layerwise predict``."""
    rng = np.random.default_rng(1)
    X = rng.integers(0, 256, (20, 4)).astype(np.float32)
    offset, scale = np.array([0, 1, 2, 0], np.float32), np.array([1, 254, 253, 255], np.float32)
    net = lw.mlp([4, 5, 3], rng=0)
    model = lw.Sequential([Standardize(offset, scale, method="minmax"), *net.layers])
    model.loss = lw.CrossEntropy()
    model.save(tmp_path / "old.lw")
    loaded = lw.load(tmp_path / "old.lw")
    assert loaded.layers[0].method == "minmax"
    expected = net.predict((X - offset) / scale)
    np.testing.assert_array_equal(loaded.predict(X), expected)
    np.save(tmp_path / "X.npy", X)
    code, out, err = run(capsys, "predict", tmp_path / "old.lw", tmp_path / "X.npy", "--proba")
    assert code == 0, err
    shown = np.array([[float(v) for v in line.split(",")] for line in out.splitlines()[1:]])
    P = loaded.predict_proba(X)
    np.testing.assert_allclose(shown, P, rtol=1e-5, atol=1e-6)
