"""The package version, in a module of its own so that nothing needs to import the package back."""

__version__ = "0.1.0"
