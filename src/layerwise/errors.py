"""Every error layerwise raises on bad input derives from :class:`LayerwiseError`.

Messages follow one pattern: what was expected, what was received, and how to fix it.
"""

from __future__ import annotations


class LayerwiseError(Exception):
    """Base class of every error the library raises on bad input or a failed run."""


class ValidationError(LayerwiseError, ValueError):
    """An argument or an array has the wrong value, shape or content."""


class ConfigError(LayerwiseError, TypeError):
    """An argument has the wrong type, or names something that does not exist."""


class DataError(LayerwiseError, ValueError):
    """A data source is missing, unreadable, or has the wrong layout or content."""


class ModelFileError(LayerwiseError, ValueError):
    """A model file is missing, damaged, from a newer version, or not a layerwise file."""


class BusyError(LayerwiseError, RuntimeError):
    """A model (or estimator) is already being trained by another ``fit``; nothing was changed.

    Training writes into buffers and parameters the model owns, so two fits at once would
    corrupt both; the second is refused at once instead of waiting.
    """


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped ``fit`` at the end of a step: the model holds the last completed step,
    and a checkpoint was written if ``fit`` was given one (the message says how to resume).

    A ``KeyboardInterrupt``, so code that handles Ctrl-C keeps working.
    """


class DivergenceError(LayerwiseError, ArithmeticError):
    """Training produced a NaN or infinite loss or gradient, or an update would have made a
    parameter or the optimizer's state NaN or infinite; the model and the optimizer keep the
    parameters and state of the last completed step."""
