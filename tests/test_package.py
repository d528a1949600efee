"""The package surface: every name in __all__ resolves, and heavy modules load lazily."""

from __future__ import annotations

import subprocess
import sys

import layerwise as lw


def test_every_public_name_resolves():
    for name in lw.__all__:
        assert getattr(lw, name) is not None, name
    assert set(lw.__all__) <= set(dir(lw))


def test_lazy_names_are_the_real_objects():
    from layerwise import callbacks, io
    assert lw.load is io.load
    assert lw.EarlyStopping is callbacks.EarlyStopping
    assert callable(lw.gradcheck) and lw.GradcheckReport.__name__ == "GradcheckReport"
    assert lw.datasets.load_digits()[0].shape == (3823, 64)


def test_unknown_attribute_is_an_attribute_error():
    try:
        lw.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_import_loads_no_optional_or_heavy_module():
    code = ("import sys, layerwise; print(sorted(m for m in ('tqdm', 'matplotlib', 'sklearn', "
            "'scipy', 'torch', 'zipfile', 'layerwise.training', 'layerwise.io', "
            "'layerwise.datasets', 'layerwise.cli', 'dataclasses') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
