"""Every error adapter-zoo raises on purpose, in one family. Each is raised where the fact is known and
its message says what to do. Each also subclasses the builtin it refines, so callers who know only
Python's exceptions catch them too: a bad input is a ``ValueError``, a missing thing a ``LookupError``.

    >>> from zoo.errors import AdapterNotFound, BadInput, ZooError
    >>> issubclass(BadInput, ValueError) and issubclass(AdapterNotFound, LookupError)
    True
    >>> all(issubclass(e, ZooError) for e in (BadInput, AdapterNotFound))
    True
"""


class ZooError(Exception):
    """Base class of every error adapter-zoo raises on purpose (the CLI prints these without a trace)."""


class RecipeError(ZooError, ValueError):
    """A recipe file or a --set override is wrong."""


class TrainingDiverged(ZooError, RuntimeError):
    """A run's loss or trained weights stopped being finite (NaN or infinity); nothing was written or published."""


class UnknownTask(RecipeError, LookupError):
    """The recipe names a task the zoo does not know."""


class UnknownMethod(RecipeError, LookupError):
    """The recipe's method is not one the zoo can train."""


class ModelNotFound(ZooError, LookupError):
    """A base model id resolves to no local copy and the Hub cannot be reached."""


class DataNotFound(ZooError, LookupError):
    """A data set or one of its splits is missing from the mirror or the Hub."""


class EmptyDataset(ZooError, ValueError):
    """A split has no examples after loading and sampling."""


class AdapterNotFound(ZooError, LookupError):
    """No published adapter has that name for that base."""


class AdapterBaseMismatch(ZooError, ValueError):
    """An adapter was trained on another base model than the one asked for."""


class UnsafeAdapter(ZooError, ValueError):
    """An adapter folder holds pickled weights or is otherwise unsafe or corrupt to load."""


class UnsupportedFormat(UnsafeAdapter):
    """zoo.json declares a record format this version of adapter-zoo does not read (a newer one)."""


class UnsupportedAdapter(ZooError, NotImplementedError):
    """The adapter is valid but uses a feature the shared-base registry does not serve."""


class BadInput(ZooError, ValueError):
    """Inputs given to predict() do not fit the adapter's task."""


class HubError(ZooError, OSError):
    """The Hub could not be reached or refused a request."""


class QuantizationUnavailable(ZooError, RuntimeError):
    """4-bit quantization (QLoRA) cannot run here: bitsandbytes is missing or has no backend for this device."""


class EntryNotFound(ZooError, LookupError):
    """The demo's catalogue has no such entry."""


class RunFailed(ZooError, RuntimeError):
    """A recipe of a build failed in the process that trained it (the message says how: its error, or the signal
    that killed it)."""


class EntryFailed(ZooError, RuntimeError):
    """An entry could not be loaded or run; the message says why, the rest of the catalogue keeps working."""


class ServerBusy(ZooError, RuntimeError):
    """The server's queue is full: the request was not run; try again after the Retry-After seconds (HTTP 429)."""


class DeadlineExceeded(ZooError, TimeoutError):
    """The request was not answered within the server's deadline (HTTP 504); the others are unaffected."""


class NotAuthorized(ZooError, PermissionError):
    """The server wants a bearer token and the request had none, or a wrong one (HTTP 401)."""


__all__ = ["ZooError", "RecipeError", "UnknownTask", "UnknownMethod", "ModelNotFound", "DataNotFound",
           "EmptyDataset", "AdapterNotFound", "AdapterBaseMismatch", "UnsafeAdapter", "UnsupportedFormat",
           "UnsupportedAdapter", "BadInput", "HubError", "QuantizationUnavailable", "EntryNotFound", "EntryFailed",
           "TrainingDiverged", "ServerBusy", "DeadlineExceeded", "NotAuthorized"]
