"""The release number, in one place: the package, its build metadata and every stage key read it."""

__version__ = "0.1.0"
