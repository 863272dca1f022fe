"""Alerts: rules and the episode state machine (pure), and the engine that persists transitions
and queues notifications in the same transaction."""
