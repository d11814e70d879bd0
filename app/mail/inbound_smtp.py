"""`plenary inbound`: an SMTP server (aiosmtpd) for members' email replies. It is a thin door: each RCPT asks
`inbound.check_recipient`, each DATA asks `inbound.receive`, both in a worker thread (they use the database),
so the event loop keeps serving other connections meanwhile.

One reply address per message: a second RCPT in the same transaction is answered 452, which tells the sending
server to deliver it in a transaction of its own. The server never relays: it accepts nothing but valid reply
addresses. `250` after DATA means the comment is committed (or the message was a duplicate, or an automatic reply
that is dropped on purpose).
"""

from __future__ import annotations

import logging
from typing import Any

from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session
from sqlalchemy.exc import SQLAlchemyError

from app.db import Database, run_db
from app.mail import inbound
from app.mail.reply_address import ReplyToken
from app.mail.sink import start_smtp_server
from app.settings import Settings

log = logging.getLogger("plenary.mail.inbound")

_TOKENS = "plenary_reply_tokens"


class InboundHandler:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    async def handle_RCPT(self, server: SMTPServer, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if envelope.rcpt_tos:
            return "452 4.5.3 One reply address per message; send the others separately"
        try:
            token = await run_db(inbound.check_recipient, self.db, self.settings, address)
        except inbound.Refused as refused:
            log.info("inbound: RCPT refused: %s", refused.outcome.smtp)
            return refused.outcome.smtp_reply
        except SQLAlchemyError:
            log.exception("inbound: the reply address could not be checked")
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        setattr(envelope, _TOKENS, token)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        token: ReplyToken | None = getattr(envelope, _TOKENS, None)
        if token is None:
            return "554 5.5.1 No valid recipients"
        raw = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        outcome = await run_db(inbound.receive, self.db, self.settings, raw, token=token,
                               envelope_from=envelope.mail_from)
        return outcome.smtp_reply


class InboundServer:
    """`start()` listens (port 0: any free port, returned) and serves in a thread of its own; `stop()` ends it."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.port = 0
        self._controller: Any = None

    def start(self, host: str | None = None, port: int | None = None) -> int:
        if self._controller is not None:
            raise RuntimeError("the inbound server is already running")
        host = host if host is not None else self.settings.inbound_host
        port = port if port is not None else self.settings.inbound_port
        self._controller, self.port = start_smtp_server(
            InboundHandler(self.db, self.settings), host, port,
            server_hostname=self.settings.reply_to_domain or "plenary-inbound",
            data_size_limit=self.settings.inbound_max_kb * 1024, enable_SMTPUTF8=True,
        )
        return self.port

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()
            controller._sock.close()

    def __enter__(self) -> InboundServer:
        if self._controller is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
