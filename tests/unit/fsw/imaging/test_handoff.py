"""Handoff: products kept until the downlink confirms them, pushed again when it does not, memory bounded."""

from __future__ import annotations

from fsw.imaging.handoff import Handoff, Outgoing


class Socket:
    def __init__(self, room: int = 100) -> None:
        self.room = room
        self.sent: list[bytes] = []

    def send(self, head: bytes, body: bytes) -> bool:
        if self.room <= 0:
            return False
        self.room -= 1
        self.sent.append(body)
        return True


class Clock:
    t = 0.0

    def __call__(self) -> float:
        return self.t


def _out(n: int, kind: str = "full") -> Outgoing:
    return Outgoing(f"cam-{n:08d}-{kind}", kind, "cam", n, b"h", f"{n}{kind}".encode())


def test_without_a_downlink_to_confirm_a_product_is_handed_over_once_in_the_socket() -> None:
    sock, stored = Socket(room=1), []
    h = Handoff(sock.send, Clock(), acked=False, on_stored=stored.append, on_dropped=lambda o: None)
    h.offer(_out(1))
    h.offer(_out(2))
    assert stored == ["cam-00000001-full"] and len(h.pending) == 1
    sock.room = 5
    h.flush()
    assert stored == ["cam-00000001-full", "cam-00000002-full"] and h.unacked == {}


def test_an_unconfirmed_product_is_pushed_again_after_the_timeout_and_confirmation_ends_it() -> None:
    sock, stored, clock = Socket(), [], Clock()
    h = Handoff(sock.send, clock, acked=True, on_stored=stored.append, on_dropped=lambda o: None, timeout_s=5.0)
    h.offer(_out(1, "thumbnail"))
    h.offer(_out(1))
    assert stored == [] and set(h.unacked) == {"cam-00000001-thumbnail", "cam-00000001-full"}
    assert h.ack("cam-00000001-thumbnail") and stored == ["cam-00000001-thumbnail"]
    clock.t = 4.9
    h.tick()
    assert sock.sent == [b"1thumbnail", b"1full"]
    clock.t = 5.0
    h.tick()
    assert sock.sent[-1] == b"1full" and h.sample()["products_resent"] == 1
    assert h.ack("cam-00000001-full") and not h.ack("cam-00000001-full") and not h.ack("unknown")
    assert h.sample()["products_unacked"] == 0


def test_a_product_confirmed_while_waiting_to_go_again_is_not_sent_again() -> None:
    sock, stored, clock = Socket(), [], Clock()
    h = Handoff(sock.send, clock, acked=True, on_stored=stored.append, on_dropped=lambda o: None, timeout_s=1.0)
    h.offer(_out(1))
    sock.room = 0
    clock.t = 2.0
    h.tick()  # back in the queue, the socket full
    assert h.ack("cam-00000001-full") and not h.pending


def test_beyond_the_bound_the_oldest_full_frame_is_given_up_never_a_thumbnail_first() -> None:
    sock, dropped = Socket(room=0), []
    h = Handoff(sock.send, Clock(), acked=True, on_stored=lambda pid: None, on_dropped=dropped.append, max_held=4)
    for n in range(3):
        h.offer(_out(n, "thumbnail"))
        h.offer(_out(n))
    assert [o.id for o in dropped] == ["cam-00000000-full", "cam-00000001-full"]
    assert len(h.held_ids()) == 4 and h.sample()["products_dropped"] == 2
