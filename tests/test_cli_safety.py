"""The command line's input data and run directories (issue 10, items 4, 7, 9 and 10):

- CSV columns are matched by name, never silently by position: duplicate, empty or numeric
  header names are refused, mismatched names are refused naming the missing and unexpected
  columns, ``--by-position`` and ``--no-header`` opt out explicitly;
- hostile or damaged input files are one-line errors, checked before anything is allocated;
- every file of a run is written atomically, never through a symlink; a run directory is
  locked while a run writes to it, a finished run is never replaced, and our own stale
  temporary files are cleaned;
- values beyond a dtype's range are refused or handled exactly, never reported as inf/NaN.
"""

from __future__ import annotations

import csv
import errno
import io
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import layerwise as lw
from layerwise import runs
from test_cli import run, run_quietly  # the CLI tests' in-process runners

pytestmark = pytest.mark.usefixtures("in_tmp_path")   # each test in its own folder (conftest)

N = 200
SRC = str(Path(__file__).resolve().parents[1] / "src")


# -- helpers ------------------------------------------------------------------------------------
def one_line_error(code: int, out: str, err: str) -> str:
    assert code == 2, (code, err)
    assert "Traceback" not in err and "Traceback" not in out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("layerwise: error: ")
    return lines[0]


def write_csv(path: Path, header: list[str] | None, columns: list) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        if header is not None:
            w.writerow(header)
        for row in zip(*columns):
            w.writerow([repr(float(v)) if isinstance(v, (float, np.floating)) else v
                        for v in row])
    return path


def predictions(stdout: str) -> list[str]:
    rows = list(csv.reader(io.StringIO(stdout)))
    assert rows[0] == ["prediction"]
    return [r[0] for r in rows[1:]]


def train_args(out: Path) -> list:
    return ["--epochs", "3", "--layers", "8", "--quiet", "--no-plots", "--out", out]


@pytest.fixture(scope="module")
def data():
    """Three features on different scales; the label depends on a and b, not c."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((N, 3)) * [1.0, 10.0, 100.0] + [0.0, 5.0, -50.0]
    y = np.where(X[:, 0] + X[:, 1] / 10 > 0.5, "yes", "no")
    return X, y


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, data):
    """A model trained on a CSV whose target 'label' sits between the features."""
    X, y = data
    folder = tmp_path_factory.mktemp("safety")
    path = write_csv(folder / "train.csv", ["a", "label", "b", "c"], [X[:, 0], y, X[:, 1],
                                                                      X[:, 2]])
    out = folder / "run"
    stdout = run_quietly("train", path, "--target", "label", "--epochs", "20", "--layers", "16",
                         "--optimizer", "sgd", "--quiet", "--no-plots", "--out", out)
    return out, path, stdout


def api_labels(model_path: Path, X: np.ndarray) -> list[str]:
    model = lw.load(model_path)
    classes = model.metadata["classes"]
    return [classes[k] for k in model.predict_classes(X)]


# -- item 4: CSV columns by name ----------------------------------------------------------------
def test_train_refuses_duplicate_column_names(capsys, data, tmp_path):
    X, y = data
    path = write_csv(tmp_path / "dup.csv", ["a", "a", "a", "label"], [*X.T, y])
    line = one_line_error(*run(capsys, "train", path, *train_args(tmp_path / "run")))
    assert "'a' is in columns [1, 2, 3]" in line and "unique" in line
    assert not (tmp_path / "run").exists()
    with pytest.raises(lw.DataError, match="unique"):
        lw.datasets.load(path)


def test_a_target_named_twice_is_refused(capsys, data, tmp_path):
    X, y = data
    path = write_csv(tmp_path / "dup.csv", ["a", "y", "b", "y"], [X[:, 0], y, X[:, 1], y])
    line = one_line_error(*run(capsys, "train", path, "--target", "y",
                               *train_args(tmp_path / "run")))
    assert "'y' is in columns [2, 4]" in line


@pytest.mark.parametrize("header, needle", [
    (["", "a", "b", "label"], "column(s) [1] have none"),           # pandas' index column
    (["a", " ", "b", "label"], "column(s) [2] have none"),
])
def test_empty_column_names_are_refused(capsys, data, tmp_path, header, needle):
    X, y = data
    path = write_csv(tmp_path / "e.csv", header, [np.arange(N), X[:, 0], X[:, 1], y])
    line = one_line_error(*run(capsys, "train", path, *train_args(tmp_path / "run")))
    assert needle in line and "index=False" in line


def test_predict_matches_reordered_columns_by_name(capsys, run_dir, data, tmp_path):
    out, _, _ = run_dir
    X, y = data
    # reordered, spaces around the names, and the target column present: all fine
    path = write_csv(tmp_path / "re.csv", [" c", "label ", "b", "a"],
                     [X[:, 2], y, X[:, 1], X[:, 0]])
    code, stdout, err = run(capsys, "predict", out / "model.lw", path)
    assert code == 0, err
    assert predictions(stdout) == api_labels(out / "model.lw", X)
    assert np.mean(np.array(predictions(stdout)) == y) > 0.9


def test_predict_refuses_names_that_do_not_match(capsys, run_dir, data, tmp_path):
    """Item 4(b): one renamed header and reordered columns used to fall back to positions."""
    out, _, _ = run_dir
    X, _ = data
    path = write_csv(tmp_path / "bad.csv", ["c", "B", "a"], [X[:, 2], X[:, 1], X[:, 0]])
    line = one_line_error(*run(capsys, "predict", out / "model.lw", path))
    assert "missing ['b'], unexpected ['B']" in line and "--by-position" in line

    # an extra column besides the target is named too
    extra = write_csv(tmp_path / "extra.csv", ["id", "a", "b", "c"],
                      [np.arange(N), X[:, 0], X[:, 1], X[:, 2]])
    line = one_line_error(*run(capsys, "predict", out / "model.lw", extra))
    assert "missing [], unexpected ['id']" in line

    # --by-position takes the columns in file order, as asked
    pos = write_csv(tmp_path / "pos.csv", ["x", "y", "z"], [X[:, 0], X[:, 1], X[:, 2]])
    code, stdout, err = run(capsys, "predict", out / "model.lw", pos, "--by-position")
    assert code == 0, err
    assert predictions(stdout) == api_labels(out / "model.lw", X)


def test_a_headerless_csv_is_refused_unless_no_header(capsys, run_dir, data, tmp_path):
    """Item 4(c): the first data row used to be eaten as the header."""
    out, _, _ = run_dir
    X, y = data
    path = write_csv(tmp_path / "nohead.csv", None, [X[:, 0], X[:, 1], X[:, 2]])
    line = one_line_error(*run(capsys, "predict", out / "model.lw", path))
    assert "all numbers" in line and "--no-header" in line
    code, stdout, err = run(capsys, "predict", out / "model.lw", path, "--no-header")
    assert code == 0, err
    assert predictions(stdout) == api_labels(out / "model.lw", X)       # all N rows

    # train and evaluate read CSVs by the same rules
    both = write_csv(tmp_path / "both.csv", None, [X[:, 0], X[:, 1], X[:, 2], y])
    line = one_line_error(*run(capsys, "train", both, *train_args(tmp_path / "r1")))
    assert "--no-header" in line
    line = one_line_error(*run(capsys, "evaluate", out / "model.lw", both))
    assert "--no-header" in line
    run_quietly("train", both, "--no-header", *train_args(tmp_path / "r2"))
    model = lw.load(tmp_path / "r2" / "model.lw")
    assert model.metadata["feature_names"] == ["col1", "col2", "col3"]
    assert model.metadata["target_name"] == "col4"
    assert lw.datasets.load(both, header=False).X_train.shape == (N, 3)  # no row lost


def test_evaluate_matches_by_name_and_uses_the_models_target(capsys, run_dir, data, tmp_path):
    """The training CSV with its columns shuffled evaluates exactly as the original, and the
    target is the model's target column, not the last one."""
    out, path, _ = run_dir
    X, y = data
    code, original, err = run(capsys, "evaluate", out / "model.lw", path)
    assert code == 0, err
    shuffled = write_csv(tmp_path / "shuffled.csv", ["c", "a", "label", "b"],
                         [X[:, 2], X[:, 0], y, X[:, 1]])
    code, stdout, err = run(capsys, "evaluate", out / "model.lw", shuffled)
    assert code == 0, err
    expected = lw.load(out / "model.lw")
    labels = np.searchsorted(expected.metadata["classes"], y)
    accuracy = np.mean(expected.predict_classes(X) == labels)
    assert f"{accuracy:.2%}" in stdout                 # all samples: a copy under another name
    assert original.splitlines()[-1].split()[2].endswith("%")
    renamed = write_csv(tmp_path / "renamed.csv", ["a", "label", "B", "c"],
                        [X[:, 0], y, X[:, 1], X[:, 2]])
    line = one_line_error(*run(capsys, "evaluate", out / "model.lw", renamed))
    assert "missing ['b'], unexpected ['B']" in line


def test_a_model_with_repeated_feature_names_needs_by_position(capsys, run_dir, data, tmp_path):
    """Models saved before duplicate names were refused cannot be matched by name."""
    out, _, _ = run_dir
    X, _ = data
    model = lw.load(out / "model.lw")
    model.metadata["feature_names"] = ["a", "a", "a"]
    model.save(tmp_path / "old.lw")
    path = write_csv(tmp_path / "x.csv", ["a", "b", "c"], list(X.T))
    line = one_line_error(*run(capsys, "predict", tmp_path / "old.lw", path))
    assert "repeat" in line and "--by-position" in line
    code, stdout, err = run(capsys, "predict", tmp_path / "old.lw", path, "--by-position")
    assert code == 0, err
    assert predictions(stdout) == api_labels(out / "model.lw", X)


def test_text_in_a_feature_column_names_the_cell(capsys, run_dir, data, tmp_path):
    out, _, _ = run_dir
    X, _ = data
    a = [str(float(v)) for v in X[:, 0]]
    a[3] = "oops"
    path = write_csv(tmp_path / "t.csv", ["a", "b", "c"], [a, X[:, 1], X[:, 2]])
    line = one_line_error(*run(capsys, "predict", out / "model.lw", path))
    assert "'a' has 'oops' on line 5" in line


# -- item 7: damaged and hostile input files ----------------------------------------------------
def forged_npy(shape: tuple[int, ...], data: bytes = b"\0" * 64) -> bytes:
    """A .npy header declaring ``shape`` of float64 followed by a few bytes of data."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f8", "fortran_order": False, "shape": shape})
    return buf.getvalue() + data


def bad_inputs(folder: Path) -> dict[str, Path]:
    files = {}
    np.save(folder / "object.npy", np.array([[1, "a"]], dtype=object), allow_pickle=True)
    files["object .npy"] = folder / "object.npy"
    np.save(folder / "scalar.npy", np.float64(3.0))
    files["0-d .npy"] = folder / "scalar.npy"
    (folder / "text.npy").write_text("1,2,3\n")
    files["non-npy .npy"] = folder / "text.npy"
    (folder / "garbage.npz").write_bytes(b"not a zip archive at all")
    files["non-zip .npz"] = folder / "garbage.npz"
    (folder / "latin1.csv").write_bytes("caf\xe9,b,c\n1,2,3\n".encode("latin-1"))
    files["Latin-1 CSV"] = folder / "latin1.csv"
    (folder / "2gb.npy").write_bytes(forged_npy((2**28,)))                     # 2 GiB declared
    files["truncated .npy declaring 2 GB"] = folder / "2gb.npy"
    (folder / "80tb.npy").write_bytes(forged_npy((10**7, 10**6)))              # 80 TB declared
    files["truncated .npy declaring 80 TB"] = folder / "80tb.npy"
    (folder / "bad-header.npy").write_bytes(b"\x93NUMPY\x01\x00\x10\x00{{{{{{{{{{{{{{{\n")
    files["npy header {{{{"] = folder / "bad-header.npy"
    import zipfile
    with zipfile.ZipFile(folder / "forged.npz", "w") as z:
        z.writestr("X.npy", forged_npy((10**7, 10**6)))
    files["npz member declaring 80 TB"] = folder / "forged.npz"
    return files


BAD_INPUTS = ["object .npy", "0-d .npy", "non-npy .npy", "non-zip .npz", "Latin-1 CSV",
              "truncated .npy declaring 2 GB", "truncated .npy declaring 80 TB",
              "npy header {{{{", "npz member declaring 80 TB"]


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_predict_inputs_are_one_line_errors(name, capsys, run_dir, tmp_path):
    out, _, _ = run_dir
    path = bad_inputs(tmp_path)[name]
    one_line_error(*run(capsys, "predict", out / "model.lw", path))


def test_forged_sizes_are_refused_before_allocating(tmp_path, run_dir):
    """Under a 1 GiB address-space limit, files declaring 2 GB and 80 TB fail cleanly."""
    out, _, _ = run_dir
    files = bad_inputs(tmp_path)
    script = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        sys.path.insert(0, {SRC!r})
        from layerwise.cli import main
        codes = [main(["predict", {str(out / "model.lw")!r}, f]) for f in sys.argv[1:]]
        print(codes)
    """)
    names = ["truncated .npy declaring 2 GB", "truncated .npy declaring 80 TB",
             "npz member declaring 80 TB"]
    r = subprocess.run([sys.executable, "-c", script, *(str(files[n]) for n in names)],
                       capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "[2, 2, 2]", r.stderr
    assert "MemoryError" not in r.stderr and "Traceback" not in r.stderr
    assert "truncated or damaged" in r.stderr


@pytest.mark.parametrize("argv", [
    ["train", "iris", "--seed", "-1"],
    ["gradcheck", "--seed", "-1"],
    ["explain", "--seed", "-1"],
])
def test_a_negative_seed_is_a_one_line_error(capsys, argv, tmp_path):
    line = one_line_error(*run(capsys, *argv, "--out", tmp_path / "r") if argv[0] == "train"
                          else run(capsys, *argv))
    assert "--seed must be a non-negative integer" in line


@pytest.mark.sklearn
@pytest.mark.sklearn
def test_absurd_layer_sizes_are_refused_before_building(tmp_path):
    """1,000,000 × 1,000,000 is 10¹² parameters: refused by size, quickly, allocating nothing
    (the subprocess has a 1 GiB address-space limit)."""
    script = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        sys.path.insert(0, {SRC!r})
        from layerwise.cli import main
        sys.exit(main(sys.argv[1:]))
    """)
    for argv in (["train", "iris", "--layers", "1000000,1000000", "--out", "r"],
                 ["gradcheck", "iris", "--layers", "1000000,1000000"]):
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True,
                           text=True, timeout=120, cwd=tmp_path)
        assert r.returncode == 2 and time.perf_counter() - t0 < 60, r.stderr
        assert "1,000,009,000,003 parameters" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "r").exists()


# -- item 9: run directories --------------------------------------------------------------------
@pytest.mark.sklearn
@pytest.mark.sklearn
def test_train_never_writes_through_a_planted_symlink(capsys, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "run"
    out.mkdir()
    for name in ("config.json", "history.csv", "history.json", "curves.png"):
        (out / name).symlink_to(victim)
    code, _, err = run(capsys, "train", "iris", "--epochs", "2", "--layers", "4", "--quiet",
                       "--out", out)
    assert code == 0, err
    assert victim.read_text() == "precious\n"
    for name in ("config.json", "history.csv", "history.json", "curves.png"):
        assert not (out / name).is_symlink() and (out / name).stat().st_size > 0


def test_predict_output_is_atomic_and_never_through_a_symlink(capsys, run_dir, data, tmp_path):
    out, path, _ = run_dir
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    for name in ("p.csv", "p.npy"):
        (tmp_path / name).symlink_to(victim)
        code, _, err = run(capsys, "predict", out / "model.lw", path, "--output",
                           tmp_path / name)
        assert code == 0, err
        assert not (tmp_path / name).is_symlink()
    assert victim.read_text() == "precious\n"
    assert len(np.load(tmp_path / "p.npy")) == N
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.sklearn
@pytest.mark.sklearn
def test_stale_temporaries_of_ours_are_removed_on_the_next_run(capsys, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    ours = [".checkpoint.lw.abcd1234.tmp", ".model.lw.x_y_z_12.tmp", ".history.csv.00000000.tmp"]
    theirs = [".notes.txt.abcd1234.tmp", "checkpoint.lw.abcd1234.tmp", ".model.lw.tmp",
              "mine.tmp"]
    for name in ours + theirs:
        (out / name).write_bytes(b"partial")
    code, _, err = run(capsys, "train", "iris", *train_args(out))
    assert code == 0, err
    left = {p.name for p in out.iterdir()}
    assert not left & set(ours)
    assert set(theirs) <= left


@pytest.mark.sklearn
@pytest.mark.sklearn
def test_a_second_train_into_a_locked_run_directory_is_refused(capsys, tmp_path):
    import fcntl
    out = tmp_path / "run"
    out.mkdir()
    fd = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)        # as a running train holds it
        line = one_line_error(*run(capsys, "train", "iris", *train_args(out)))
        assert "another layerwise train is writing to" in line
        assert list(out.iterdir()) == []
    finally:
        os.close(fd)
    code, _, err = run(capsys, "train", "iris", *train_args(out))        # released: fine
    assert code == 0, err


def test_two_concurrent_trains_into_one_directory(tmp_path):
    """As processes: the second refuses with exit 2 while the first runs (held stopped with
    SIGSTOP once its lock is taken), and the first then finishes normally."""
    import signal
    env = {**os.environ, "PYTHONPATH": SRC}
    argv = [sys.executable, "-m", "layerwise", "train", "iris", "--epochs", "5", "--layers",
            "8", "--quiet", "--no-plots", "--out", "run"]
    with subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as first:
        try:
            for _ in range(6000):
                if (tmp_path / "run" / "config.json").exists() or first.poll() is not None:
                    break
                time.sleep(0.005)
            first.send_signal(signal.SIGSTOP)
            if (tmp_path / "run" / "model.lw").exists():
                pytest.skip("the first run finished before it could be paused")
            second = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True,
                                    text=True, timeout=120)
        finally:
            first.send_signal(signal.SIGCONT)
        _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert second.returncode == 2 and "Traceback" not in second.stderr
    assert "another layerwise train is writing to run/" in second.stderr


@pytest.mark.sklearn
@pytest.mark.sklearn
def test_a_finished_run_is_never_replaced(capsys, tmp_path):
    out = tmp_path / "run"
    run_quietly("train", "iris", *train_args(out))
    before = (out / "model.lw").read_bytes()
    line = one_line_error(*run(capsys, "train", "iris", "--seed", "3", *train_args(out)))
    assert "already holds a trained model" in line and "another run directory (--out)" in line
    assert (out / "model.lw").read_bytes() == before


@pytest.mark.sklearn
@pytest.mark.sklearn
def test_default_run_directories_never_collide(capsys, monkeypatch, tmp_path):
    from datetime import datetime

    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(2026, 1, 2, 3, 4, 5)

    monkeypatch.setattr(runs, "datetime", Frozen)
    for _ in range(2):
        assert run(capsys, "train", "iris", "--epochs", "1", "--layers", "4", "--quiet",
                   "--no-plots")[0] == 0
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        "iris-20260102-030405", "iris-20260102-030405-2"]


def _failing_fsync(names: tuple[str, ...]):
    real = os.fsync

    def fsync(fd: int) -> None:
        target = os.readlink(f"/proc/self/fd/{fd}")
        if any(f".{n}." in os.path.basename(target) for n in names):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd)
    return fsync


@pytest.mark.sklearn
@pytest.mark.sklearn
@pytest.mark.skipif(not os.path.exists("/proc/self/fd"), reason="needs /proc")
def test_a_full_disk_leaves_no_empty_or_partial_files(capsys, monkeypatch, tmp_path):
    out = tmp_path / "run"
    monkeypatch.setattr(os, "fsync", _failing_fsync(("history.csv", "history.json")))
    line = one_line_error(*run(capsys, "train", "iris", *train_args(out)))
    assert "No space left on device" in line and "history" in line
    assert not list(out.glob(".*.tmp"))
    for f in out.iterdir():
        assert f.stat().st_size > 0, f.name
    assert not (out / "history.csv").exists() and not (out / "history.json").exists()


@pytest.mark.skipif(not os.path.exists("/proc/self/fd"), reason="needs /proc")
def test_atomic_write_keeps_the_previous_file_on_a_full_disk(monkeypatch, tmp_path):
    from layerwise.io import atomic_write
    path = tmp_path / "history.csv"
    path.write_text("old\n")
    monkeypatch.setattr(os, "fsync", _failing_fsync(("history.csv",)))
    with pytest.raises(OSError, match="No space left") as exc:
        atomic_write(path, lambda f: f.write(b"new\n"))
    assert exc.value.errno == errno.ENOSPC and exc.value.filename == str(path)
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["history.csv"]


def test_atomic_write_replaces_a_symlink_not_its_target(tmp_path):
    from layerwise.io import atomic_write
    victim = tmp_path / "victim"
    victim.write_text("precious")
    os.chmod(victim, 0o600)
    (tmp_path / "link").symlink_to(victim)
    atomic_write(tmp_path / "link", lambda f: f.write(b"new"))
    assert victim.read_text() == "precious"
    assert not (tmp_path / "link").is_symlink() and (tmp_path / "link").read_text() == "new"
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "link").stat().st_mode & 0o777 == 0o666 & ~umask   # not the target's


# -- item 10: values beyond a dtype's range -----------------------------------------------------
def test_huge_regression_targets_are_an_error_in_float32_and_exact_in_float64(capsys, data,
                                                                              tmp_path):
    X, _ = data
    y = 1e30 * (X[:, 0] + 3)
    path = write_csv(tmp_path / "big.csv", ["a", "b", "c", "y"], [*X.T, y])
    line = one_line_error(*run(capsys, "train", path, *train_args(tmp_path / "r32")))
    assert "--dtype float64" in line and "targets reach" in line
    code, stdout, err = run(capsys, "train", path, "--dtype", "float64", "--epochs", "30",
                            "--optimizer", "sgd", "--layers", "16", "--quiet", "--no-plots",
                            "--out", tmp_path / "r64")
    assert code == 0, err
    assert "inf" not in stdout and "nan" not in stdout
    model = lw.load(tmp_path / "r64" / "model.lw")
    result = model.evaluate(X, y)
    assert np.isfinite(result["loss"]) and result["r2"] > 0.9


def test_float64_keeps_values_that_float32_cannot_hold(capsys, data, tmp_path):
    X, y = data
    path = write_csv(tmp_path / "huge.csv", ["a", "b", "c", "label"],
                     [X[:, 0] * 1e300, X[:, 1], X[:, 2], y])
    d = lw.datasets.load(path, dtype="float64")
    assert d.X_train.dtype == np.float64
    np.testing.assert_array_equal(d.X_train[:, 0], X[:, 0] * 1e300)
    with pytest.raises(lw.ValidationError, match=r"column 'a'.*dtype=np.float64"):
        lw.datasets.load(path)
    line = one_line_error(*run(capsys, "train", path, *train_args(tmp_path / "r32")))
    assert "column 'a'" in line and "--dtype float64" in line
    code, _, err = run(capsys, "train", path, "--dtype", "float64", "--epochs", "20",
                            "--optimizer", "sgd", "--layers", "16", "--quiet", "--no-plots",
                            "--out", tmp_path / "r64")
    assert code == 0, err
    model = lw.load(tmp_path / "r64" / "model.lw")
    labels = np.searchsorted(model.metadata["classes"], y)
    Xh = X * [1e300, 1, 1]
    assert np.mean(model.predict_classes(Xh) == labels) > 0.85


def test_standardize_fits_values_near_the_float64_limit():
    X = np.array([[1e300], [3e300], [-2e300]])
    s = lw.Standardize.fit(X, dtype=np.float64)
    np.testing.assert_allclose(s.offset, [X.mean()], rtol=1e-12)
    np.testing.assert_allclose(s.scale, [np.std(X / 1e300) * 1e300], rtol=1e-12)
    assert np.isfinite(s.transform(X)).all()


@pytest.mark.parametrize("option, value, needle", [
    ("--validation-split", "0.999", "leaves 160 for validation and 0 for training"),
    ("--test-split", "0.999", "leaves 0 of the 200 samples for training"),
])
def test_splits_leaving_no_rows_are_clear_errors(capsys, data, tmp_path, option, value, needle):
    X, y = data
    path = write_csv(tmp_path / "d.csv", ["a", "b", "c", "label"], [*X.T, y])
    line = one_line_error(*run(capsys, "train", path, option, value,
                               *train_args(tmp_path / "run")))
    assert needle in line
    assert not (tmp_path / "run").exists()


def test_no_header_is_for_csv_files_only(capsys, tmp_path):
    line = one_line_error(*run(capsys, "train", "iris", "--no-header", *train_args(tmp_path)))
    assert "--no-header" in line and "not one" in line


def test_long_lists_of_unmatched_columns_are_shortened(capsys, tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 30))
    names = [f"f{j}" for j in range(30)]
    y = (X[:, 0] > 0).astype(int)
    path = write_csv(tmp_path / "wide.csv", [*names, "label"], [*X.T, y])
    run_quietly("train", path, *train_args(tmp_path / "run"))
    other = write_csv(tmp_path / "other.csv", [f"g{j}" for j in range(30)], list(X.T))
    line = one_line_error(*run(capsys, "predict", tmp_path / "run" / "model.lw", other))
    assert "(30 in all)" in line and "'f9'" in line and "'f10'" not in line


def test_training_arrays_are_checked_like_predict_inputs(tmp_path):
    """The loaders behind `train X.npy,y.npy` and `train data.npz` use the same checks."""
    import zipfile
    (tmp_path / "X.npy").write_bytes(forged_npy((10**7, 10**6)))
    np.save(tmp_path / "y.npy", np.zeros(3))
    with pytest.raises(lw.DataError, match="truncated or damaged"):
        lw.datasets.load(f"{tmp_path / 'X.npy'},{tmp_path / 'y.npy'}")
    with zipfile.ZipFile(tmp_path / "bz.npz", "w", compression=zipfile.ZIP_BZIP2) as z:
        for name, a in (("X", np.zeros((4, 2))), ("y", np.zeros(4))):
            buf = io.BytesIO()
            np.save(buf, a)
            z.writestr(f"{name}.npy", buf.getvalue())
    with pytest.raises(lw.DataError, match=r"only stored \(0\) or deflated \(8\)"):
        lw.datasets.load(tmp_path / "bz.npz")
    np.savez_compressed(tmp_path / "ok.npz", X=np.ones((4, 2)), y=np.arange(4) % 2)
    d = lw.datasets.load(tmp_path / "ok.npz")
    assert d.X_train.shape == (4, 2) and d.X_train.dtype == np.float32
