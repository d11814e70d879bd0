"""A local SMTP server that keeps what it receives: for development (`plenary smtp-sink`) and for tests.

It runs aiosmtpd's Controller in a thread of its own. Tests can make it misbehave: `reject_rcpt` answers a
chosen SMTP code to RCPT for an address (550 = user unknown, 451 = try later), `reject_data` answers a code
to DATA for a message to an address (554 = refused after reading it), `fail_next` answers 451 to
the next N DATA commands, `data_delay_s` makes it a tarpit that waits that long before answering DATA, and
`hold(n)` stops at the n-th DATA from now until the test calls `release()` (after keeping the message, to
stand for a server that has taken a message the client never hears about, or before, to stop mid-message).
"""

from __future__ import annotations

import asyncio
import email
import itertools
import socket
import threading
import time
from dataclasses import dataclass
from email import policy as email_policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session

_REPLIES = {
    550: "550 5.1.1 No such user here",
    551: "551 5.1.6 User not local",
    552: "552 5.2.2 Mailbox full",
    553: "553 5.1.3 Mailbox name not allowed",
    554: "554 5.7.1 Rejected",
    450: "450 4.2.1 Mailbox unavailable, try again later",
    451: "451 4.3.0 Temporary failure, try again later",
    452: "452 4.2.2 Mailbox full, try again later",
}


@dataclass(frozen=True)
class SinkMessage:
    envelope_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage

    @property
    def message_id(self) -> str:
        return str(self.message.get("Message-ID", "")).strip()


class _Controller(Controller):
    """Serves on a socket bound before the server starts, so port 0 (any free port) works without a race."""

    def __init__(self, handler: Any, sock: socket.socket, **kwargs: Any) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(handler, hostname=host, port=port, **kwargs)
        self._sock = sock

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)


def start_smtp_server(handler: Any, host: str, port: int, **kwargs: Any) -> tuple[_Controller, int]:
    """Bind host:port (0 = any free port), then serve `handler` there with aiosmtpd in a thread of its own.
    Returns the running controller and the port; on any failure the socket is closed. `kwargs` go to aiosmtpd's
    Controller (server_hostname, data_size_limit, ...). The sink and `plenary inbound` both start this way."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    controller = _Controller(handler, sock, ready_timeout=10.0, **kwargs)
    try:
        controller.start()
    except BaseException:
        sock.close()
        raise
    return controller, sock.getsockname()[1]


class SmtpSink:
    """`start()` it, read `.messages`, wait with `wait_for(n)`, then `stop()` it (a restart is allowed)."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory) if directory else None
        self.messages: list[SinkMessage] = []
        self.reject_rcpt: dict[str, int] = {}
        self.reject_data: dict[str, int] = {}
        self.fail_next = 0
        self.data_delay_s = 0.0
        self._hold_in: int | None = None
        self._hold_stored = True
        self._held = threading.Event()
        self._release = threading.Event()
        self.host = "127.0.0.1"
        self.port = 0
        self._lock = threading.Lock()
        self._controller: _Controller | None = None
        self._seq = itertools.count(1)

    # --- lifecycle ------------------------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on host:port (0 = any free port) and return the port."""
        if self._controller is not None:
            raise RuntimeError("the SMTP sink is already running")
        self._controller, port = start_smtp_server(_Handler(self), host, port, server_hostname="plenary-sink")
        self.host, self.port = host, port
        return self.port

    def stop(self) -> None:
        """Stop listening (idempotent). Received messages are kept; `start(port=sink.port)` resumes."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()
            controller._sock.close()

    @property
    def running(self) -> bool:
        return self._controller is not None

    def __enter__(self) -> SmtpSink:
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- holding one answer ---------------------------------------------------------------------------------

    def hold(self, n: int = 1, *, stored: bool = True) -> None:
        """Hold the answer to the n-th DATA command from now. With `stored`, the message is kept first (the
        server has it; the client has no answer yet); without, the DATA waits before anything is kept. Stopping
        the sink while it holds drops the connection, as a server that goes away does."""
        with self._lock:
            self._hold_in, self._hold_stored = max(1, n), stored
            self._held.clear()
            self._release.clear()

    def wait_held(self, timeout: float = 10.0) -> None:
        """Block until an answer is being held; TimeoutError after `timeout` seconds."""
        if not self._held.wait(timeout):
            raise TimeoutError(f"no DATA was held within {timeout} s")

    def release(self) -> None:
        """Let the held answer go."""
        self._release.set()

    # --- reading --------------------------------------------------------------------------------------------

    def wait_for(self, count: int, timeout: float = 5.0) -> list[SinkMessage]:
        """Wait until at least `count` messages have arrived; raise TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if len(self.messages) >= count:
                    return list(self.messages)
                have = len(self.messages)
            if time.monotonic() >= deadline:
                raise TimeoutError(f"the SMTP sink got {have} message(s), not {count}, within {timeout} s")
            time.sleep(0.01)

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()

    def to(self, address: str) -> list[SinkMessage]:
        """Messages whose envelope includes this recipient."""
        address = address.lower()
        with self._lock:
            return [m for m in self.messages if address in (r.lower() for r in m.rcpt_tos)]

    # --- called from the server thread ----------------------------------------------------------------------

    def _rcpt_reply(self, address: str) -> str | None:
        with self._lock:
            code = self.reject_rcpt.get(address) or self.reject_rcpt.get(address.lower())
        if not code:
            return None
        return _REPLIES.get(code, f"{code} {'5.0.0' if code >= 500 else '4.0.0'} Refused by the test sink")

    def _data_reply(self, rcpt_tos: list[str]) -> str | None:
        with self._lock:
            codes = [self.reject_data.get(a) or self.reject_data.get(a.lower()) for a in rcpt_tos]
        code = next((c for c in codes if c), None)
        if not code:
            return None
        return _REPLIES.get(code, f"{code} {'5.0.0' if code >= 500 else '4.0.0'} Refused by the test sink")

    def _take_hold(self) -> bool | None:
        """None: do not hold this DATA; else hold it, after storing the message (True) or before (False)."""
        with self._lock:
            if self._hold_in is None:
                return None
            self._hold_in -= 1
            if self._hold_in > 0:
                return None
            self._hold_in = None
            return self._hold_stored

    async def _wait_release(self) -> None:
        self._held.set()
        while not self._release.is_set():
            await asyncio.sleep(0.005)

    def _take_failure(self) -> bool:
        with self._lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                return True
            return False

    def _store(self, envelope: Envelope) -> None:
        raw = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        parsed = email.message_from_bytes(raw, policy=email_policy.default)
        assert isinstance(parsed, EmailMessage)
        item = SinkMessage(envelope_from=envelope.mail_from or "", rcpt_tos=list(envelope.rcpt_tos), raw=raw,
                           message=parsed)
        with self._lock:
            n = next(self._seq)
            self.messages.append(item)
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            (self.directory / f"{time.strftime('%Y%m%d-%H%M%S')}-{n:06d}.eml").write_bytes(raw)


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(self, server: SMTPServer, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        reply = self.sink._rcpt_reply(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        if self.sink.data_delay_s > 0:
            await asyncio.sleep(self.sink.data_delay_s)
        if self.sink._take_failure():
            return "451 4.3.0 Temporary failure, try again later"
        reply = self.sink._data_reply(envelope.rcpt_tos)
        if reply is not None:
            return reply
        hold = self.sink._take_hold()
        if hold is False:
            await self.sink._wait_release()
        self.sink._store(envelope)
        if hold:
            await self.sink._wait_release()
        return "250 2.0.0 Message accepted"
