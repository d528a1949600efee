"""``python -m layerwise`` runs the command line (see :mod:`layerwise.cli`)."""

from .cli import main

raise SystemExit(main())
