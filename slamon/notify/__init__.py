"""Delivering messages: the outbox (claim, send, record), email over SMTP and webhooks.

notify/ never imports connectors/; what to send is decided elsewhere (alerts, digests) and written
to the outbox in the transaction that decides it.
"""
