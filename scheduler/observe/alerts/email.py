"""Email alerts over SMTP (smtplib, in a worker thread so the event loop never waits)."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from scheduler.config.alerts import EmailSettings
from scheduler.observe.alerts.delivery import DeliveryError
from scheduler.observe.alerts.rules import Alert


class EmailChannel:
    def __init__(self, name: str, settings: EmailSettings, password: str | None) -> None:
        self.name = name
        self._settings = settings
        self._password = password

    def message(self, alert: Alert) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = alert.subject()
        message["From"] = self._settings.sender
        message["To"] = ", ".join(self._settings.to)
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain=self._settings.sender.rpartition("@")[2])
        message.set_content(alert.text() + "\n")
        return message

    async def send(self, alert: Alert) -> None:
        await asyncio.to_thread(self._send, self.message(alert))

    def _send(self, message: EmailMessage) -> None:
        s = self._settings
        try:
            # The system CAs, or only those in ca_file when set; the certificate is always verified.
            context = ssl.create_default_context(cafile=s.ca_file)
        except OSError as exc:  # missing, unreadable or not PEM (ssl.SSLError is an OSError)
            raise DeliveryError(f"cannot load ca_file {s.ca_file}: {exc}", permanent=True) from None
        try:
            smtp: smtplib.SMTP = (
                smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=context)
                if s.ssl else smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            )
            with smtp:
                if s.starttls:
                    smtp.starttls(context=context)
                if s.username is not None and self._password is not None:
                    smtp.login(s.username, self._password)
                smtp.send_message(message)
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"SMTP login refused ({exc.smtp_code})", permanent=True) from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(
                f"SMTP refused the recipients {sorted(exc.recipients)}", permanent=True
            ) from None
        except smtplib.SMTPResponseException as exc:
            # 4xx is "try again later"; 5xx will not get better by retrying.
            raise DeliveryError(
                f"SMTP error {exc.smtp_code}: {_text(exc.smtp_error)}",
                permanent=exc.smtp_code >= 500,
            ) from None
        except ssl.SSLCertVerificationError as exc:
            # The server's certificate will not become trusted by retrying (as for HTTP jobs).
            raise DeliveryError(f"TLS certificate verify failed: {exc.verify_message}",
                                permanent=True) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from None

    async def aclose(self) -> None:
        return None


def _text(value: bytes | str) -> str:
    text = value.decode(errors="replace") if isinstance(value, bytes) else value
    return text.strip().splitlines()[0] if text.strip() else ""
