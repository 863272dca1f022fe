"""slamon: the complaint service-level monitor.

The service level is the share of complaints closed within N days, counted over the complaints
whose deadline has passed (see SERVICE-LEVEL.md). The mean closure time is shown beside it,
never instead of it.
"""

__version__ = "0.1.0.dev0"
