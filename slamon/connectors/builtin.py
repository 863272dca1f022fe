"""Imports the built-in connector modules so that they register their kinds."""

from slamon.connectors import files, freshdesk, redmine, zendesk

__all__ = ["files", "freshdesk", "redmine", "zendesk"]
