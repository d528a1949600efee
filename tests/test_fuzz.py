"""Fuzzing: hostile model files and checkpoints, and random arrays given to fit/predict/evaluate.

The contract under test: whatever the input, the only exceptions that escape the public API are
``lw.LayerwiseError`` subclasses (``ModelFileError`` for files), never a ``KeyError``,
``TypeError``, ``zlib.error``, ``MemoryError``... and nothing in a file is ever executed.

The hypothesis tests run a fixed number of derandomized examples (the same ones on every run,
no example database), so CI is deterministic and the file runs in well under a minute. The
deterministic tests after them pin down each crasher the fuzzing found, one case per bug.
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import re
import struct
import time
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import layerwise as lw
from layerwise.cli import main
from test_checkpoints import StopAt  # Ctrl-C after a number of steps


def budget(n: int) -> settings:
    """A fixed, derandomized example budget: the same examples on every run."""
    return settings(max_examples=n, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# -- valid files to start from ------------------------------------------------------------------
N_IN = 4


def _model_a() -> tuple[lw.Sequential, np.ndarray, np.ndarray]:
    """Every layer kind with settings: Standardize, Dense, LeakyReLU, Dropout, GELU, ..."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((32, N_IN)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    model = lw.Sequential(
        lw.Standardize(X.mean(0), X.std(0)), lw.Dense(N_IN, 6, init="he", rng=0),
        lw.LeakyReLU(0.2), lw.Dropout(0.1, rng=0), lw.Dense(6, 5, rng=1), lw.GELU("tanh"),
        lw.Dense(5, 3, bias=False, rng=2))
    model.fit(X, y, loss=lw.CrossEntropy(label_smoothing=0.05), epochs=2, batch_size=8,
              verbose=0, rng=0)
    model.metadata = {"note": "hello", "classes": ["a", "b", "c"], "nested": {"k": [1, 2]}}
    return model, X, y


def _model_b() -> lw.Sequential:
    """Another architecture, dtype and loss, for splicing."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((16, 3))
    model = lw.mlp([3, 7, 2], activation="tanh", output="sigmoid", dtype=np.float64, rng=5)
    model.fit(X, np.abs(X[:, :2]), loss="mse", epochs=1, batch_size=4, verbose=0, rng=0)
    return model


CK_X = np.random.default_rng(2).standard_normal((24, N_IN)).astype(np.float32)
CK_Y = np.random.default_rng(3).integers(0, 3, 24)


def _ck_model() -> lw.Sequential:
    return lw.mlp([N_IN, 6, 3], dropout=0.1, rng=1)


class _Guard(lw.Callback):
    """Fails the test if a resumed run takes far more steps than the fit has (a hang)."""

    def __init__(self) -> None:
        self.n = 0

    def on_batch_end(self, state, loss):
        self.n += 1
        assert self.n <= 100, "the resumed run does not stop"


def _ck_fit(model: lw.Sequential, **kw):
    return model.fit(CK_X, CK_Y, optimizer=lw.Adam(1e-2), epochs=2, batch_size=8, rng=3,
                     verbose=0, **kw)


class Files(dict):
    """The valid files' bytes by name, and "dir"; printed briefly in hypothesis reports."""

    def __repr__(self) -> str:
        return f"Files({sorted(self)})"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Bytes of valid files: model A, model B, and a checkpoint written in the middle of epoch 1."""
    d = tmp_path_factory.mktemp("fuzz")
    a, _, _ = _model_a()
    a.save(d / "a.lw")
    _model_b().save(d / "b.lw")
    with pytest.raises(lw.TrainingInterrupted):
        _ck_fit(_ck_model(), checkpoint=d / "ck.lw", checkpoint_every=1, callbacks=[StopAt(2)])
    return Files(dir=d, **{k: (d / f"{k}.lw").read_bytes() for k in ("a", "b", "ck")})


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {name: z.read(name) for name in z.namelist()}


def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _npy(a: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, allow_pickle=allow_pickle)
    return buf.getvalue()


def _load_and_use(path: Path) -> None:
    """``lw.load`` may refuse the file with a LayerwiseError, nothing else; a model it returns
    must predict on input of its width (or refuse that input with a LayerwiseError)."""
    try:
        model = lw.load(path)
    except lw.LayerwiseError:
        return
    n = model.n_in if model.n_in is not None else N_IN
    X = np.linspace(-1, 1, 3 * n, dtype=np.float64).reshape(3, n)
    try:
        out = model.predict(X)
    except lw.LayerwiseError:
        return
    assert out.shape[0] == 3


# -- mutated bytes ------------------------------------------------------------------------------
HEADERS = re.compile(b"PK\x01\x02|PK\x03\x04|PK\x05\x06")


class Mutation(tuple):
    """A byte-level edit, drawn by hypothesis and printed as such when a test fails."""

    def apply(self, base: bytes, other: bytes) -> bytes:
        kind, *args = self
        b = bytearray(base)
        if kind == "flip":
            for pos, bit in args[0]:
                b[pos] ^= 1 << bit
        elif kind == "overwrite":
            pos, data = args
            b[pos:pos + len(data)] = data
        elif kind == "truncate":
            b = b[:args[0]]
        elif kind == "insert":
            pos, data = args
            b[pos:pos] = data
        elif kind == "delete":
            pos, n = args
            del b[pos:pos + n]
        elif kind == "splice":
            i, j, base_first = args
            b = b[:i] + other[j:] if base_first else bytearray(other[:j]) + b[i:]
        else:                                       # "header": bytes of the zip headers
            for pos, value in args[0]:
                if pos < len(b):
                    b[pos] = value
        return bytes(b)


@st.composite
def mutations(draw, base: bytes, other: bytes) -> Mutation:
    """Bit flips, overwrites, truncation, insertion, deletion, splicing with another file, and
    edits of the zip headers' fields (sizes, flags, methods, name lengths)."""
    n = len(base)
    kind = draw(st.sampled_from(["flip", "overwrite", "truncate", "insert", "delete", "splice",
                                 "header"]))
    if kind == "flip":
        return Mutation((kind, draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, 7)),
                                             min_size=1, max_size=8))))
    if kind in ("overwrite", "insert"):
        return Mutation((kind, draw(st.integers(0, n - 1)), draw(st.binary(min_size=1,
                                                                           max_size=32))))
    if kind == "truncate":
        return Mutation((kind, draw(st.integers(0, n - 1))))
    if kind == "delete":
        return Mutation((kind, draw(st.integers(0, n - 1)), draw(st.integers(1, 64))))
    if kind == "splice":
        return Mutation((kind, draw(st.integers(0, n)), draw(st.integers(0, len(other))),
                         draw(st.booleans())))
    heads = [m.start() for m in HEADERS.finditer(base)]
    edits = draw(st.lists(st.tuples(
        st.builds(int.__add__, st.sampled_from(heads), st.integers(4, 45)),
        st.sampled_from([0, 1, 0x08, 0x20, 0x40, 0x7F, 0x80, 0xFF]) | st.integers(0, 255)),
        min_size=1, max_size=3))
    return Mutation((kind, edits))


@budget(1500)
@given(data=st.data())
def test_mutated_model_files_are_refused_with_a_layerwise_error(files, data):
    which = data.draw(st.sampled_from(["a", "b"]), label="base")
    other = files["b" if which == "a" else "a"]
    mutation = data.draw(mutations(files[which], other), label="mutation")
    path = files["dir"] / "mutated.lw"
    path.write_bytes(mutation.apply(files[which], other))
    _load_and_use(path)


# -- model.json rewritten with random values in random fields (the zip stays valid) --------------
def _paths(doc, prefix=()):
    """Every path (tuple of keys and indices) inside a JSON document."""
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, (*prefix, i))


SPECIAL = st.sampled_from([0, -1, 1, 2, 3, 5, 6, 10**12, -10**12, 2**31, 2**31 - 1, 2**63,
                           10**30, 1e308, -0.0, 0.5, 1.5, float("nan"), float("inf"),
                           "", "dense", "dropout", "standardize", "relu", "ce", "mse",
                           "float16", "float32", "float64", "int8", "object", "O",
                           "layerwise-model", "arrays/1.W.npy", "../x", "/etc/passwd",
                           "zeros", "he", "none", "tanh", "W", "b"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | SPECIAL,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=6) | st.sampled_from(
        ["kind", "config", "arrays", "n_in", "n_out", "n", "p", "file", "sha256", "rng",
         "dtype", "init", "bias", "alpha", "method"]), inner, max_size=4),
    max_leaves=12)


def _get(doc, path):
    for k in path:
        doc = doc[k]
    return doc


class Edited:
    """A JSON document after some edits; prints as the list of edits when a test fails."""

    def __init__(self, doc, edits: list) -> None:
        self.doc, self.edits = doc, edits

    def __repr__(self) -> str:
        return f"Edited({self.edits!r})"


@st.composite
def edited_doc(draw, doc) -> Edited:
    """1-3 edits: set a field to random JSON, delete a field, add a key, or drop, duplicate or
    swap whole layers."""
    doc = json.loads(json.dumps(doc))
    edits: list = []
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        op = draw(st.sampled_from(["set", "set", "set", "delete", "add", "layers"]))
        if op == "set":
            path, value = draw(st.sampled_from(paths)), draw(JSON)
            _get(doc, path[:-1])[path[-1]] = value
            edits.append(("set", path, value))
        elif op == "delete":
            path = draw(st.sampled_from(paths))
            del _get(doc, path[:-1])[path[-1]]
            edits.append(("delete", path))
        elif op == "add":
            dicts = [p for p in _paths(doc) if isinstance(_get(doc, p), dict)]
            path, key, value = draw(st.sampled_from(dicts)), draw(st.text(max_size=6)), draw(JSON)
            _get(doc, path)[key] = value
            edits.append(("add", path, key, value))
        elif isinstance(doc.get("layers"), list) and doc["layers"]:
            layers = doc["layers"]
            i = draw(st.integers(0, len(layers) - 1))
            j = draw(st.integers(0, len(layers) - 1))
            how = draw(st.sampled_from(["drop", "duplicate", "swap"]))
            if how == "drop":
                del layers[i]
            elif how == "duplicate":
                layers.insert(j, json.loads(json.dumps(layers[i])))
            else:
                layers[i], layers[j] = layers[j], layers[i]
            edits.append((how + " layer", i, j))
    return Edited(doc, edits)


@budget(800)
@given(data=st.data())
def test_model_json_with_random_fields_is_refused_with_a_layerwise_error(files, data):
    which = data.draw(st.sampled_from(["a", "b"]), label="base")
    members = _members(files[which])
    edited = data.draw(edited_doc(json.loads(members["model.json"])), label="model.json")
    members["model.json"] = json.dumps(edited.doc).encode()
    path = files["dir"] / "edited.lw"
    path.write_bytes(_zip(members))
    _load_and_use(path)


# -- random arrays given to fit, predict and evaluate -------------------------------------------
DTYPES = [np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
          np.uint64, np.float16, np.float32, np.float64, np.complex64, np.complex128, object,
          str, "S4", "datetime64[s]", "timedelta64[ms]"]
# Magnitudes stay within float32 range and far from overflow in a forward pass: values beyond
# float32 are a separate test (test_bad_input.py), and a huge finite input overflowing inside
# predict is NumPy arithmetic, not bad input.
VALUES = st.sampled_from([0.0, 1.0, 2.0, 3.0, -1.0, 0.5, -2.5, 7.0, 1e3, -1e3,
                          float("nan"), float("inf"), float("-inf")])


def _as(values: list[float], shape: tuple[int, ...], dtype) -> np.ndarray:
    a = np.array(values, dtype=np.float64).reshape(shape)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dtype is object or dtype is str:
            return a.astype(dtype)
        kind = np.dtype(dtype).kind
        if kind in "mM":
            return np.nan_to_num(a).astype(np.int64).astype(dtype)
        if kind == "c":
            return (a + 1j).astype(dtype)
        return a.astype(dtype)


@st.composite
def random_arrays(draw, shapes):
    """An array of a random dtype and shape (with NaN/inf anywhere), or odd Python objects."""
    odd = draw(st.sampled_from([None, None, None, None, None, None, "ragged", "none", "list",
                                "string"]))
    if odd == "ragged":
        return [[1.0, 2.0], [3.0]]
    if odd == "none":
        return None
    if odd == "string":
        return "not an array"
    shape = draw(st.sampled_from(shapes))
    values = draw(st.lists(VALUES, min_size=math.prod(shape), max_size=math.prod(shape)))
    a = _as(values, shape, draw(st.sampled_from(DTYPES)))
    return a.tolist() if odd == "list" else a


X_SHAPES = [(), (0,), (5,), (0, N_IN), (5, 0), (5, N_IN), (4, N_IN), (1, N_IN), (5, 3),
            (5, N_IN, 1), (5, 2, 2), (0, N_IN, 2)]
Y_SHAPES = [(), (0,), (5,), (4,), (1,), (5, 1), (5, 3), (4, 3), (5, 4), (5, 3, 1)]


def _only_layerwise_errors(fn, *args, **kwargs) -> None:
    try:
        fn(*args, **kwargs)
    except lw.LayerwiseError:
        pass


@budget(1200)
@given(X=random_arrays(X_SHAPES), y=random_arrays(Y_SHAPES),
       loss=st.sampled_from(["ce", "bce", "mse", "mae", "huber"]),
       validation=st.none() | st.tuples(random_arrays(X_SHAPES), random_arrays(Y_SHAPES)),
       split=st.sampled_from([0.0, 0.0, 0.5]), dtype=st.sampled_from([np.float32, np.float64]))
def test_random_arrays_given_to_fit_predict_evaluate_raise_only_layerwise_errors(
        X, y, loss, validation, split, dtype):
    model = lw.mlp([N_IN, 5, 3], dtype=dtype, rng=0)
    _only_layerwise_errors(model.fit, X, y, loss=loss, optimizer="adam", epochs=1, batch_size=2,
                           validation_data=validation, validation_split=split, verbose=0, rng=0)
    _only_layerwise_errors(model.predict, X)
    _only_layerwise_errors(model.evaluate, X, y, loss=loss)


@budget(200)
@given(w=random_arrays([(), (0,), (5,), (4,), (5, 1), (5, 2)]))
def test_random_sample_weights_raise_only_layerwise_errors(w):
    X = np.linspace(-1, 1, 5 * N_IN, dtype=np.float32).reshape(5, N_IN)
    model = lw.mlp([N_IN, 5, 3], rng=0)
    _only_layerwise_errors(model.fit, X, [0, 1, 2, 1, 0], sample_weight=w, epochs=1,
                           batch_size=2, verbose=0, rng=0)


# -- mutated checkpoints, resumed with matching data ----------------------------------------------
def _resume(path: Path) -> None:
    try:
        _ck_fit(_ck_model(), resume=path, callbacks=[_Guard()])
    except lw.LayerwiseError:
        pass


class CheckpointEdit(tuple):
    """How a checkpoint was damaged; prints as such when a test fails."""

    def apply(self, ck: bytes, other: bytes) -> bytes:
        how, arg = self
        if how == "bytes":
            return arg.apply(ck, other)
        members = _members(ck)
        if how == "checkpoint.json":
            members["checkpoint.json"] = json.dumps(arg.doc).encode()
        elif how == "checkpoint/arrays.json":
            members[how] = json.dumps(arg).encode()
        else:
            name, a = arg
            a = np.array(a, dtype=object) if a is None or isinstance(a, (list, str)) else \
                np.asarray(a)
            members[name] = _npy(a, allow_pickle=a.dtype.hasobject)
        return _zip(members)


@st.composite
def checkpoint_edits(draw, ck: bytes, other: bytes) -> CheckpointEdit:
    how = draw(st.sampled_from(["bytes", "checkpoint.json", "checkpoint.json",
                                "checkpoint/arrays.json", "npy"]))
    if how == "bytes":
        return CheckpointEdit((how, draw(mutations(ck, other))))
    members = _members(ck)
    if how == "checkpoint.json":
        return CheckpointEdit((how, draw(edited_doc(json.loads(members["checkpoint.json"])))))
    if how == "checkpoint/arrays.json":
        return CheckpointEdit((how, draw(JSON)))
    name = draw(st.sampled_from(sorted(n for n in members
                                       if n.startswith("checkpoint/") and n.endswith(".npy"))))
    a = draw(random_arrays([(), (0,), (24,), (23,), (6, 4), (24, 1), (4, 6), (3,)]))
    return CheckpointEdit((how, (name, a)))


@budget(600)
@given(data=st.data())
def test_mutated_checkpoints_are_refused_with_a_layerwise_error(files, data):
    edit = data.draw(checkpoint_edits(files["ck"], files["a"]), label="edit")
    path = files["dir"] / "ck-mutated.lw"
    path.write_bytes(edit.apply(files["ck"], files["a"]))
    _resume(path)


def test_the_unmutated_checkpoint_resumes(files):
    """The fuzzing above starts from a checkpoint that does resume."""
    path = files["dir"] / "ck-copy.lw"
    path.write_bytes(files["ck"])
    h = _ck_fit(_ck_model(), resume=path)
    assert h.epoch == [1, 2]


# -- pickles, path traversal, zip bombs ---------------------------------------------------------
class _Evil:
    """Unpickling this creates a folder: evidence that the file executed code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def _with_member(base: bytes, name: str, data: bytes, fix_hash: bool = True) -> bytes:
    """Replace (or add) a member; for a model array, record its SHA-256 so only the content
    itself can be the reason for a refusal."""
    import hashlib

    members = _members(base)
    members[name] = data
    if fix_hash:
        doc = json.loads(members["model.json"])
        for layer in doc["layers"]:
            for ref in layer.get("arrays", {}).values():
                if ref["file"] == name:
                    ref["sha256"] = hashlib.sha256(data).hexdigest()
        members["model.json"] = json.dumps(doc).encode()
    return _zip(members)


def test_a_pickle_bearing_model_file_is_refused_and_nothing_runs(files, tmp_path):
    marker = tmp_path / "pwned"
    payload = _npy(np.array([_Evil(marker)], dtype=object), allow_pickle=True)
    path = tmp_path / "evil.lw"
    path.write_bytes(_with_member(files["a"], "arrays/1.W.npy", payload))
    with pytest.raises(lw.ModelFileError, match="pickle"):
        lw.load(path)
    assert not marker.exists()
    path.write_bytes(pickle.dumps(_Evil(marker)))            # the whole file a pickle
    with pytest.raises(lw.ModelFileError, match="not a zip"):
        lw.load(path)
    assert not marker.exists()


def test_a_pickle_bearing_checkpoint_is_refused_and_nothing_runs(files, tmp_path):
    marker = tmp_path / "pwned"
    payload = _npy(np.array([_Evil(marker)] * 24, dtype=object), allow_pickle=True)
    path = tmp_path / "evil-ck.lw"
    path.write_bytes(_with_member(files["ck"], "checkpoint/order.npy", payload, fix_hash=False))
    with pytest.raises(lw.ModelFileError, match="pickle"):
        _ck_fit(_ck_model(), resume=path)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["../../evil", "/etc/evil", "arrays/../../evil", "..\\..\\evil",
                                  "\\evil", "a/b/../../../evil"])
def test_a_member_with_a_traversal_path_is_refused(files, tmp_path, name):
    path = tmp_path / "traversal.lw"
    path.write_bytes(_zip({**_members(files["a"]), name: b"x"}))
    with pytest.raises(lw.ModelFileError, match="unsafe path"):
        lw.load(path)


def _central_entries(data: bytes):
    """(offset, name) of each central-directory entry of the zip in ``data``."""
    eocd = data.rindex(b"PK\x05\x06")
    count, _, start = struct.unpack_from("<HII", data, eocd + 10)
    pos = start
    for _ in range(count):
        n_name, n_extra, n_comment = struct.unpack_from("<HHH", data, pos + 28)
        yield pos, data[pos + 46:pos + 46 + n_name].decode("cp437")
        pos += 46 + n_name + n_extra + n_comment


def _claiming(data: bytes, member: str, size: int) -> bytes:
    """The zip with ``member``'s central-directory entry claiming ``size`` uncompressed bytes
    (through a ZIP64 extra field), the data itself unchanged: a crafted zip bomb header."""
    b = bytearray(data)
    eocd = data.rindex(b"PK\x05\x06")
    pos = next(p for p, name in _central_entries(data) if name == member)
    n_name, n_extra = struct.unpack_from("<HH", data, pos + 28)
    struct.pack_into("<I", b, pos + 24, 0xFFFFFFFF)          # "see the ZIP64 extra field"
    struct.pack_into("<H", b, pos + 30, n_extra + 12)
    b[pos + 46 + n_name:pos + 46 + n_name] = struct.pack("<HHQ", 0x0001, 8, size)
    cd_size = struct.unpack_from("<I", data, eocd + 12)[0]
    struct.pack_into("<I", b, eocd + 12 + 12, cd_size + 12)  # the end record moved by 12
    return bytes(b)


def _bomb(base: bytes, member: str, n_bytes: int, fill: bytes) -> bytes:
    """The file with ``member`` replaced by ``n_bytes`` of ``fill``, deflated (about 1000:1)."""
    members = _members(base)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            if name == member:
                with z.open(name, "w") as f:
                    chunk = fill * (1 << 20)
                    for _ in range(n_bytes >> 20):
                        f.write(chunk)
            else:
                z.writestr(name, data)
    return buf.getvalue()


def _refused_quickly(call, match: str, exc=lw.ModelFileError) -> None:
    """``call()`` raises ``exc`` within a second, allocating less than 16 MB on the way."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(exc, match=match):
            call()
        seconds = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seconds < 1.0, f"refusing the file took {seconds:.2f} s"
    assert peak < 16 * 2**20, f"refusing the file allocated {peak / 2**20:.0f} MB"


BOMB = 100 * 2**20        # 100 MiB that deflate to about 100 KB


@pytest.mark.parametrize(("member", "fill"), [("model.json", b" "), ("arrays/1.W.npy", b"\0")])
def test_a_compressed_zip_bomb_member_is_refused_quickly(files, tmp_path, member, fill):
    path = tmp_path / "bomb.lw"
    path.write_bytes(_bomb(files["a"], member, BOMB, fill))
    assert path.stat().st_size < BOMB // 200
    _refused_quickly(lambda: lw.load(path), "bytes")


@pytest.mark.parametrize("member", ["model.json", "arrays/1.W.npy", "arrays/0.offset.npy"])
def test_a_member_claiming_a_terabyte_is_refused_quickly(files, tmp_path, member):
    path = tmp_path / "claims.lw"
    path.write_bytes(_claiming(files["a"], member, 2**40))
    with zipfile.ZipFile(path) as z:                           # the crafted header is read as such
        assert z.getinfo(member).file_size == 2**40
    _refused_quickly(lambda: lw.load(path), "bytes")


@pytest.mark.parametrize("member", ["checkpoint.json", "checkpoint/arrays.json",
                                    "checkpoint/order.npy"])
def test_a_checkpoint_member_claiming_a_terabyte_is_refused_quickly(files, tmp_path, member):
    path = tmp_path / "ck-claims.lw"
    path.write_bytes(_claiming(files["ck"], member, 2**40))
    _refused_quickly(lambda: _ck_fit(_ck_model(), resume=path), "bytes")


@pytest.mark.parametrize(("member", "fill"), [("checkpoint.json", b" "),
                                              ("checkpoint/order.npy", b"\0")])
def test_a_compressed_zip_bomb_in_a_checkpoint_is_refused_quickly(files, tmp_path, member, fill):
    """Like model.json, the checkpoint's own members must be bounded before they are read."""
    path = tmp_path / "ck-bomb.lw"
    path.write_bytes(_bomb(files["ck"], member, BOMB, fill))
    _refused_quickly(lambda: _ck_fit(_ck_model(), resume=path), "cannot")


# -- crashers found by the fuzzing, one deterministic case each ---------------------------------
def _set_central(data: bytes, member: str, offset: int, fmt: str, value: int) -> bytes:
    b = bytearray(data)
    pos = next(p for p, name in _central_entries(data) if name == member)
    struct.pack_into(fmt, b, pos + offset, value)
    return bytes(b)


def _bad_deflate(data: bytes, member: str) -> bytes:
    """The member's deflate stream starts with a reserved block type (zlib: invalid block)."""
    b = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        offset = z.getinfo(member).header_offset
    n_name, n_extra = struct.unpack_from("<HH", data, offset + 26)
    b[offset + 30 + n_name + n_extra] = 0xFF
    return bytes(b)


def _non_utf8_name(data: bytes, member: str) -> bytes:
    """The member's name flagged as UTF-8 (bit 11) but holding an invalid UTF-8 byte."""
    b = bytearray(_set_central(data, member, 8, "<H", 0x0800))
    pos = next(p for p, name in _central_entries(data) if name == member)
    b[pos + 46] = 0xFF
    return bytes(b)


CORRUPTIONS = {
    # zipfile raises zlib.error for a damaged deflate stream
    "damaged deflate stream": lambda d: _bad_deflate(d, "arrays/1.W.npy"),
    # NotImplementedError: an unknown compression method (here 99, AES)
    "unsupported compression method": lambda d: _set_central(d, "arrays/1.W.npy", 10, "<H", 99),
    # NotImplementedError: the "strong encryption" flag bit 6
    "strong encryption flag": lambda d: _set_central(d, "arrays/1.W.npy", 8, "<H", 0x40),
    # RuntimeError: the encryption flag bit 0 (password required)
    "encrypted member": lambda d: _set_central(d, "model.json", 8, "<H", 0x01),
    # UnicodeDecodeError from zipfile.ZipFile() itself
    "member name not UTF-8": lambda d: _non_utf8_name(d, "arrays/1.b.npy"),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_a_corrupted_zip_structure_is_a_model_file_error(files, tmp_path, name):
    path = tmp_path / "corrupt.lw"
    path.write_bytes(CORRUPTIONS[name](files["a"]))
    with pytest.raises(lw.ModelFileError, match="cannot load model file"):
        lw.load(path)


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_a_corrupted_zip_structure_is_a_one_line_cli_error(files, tmp_path, capsys, name):
    path = tmp_path / "corrupt.lw"
    path.write_bytes(CORRUPTIONS[name](files["a"]))
    code = main(["info", str(path)])
    out, err = capsys.readouterr()
    assert code != 0 and "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("layerwise: error:"), err


@pytest.mark.parametrize("name", ["damaged deflate stream", "unsupported compression method",
                                  "member name not UTF-8"])
def test_a_corrupted_checkpoint_zip_is_a_model_file_error(files, tmp_path, name):
    member = {"damaged deflate stream": "checkpoint.json",
              "unsupported compression method": "checkpoint/order.npy",
              "member name not UTF-8": "checkpoint/opt.0.m.npy"}[name]
    data = files["ck"]
    data = (_bad_deflate(data, member) if name == "damaged deflate stream" else
            _set_central(data, member, 10, "<H", 99) if name.startswith("unsupported") else
            _non_utf8_name(data, member))
    path = tmp_path / "corrupt-ck.lw"
    path.write_bytes(data)
    with pytest.raises(lw.ModelFileError):
        _ck_fit(_ck_model(), resume=path)


def test_a_loaded_model_whose_layers_do_not_fit_together_is_refused(files, tmp_path):
    """Dropping the first Dense layer leaves Standardize(4) feeding Dense(6, 5): the file must be
    refused when loaded, not fail inside predict with a NumPy broadcasting ValueError."""
    members = _members(files["a"])
    doc = json.loads(members["model.json"])
    del doc["layers"][1]
    members["model.json"] = json.dumps(doc).encode()
    path = tmp_path / "gap.lw"
    path.write_bytes(_zip(members))
    with pytest.raises(lw.ModelFileError):
        model = lw.load(path)
        model.predict(np.zeros((2, model.n_in), np.float32))


CHECKPOINT_EDITS = {
    "epoch is a string": lambda m: m.update(epoch="1"),
    "position is a float": lambda m: m.update(position=1.5),
    "position is negative": lambda m: m.update(position=-3),
    "steps is null": lambda m: m.update(steps=None),
    "loss_sum is a string": lambda m: m.update(loss_sum="x"),
    "lr_factor is null": lambda m: m.update(lr_factor=None),
    "optimizer step count is huge": lambda m: m["optimizer"].update(t=10**400),
    "rng state out of range": lambda m: m["rngs"]["shuffle"]["state"].update(state=2**200),
    "history columns of unequal length": lambda m: m.update(
        history={"epoch": [1, 2], "loss": [0.5]}),
}


@pytest.mark.parametrize("name", list(CHECKPOINT_EDITS))
def test_a_checkpoint_with_bad_fields_is_a_model_file_error(files, tmp_path, name):
    members = _members(files["ck"])
    meta = json.loads(members["checkpoint.json"])
    CHECKPOINT_EDITS[name](meta)
    members["checkpoint.json"] = json.dumps(meta).encode()
    path = tmp_path / "bad-fields.lw"
    path.write_bytes(_zip(members))
    with pytest.raises(lw.ModelFileError, match="cannot resume"):
        _ck_fit(_ck_model(), resume=path, callbacks=[_Guard()])


@pytest.mark.parametrize("order", [np.arange(24) * 1000, np.linspace(0, 23, 24),
                                   np.zeros(24, np.complex128), np.zeros(24, np.int64)],
                         ids=["out of range", "floats", "complex", "not a permutation"])
def test_a_checkpoint_whose_sample_order_is_not_a_permutation_is_refused(files, tmp_path, order):
    """The saved order indexes the data: it must be a permutation of range(N), else the resumed
    run silently trains on the wrong (clipped or repeated) samples."""
    members = _members(files["ck"])
    members["checkpoint/order.npy"] = _npy(order)
    path = tmp_path / "bad-order.lw"
    path.write_bytes(_zip(members))
    with pytest.raises(lw.ModelFileError, match="cannot resume"):
        _ck_fit(_ck_model(), resume=path)
