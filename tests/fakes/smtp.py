"""A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives, with hooks that let a
test act at a point of the conversation (e.g. kill the sending process)."""

from __future__ import annotations

import email
import email.policy
import socket
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    sender: str
    recipients: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        msg = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


@dataclass
class Mailbox:
    received: list[Received] = field(default_factory=list)
    #: called at MAIL FROM (the sender has claimed the row, nothing is accepted yet)
    on_mail: Callable[[], None] | None = None
    #: called after a message is stored, before the server answers 250
    on_accept: Callable[[], None] | None = None

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.on_mail is not None:
            self.on_mail()
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content))
        )
        if self.on_accept is not None:
            self.on_accept()
        return "250 Message accepted"


@contextmanager
def smtp_server(tls: ssl.SSLContext | None = None) -> Iterator[tuple[Mailbox, int]]:
    """A running server: (its mailbox, its port). With ``tls``, it offers STARTTLS."""
    box = Mailbox()
    port = free_port()
    kwargs: dict[str, Any] = {}
    if tls is not None:
        kwargs = {"tls_context": tls, "require_starttls": False}
    controller = Controller(box, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()
