"""The topology: every process kind lunar-pdh can run, and every interface table, listed in one place.

Each component declares its kind and its table beside each other (``KIND`` and
``INTERFACE`` in its ``interface.py``); this module, in the tools layer above
every component, is the one place that lists them: the kinds go to the
framework's registry (:func:`framework.kinds.register`), the tables to whoever
shows them (``pdh interfaces``, the generated ``docs/interfaces.md``). HIL kinds
and tables are listed here too, from ``hil/``: nothing below the tools imports ``hil``.
"""

from __future__ import annotations

from drivers.camera.interface import INTERFACE as CAMERA_DRIVER_TABLE
from drivers.camera.interface import KIND as CAMERA_DRIVER
from drivers.deploy.interface import INTERFACE as DEPLOY_DRIVER_TABLE
from drivers.deploy.interface import KIND as DEPLOY_DRIVER
from framework.interface import Interface
from framework.kinds import KINDS, KindSpec, register
from fsw.broker.interface import INTERFACE as BROKER_TABLE
from fsw.broker.interface import KIND as BROKER
from fsw.downlink.interface import INTERFACE as DOWNLINK_TABLE
from fsw.downlink.interface import KIND as DOWNLINK
from fsw.imaging.interface import INTERFACE as IMAGING_TABLE
from fsw.imaging.interface import KIND as IMAGING
from fsw.ingest.interface import INTERFACE as INGEST_TABLE
from fsw.ingest.interface import KIND as INGEST
from fsw.sequencer.interface import INTERFACE as SEQUENCER_TABLE
from fsw.sequencer.interface import KIND as SEQUENCER
from ground.interface import INTERFACE as GROUND_STATION_TABLE
from ground.interface import KIND as GROUND_STATION
from hil.camera.interface import INTERFACE as CAMERA_EMULATOR_TABLE
from hil.camera.interface import KIND as CAMERA_EMULATOR
from hil.deploy.interface import INTERFACE as DEPLOY_EMULATOR_TABLE
from hil.deploy.interface import KIND as DEPLOY_EMULATOR
from hil.relay.interface import INTERFACE as RELAY_EMULATOR_TABLE
from hil.relay.interface import KIND as RELAY_EMULATOR

__all__ = ["ALL_KINDS", "INTERFACES", "KINDS"]

ALL_KINDS: tuple[KindSpec, ...] = (
    BROKER, CAMERA_EMULATOR, CAMERA_DRIVER, IMAGING, DOWNLINK, RELAY_EMULATOR, GROUND_STATION,
    DEPLOY_EMULATOR, DEPLOY_DRIVER, INGEST, SEQUENCER,
)

INTERFACES: tuple[Interface, ...] = (
    CAMERA_DRIVER_TABLE, IMAGING_TABLE, DOWNLINK_TABLE, GROUND_STATION_TABLE, DEPLOY_DRIVER_TABLE, BROKER_TABLE,
    RELAY_EMULATOR_TABLE, CAMERA_EMULATOR_TABLE, DEPLOY_EMULATOR_TABLE, INGEST_TABLE, SEQUENCER_TABLE,
)
"""Every component's interface table (commands, events, telemetry), in id-base order."""

register(*ALL_KINDS)

# The operator's web console (issue 14), appended: a ground process, its table in id-base order.
from ground.console.interface import INTERFACE as CONSOLE_TABLE  # noqa: E402
from ground.console.interface import KIND as CONSOLE  # noqa: E402

ALL_KINDS = (*ALL_KINDS, CONSOLE)
INTERFACES = (*INTERFACES, CONSOLE_TABLE)
register(CONSOLE)
