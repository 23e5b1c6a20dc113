"""The framework every lunar-pdh process uses: process base, config and kinds, logs, interface
tables, event and health reporters, the bus client library and the typed errors.

It imports nothing of the components, the link layer, the ground, the HIL or the tools above it.
"""

__version__ = "0.1.0"
