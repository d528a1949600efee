"""Checks shared by every reader of untrusted ``.npy`` data and zip members (model files in
``io``, data files in ``datasets``).

NumPy's readers allocate the shape a ``.npy`` header declares before reading a byte of data, and
``zipfile`` trusts the sizes a zip directory declares. These functions compare both with what
the file can really deliver, so a small forged file cannot make a reader allocate gigabytes.
They raise ``ValueError`` with the reason; each caller turns it into its own error type.
"""

from __future__ import annotations

import math
import zipfile
from typing import IO, Any

import numpy as np

#: Deflate cannot expand data more than 1032:1 (its cheapest code spends 2 bits on a 258-byte
#: match: 258 * 8 / 2), so a member claiming more is forged. A real file reaches this ratio only
#: on an all-zero array (an untrained bias); trained weights deflate about 1.1:1.
DEFLATE_MAX_RATIO = 1032
METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}


def read_header(f: IO[bytes], available: int, header_max: int = 10000
                ) -> tuple[tuple[int, ...], bool, np.dtype[Any], int]:
    """Parse the ``.npy`` header at the start of ``f``, whose whole content is ``available``
    bytes; returns (shape, fortran_order, dtype, data bytes the header declares).

    Refuses headers that do not parse, Python-object dtypes, and declared data larger than what
    follows the header. Allocates nothing of the declared size.
    """
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(f, header_max)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(f, header_max)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    # numpy parses the header's text with tokenize and ast.literal_eval, so hostile bytes raise
    # ValueError, SyntaxError, tokenize.TokenError, TypeError, RecursionError...: all mean "not
    # a .npy header", and nothing else runs here.
    except Exception as exc:
        raise ValueError(f"its .npy header could not be read ({type(exc).__name__}: {exc})"
                         ) from None
    if dtype.hasobject:
        raise ValueError(f"it holds dtype {dtype}, Python objects, which are never unpickled")
    need = math.prod(shape) * dtype.itemsize      # Python ints: a forged shape cannot overflow
    follows = max(available - f.tell(), 0)
    if need > follows:
        raise ValueError(f"its header declares shape {shape} of {dtype} ({need:,} bytes) but "
                         f"{follows:,} bytes follow it, so the file is truncated or damaged")
    return shape, fortran, dtype, need


def check_member(info: zipfile.ZipInfo) -> None:
    """Refuse a zip member that is not stored or deflated, is encrypted, or declares more bytes
    than its compressed data can expand to."""
    n = info.filename
    if info.compress_type not in METHODS:
        raise ValueError(f"the member {n!r} uses compression method {info.compress_type}; only "
                         "stored (0) or deflated (8) members are read")
    if info.flag_bits & 0x41:                   # bit 0: encrypted, bit 6: strong encryption
        raise ValueError(f"the member {n!r} is encrypted")
    most = info.compress_size if info.compress_type == zipfile.ZIP_STORED else \
        DEFLATE_MAX_RATIO * info.compress_size + 1024
    if info.file_size > most:
        raise ValueError(f"the member {n!r} claims {info.file_size:,} bytes from "
                         f"{info.compress_size:,} compressed bytes, more than "
                         f"{METHODS[info.compress_type]} can expand to; the sizes are forged")
