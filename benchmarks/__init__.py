"""lunar-pdh benchmarks: one command, every figure a ratio against a baseline from the same run.

``python -m benchmarks [--quick] [--only codecs|bus|chain] [--json PATH]``

- :mod:`benchmarks.codecs`: lossless codecs on 12-bit lunar frames, against memcpy and the raw container.
- :mod:`benchmarks.bus`: frame messages through the broker, against raw pyzmq PUSH/PULL.
- :mod:`benchmarks.chain`: emulator to stored product, against the emulator's frame generation rate.
"""

__all__ = ["codecs", "bus", "chain", "figures", "frames"]
