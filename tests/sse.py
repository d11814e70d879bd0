"""A Server-Sent Events client for tests: opens a stream over a real socket and parses it in a thread.

`next_event()` waits (bounded) for the next named event; pings and the first block (id and retry) are kept in
`blocks` and the raw bytes in `raw`, so a test can also check what never went through the stream.
"""

from __future__ import annotations

import contextlib
import http.client
import queue
import socket
import threading
from dataclasses import dataclass, field


@dataclass
class Block:
    event: str = ""
    data: str = ""
    id: str | None = None
    retry: int | None = None
    comments: list[str] = field(default_factory=list)


class EventStream:
    def __init__(self, port: int, path: str, *, session_token: str | None = None, last_event_id: str = "",
                 host: str = "127.0.0.1", timeout_s: float = 30.0) -> None:
        self.conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
        headers = {"Accept": "text/event-stream", "Host": host}
        if session_token:
            headers["Cookie"] = f"plenary_session={session_token}"
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        self.conn.request("GET", path, headers=headers)
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.headers = dict(self.response.getheaders())
        self.raw = bytearray()
        self.blocks: list[Block] = []
        self.ended = threading.Event()
        self._queue: queue.Queue[Block | None] = queue.Queue()
        if self.status == 200:
            self._thread = threading.Thread(target=self._read, daemon=True)
            self._thread.start()
        else:
            self.body = self.response.read().decode("utf-8", "replace")
            self.ended.set()

    def _read(self) -> None:
        block = Block()
        started = False
        try:
            while True:
                line = self.response.readline()
                if not line:
                    return
                self.raw.extend(line)
                text = line.decode("utf-8").rstrip("\r\n")
                if text == "":
                    if started:
                        self.blocks.append(block)
                        self._queue.put(block)
                    block, started = Block(), False
                    continue
                started = True
                if text.startswith(":"):
                    block.comments.append(text[1:].strip())
                    continue
                name, _, value = text.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "event":
                    block.event = value
                elif name == "data":
                    block.data = value if not block.data else block.data + "\n" + value
                elif name == "id":
                    block.id = value
                elif name == "retry" and value.isdigit():
                    block.retry = int(value)
        except Exception:  # closed under our feet by close(): the stream has ended either way
            return
        finally:
            self.ended.set()
            self._queue.put(None)

    def next_block(self, timeout_s: float = 15.0) -> Block | None:
        """The next block (None: the stream ended). Fails if nothing comes in `timeout_s`."""
        try:
            return self._queue.get(timeout=timeout_s)
        except queue.Empty:
            raise AssertionError(f"nothing arrived on the stream in {timeout_s} s; so far: {self.kinds()}") from None

    def next_event(self, timeout_s: float = 15.0) -> Block | None:
        """The next block that is an event (skipping pings and the opening block); None: the stream ended."""
        while True:
            block = self.next_block(timeout_s)
            if block is None or block.event:
                return block

    def wait_for(self, kind: str, timeout_s: float = 15.0) -> list[str]:
        """Read events up to and including the first `kind`; returns the kinds read (fails if the stream ends)."""
        seen = []
        while True:
            block = self.next_event(timeout_s)
            assert block is not None, f"the stream ended before a {kind!r} event; it sent {seen}"
            seen.append(block.event)
            if block.event == kind:
                return seen

    def kinds(self) -> list[str]:
        return [b.event for b in self.blocks if b.event]

    def close(self) -> None:
        sock = self.conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.conn.close()
        self.ended.wait(timeout=10)

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
