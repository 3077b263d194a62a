"""Exceptions with messages that name the offending file, line or parameter."""


class LtlibError(Exception):
    """Base class of every error ltlib raises on purpose."""


class ConfigError(LtlibError, ValueError):
    """A configuration file or parameter is invalid; the message names the file/key."""


class ManifestError(LtlibError, ValueError):
    """A split manifest is malformed; the message names the file and the 1-based line."""


class WeightsNotFoundError(LtlibError, FileNotFoundError):
    """Pre-trained weights are unavailable (offline hub, missing file); the message says what to pass."""


class ConvergenceError(LtlibError, ArithmeticError):
    """An iterative solver diverged or found no solution; the message says which and what to try."""


class CheckpointError(LtlibError, RuntimeError):
    """A checkpoint cannot be used (corrupt, truncated, unsafe or old); the message names the file."""


class NonFiniteError(LtlibError, ArithmeticError):
    """A loss, logits or weights held NaN or infinity; the message names the run, split or step."""
