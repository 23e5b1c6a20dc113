"""drivers/links: what every device driver and emulator shares below its own protocol.

``tcp`` and ``serial`` move bytes; ``envelope`` frames them (sync, header CRC,
sequence, length, message CRC-32C), owns the wire errors and argument checks and
the ACK/NAK payload; ``messages`` holds the messages every device speaks.
"""
