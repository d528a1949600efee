"""The command line: the digits demo in-process and as a subprocess, and its errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

import layerwise as lw
from layerwise.cli import main


def test_demo_trains_digits_in_process(capsys):
    assert main(["--epochs", "3", "--quiet", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and "total parameters" in out


def test_module_runs_as_a_subprocess():
    r = subprocess.run([sys.executable, "-m", "layerwise", "--epochs", "2", "--quiet"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "test accuracy" in r.stdout


def test_version():
    r = subprocess.run([sys.executable, "-m", "layerwise", "--version"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == f"layerwise {lw.__version__}"


def test_bad_argument_is_a_one_line_error(capsys):
    assert main(["--epochs", "0", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("layerwise: error: epochs must be a positive integer")
    assert "Traceback" not in err
    with pytest.raises(SystemExit) as exc:
        main(["--epochs", "many"])
    assert exc.value.code == 2
