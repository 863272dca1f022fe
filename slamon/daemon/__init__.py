"""The daemon's parts: leader lock, metrics and HTTP endpoint, heartbeat."""
