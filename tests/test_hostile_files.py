"""Hostile and inconsistent model files, and the constructors and metadata behind them.

The contract: a model file costs what it can really deliver. Loading checks the archive (only
stored/deflate members, no duplicates, sizes deflate can produce), the description (layer and
number caps), then each array (size, SHA-256, ``.npy`` header, finite values) before a layer is
built from it; anything amiss is a ``ModelFileError``, one line and exit 2 through the CLI.

The crafted-file battery runs in one subprocess under an address-space limit and measures its
peak resident memory, so a regression fails the test instead of eating the machine.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

import layerwise as lw
from layerwise import io as lw_io
from layerwise.cli import main
from test_fuzz import _central_entries
from test_fuzz import _claiming as claiming  # forged ZIP64 sizes


# -- crafting model files -----------------------------------------------------------------------
def npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, allow_pickle=False)
    return buf.getvalue()


def npy_with_header(header: bytes, payload: bytes) -> bytes:
    """A .npy file of format 1.0 with ``header`` as its header text (padded to 64 bytes)."""
    header = header + b" " * ((-(10 + len(header) + 1)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + payload


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def zip_bytes(members: list[tuple[str, bytes]], methods: dict[str, int] | None = None) -> bytes:
    """A zip of (name, data) pairs in order (names may repeat), deflated unless ``methods``
    says otherwise for a name."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)                 # "Duplicate name"
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for name, data in members:
                z.writestr(name, data,
                           compress_type=(methods or {}).get(name, zipfile.ZIP_DEFLATED))
    return buf.getvalue()


def dense(n_in: int, n_out: int, W=None, b=None, dtype=np.float32, **config):
    W = np.zeros((n_out, n_in), dtype) if W is None else W
    b = np.zeros(n_out, dtype) if b is None else b
    return ("dense", {"n_in": n_in, "n_out": n_out, "init": "zeros", "bias": True, **config},
            {"W": W, "b": b})


def craft_members(layers, *, dtype="float32", loss=("ce", {}), metadata=None
                  ) -> list[tuple[str, bytes]]:
    """The members of a model file made of (kind, config, {name: array or .npy bytes}); every
    recorded SHA-256 matches its member."""
    members, specs = [], []
    for i, (kind, config, arrays) in enumerate(layers):
        refs = {}
        for name, a in arrays.items():
            data = a if isinstance(a, bytes) else npy(a)
            member = f"arrays/{i}.{name}.npy"
            members.append((member, data))
            refs[name] = {"file": member, "shape": [], "dtype": dtype, "sha256": sha(data)}
        specs.append({"kind": kind, "config": config, "arrays": refs})
    doc = {"format": "layerwise-model", "format_version": 1, "layerwise_version": lw.__version__,
           "dtype": dtype, "layers": specs,
           "loss": None if loss is None else {"kind": loss[0], "config": loss[1]},
           "metadata": metadata or {}}
    return [("model.json", json.dumps(doc).encode()), *members]


def craft(layers, methods=None, **kw) -> bytes:
    return zip_bytes(craft_members(layers, **kw), methods)


def overlapping(data: bytes, member: str, alias: str) -> bytes:
    """The zip with a second central-directory entry, named ``alias``, pointing at the same
    compressed data as ``member`` (an overlapping-member bomb)."""
    eocd = data.rindex(b"PK\x05\x06")
    count, _, start = struct.unpack_from("<HII", data, eocd + 10)
    pos = next(p for p, name in _central_entries(data) if name == member)
    n_name, n_extra, n_comment = struct.unpack_from("<HHH", data, pos + 28)
    entry = bytearray(data[pos:pos + 46 + n_name + n_extra + n_comment])
    assert len(alias) == n_name
    entry[46:46 + n_name] = alias.encode()
    end = bytearray(data[eocd:])
    struct.pack_into("<HHI", end, 8, count + 1, count + 1, eocd - start + len(entry))
    return data[:eocd] + bytes(entry) + bytes(end)


def small_model_members(**kw):
    rng = np.random.default_rng(0)
    layers = [("standardize", {"n": 4, "method": "standard"},
               {"offset": np.zeros(4, np.float32), "scale": np.ones(4, np.float32)}),
              dense(4, 5, rng.standard_normal((5, 4)).astype(np.float32)), ("relu", {}, {}),
              dense(5, 3, rng.standard_normal((3, 5)).astype(np.float32))]
    return craft_members(layers, **kw)


# -- the battery: every crafted file, under a memory limit ---------------------------------------
def battery() -> dict[str, tuple[bytes, str]]:
    """name: (file bytes, what must happen): a fragment of the ModelFileError, or "loads"."""
    big = 16384
    forged = craft([dense(big, big, W=npy(np.zeros(4, np.float32)), b=np.zeros(big, np.float32))])
    huge = craft([dense(80000, 80000, W=npy(np.zeros(4, np.float32)))])
    zeros = np.zeros((64, 64), np.float32)
    bz2_file = craft([dense(64, 64, W=zeros)], methods={"arrays/0.W.npy": zipfile.ZIP_BZIP2})
    lzma_json = craft([dense(64, 64, W=zeros)], methods={"model.json": zipfile.ZIP_LZMA})
    deflate_bomb = craft([dense(512, 512)])           # 1 MB of honest zeros in ~1.2 KB
    many = {"format": "layerwise-model", "format_version": 1, "dtype": "float32",
            "layers": [{"kind": "relu"}] * 1_500_000, "loss": None, "metadata": {}}
    nan = np.ones((3, 4), np.float32)
    nan[1, 2] = np.nan
    inf_scale = [("standardize", {"n": 4}, {"offset": np.zeros(4, np.float32),
                                            "scale": np.array([1, 1, np.inf, 1], np.float32)}),
                 dense(4, 3)]
    W_bytes = 4 * 3 * 4
    braces = npy_with_header(b"{{{{{{{{{{", b"\0" * W_bytes)
    deep = npy_with_header(b"[" * 1000, b"\0" * W_bytes)
    declares_80tb = npy_with_header(
        b"{'descr': '<f4', 'fortran_order': False, 'shape': (5000000, 4000000), }",
        b"\0" * W_bytes)
    members = craft_members([dense(2, 2, W=np.eye(2, dtype=np.float32))])
    return {
        "forged ZIP64 size of a 16384x16384 W": (claiming(forged, "arrays/0.W.npy",
                                                          big * big * 4 + 128), "forged"),
        "forged ZIP64 size of an 80000x80000 W": (claiming(huge, "arrays/0.W.npy",
                                                           80000 * 80000 * 4 + 128), "forged"),
        "forged ZIP64 size of model.json": (claiming(deflate_bomb, "model.json", 2**40),
                                            "bytes"),
        "bzip2 member": (bz2_file, "compression method 12"),
        "lzma model.json": (lzma_json, "compression method 14"),
        "real deflate bomb of honest zeros": (deflate_bomb, "loads"),
        "1.5 million layers": (zip_bytes([("model.json", json.dumps(many).encode())]),
                               "max_layers"),
        "NaN in W": (craft([dense(4, 3, W=nan)]), "NaN or infinite"),
        "inf in a Standardize scale": (craft(inf_scale), "NaN or infinite"),
        "npy header {{{{{{{{{{": (craft([dense(4, 3, W=braces)]), "not a plain .npy array"),
        "npy header nested 1000 deep": (craft([dense(4, 3, W=deep)]), "not a plain .npy array"),
        "npy header declaring 80 TB": (craft([dense(4, 3, W=declares_80tb)]),
                                       "header declares"),
        "two model.json": (zip_bytes([members[0], *members]), "twice"),
        "two copies of an array": (zip_bytes([*members, members[-1]]), "twice"),
        "overlapping members": (overlapping(zip_bytes(members), "arrays/0.W.npy",
                                            "arrays/0.X.npy"), "overlap"),
        "no Dense layer": (craft([("relu", {}, {})]), "no Dense layer"),
    }


CHILD = r"""
import contextlib, io, json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
import layerwise as lw
from layerwise.cli import main
out = {}
for name, path in json.loads(sys.argv[1]).items():
    try:
        lw.load(path)
        api = "loads"
    except Exception as exc:                 # recorded, judged by the parent
        api = f"{type(exc).__name__}: {exc}"
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(["info", path])
        except BaseException as exc:
            code = f"{type(exc).__name__}: {exc}"
    out[name] = [api, code, err.getvalue()]
# this process's peak resident memory: VmHWM (ru_maxrss would include the parent's, which
# Linux carries across fork and exec); ru_maxrss is in bytes on macOS
try:
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
    out["maxrss"] = int(hwm.split()[1]) * 1024
except OSError:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out["maxrss"] = rss if sys.platform == "darwin" else rss * 1024
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def crafted(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    cases = battery()
    paths = {}
    for k, (name, (data, _)) in enumerate(cases.items()):
        paths[name] = d / f"case{k}.lw"
        paths[name].write_bytes(data)
    return cases, paths


def test_the_crafted_files_are_small(crafted):
    _, paths = crafted
    sizes = {name: p.stat().st_size for name, p in paths.items() if name != "1.5 million layers"}
    assert max(sizes.values()) <= 2048, sizes
    assert paths["1.5 million layers"].stat().st_size < 100_000


def test_every_crafted_file_is_refused_in_one_line_under_300_mb(crafted):
    """Each file loads or fails with a ModelFileError (exit 2 and one line through
    ``layerwise info``), with peak resident memory under 300 MB, in a child process whose
    address space is capped at 1.5 GiB (the old loader zero-filled 1 GB for the first file)."""
    pytest.importorskip("resource")                          # POSIX only
    cases, paths = crafted
    limit = 1536 * 2**20
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(lw.__file__).parents[1]),
                                          os.environ.get("PYTHONPATH", "")])}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD.replace("ADDRESS_SPACE", str(limit)),
         json.dumps({name: str(p) for name, p in paths.items()})],
        capture_output=True, text=True, env=env, timeout=120)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    for name, (_, expected) in cases.items():
        api, code, err = out[name]
        if expected == "loads":
            assert api == "loads" and code == 0, (name, api, code, err)
            continue
        assert api.startswith("ModelFileError: cannot load model file"), (name, api)
        assert expected in api, (name, expected, api)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("layerwise: error:"), \
            (name, code, err)
    assert out["maxrss"] < 300 * 2**20, f"peak RSS {out['maxrss'] / 2**20:.0f} MB"
    assert seconds < 30, f"the battery took {seconds:.1f} s"


# -- loading limits -----------------------------------------------------------------------------
def _write(tmp_path: Path, members, methods=None, name="m.lw") -> Path:
    path = tmp_path / name
    path.write_bytes(zip_bytes(members, methods))
    return path


def test_max_params_and_max_layers_refuse_and_can_be_raised(tmp_path):
    path = _write(tmp_path, small_model_members())        # 4 layers, 8 + 25 + 18 numbers
    assert len(lw.load(path).layers) == 4
    with pytest.raises(lw.ModelFileError, match=r"51 numbers, more than max_params=50.*"
                                                r"max_params=51"):
        lw.load(path, max_params=50)
    assert lw.load(path, max_params=51).n_params() == 43
    with pytest.raises(lw.ModelFileError, match=r"4 layers, more than max_layers=3.*"
                                                r"max_layers=4"):
        lw.load(path, max_layers=3)
    assert len(lw.load(path, max_layers=4).layers) == 4
    for bad in (0, -1, 1.5, "10", True):
        with pytest.raises(lw.ValidationError, match="max_params"):
            lw.load(path, max_params=bad)
        with pytest.raises(lw.ValidationError, match="max_layers"):
            lw.load(path, max_layers=bad)


def test_default_caps_are_documented_values():
    assert lw_io.MAX_PARAMS == 2**28 and lw_io.MAX_LAYERS == 10_000
    assert lw.load.__kwdefaults__ == {"max_params": 2**28, "max_layers": 10_000}


def test_the_caps_are_checked_before_any_array_is_read(tmp_path, monkeypatch):
    path = _write(tmp_path, small_model_members())
    read = []
    real = lw_io._read_member
    monkeypatch.setattr(lw_io, "_read_member", lambda z, name, *a: read.append(name) or
                        real(z, name, *a))
    with pytest.raises(lw.ModelFileError, match="max_params"):
        lw.load(path, max_params=50)
    assert read == ["model.json"]


def test_resume_raises_the_caps_to_the_size_of_the_model_being_trained(tmp_path, monkeypatch):
    X = np.random.default_rng(0).standard_normal((24, 4)).astype(np.float32)
    y = np.arange(24) % 3

    class Stop(lw.Callback):
        def on_batch_end(self, state, loss):
            raise KeyboardInterrupt

    ck = tmp_path / "ck.lw"
    kw = {"epochs": 2, "batch_size": 8, "rng": 3, "verbose": 0}
    with pytest.raises(lw.TrainingInterrupted):
        lw.mlp([4, 6, 3], rng=1).fit(X, y, checkpoint=ck, checkpoint_every=1,
                                     callbacks=[Stop()], **kw)
    monkeypatch.setattr(lw_io, "MAX_PARAMS", 10)
    monkeypatch.setattr(lw_io.load, "__kwdefaults__", {"max_params": 10, "max_layers": 2})
    with pytest.raises(lw.ModelFileError, match="max_layers=2"):
        lw.load(ck)
    lw.mlp([4, 6, 3], rng=1).fit(X, y, resume=ck, **kw)      # its own size is allowed


# -- archive structure --------------------------------------------------------------------------
@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
@pytest.mark.parametrize("member", ["model.json", "arrays/1.W.npy"])
def test_compression_other_than_stored_or_deflate_is_refused(tmp_path, method, member):
    path = _write(tmp_path, small_model_members(), methods={member: method})
    with pytest.raises(lw.ModelFileError, match=f"{member!r} uses compression method {method}"):
        lw.load(path)


def test_stored_members_load(tmp_path):
    members = small_model_members()
    path = _write(tmp_path, members, methods={m: zipfile.ZIP_STORED for m, _ in members})
    assert lw.load(path).n_out == 3


@pytest.mark.parametrize("dup", ["model.json", "arrays/3.W.npy"])
def test_duplicate_members_are_refused(tmp_path, dup):
    members = small_model_members()
    first = dict(members)
    path = _write(tmp_path, [*members, (dup, first[dup])])
    with pytest.raises(lw.ModelFileError, match=f"{dup!r} twice"):
        lw.load(path)


def test_duplicate_keys_in_model_json_are_refused(tmp_path):
    members = small_model_members()
    text = members[0][1].decode()
    members[0] = ("model.json", text.replace('"dtype": "float32"',
                                             '"dtype": "float64", "dtype": "float32"'))
    members[0] = (members[0][0], members[0][1].encode())
    with pytest.raises(lw.ModelFileError, match=r"repeats the key\(s\) \['dtype'\]"):
        lw.load(_write(tmp_path, members))


def test_a_member_whose_compressed_size_runs_past_the_file_is_refused(tmp_path):
    data = zip_bytes(small_model_members())
    b = bytearray(data)
    pos = next(p for p, name in _central_entries(data) if name == "arrays/3.W.npy")
    struct.pack_into("<I", b, pos + 20, 10**6)               # compressed size
    path = tmp_path / "m.lw"
    path.write_bytes(bytes(b))
    with pytest.raises(lw.ModelFileError, match="past the end of the file"):
        lw.load(path)


def test_a_checkpoint_with_duplicate_members_is_refused(tmp_path):
    """read_members (checkpoints) shares load's archive checks."""
    members = small_model_members()
    path = _write(tmp_path, [*members, ("checkpoint.json", b"{}"), ("checkpoint.json", b"{}")])
    with pytest.raises(lw.ModelFileError, match="twice"):
        lw_io.read_members(path, ["checkpoint.json"])


# -- arrays -------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("which", ["W", "b", "offset"])
def test_non_finite_arrays_are_refused(tmp_path, value, which):
    members = dict(small_model_members())
    member = {"W": "arrays/1.W.npy", "b": "arrays/3.b.npy", "offset": "arrays/0.offset.npy"}[
        which]
    a = np.lib.format.read_array(io.BytesIO(members[member])).copy()
    a.reshape(-1)[-1] = value
    layers = json.loads(members["model.json"])
    members[member] = npy(a)
    for spec in layers["layers"]:
        for ref in spec["arrays"].values():
            if ref["file"] == member:
                ref["sha256"] = sha(members[member])
    members["model.json"] = json.dumps(layers).encode()
    with pytest.raises(lw.ModelFileError, match=f"{member!r} holds NaN or infinite values"):
        lw.load(_write(tmp_path, list(members.items())))


def test_a_zero_standardize_scale_is_refused(tmp_path):
    layers = [("standardize", {"n": 2}, {"offset": np.zeros(2, np.float32),
                                         "scale": np.array([1, 0], np.float32)}), dense(2, 2)]
    with pytest.raises(lw.ModelFileError, match="scale must be non-zero"):
        lw.load(_write(tmp_path, craft_members(layers)))


def test_loaded_arrays_are_the_layers_own_writeable_copies(tmp_path):
    path = _write(tmp_path, small_model_members())
    model = lw.load(path)
    for layer in model.layers:
        for a in layer.arrays().values():
            assert a.flags.writeable and a.flags.c_contiguous
    model.fit(np.ones((4, 4), np.float32), np.arange(4) % 3, epochs=1, verbose=0, rng=0)


@pytest.mark.parametrize("header", [b"{{{{{{{{{{", b"{'descr': '<f4', 'fortran_order': False",
                                    b"(" * 200, b"\xff\xfe", b"{'descr': 'O', 'shape': (3, 4), "
                                    b"'fortran_order': False}"])
def test_a_bad_npy_header_is_a_model_file_error(tmp_path, header):
    W = npy_with_header(header, b"\0" * 48)
    with pytest.raises(lw.ModelFileError, match=r"not a plain \.npy array|not numbers"):
        lw.load(_write(tmp_path, craft_members([dense(4, 3, W=W)])))


def test_a_big_endian_array_is_refused_by_its_dtype(tmp_path):
    W = npy(np.zeros((3, 4), ">f4"))
    with pytest.raises(lw.ModelFileError, match="dtype >f4"):
        lw.load(_write(tmp_path, craft_members([dense(4, 3, W=W)])))


# -- model with no Dense layer ------------------------------------------------------------------
def test_a_model_without_a_dense_layer_is_refused_by_save_load_and_evaluate(tmp_path, capsys):
    model = lw.Sequential(lw.ReLU())
    with pytest.raises(lw.ValidationError, match="no Dense layer"):
        model.save(tmp_path / "x.lw")
    assert not (tmp_path / "x.lw").exists()
    model.loss = lw.CrossEntropy()
    with pytest.raises(lw.ConfigError, match="no Dense layer"):
        model.evaluate(np.ones((2, 3)), np.array([0, 1]))
    path = _write(tmp_path, craft_members([("standardize", {"n": 2},
                                            {"offset": np.zeros(2, np.float32),
                                             "scale": np.ones(2, np.float32)}),
                                           ("relu", {}, {})]))
    with pytest.raises(lw.ModelFileError, match="no Dense layer"):
        lw.load(path)
    for command in (["info", str(path)], ["predict", str(path), str(tmp_path / "in.csv")]):
        assert main(command) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "no Dense layer" in err[0]


# -- metadata -----------------------------------------------------------------------------------
BAD_METADATA = {
    "metadata is a list": ([1, 2], "must be a JSON object"),
    "classes of the wrong length": ({"classes": ["a", "b"]}, "'classes' names 2 classes"),
    "classes not a list": ({"classes": "abc"}, "'classes' must be a list"),
    "repeated classes": ({"classes": ["a", "a", "b"]}, "distinct"),
    "n_classes too many": ({"n_classes": 7}, "'n_classes' names 7 classes"),
    "n_classes a string": ({"n_classes": "3"}, "'n_classes' must be a positive integer"),
    "feature_names=5": ({"feature_names": 5}, "'feature_names' must be a list of 4"),
    "feature_names too few": ({"feature_names": ["a", "b"]}, "'feature_names' must be a list"),
    "a list config": ({"config": [1, 2]}, "'config' must be an object"),
    "config data a number": ({"config": {"data": 5}}, "'config' must be an object"),
    "an unknown task": ({"task": "poetry"}, "'task' must be"),
    "target_name a list": ({"target_name": ["y"]}, "'target_name'"),
    "a negative seed": ({"seed": -1}, "'seed'"),
    "test_split of 2": ({"test_split": 2}, "'test_split'"),
}


@pytest.mark.parametrize("name", list(BAD_METADATA))
def test_metadata_the_cli_relies_on_is_checked_on_load(tmp_path, capsys, name):
    meta, match = BAD_METADATA[name]
    members = small_model_members()
    doc = json.loads(members[0][1])
    doc["metadata"] = meta
    members[0] = ("model.json", json.dumps(doc).encode())
    path = _write(tmp_path, members)
    with pytest.raises(lw.ModelFileError, match=match):
        lw.load(path)
    (tmp_path / "in.csv").write_text("a,b,c,d\n1,2,3,4\n")
    for command in (["info", str(path)], ["predict", str(path), str(tmp_path / "in.csv")]):
        assert main(command) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("layerwise: error: cannot load model file")


def _model() -> lw.Sequential:
    model = lw.mlp([4, 5, 3], rng=0)
    model.loss = lw.CrossEntropy()
    return model


@pytest.mark.parametrize("name", [n for n in BAD_METADATA if n != "metadata is a list"])
def test_save_refuses_metadata_that_load_would_refuse(tmp_path, name):
    model = _model()
    model.metadata = BAD_METADATA[name][0]
    with pytest.raises(lw.ValidationError, match=r"cannot save: in model\.metadata"):
        model.save(tmp_path / "m.lw")
    assert not (tmp_path / "m.lw").exists()


def test_good_metadata_round_trips_including_binary_classes(tmp_path):
    model = _model()
    model.metadata = {"task": "classification", "classes": ["x", "y", "z"], "n_classes": 3,
                      "feature_names": list("abcd"), "target_name": "t", "seed": 0,
                      "test_split": 0.25, "config": {"data": "f.csv", "anything": [1]},
                      "free": {"form": [None, 1.5]}}
    model.save(tmp_path / "m.lw")
    assert lw.load(tmp_path / "m.lw").metadata == model.metadata
    binary = lw.mlp([4, 1], rng=0)
    binary.loss = lw.BinaryCrossEntropy()
    binary.metadata = {"classes": ["no", "yes"], "n_classes": 2}      # one logit, two classes
    binary.save(tmp_path / "b.lw")
    assert lw.load(tmp_path / "b.lw").metadata["classes"] == ["no", "yes"]


def test_numpy_values_in_metadata_are_saved_as_plain_json(tmp_path):
    model = _model()
    model.metadata = {"n": np.int64(3), "x": np.float32(0.5), "ok": np.bool_(True),
                      "name": np.str_("s"), "v": np.arange(3), "t": (1, np.int8(2)),
                      "nested": {"k": [np.float64(1.25)]}}
    model.save(tmp_path / "m.lw")
    loaded = lw.load(tmp_path / "m.lw").metadata
    assert loaded == {"n": 3, "x": 0.5, "ok": True, "name": "s", "v": [0, 1, 2], "t": [1, 2],
                      "nested": {"k": [1.25]}}
    assert type(loaded["n"]) is int
    assert isinstance(model.metadata["n"], np.int64)           # the model's own dict unchanged


@pytest.mark.parametrize(("meta", "match"), [
    ({"f": object()}, r"model.metadata\['f'\] is a object"),
    ({"deep": {"er": [1, {2}]}}, r"model.metadata\['deep'\]\['er'\]\[1\] is a set"),
    ({"k": {1: "a"}}, r"model.metadata\['k'\] has the key 1"),
])
def test_metadata_json_cannot_store_is_refused_naming_the_key(tmp_path, meta, match):
    model = _model()
    model.metadata = meta
    with pytest.raises(lw.ValidationError, match=match):
        model.save(tmp_path / "m.lw")
    assert not (tmp_path / "m.lw").exists()


# -- constructors and save arguments ------------------------------------------------------------
def test_dense_refuses_a_size_this_machine_cannot_hold_before_allocating():
    t0 = time.perf_counter()
    with pytest.raises(lw.ValidationError, match=r"Dense\(1000000000000, 1000000000000\).*"
                                                 r"needs 8e\+24 bytes.*use fewer units"):
        lw.Dense(10**12, 10**12)
    assert time.perf_counter() - t0 < 0.5
    with pytest.raises(lw.ValidationError, match="needs"):
        lw.mlp([10**7, 10**7])


@pytest.mark.parametrize("call", [lambda: lw.mlp([2, 3], rng=-1),
                                  lambda: lw.Dense(2, 3, rng=-1),
                                  lambda: lw.Dropout(0.5, rng=np.int64(-5))])
def test_a_negative_seed_is_a_config_error(call):
    with pytest.raises(lw.ConfigError, match="rng must be a seed >= 0"):
        call()


@pytest.mark.parametrize("path", [None, 5, b"m.lw", ["m.lw"]])
def test_save_to_something_that_is_not_a_path_is_a_config_error(path):
    with pytest.raises(lw.ConfigError, match="save expects a file path"):
        _model().save(path)


def test_io_save_of_something_that_is_not_a_model_is_a_config_error(tmp_path):
    with pytest.raises(lw.ConfigError, match="save expects a Sequential model"):
        lw_io.save(None, tmp_path / "m.lw")


@pytest.mark.parametrize("method", ["zzz", None, 3, "Standard"])
def test_standardize_method_is_checked_by_the_constructor_and_in_files(tmp_path, method):
    with pytest.raises(lw.ConfigError, match="unknown Standardize method"):
        lw.Standardize([0.0], [1.0], method=method)
    with pytest.raises(lw.ConfigError, match="unknown Standardize method"):
        lw.Standardize.from_config(2, method=method)
    layers = [("standardize", {"n": 4, "method": method},
               {"offset": np.zeros(4, np.float32), "scale": np.ones(4, np.float32)}),
              dense(4, 3)]
    with pytest.raises(lw.ModelFileError, match="unknown Standardize method"):
        lw.load(_write(tmp_path, craft_members(layers)))


def test_standardize_accepts_every_method_the_library_writes():
    for method in ("standard", "minmax", "none", "inverse"):
        assert lw.Standardize([0.0], [2.0], method=method).method == method


@pytest.mark.parametrize(("offset", "scale", "match"), [
    ([0.0, np.nan], [1.0, 1.0], "offset contains 1 NaN"),
    ([0.0, 0.0], [1.0, np.inf], "scale contains 1 NaN"),
    ([0.0, 0.0], [1.0, 0.0], "non-zero"),
    ([[0.0], ["a"]], [1.0, 1.0], "offset must be numbers"),
])
def test_standardize_refuses_constants_that_make_outputs_nan(offset, scale, match):
    with pytest.raises(lw.LayerwiseError, match=match):
        lw.Standardize(offset, scale)


def test_standardize_keeps_its_own_copy_of_the_constants():
    offset = np.zeros(3, np.float32)
    layer = lw.Standardize(offset, np.ones(3, np.float32))
    offset[0] = 5
    assert layer.offset[0] == 0


def test_the_cli_refuses_a_nan_model_in_one_line(tmp_path, capsys):
    nan = np.ones((3, 4), np.float32)
    nan[0, 0] = np.nan
    path = _write(tmp_path, craft_members([dense(4, 3, W=nan)]))
    (tmp_path / "in.csv").write_text("a,b,c,d\n1,2,3,4\n")
    assert main(["predict", str(path), str(tmp_path / "in.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "NaN or infinite" in err[0]
