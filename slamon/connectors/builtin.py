"""Imports the built-in connector modules so that they register their kinds."""

from slamon.connectors import files, freshdesk, jira, jsonapi, redmine, zammad, zendesk

__all__ = ["files", "freshdesk", "jira", "jsonapi", "redmine", "zammad", "zendesk"]
