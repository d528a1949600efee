"""Data larger than memory (issue 16, item 3): fit, the loaders and the command line on
memory-mapped .npy files: same results as in memory, only the rows used are read, memory stays
bounded, and bad files are refused with the row to look at."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import layerwise as lw
from layerwise import outofcore
from layerwise.cli import main
from layerwise.outofcore import Rows

PAGE = 4096


def mapped(tmp_path: Path, A: np.ndarray, name: str = "X.npy") -> np.ndarray:
    np.save(tmp_path / name, A)
    return np.load(tmp_path / name, mmap_mode="r")


def data(n=203, d=6, k=3, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(dtype)
    y = (X[:, :k] @ rng.standard_normal(k) > 0).astype(np.int64) + (X[:, 0] > 1)
    return X, y, rng.random(n) + 0.5


def net(d=6, dtype=np.float64, dropout=0.0):
    layers = [lw.Dense(d, 16, rng=0), lw.ReLU()]
    if dropout:
        layers.append(lw.Dropout(dropout, rng=1))
    return lw.Sequential(*layers, lw.Dense(16, 3, rng=2)).astype(dtype)


def same(a: lw.Sequential, b: lw.Sequential) -> bool:
    return all(np.array_equal(p.value, q.value) for p, q in zip(a.parameters(), b.parameters()))


def mapping_rss(path: Path) -> int:
    """Resident bytes of this process's mappings of ``path`` (/proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            inside = line.rstrip().endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1]) * 1024
    return total


needs_smaps = pytest.mark.skipif(not Path("/proc/self/smaps").exists(),
                                 reason="needs Linux's /proc/self/smaps to count mapped pages")


# -- fit on a memory map equals fit in memory ---------------------------------------------------
@pytest.mark.parametrize("split", [0.0, 0.25, 40])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fit_on_a_memmap_equals_fit_in_memory_bit_for_bit(tmp_path, split, dtype):
    X, y, w = data(dtype=dtype)
    M = mapped(tmp_path, X)
    runs = []
    for inputs in (X, M):
        model = net(dtype=dtype, dropout=0.2)
        h = model.fit(inputs, y, optimizer=lw.SGD(0.05, momentum=0.9), epochs=3, batch_size=16,
                      validation_split=split, sample_weight=w, rng=3, verbose=0)
        runs.append((model, h))
    (a, ha), (b, hb) = runs
    assert same(a, b)
    for key in ("loss", "accuracy", *(("val_loss", "val_accuracy") if split else ())):
        assert ha[key] == hb[key], key


def test_rows_of_a_memmap_train_as_the_same_rows_in_memory(tmp_path):
    """Rows (a subset, e.g. the CLI's training split) is never copied; fit, predict and
    evaluate on it give what they give on X[rows]."""
    X, y, w = data()
    M = mapped(tmp_path, X)
    rows = np.random.default_rng(5).permutation(len(X))[:150]
    a, b = net(), net()
    ha = a.fit(X[rows], y[rows], optimizer="adam", epochs=2, batch_size=7,
               validation_split=0.2, sample_weight=w[rows], rng=0, verbose=0)
    hb = b.fit(Rows(M, rows), y[rows], optimizer="adam", epochs=2, batch_size=7,
               validation_split=0.2, sample_weight=w[rows], rng=0, verbose=0)
    assert same(a, b) and ha["val_loss"] == hb["val_loss"]
    assert np.array_equal(a.predict(X[rows]), b.predict(Rows(M, rows)))
    assert a.evaluate(X[rows], y[rows]) == b.evaluate(Rows(M, rows), y[rows])
    # rows of rows select from the file; validation_data as Rows too
    R = Rows(M, rows)[np.arange(10, 60)]
    assert np.array_equal(R[0:50], X[rows[10:60]])
    c, d = net(), net()
    c.fit(X[rows[:100]], y[rows[:100]], validation_data=(X[rows[100:]], y[rows[100:]]),
          epochs=1, rng=0, verbose=0)
    d.fit(Rows(M, rows[:100]), y[rows[:100]], validation_data=(Rows(M, rows[100:]),
                                                             y[rows[100:]]),
          epochs=1, rng=0, verbose=0)
    assert same(c, d)


def test_rows_of_an_array_in_memory_are_those_rows():
    X, y, _ = data()
    a, b = net(), net()
    a.fit(X[5:90], y[5:90], epochs=2, rng=0, verbose=0, validation_split=0.1)
    b.fit(Rows(X, np.arange(5, 90)), y[5:90], epochs=2, rng=0, verbose=0, validation_split=0.1)
    assert same(a, b)


@pytest.mark.parametrize("shape", [(1, 1), (1, 4), (9, 1)])
def test_edge_shapes_one_row_one_feature(tmp_path, shape):
    X = np.arange(1, np.prod(shape) + 1, dtype=np.float64).reshape(shape) / 10
    y = np.arange(shape[0]) % 2
    M = mapped(tmp_path, X)
    models = []
    for inputs in (X, M):
        model = lw.Sequential(lw.Dense(shape[1], 3, rng=0), lw.ReLU(), lw.Dense(3, 2, rng=1)
                              ).astype(np.float64)
        model.fit(inputs, y, epochs=2, batch_size=4, rng=0, verbose=0)
        models.append(model)
    assert same(*models)


# -- only the rows used are read, and memory stays bounded ---------------------------------------
@needs_smaps
def test_fit_reads_only_the_rows_of_its_batches(tmp_path, monkeypatch):
    """Training on the first quarter of a file's rows maps pages of that quarter only (pages
    are never dropped here: CHUNK_BYTES is larger than the file). Rows of 2 MiB, the largest
    page-cache folio a fault maps on Linux 6, so that the kernel's granularity cannot hide it."""
    monkeypatch.setattr(outofcore, "CHUNK_BYTES", 1 << 40)
    row = outofcore.FOLIO_BYTES // 4
    X = np.zeros((16, row), np.float32)
    X[:, :4] = np.random.default_rng(0).standard_normal((16, 4))
    M = mapped(tmp_path, X)
    path = (tmp_path / "X.npy").resolve()
    model = lw.Sequential(lw.Dense(row, 2, rng=0))
    model.fit(Rows(M, np.arange(4)), np.arange(4) % 2, epochs=2, batch_size=2, rng=0,
              verbose=0)
    # 4 rows of 2 MiB; straddling the header, at most one folio more
    assert mapping_rss(path) <= 5 * outofcore.FOLIO_BYTES + 65536, mapping_rss(path)


@needs_smaps
def test_pages_are_dropped_as_they_are_read(tmp_path, monkeypatch):
    """With a 4 MiB budget, a full epoch over a 32 MiB file in random order, the finiteness
    check and the validation passes keep at most the budget plus a batch's folios mapped."""
    monkeypatch.setattr(outofcore, "CHUNK_BYTES", 4 << 20)
    X = np.random.default_rng(0).standard_normal((128, 1 << 16)).astype(np.float32)
    M = mapped(tmp_path, X)
    path = (tmp_path / "X.npy").resolve()
    peak = 0

    class Watch(lw.Callback):
        def on_batch_end(self, state, loss):
            nonlocal peak
            peak = max(peak, mapping_rss(path))

    model = lw.Sequential(lw.Dense(1 << 16, 3, rng=0))
    model.fit(M, np.arange(128) % 3, epochs=2, batch_size=2, rng=0, verbose=0,
              validation_split=0.25, callbacks=[Watch()])
    bound = (4 << 20) + 2 * ((1 << 18) + outofcore.FOLIO_BYTES)
    assert peak <= bound < M.nbytes / 3, peak
    assert mapping_rss(path) <= bound


def test_streaming_statistics_agree_with_numpy(tmp_path, monkeypatch):
    monkeypatch.setattr(outofcore, "CHUNK_BYTES", 5 * 8 * 7)     # 7 rows a chunk: 15 chunks
    X = np.random.default_rng(1).standard_normal((101, 5)) * [1, 10, 1e-3, 1e4, 1] + [0, 5, 1,
                                                                                   -3e4, 1e3]
    M = mapped(tmp_path, X)
    mean, std = outofcore.moments(M)
    np.testing.assert_allclose(mean, X.mean(0), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(std, X.std(0), rtol=1e-12)
    rows = np.arange(3, 90, 2)
    mean, std = outofcore.moments(M, rows)
    np.testing.assert_allclose(mean, X[rows].mean(0), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(std, X[rows].std(0), rtol=1e-12)
    for method in ("standard", "minmax", "image", "none"):
        big = lw.Standardize.fit(Rows(M, rows), method, np.float64)
        small = lw.Standardize.fit(X[rows], method, np.float64)
        np.testing.assert_allclose(big.offset, small.offset, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(big.scale, small.scale, rtol=1e-12)
    img = lw.Standardize.fit(M, "image", np.float64, full_scale=255.0)
    assert np.all(img.scale == 255.0) and np.all(img.offset == 0)


# -- the loaders and the command line ------------------------------------------------------------
def test_read_npy_maps_large_float_files_only(tmp_path, monkeypatch):
    np.save(tmp_path / "f.npy", np.ones((4, 3), np.float32))
    np.save(tmp_path / "i.npy", np.ones((4, 3), np.int64))
    np.save(tmp_path / "F.npy", np.asfortranarray(np.ones((4, 3))))
    assert outofcore.mapping(lw.datasets.read_npy(tmp_path / "f.npy", mmap=True)) is None
    monkeypatch.setattr(outofcore, "MAP_BYTES", 0)
    assert outofcore.mapping(lw.datasets.read_npy(tmp_path / "f.npy", mmap=True)) is not None
    assert outofcore.mapping(lw.datasets.read_npy(tmp_path / "f.npy")) is None
    for name in ("i.npy", "F.npy"):                # converted whole anyway: read into memory
        assert outofcore.mapping(lw.datasets.read_npy(tmp_path / name, mmap=True)) is None
    np.save(tmp_path / "y.npy", np.arange(4) % 2)
    ds = lw.datasets.load(f"{tmp_path / 'f.npy'},{tmp_path / 'y.npy'}")
    assert outofcore.mapping(ds.X_train) is not None        # X.npy,y.npy: X memory-mapped


def cli_files(tmp_path: Path, n=2400, d=12, seed=0):
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((n, d)) * 3 + 7).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 14).astype(np.int64) + (X[:, 2] > 9)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    return X, y


def train(capsys, tmp_path, out, *flags):
    code = main(["train", f"{tmp_path / 'X.npy'},{tmp_path / 'y.npy'}", "--epochs", "2",
                 "--out", str(tmp_path / out), "--no-plots", "--seed", "0", *flags])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


@pytest.mark.parametrize("flags", [("--validation-split", "0.1"), ("--scaling", "minmax")])
def test_cli_trains_on_a_memory_mapped_pair_as_in_memory(tmp_path, capsys, monkeypatch,
                                                         flags):
    """`layerwise train X.npy,y.npy`: memory-mapped (it says so) and the same figures as the
    same file read into memory (the statistics' sums differ only in rounding)."""
    cli_files(tmp_path)
    in_memory = train(capsys, tmp_path, "a", *flags)
    assert "memory-mapped" not in in_memory          # 115 KiB: below MAP_BYTES
    monkeypatch.setattr(outofcore, "MAP_BYTES", 0)
    out = train(capsys, tmp_path, "b", *flags)
    assert "X.npy,y.npy: memory-mapped" in out.replace(str(tmp_path) + "/", "")
    table = lambda text: text[text.index("train  "):text.index("epochs in")]  # noqa: E731
    assert table(out) == table(in_memory)
    a, b = lw.load(tmp_path / "a" / "model.lw"), lw.load(tmp_path / "b" / "model.lw")
    X = np.load(tmp_path / "X.npy")
    np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-4, atol=1e-4)
    assert type(b.layers[0]).__name__ == "Standardize" and len(a.layers) == len(b.layers)


def test_cli_memory_mapped_regression_and_official_test_split(tmp_path, capsys, monkeypatch):
    """A folder with X.npy, y.npy, X_test.npy, y_test.npy (both X memory-mapped), regression:
    the targets' units callback reads the rows by index, never slices them into memory."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2100, 5)).astype(np.float32)
    y = (X @ np.arange(1, 6) + 100).astype(np.float32)
    folder = tmp_path / "set"
    folder.mkdir()
    for name, A in (("X", X[:1800]), ("y", y[:1800]), ("X_test", X[1800:]),
                    ("y_test", y[1800:])):
        np.save(folder / f"{name}.npy", A)
    monkeypatch.setattr(outofcore, "MAP_BYTES", 0)
    code = main(["train", str(folder), "--epochs", "3", "--out", str(tmp_path / "r"),
                 "--no-plots", "--seed", "0", "--validation-split", "0.1", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    model = lw.load(tmp_path / "r" / "model.lw")
    mse = float(np.mean((model.predict(X[1800:])[:, 0] - y[1800:]) ** 2))
    test_line = next(line for line in out.splitlines() if line.startswith("test"))
    assert f"{mse:.4g}"[:3] in test_line.replace(",", "")


# -- bad input ------------------------------------------------------------------------------------
def test_nan_in_a_memory_mapped_row_is_named(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(outofcore, "CHUNK_BYTES", 6 * 8 * 10)    # several chunks
    X, y, _ = data()
    X[137, 4] = np.nan
    X[150, 0] = np.inf
    M = mapped(tmp_path, X)
    with pytest.raises(lw.ValidationError, match=r"X contains 2 NaN or infinite values \(first "
                       r"in row 137, column 4\)"):
        net().fit(M, y, epochs=1, verbose=0)
    with pytest.raises(lw.ValidationError, match=r"first in row 137, column 4"):
        net().fit(Rows(M, np.arange(100, 203)), y[100:], epochs=1, verbose=0)
    net().fit(Rows(M, np.arange(100)), y[:100], epochs=1, verbose=0)   # rows without it: fine
    X32 = X.astype(np.float32)
    np.save(tmp_path / "X.npy", X32)
    np.save(tmp_path / "y.npy", y)
    monkeypatch.setattr(outofcore, "MAP_BYTES", 0)
    code = main(["train", f"{tmp_path / 'X.npy'},{tmp_path / 'y.npy'}", "--out",
                 str(tmp_path / "r"), "--no-plots"])
    err = capsys.readouterr().err
    assert code != 0 and "first in row 137, column 4" in err


def test_row_count_mismatch_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(outofcore, "MAP_BYTES", 0)
    np.save(tmp_path / "X.npy", np.ones((10, 3), np.float32))
    np.save(tmp_path / "y.npy", np.arange(9) % 2)
    code = main(["train", f"{tmp_path / 'X.npy'},{tmp_path / 'y.npy'}", "--out",
                 str(tmp_path / "r"), "--no-plots"])
    err = capsys.readouterr().err
    assert code != 0 and "one entry per sample (10); received 9" in err
    M = np.load(tmp_path / "X.npy", mmap_mode="r")
    with pytest.raises(lw.ValidationError, match="same number of samples; received 10 and 9"):
        lw.Sequential(lw.Dense(3, 2, rng=0)).fit(M, np.arange(9) % 2, verbose=0)


def test_wrong_dtype_or_shape_of_a_memmap_is_refused(tmp_path):
    M64 = mapped(tmp_path, np.ones((10, 3)), "x64.npy")
    model = lw.Sequential(lw.Dense(3, 2, rng=0))            # float32
    with pytest.raises(lw.ValidationError, match=r"memory-mapped with dtype float64, but the "
                       r"model computes in float32.*open_memmap"):
        model.fit(M64, np.arange(10) % 2, verbose=0)
    with pytest.raises(lw.ValidationError, match="memory-mapped with dtype int16"):
        model.predict(mapped(tmp_path, np.ones((10, 3), np.int16), "i.npy"))
    with pytest.raises(lw.ValidationError, match="must be 2-D"):
        model.fit(mapped(tmp_path, np.ones(10, np.float32), "v.npy"), np.arange(10) % 2)
    with pytest.raises(lw.ValidationError, match="has 4 features but the model expects 3"):
        model.fit(Rows(mapped(tmp_path, np.ones((10, 4), np.float32), "w.npy"), [0, 1]), [0, 1])
    M = mapped(tmp_path, np.ones((10, 3), np.float32), "ok.npy")
    with pytest.raises(lw.ValidationError, match=r"row numbers in \[0, 10\).*from 3 to 10"):
        Rows(M, [3, 10])
    with pytest.raises(lw.ValidationError, match="1-D array of row numbers"):
        Rows(M, [0.5])
    with pytest.raises(lw.ValidationError, match="2-D array"):
        Rows(np.ones(3), [0])


def test_a_memory_mapped_file_in_another_float_dtype_is_refused_by_the_loader(tmp_path,
                                                                             monkeypatch):
    """Converting float64 rows to float32 would read the whole file into memory: refused,
    saying how to convert or which dtype to train in; small files are read and converted."""
    np.save(tmp_path / "X.npy", np.ones((20, 3)))
    np.save(tmp_path / "y.npy", np.arange(20) % 2)
    pair = f"{tmp_path / 'X.npy'},{tmp_path / 'y.npy'}"
    assert lw.datasets.load(pair).X_train.dtype == np.float32          # in memory: converted
    monkeypatch.setattr(outofcore, "MAP_BYTES", 0)
    with pytest.raises(lw.DataError, match=r"memory-mapped float64 file.*training is in "
                       r"float32.*--dtype float64"):
        lw.datasets.load(pair)
    ds = lw.datasets.load(pair, dtype="float64")
    assert outofcore.mapping(ds.X_train) is not None
