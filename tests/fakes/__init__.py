"""Fake ticket-system APIs served over real HTTP on 127.0.0.1 for the connector tests."""
