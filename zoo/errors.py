"""Typed errors. Each is raised where the fact is known and its message says what to do."""


class ZooError(Exception):
    """Base class of every error adapter-zoo raises on purpose (the CLI prints these without a trace)."""


class RecipeError(ZooError):
    """A recipe file or a --set override is wrong."""


class UnknownTask(RecipeError):
    """The recipe names a task the zoo does not know."""


class UnknownMethod(RecipeError):
    """The recipe's method is not one the zoo can train."""


class ModelNotFound(ZooError):
    """A base model id resolves to no local copy and the Hub cannot be reached."""


class DataNotFound(ZooError):
    """A data set or one of its splits is missing from the mirror or the Hub."""


class EmptyDataset(ZooError):
    """A split has no examples after loading and sampling."""


class AdapterNotFound(ZooError):
    """No published adapter has that name for that base."""


class AdapterBaseMismatch(ZooError):
    """An adapter was trained on another base model than the one asked for."""


class UnsafeAdapter(ZooError):
    """An adapter folder holds pickled weights or is otherwise unsafe or corrupt to load."""


class BadInput(ZooError):
    """Inputs given to predict() do not fit the adapter's task."""
