"""Imports the built-in connector modules so that they register their kinds."""

from slamon.connectors import files, freshdesk, jsonapi, redmine, zammad, zendesk

__all__ = ["files", "freshdesk", "jsonapi", "redmine", "zammad", "zendesk"]
