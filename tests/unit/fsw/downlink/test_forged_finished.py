"""A forged Finished PDU reaching the downlink confirms nothing: the product of a failed transaction stays
stored, the Finished is refused, counted in health and reported as a ``pdu_refused`` event."""

from __future__ import annotations

from pathlib import Path

from spacepackets.ccsds.spacepacket import PacketType

from link.packets import APID_DIRECTIVE, SpacePacketWrapper
from tests.unit.fsw.downlink.test_forwarder import make, products_message
from tests.unit.link.fakes import Bus, Radio
from tests.unit.link.test_cfdp_forged import DELIVERED, conf

from spacepackets.cfdp.pdu import FinishedPdu


def forged_finished_datagram(seq: int) -> bytes:
    return SpacePacketWrapper(PacketType.TC).wrap(APID_DIRECTIVE, bytes(FinishedPdu(params=DELIVERED,
                                                                                     pdu_conf=conf(seq)).pack()))


def test_a_forged_finished_for_a_failed_transaction_leaves_its_product_stored(tmp_path: Path) -> None:
    bus = Bus()
    fwd = make(tmp_path, bus, Radio())
    fwd.take_product(products_message(7))
    fwd.step(lambda: False)
    (pid,) = fwd.tx.in_flight()
    seq = next(e.current_seq for e in fwd.tx.engines if e.busy)
    fwd.tx.abort(pid, "the pass ended")  # the transaction failed; the product waits to go again
    fwd.settle()
    assert pid in fwd.store
    for guess in range(seq, seq + 5):  # a forger tries the transaction numbers from it on
        fwd.take_datagram(forged_finished_datagram(guess))
    fwd.settle()
    assert pid in fwd.store and fwd.c["products_confirmed"] == 0
    assert "product_confirmed" not in bus.names() and "pdu_refused" in bus.names()
    assert fwd.sample()["finished_refused"] == 5
    fwd.store.close()
