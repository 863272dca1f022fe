"""Connectors: each turns one ticket system's API into normalized ComplaintRecord pages.

A connector is configured from its ``[sources.NAME]`` table, is given an HTTP client, and yields
pages of records for "changed since cursor" and for a date-range backfill. It never touches the
database: the sync engine (slamon.sync) stores each page and its cursor in one transaction.
"""
