"""Imports the built-in connector modules so that they register their kinds."""

from slamon.connectors import redmine

__all__ = ["redmine"]
