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

from . import _npy
from . import activations as act
from . import losses as losses_mod
from ._utils import is_finite, positive_int
from ._version import __version__
from .errors import ConfigError, LayerwiseError, ModelFileError, ValidationError
from .layers import LAYERS, Layer
from .layers import MAX_UNITS as MAX_UNITS  # re-exported: io.MAX_UNITS as before
from .preprocessing import Standardize

if TYPE_CHECKING:
    from .network import Sequential

FORMAT = "layerwise-model"
FORMAT_VERSION = 1
MAX_MEMBER_BYTES = 4 * 1024**3          # refuse members claiming more than 4 GiB uncompressed
MAX_JSON_BYTES = 64 * 1024**2           # descriptions are a few KiB; metadata may add some
JSON_METADATA_OBJECTS = 100_000         # JSON objects allowed in model.json beyond the layers'
NPY_HEADER_MAX = 4096                   # a .npy header of a plain 1-D or 2-D array is < 4 KiB
#: default cap on the numbers stored in a model's arrays (``lw.load(max_params=...)``): 2**28
#: is 1 GiB of float32 (2 GiB float64); loading needs about three times that (data, W, dW).
MAX_PARAMS = 2**28
#: default cap on the number of layers (``lw.load(max_layers=...)``); real MLPs have tens.
MAX_LAYERS = 10_000

# Layer kinds are looked up in ``layers.LAYERS``, which every Layer subclass joins when it is
# defined; the package's own layers are defined by the modules imported here.
_PACKAGE_LAYERS = (act.Activation, Standardize)


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


def _npy_view(data: bytes, what: str, path: Any) -> np.ndarray:
    """Parse ``.npy`` bytes into a read-only array viewing ``data``.

    The header must declare exactly as many bytes as follow it, so parsing allocates nothing the
    data does not hold (``np.load`` would allocate the declared shape before reading).
    """
    f = _io.BytesIO(data)
    try:
        shape, fortran, dtype, nbytes = _npy.read_header(f, len(data), NPY_HEADER_MAX)
    except ValueError as exc:
        raise _fail(path, f"{what} is not a plain .npy array: {exc}; pickled objects are "
                          "refused.") from None
    if dtype.kind not in "biufc":
        raise _fail(path, f"{what} holds {dtype} values, not numbers.")
    count, offset = math.prod(shape), f.tell()
    if nbytes != len(data) - offset:
        raise _fail(path, f"{what} is damaged: its header declares {shape} {dtype} "
                          f"({nbytes} bytes) but {len(data) - offset} bytes follow it.")
    if count == 0:
        return np.empty(shape, dtype)
    a = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    return a.reshape(shape, order="F" if fortran else "C")


def read_npy(data: bytes, what: str, path: Any) -> np.ndarray:
    """Parse ``.npy`` bytes into a new C-contiguous array, refusing pickled objects and headers
    that do not match the data with a ModelFileError."""
    return np.array(_npy_view(data, what, path), order="C")


def _open(path: Any, what: str = "layerwise model file") -> zipfile.ZipFile:
    """Open a model file and check the archive itself before any member is read."""
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, RuntimeError) as exc:
        raise _fail(path, f"it is not a {what} (not a zip archive: {exc}).") from None
    try:
        _check_archive(z, path)
    except BaseException:
        z.close()
        raise
    return z


def _check_archive(z: zipfile.ZipFile, path: Any) -> None:
    """Refuse unsafe or duplicate names, compression other than stored/deflate, encryption,
    and sizes the file cannot deliver: each member's compressed data must lie inside the file
    without overlapping another's, and expand at most as far as deflate can (1032:1)."""
    size = os.path.getsize(path)
    seen: set[str] = set()
    end = 0                                     # where the previous member's data ends
    for info in sorted(z.infolist(), key=lambda i: i.header_offset):
        n = info.filename
        if n.startswith(("/", "\\")) or ".." in n.replace("\\", "/").split("/"):
            raise _fail(path, f"it contains a member with an unsafe path {n!r}.")
        if n in seen:
            raise _fail(path, f"it contains the member {n!r} twice; which copy a reader uses is "
                              "arbitrary, so a file with duplicate members is refused.")
        seen.add(n)
        try:
            _npy.check_member(info)             # method, encryption, deflate's 1032:1 ceiling
        except ValueError as exc:
            raise _fail(path, f"{exc}.") from None
        # 30 bytes: the fixed part of the member's local header, which precedes its data
        if info.header_offset < end or info.header_offset + 30 + info.compress_size > size:
            raise _fail(path, f"the member {n!r} claims {info.compress_size} compressed bytes "
                              "that overlap another member or run past the end of the file; "
                              "the file is truncated or forged.")
        end = info.header_offset + 30 + info.compress_size


def read_members(path: str | os.PathLike[str], names: list[str],
                 limits: dict[str, int] | None = None) -> dict[str, bytes]:
    """Read named members of a model file with the same safety checks as ``load``; ``limits``
    caps the declared size of some members (bytes)."""
    with _open(path, "layerwise file") as z:
        return {name: _read_member(z, name, path, (limits or {}).get(name, MAX_MEMBER_BYTES))
                for name in names}


def _json_value(value: Any, where: str) -> Any:
    """``value`` as plain JSON types: NumPy scalars and arrays become Python numbers and lists;
    anything JSON cannot store is refused, naming where it is."""
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if isinstance(value, np.generic):
        return _json_value(value.item(), where)
    if isinstance(value, np.ndarray) and value.dtype.kind in "biufU":
        return _json_value(value.tolist(), where)
    if isinstance(value, (list, tuple)):
        return [_json_value(v, f"{where}[{k}]") for k, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValidationError(
                    f"{where} has the key {k!r} ({type(k).__name__}); model files store metadata "
                    f"as JSON, whose keys are strings. Use str keys, e.g. {str(k)!r}.")
            out[k] = _json_value(v, f"{where}[{k!r}]")
        return out
    raise ValidationError(
        f"{where} is a {type(value).__name__}, which a model file cannot store (metadata is "
        "JSON: str, int, float, bool, None, lists and dicts); convert it or remove it.")


def _metadata_problem(meta: dict[str, Any], model: Sequential) -> str | None:
    """What is wrong with the metadata keys the command line relies on, or None."""
    def scalars(v: Any) -> bool:
        return isinstance(v, list) and all(isinstance(x, (str, int, float)) for x in v)

    def count(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 1

    task, classes, n_classes = meta.get("task"), meta.get("classes"), meta.get("n_classes")
    names, config, seed = meta.get("feature_names"), meta.get("config"), meta.get("seed")
    split = meta.get("test_split")
    if task not in (None, "classification", "regression"):
        return f"'task' must be 'classification', 'regression' or null; found {task!r}"
    if classes is not None and (not scalars(classes) or len(set(classes)) != len(classes)):
        return f"'classes' must be a list of distinct names or numbers; found {classes!r}"
    if n_classes is not None and not count(n_classes):
        return f"'n_classes' must be a positive integer; found {n_classes!r}"
    loss, n_out = model.loss, model.n_out
    if loss is not None and loss.task == "classification" and n_out is not None:
        K = 2 if loss.kind == "bce" and n_out == 1 else n_out   # one logit: two classes
        for key, v in (("classes", classes), ("n_classes", n_classes)):
            k = len(v) if isinstance(v, list) else v
            if k is not None and k != K:
                return (f"{key!r} names {k} classes but the model's {n_out} output(s) with "
                        f"{loss.kind} predict {K}")
    if names is not None and (not scalars(names) or not all(isinstance(x, str) for x in names)
                              or len(names) != model.n_in):
        # Repeated names are allowed here: files from before train refused duplicate CSV
        # columns have them, and the CLI then matches by position only (--by-position).
        return (f"'feature_names' must be a list of {model.n_in} strings (one per input); "
                f"found {names!r:.200}")
    if meta.get("target_name") is not None and not isinstance(meta["target_name"], str):
        return f"'target_name' must be a string or null; found {meta['target_name']!r}"
    if seed is not None and not (count(seed) or seed == 0):
        return f"'seed' must be an integer >= 0 or null; found {seed!r}"
    if split is not None and not (isinstance(split, (int, float)) and not
                                  isinstance(split, bool) and 0 < split < 1):
        return f"'test_split' must be a number in (0, 1) or null; found {split!r}"
    if config is not None and (not isinstance(config, dict) or
                               not isinstance(config.get("data"), (str, type(None)))):
        return f"'config' must be an object whose 'data' is a string; found {config!r:.200}"
    return None


def save(model: Sequential, path: str | os.PathLike[str],
         extra: dict[str, bytes] | None = None) -> None:
    """Save ``model`` to ``path`` (conventionally ``*.lw``), atomically.

    The file holds the format version, the layers with their settings, the dtype, the loss the
    model was trained with (if any), ``model.metadata``, and every array as ``.npy``. ``extra``
    adds members (checkpoints store the training state there); loading a model ignores them.
    Metadata must be JSON (NumPy scalars and arrays are converted), and its keys the command
    line reads (classes, feature_names, ...) must fit the model, as ``load`` checks the same.
    A model with a NaN or infinite parameter is refused (``ValidationError``), nothing written.
    """
    from .network import Sequential
    if not isinstance(model, Sequential):
        raise ConfigError(f"save expects a Sequential model; received {type(model).__name__}.")
    if not isinstance(path, (str, os.PathLike)):
        raise ConfigError(f"save expects a file path (str or pathlib.Path); received "
                          f"{type(path).__name__}. Pass e.g. model.save('model.lw').")
    if not any(layer.trainable for layer in model.layers):
        raise ValidationError("this model has no layer with parameters (no Dense layer), so it "
                              "has nothing to predict with; add lw.Dense(n_in, n_out) before "
                              "saving it.")
    if not isinstance(model.metadata, dict):
        raise ValidationError(f"model.metadata must be a dict; received "
                              f"{type(model.metadata).__name__}.")
    metadata = _json_value(model.metadata, "model.metadata")
    problem = _metadata_problem(metadata, model)
    if problem:
        raise ValidationError(f"cannot save: in model.metadata, {problem}. Fix that key or "
                              "remove it (the command line relies on it).")
    layers, members = [], {}
    for i, layer in enumerate(model.layers):
        arrays = {}
        for name, a in layer.arrays().items():
            if not is_finite(a):
                raise ValidationError(
                    f"cannot save the model to {str(path)!r}: layer {i} ({layer.kind}) array "
                    f"{name} holds NaN or infinite values, so every prediction would be "
                    "meaningless. Training diverged or the parameters were set so; retrain "
                    "(e.g. with a lower learning rate) or reload the last good model."
                )
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
        "metadata": metadata,
    }
    text = json.dumps(doc, indent=2)
    if len(text) > MAX_JSON_BYTES:              # (characters: a lower bound of the bytes)
        raise ValidationError(f"the model description with its metadata takes {len(text)} "
                              f"bytes, more than the {MAX_JSON_BYTES} a model file may hold; "
                              "keep large data out of model.metadata.")

    def write(f: Any) -> None:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr("model.json", text)
            for name, data in {**members, **(extra or {})}.items():
                z.writestr(name, data)

    atomic_write(path, write)


def _fail(path: Any, why: str) -> ModelFileError:
    return ModelFileError(f"cannot load model file {str(path)!r}: {why}")


def _read_member(z: zipfile.ZipFile, name: str, path: Any, limit: int = MAX_MEMBER_BYTES
                 ) -> bytes:
    """A member's bytes, read by streaming decompression that stops after the declared size
    (so a lying header cannot make it inflate more); refused if it delivers another size."""
    try:
        info = z.getinfo(name)
    except KeyError:
        raise _fail(path, f"the member {name!r} is missing; the file is incomplete.") from None
    if info.file_size > limit:
        raise _fail(path, f"the member {name!r} claims {info.file_size} bytes, more than the "
                          f"{limit} allowed.")
    try:
        with z.open(info) as f:
            data = f.read(info.file_size + 1)
    # damaged deflate data (zlib.error), unsupported methods or encryption (NotImplementedError,
    # RuntimeError), truncation (EOFError, BadZipFile)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError, zlib.error) as exc:
        raise _fail(path, f"the member {name!r} is damaged ({exc}).") from None
    if len(data) != info.file_size:
        raise _fail(path, f"the member {name!r} holds {len(data)} bytes but declares "
                          f"{info.file_size}; the file is damaged.")
    return data


def load(path: str | os.PathLike[str], *, max_params: int = MAX_PARAMS,
         max_layers: int = MAX_LAYERS) -> Sequential:
    """Load a model saved with ``model.save``; raises ``ModelFileError`` on anything amiss.

    Parameters
    ----------
    path : str or path-like
    max_params : int, default 2**28
        Refuse files whose arrays hold more numbers than this, before reading them (2**28
        float32 numbers are 1 GiB; loading takes about three times the arrays' size). Raise it
        to load a bigger model you trust.
    max_layers : int, default 10_000
        Refuse files describing more layers than this.

    Nothing is built from a file before it is checked: the archive's structure and sizes, then
    the description, then the total size, then each array (its size, SHA-256, ``.npy`` header,
    shape, dtype, and finite values), and only then the layer made from it. Metadata keys the
    command line uses (classes, feature_names, ...) must fit the model.
    """
    from .network import Sequential

    max_params = positive_int("max_params", max_params)
    max_layers = positive_int("max_layers", max_layers)
    if not isinstance(path, (str, os.PathLike)):
        raise ModelFileError(f"load expects a file path; received {type(path).__name__}.")
    if not os.path.isfile(path):
        raise _fail(path, "no such file. Check the path (models are saved with model.save).")
    with _open(path) as z:
        if "model.json" not in z.NameToInfo:
            raise _fail(path, "it has no model.json; it is not a layerwise model file.")
        if z.getinfo("model.json").file_size > MAX_JSON_BYTES:
            raise _fail(path, f"model.json claims more than {MAX_JSON_BYTES} bytes.")
        doc = _parse_doc(_read_member(z, "model.json", path), max_layers, path)
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
        if len(specs) > max_layers:
            raise _fail(path, f"it describes {len(specs)} layers, more than max_layers="
                              f"{max_layers}; if you trust this file, pass "
                              f"lw.load(path, max_layers={len(specs)}).")
        # every description and declared size is checked before any array is read
        plans = [_plan_layer(z, i, spec, dtype, path) for i, spec in enumerate(specs)]
        total = sum(math.prod(shape) for plan in plans for shape in plan[3].values())
        if total > max_params:
            raise _fail(path, f"its arrays hold {total} numbers, more than max_params="
                              f"{max_params}; if you trust this file, pass "
                              f"lw.load(path, max_params={total}).")
        layers = [_build_layer(z, i, plan, dtype, path) for i, plan in enumerate(plans)]
    if not any(layer.trainable for layer in layers):
        raise _fail(path, "it has no layer with parameters (no Dense layer), so it has nothing "
                          "to predict with.")
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
    meta = doc.get("metadata")
    meta = {} if meta is None else meta
    if not isinstance(meta, dict):
        raise _fail(path, f"its metadata must be a JSON object; found {type(meta).__name__}.")
    problem = _metadata_problem(meta, model)
    if problem:
        raise _fail(path, f"in its metadata, {problem}.")
    model.metadata = meta
    return model


def _parse_doc(data: bytes, max_layers: int, path: Any) -> Any:
    """Parse model.json, refusing duplicate keys and stopping once it holds more JSON objects
    than a model of ``max_layers`` layers has (up to 5 per layer, plus metadata), so a small
    file listing millions of layers costs no more than a valid one."""
    budget = 5 * max_layers + JSON_METADATA_OBJECTS
    count = 0

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal count
        count += 1
        if count > budget:
            raise _fail(path, f"model.json holds more than {budget} JSON objects, more than a "
                              f"model of at most max_layers={max_layers} layers has; if you "
                              "trust this file, pass a larger max_layers to lw.load.")
        d = dict(pairs)
        if len(d) != len(pairs):
            keys = sorted({k for k, _ in pairs if sum(k == j for j, _ in pairs) > 1})
            raise _fail(path, f"model.json repeats the key(s) {keys}; which one a reader uses "
                              "is arbitrary, so the file is refused.")
        return d

    try:
        return json.loads(data, object_pairs_hook=hook)
    except (ValueError, RecursionError) as exc:          # bad JSON, bad UTF-8, deep nesting
        if isinstance(exc, ModelFileError):
            raise
        raise _fail(path, f"model.json is not valid JSON ({exc}).") from None


Plan = tuple[str, type[Layer], dict[str, Any], dict[str, tuple[int, ...]], dict[str, Any]]


def _plan_layer(z: zipfile.ZipFile, i: int, spec: Any, dtype: str, path: Any) -> Plan:
    """Check a layer's description and its arrays' declared sizes; build and read nothing."""
    if not isinstance(spec, dict) or not isinstance(spec.get("kind"), str) or \
            spec["kind"] not in LAYERS:
        kind = spec.get("kind") if isinstance(spec, dict) else spec
        raise _fail(path, f"layer {i} has unknown kind {kind!r:.100}; known: {sorted(LAYERS)}. "
                    "If it is a layer class of your own (a Layer subclass with that kind), "
                    "import or define it before loading.")
    kind = spec["kind"]
    config = spec.get("config", {})
    stored = spec.get("arrays", {})
    if not isinstance(config, dict) or not isinstance(stored, dict):
        raise _fail(path, f"layer {i} ({kind}) has a config or arrays entry that is not a JSON "
                          "object.")
    try:
        shapes = LAYERS[kind].array_shapes(config)     # arithmetic: nothing is allocated
    except ValueError as exc:
        raise _fail(path, f"layer {i} ({kind}) has invalid settings: {exc}.") from None
    if set(stored) != set(shapes):
        raise _fail(path, f"layer {i} ({kind}) should store arrays {sorted(shapes)}; found "
                          f"{sorted(stored)}.")
    itemsize = np.dtype(dtype).itemsize
    for name, ref in stored.items():
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
    return kind, LAYERS[kind], config, shapes, stored


def _build_layer(z: zipfile.ZipFile, i: int, plan: Plan, dtype: str, path: Any) -> Layer:
    """Read and verify the layer's arrays, then build the layer from them."""
    kind, cls, config, shapes, stored = plan
    arrays = {}
    for name, ref in stored.items():
        what = f"array {ref['file']!r}"
        data = _read_member(z, ref["file"], path)
        if hashlib.sha256(data).hexdigest() != ref.get("sha256"):
            raise _fail(path, f"{what} does not match its recorded SHA-256; the file is "
                              "corrupted or was modified.")
        a = _npy_view(data, what, path)
        if a.shape != shapes[name] or a.dtype != np.dtype(dtype):
            raise _fail(path, f"{what} has shape {a.shape} and dtype {a.dtype}; layer {i} needs "
                              f"{shapes[name]} {dtype}.")
        if not is_finite(a):
            raise _fail(path, f"{what} holds NaN or infinite values, so the model's outputs "
                              "would be meaningless; use a model saved before training "
                              "diverged.")
        arrays[name] = a
    try:
        layer = cls.from_config(config, dtype)      # then the verified arrays, in place
        layer.set_arrays(arrays)
    except (TypeError, ValueError, OverflowError, KeyError, LayerwiseError) as exc:
        raise _fail(path, f"layer {i} ({kind}) has invalid settings {config!r:.200}: {exc}"
                    ) from None
    return layer
