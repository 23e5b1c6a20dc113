"""Emulators run in-process for their unit tests: a validated config, a recording log, a bus the test binds."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import zmq

from framework.bus.message import Message, decode_message
from framework.config import load_config
from framework.process import ProcessContext


class RecordingLog:
    """Stands in for the process logger: keeps (level, event, fields)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict[str, Any]]] = []

    def _record(self, level: str) -> Callable[..., None]:
        return lambda event, **fields: self.records.append((level, event, fields))

    def __getattr__(self, level: str) -> Callable[..., None]:
        if level in ("debug", "info", "warning", "error", "exception"):
            return self._record(level)
        raise AttributeError(level)

    def events(self, name: str) -> list[dict[str, Any]]:
        return [fields for _, event, fields in self.records if event == name]


class BusTap:
    """A SUB socket bound where the emulator's ``bus_pub`` connects (no broker needed)."""

    def __init__(self, zctx: zmq.Context, endpoint: str) -> None:
        self.sock = zctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.bind(endpoint)
        self.seen: list[Message] = []

    def wait(self, pump: Callable[[], None], pred: Callable[[Message], bool], timeout_s: float = 10.0) -> Message:
        """Call ``pump`` (the emulator's loop step) until a message matching ``pred`` arrives."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            pump()
            while self.sock.poll(10):
                msg = decode_message(self.sock.recv_multipart())
                self.seen.append(msg)
                if pred(msg):
                    return msg
        raise AssertionError(f"no matching bus message; seen {[(m.topic, m.header.fields) for m in self.seen]}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def emulator_ctx(tmp_path: Path, write_config: Any) -> Iterator[Callable[..., ProcessContext]]:
    """``make(name, process, endpoints)``: the ProcessContext of one emulator process of a fresh config."""
    made: list[ProcessContext] = []

    def make(name: str, process: dict[str, Any], endpoints: dict[str, str]) -> ProcessContext:
        # plain command ports: these tests are about the emulators, not about keys (test_command_ports_auth is)
        path = write_config({"version": 1, "endpoints": endpoints, "security": {"curve": False},
                             "processes": {name: process}})
        ctx = ProcessContext(name=name, config=load_config(path), out_dir=tmp_path / "out", log=RecordingLog())
        made.append(ctx)
        return ctx

    try:
        yield make
    finally:
        for ctx in made:
            if ctx._zmq is not None:
                ctx._zmq.destroy(linger=0)


@pytest.fixture
def zctx() -> Iterator[zmq.Context]:
    ctx = zmq.Context()
    try:
        yield ctx
    finally:
        ctx.destroy(linger=0)
