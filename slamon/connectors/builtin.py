"""Imports the built-in connector modules so that they register their kinds."""

from slamon.connectors import files, redmine

__all__ = ["files", "redmine"]
