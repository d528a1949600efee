"""Model files: one zip holding ``model.json`` (architecture and settings) and ``.npy`` arrays.

Nothing in a model file is executed: the JSON is parsed, layer kinds are looked up in a fixed
registry, and arrays are read with ``allow_pickle=False``. Each array's SHA-256 is recorded at
save time and checked at load time. Files are written to a temporary file in the same folder,
flushed to disk and renamed over the target, so a crash never leaves a half-written model.
"""

from __future__ import annotations

import hashlib
import io as _io
import json
import math
import os
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import __version__
from . import activations as act
from . import losses as losses_mod
from .errors import LayerwiseError, ModelFileError
from .layers import Dense, Dropout, Layer
from .preprocessing import Standardize

if TYPE_CHECKING:
    from .network import Sequential

FORMAT = "layerwise-model"
FORMAT_VERSION = 1
MAX_MEMBER_BYTES = 4 * 1024**3          # refuse members claiming more than 4 GiB uncompressed
MAX_UNITS = 2**31 - 1                   # layer widths beyond this are not plausible
MAX_JSON_BYTES = 64 * 1024**2           # descriptions are a few KiB; metadata may add some
NPY_HEADER_MAX = 4096                   # a .npy header of a plain 1-D or 2-D array is < 4 KiB

LAYERS: dict[str, type[Layer]] = {
    "dense": Dense,
    "dropout": Dropout,
    "standardize": Standardize,
    **{cls.kind: cls for cls in (act.Identity, act.ReLU, act.LeakyReLU, act.Sigmoid, act.Tanh,
                                 act.ELU, act.Softplus, act.GELU, act.Softmax)},
}


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = _io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def atomic_write(path: str | os.PathLike[str], write: Any) -> None:
    """Call ``write(fileobj)`` on a temporary file next to ``path``, fsync, then rename it.

    The temporary file is ``.<name>.<random>.tmp`` in the same folder. ``os.replace`` swaps the
    directory entry, so a symlink at ``path`` is replaced itself and its target is never
    written. If anything fails (a full disk, an exception in ``write``), the temporary file is
    removed and ``path`` keeps its previous content; an ``OSError`` names ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates the file private (0600); give it the mode a plain open() would, or
        # that of the regular file it replaces (lstat: never the mode of a symlink's target).
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
        if st is not None and stat.S_ISREG(st.st_mode):
            mode = st.st_mode & 0o777
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)                 # make the rename itself durable
    except BaseException as exc:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror, str(path)) from exc   # say which file
        raise


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:                             # not possible on every platform
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def npy_bytes(a: np.ndarray) -> bytes:
    """An array as the bytes of a ``.npy`` file (never pickled)."""
    return _npy_bytes(a)


def read_npy(data: bytes, what: str, path: Any) -> np.ndarray:
    """Parse ``.npy`` bytes, refusing pickled objects with a ModelFileError."""
    try:
        return np.lib.format.read_array(_io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        raise _fail(path, f"{what} is not a plain .npy array ({exc}); pickled objects are "
                          "refused.") from None
    except (OSError, EOFError) as exc:
        raise _fail(path, f"{what} is damaged ({exc}).") from None


def read_members(path: str | os.PathLike[str], names: list[str],
                 limits: dict[str, int] | None = None) -> dict[str, bytes]:
    """Read named members of a model file with the same safety checks as ``load``; ``limits``
    caps the declared size of some members (bytes)."""
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, RuntimeError) as exc:
        raise _fail(path, f"it is not a layerwise file (not a zip archive: {exc}).") from None
    with z:
        return {name: _read_member(z, name, path, (limits or {}).get(name, MAX_MEMBER_BYTES))
                for name in names}


def save(model: Sequential, path: str | os.PathLike[str],
         extra: dict[str, bytes] | None = None) -> None:
    """Save ``model`` to ``path`` (conventionally ``*.lw``), atomically.

    The file holds the format version, the layers with their settings, the dtype, the loss the
    model was trained with (if any), ``model.metadata``, and every array as ``.npy``. ``extra``
    adds members (checkpoints store the training state there); loading a model ignores them.
    """
    layers, members = [], {}
    for i, layer in enumerate(model.layers):
        arrays = {}
        for name, a in layer.arrays().items():
            member = f"arrays/{i}.{name}.npy"
            data = _npy_bytes(a)
            members[member] = data
            arrays[name] = {"file": member, "shape": list(a.shape), "dtype": str(a.dtype),
                            "sha256": hashlib.sha256(data).hexdigest()}
        layers.append({"kind": layer.kind, "config": layer.config(), "arrays": arrays})
    loss = model.loss
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "layerwise_version": __version__,
        "dtype": str(model.dtype),
        "layers": layers,
        "loss": None if loss is None else {"kind": loss.kind, "config": loss.config()},
        "metadata": model.metadata,
    }

    def write(f: Any) -> None:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr("model.json", json.dumps(doc, indent=2))
            for name, data in {**members, **(extra or {})}.items():
                z.writestr(name, data)

    atomic_write(path, write)


def _fail(path: Any, why: str) -> ModelFileError:
    return ModelFileError(f"cannot load model file {str(path)!r}: {why}")


def _read_member(z: zipfile.ZipFile, name: str, path: Any, limit: int = MAX_MEMBER_BYTES
                 ) -> bytes:
    try:
        info = z.getinfo(name)
    except KeyError:
        raise _fail(path, f"the member {name!r} is missing; the file is incomplete.") from None
    if info.file_size > limit:
        raise _fail(path, f"the member {name!r} claims {info.file_size} bytes, more than the "
                          f"{limit} allowed.")
    try:
        return z.read(name)
    # damaged deflate data (zlib.error), unsupported methods or encryption (NotImplementedError,
    # RuntimeError), truncation (EOFError, BadZipFile)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError, zlib.error) as exc:
        raise _fail(path, f"the member {name!r} is damaged ({exc}).") from None


def load(path: str | os.PathLike[str]) -> Sequential:
    """Load a model saved with ``model.save``; raises ``ModelFileError`` on anything amiss."""
    from .network import Sequential

    if not isinstance(path, (str, os.PathLike)):
        raise ModelFileError(f"load expects a file path; received {type(path).__name__}.")
    if not os.path.isfile(path):
        raise _fail(path, "no such file. Check the path (models are saved with model.save).")
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, RuntimeError) as exc:
        raise _fail(path, f"it is not a layerwise model file (not a zip archive: {exc}).") from None
    with z:
        for info in z.infolist():
            n = info.filename
            if n.startswith(("/", "\\")) or ".." in n.replace("\\", "/").split("/"):
                raise _fail(path, f"it contains a member with an unsafe path {n!r}.")
        try:
            if z.getinfo("model.json").file_size > MAX_JSON_BYTES:
                raise _fail(path, f"model.json claims more than {MAX_JSON_BYTES} bytes.")
        except KeyError:
            raise _fail(path, "it has no model.json; it is not a layerwise model file.") from None
        try:
            doc = json.loads(_read_member(z, "model.json", path))
        except (ValueError, RecursionError) as exc:      # bad JSON, bad UTF-8, deep nesting
            raise _fail(path, f"model.json is not valid JSON ({exc}).") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise _fail(path, "model.json does not describe a layerwise model.")
        version = doc.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise _fail(path, "model.json has no integer format_version.")
        if version > FORMAT_VERSION:
            raise _fail(path, f"it uses format version {version}, newer than this layerwise "
                              f"({__version__}) reads ({FORMAT_VERSION}); upgrade layerwise.")
        dtype = doc.get("dtype")
        if dtype not in ("float32", "float64"):
            raise _fail(path, f"dtype must be float32 or float64; found {dtype!r}.")
        specs = doc.get("layers")
        if not isinstance(specs, list):
            raise _fail(path, "model.json has no list of layers.")
        layers: list[Layer] = []
        for i, spec in enumerate(specs):
            layers.append(_build_layer(z, i, spec, dtype, path))
    try:
        model = Sequential(layers)
    except LayerwiseError as exc:
        raise _fail(path, f"its layers do not fit together ({exc}).") from None
    loss = doc.get("loss")
    if loss is not None:
        try:
            model.loss = losses_mod.from_config(loss["kind"], loss.get("config", {}))
        except (KeyError, TypeError, ValueError, AttributeError, LayerwiseError) as exc:
            raise _fail(path, f"unknown or invalid loss {loss!r} ({exc}).") from None
    meta = doc.get("metadata", {})
    model.metadata = meta if isinstance(meta, dict) else {}
    return model


def _expected_shapes(kind: str, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """The array shapes a layer of this kind and config must store (checked before building)."""
    def size(key: str) -> int:
        v = config.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or not 0 < v <= MAX_UNITS:
            raise ValueError(f"{key} must be an integer in 1..{MAX_UNITS}; found {v!r}")
        return v
    if kind == "dense":
        n_in, n_out = size("n_in"), size("n_out")
        return {"W": (n_out, n_in), "b": (n_out,)}
    if kind == "standardize":
        n = size("n")
        return {"offset": (n,), "scale": (n,)}
    return {}


def _build_layer(z: zipfile.ZipFile, i: int, spec: Any, dtype: str, path: Any) -> Layer:
    if not isinstance(spec, dict) or not isinstance(spec.get("kind"), str) or \
            spec["kind"] not in LAYERS:
        kind = spec.get("kind") if isinstance(spec, dict) else spec
        raise _fail(path, f"layer {i} has unknown kind {kind!r}; known: {sorted(LAYERS)}.")
    kind = spec["kind"]
    cls = LAYERS[kind]
    config = spec.get("config", {})
    stored = spec.get("arrays", {})
    if not isinstance(config, dict) or not isinstance(stored, dict):
        raise _fail(path, f"layer {i} ({kind}) has a config or arrays entry that is not a JSON "
                          "object.")
    try:
        shapes = _expected_shapes(kind, config)
    except ValueError as exc:
        raise _fail(path, f"layer {i} ({kind}) has invalid settings: {exc}.") from None
    if set(stored) != set(shapes):
        raise _fail(path, f"layer {i} ({kind}) should store arrays {sorted(shapes)}; found "
                          f"{sorted(stored)}.")
    itemsize = np.dtype(dtype).itemsize
    for name, ref in stored.items():                # sizes are checked before anything is made
        if not isinstance(ref, dict) or not isinstance(ref.get("file"), str):
            raise _fail(path, f"layer {i} array {name!r} has no file reference.")
        try:
            info = z.getinfo(ref["file"])
        except KeyError:
            raise _fail(path, f"the member {ref['file']!r} is missing; the file is incomplete."
                        ) from None
        nbytes = math.prod(shapes[name]) * itemsize
        if not nbytes <= info.file_size <= nbytes + NPY_HEADER_MAX:
            raise _fail(path, f"array {ref['file']!r} should hold {shapes[name]} {dtype} "
                              f"({nbytes} bytes) but its member declares {info.file_size} bytes.")
    try:
        if cls is Dense:
            layer: Layer = Dense(**{**config, "init": "zeros"}, dtype=dtype)
            layer.init = str(config.get("init", "zeros"))  # type: ignore[attr-defined]
        elif cls is Standardize:
            layer = Standardize.from_config(**config, dtype=dtype)
        else:
            layer = cls(**config)
    except (TypeError, ValueError, OverflowError, LayerwiseError) as exc:
        raise _fail(path, f"layer {i} ({kind}) has invalid settings {config}: {exc}") from None
    expected = layer.arrays()
    arrays = {}
    for name, ref in stored.items():
        data = _read_member(z, ref["file"], path)
        if hashlib.sha256(data).hexdigest() != ref.get("sha256"):
            raise _fail(path, f"array {ref['file']!r} does not match its recorded SHA-256; "
                              "the file is corrupted or was modified.")
        a = read_npy(data, f"array {ref['file']!r}", path)
        want = expected[name]
        if a.shape != want.shape or a.dtype != want.dtype:
            raise _fail(path, f"array {ref['file']!r} has shape {a.shape} and dtype {a.dtype}; "
                              f"layer {i} needs {want.shape} {want.dtype}.")
        arrays[name] = a
    layer.set_arrays(arrays)
    return layer
