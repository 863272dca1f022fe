"""Email over SMTP: messages built with email.message (never by string concatenation), sent with
smtplib over STARTTLS or implicit TLS, certificates verified unless a config says otherwise."""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from slamon.config import EmailSettings

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[\x00-\x1f\x7f]+")


def one_line(text: str, limit: int = 200) -> str:
    """Header-safe text: control characters (CR, LF, NUL...) become spaces, so a hostile ticket
    subject can never add a header; long text is cut with an ellipsis."""
    flat = " ".join(_UNSAFE.sub(" ", text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def build_message(
    *,
    sender: str,
    sender_name: str,
    to: str,
    subject: str,
    text: str,
    html: str | None,
    message_id: str,
    date: datetime,
    references: Sequence[str] = (),
    images: Mapping[str, bytes] | None = None,
    headers: Mapping[str, str] | None = None,
) -> EmailMessage:
    """multipart/alternative: the plain-text part first, the HTML part last (with inline PNG
    images as multipart/related parts, referenced by Content-ID)."""
    msg = EmailMessage()
    msg["Subject"] = one_line(subject, 250)
    local, _, domain = sender.partition("@")
    msg["From"] = Address(display_name=one_line(sender_name, 80), username=local, domain=domain)
    msg["To"] = to
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id
    if references:
        msg["In-Reply-To"] = references[-1]
        msg["References"] = " ".join(references)
    msg["Auto-Submitted"] = "auto-generated"
    for name, value in (headers or {}).items():
        msg[name] = one_line(value)
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
        if images:
            html_part = list(msg.iter_parts())[-1]
            assert isinstance(html_part, EmailMessage)
            for cid, data in images.items():
                html_part.add_related(data, "image", "png", cid=f"<{cid}>")
    return msg


def message_id(key: str, sender: str) -> str:
    """A Message-ID derived from what the message is (its outbox dedupe key): a re-send after a
    crash carries the same ID, so mail clients fold the duplicate."""
    import hashlib

    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    domain = sender.partition("@")[2] or "slamon.invalid"
    return f"<slamon.{digest}@{domain}>"


class SendError(Exception):
    """Delivery failed; ``permanent`` failures are not retried."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def tls_context(settings: EmailSettings) -> ssl.SSLContext:
    ctx = ssl.create_default_context(
        cafile=str(settings.ca_file) if settings.ca_file is not None else None
    )
    if not settings.verify_tls:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


@contextmanager
def smtp_session(settings: EmailSettings, password: str | None) -> Iterator[smtplib.SMTP]:
    """One connection to the SMTP server, logged in when a username is set."""
    host, port = settings.host, settings.effective_port
    try:
        client: smtplib.SMTP
        if settings.security == "tls":
            client = smtplib.SMTP_SSL(
                host, port, timeout=settings.timeout, context=tls_context(settings)
            )
        else:
            client = smtplib.SMTP(host, port, timeout=settings.timeout)
    except ssl.SSLError as exc:
        raise SendError(f"SMTP {host}:{port}: TLS failed: {exc.reason or exc}") from exc
    except (OSError, smtplib.SMTPException) as exc:
        raise SendError(f"SMTP {host}:{port}: cannot connect: {exc}") from exc
    try:
        try:
            client.ehlo()
            if settings.security == "starttls":
                client.starttls(context=tls_context(settings))
                client.ehlo()
            if settings.username:
                if password is None:
                    raise SendError("email.username is set but no password_env or password_file")
                client.login(settings.username, password)
        except ssl.SSLError as exc:
            raise SendError(f"SMTP {host}:{port}: TLS failed: {exc.reason or exc}") from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise SendError(f"SMTP {host}:{port}: login refused ({exc.smtp_code})") from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise SendError(f"SMTP {host}:{port}: the server does not offer STARTTLS") from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise SendError(f"SMTP {host}:{port}: {exc}") from exc
        yield client
    finally:
        try:
            client.quit()
        except (OSError, smtplib.SMTPException):
            client.close()


def send(client: smtplib.SMTP, msg: EmailMessage) -> None:
    """Send one message; 5xx refusals are permanent, everything else may be retried."""
    try:
        refused = client.send_message(msg)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        raise SendError(
            f"recipient refused ({codes})", permanent=all(c >= 500 for c in codes)
        ) from exc
    except smtplib.SMTPResponseException as exc:
        raise SendError(
            f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", permanent=exc.smtp_code >= 500
        ) from exc
    except (OSError, smtplib.SMTPException) as exc:
        raise SendError(f"SMTP: {exc}") from exc
    if refused:
        raise SendError(f"recipient refused: {sorted(refused)}", permanent=True)
