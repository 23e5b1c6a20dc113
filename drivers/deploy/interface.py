"""The deploy driver's interface, declared as data: commands, events, telemetry.

The driver checks commands against :data:`COMMANDS` (``hazardous`` ones go
through the ARM/FIRE guard and need an authenticated client), raises only
the events in :data:`EVENTS` and publishes the channels in :data:`TELEMETRY`.
The CLI (``pdh deploy``), the docs and the tests read these tables.
The format is :mod:`framework.interface`, shared by every component.
"""

from __future__ import annotations

from framework.interface import Arg, ChannelSpec, CommandSpec, EventSpec, Interface
from framework.kinds import Field, KindSpec
from drivers.deploy.profile import load_profile

__all__ = ["KIND", "INTERFACE", "COMMANDS", "EVENTS", "TELEMETRY"]

_MECH = (Arg("mechanism", str),)

INTERFACE = Interface.build(
    "deploy",
    commands=(
        CommandSpec(0x02, "STATUS", doc="Guard state, last sample and last verdict."),
        CommandSpec(0x20, "ARM", _MECH, True, "Arm a mechanism for one FIRE by the same client within the window."),
        CommandSpec(0x21, "FIRE", _MECH, True,
                    "Fire an armed mechanism; accepted at once, completed with the verdict (failed unless deployed)."),
        CommandSpec(0x22, "DISARM", _MECH, True, "Drop an arm."),
        CommandSpec(0x23, "INHIBIT", _MECH, True, "Refuse ARM and FIRE of a mechanism until ENABLE."),
        CommandSpec(0x24, "ENABLE", _MECH, True, "Lift an inhibit."),
        CommandSpec(0x25, "ABORT", _MECH, True, "Cut power to a deployment in progress and judge it."),
    ),
    events=(
        EventSpec(1, "link_up", "info", "Connected to the mechanism controller."),
        EventSpec(2, "link_down", "warning", "Lost the mechanism link; reconnecting."),
        EventSpec(3, "protocol_error", "warning", "Bad bytes or a malformed message from the device."),
        EventSpec(4, "reply_timeout", "warning", "The device did not answer in time."),
        EventSpec(5, "device_nak", "error", "The device refused a command during a deployment."),
        EventSpec(12, "auth_refused", "warning",
                  "Client keys not on the allow-list were refused at the handshake: one event per period for all "
                  "keys (rate-limited, with count; client_key is the period's first)."),
        EventSpec(13, "armed", "info", "A mechanism was armed."),
        EventSpec(14, "disarmed", "info", "An arm was dropped."),
        EventSpec(15, "inhibited", "warning", "A mechanism was inhibited."),
        EventSpec(16, "enabled", "info", "An inhibit was lifted."),
        EventSpec(20, "deployment_started", "info", "FIRE accepted; the first circuit is fired."),
        EventSpec(21, "state_changed", "info", "The mechanism changed state (error when it failed)."),
        EventSpec(22, "over_current", "warning", "A circuit drew more than its limit and was cut."),
        EventSpec(23, "circuit_no_current", "warning", "A fired circuit drew no current: open circuit."),
        EventSpec(24, "release_timeout", "warning", "The release did not happen in time on this circuit."),
        EventSpec(25, "circuit_switch", "warning", "Retrying on the redundant circuit."),
        EventSpec(26, "deployment_stalled", "warning", "No motion while deploying."),
        EventSpec(27, "deployment_timeout", "warning", "Deployment not finished in time."),
        EventSpec(28, "soft_limit_stop", "warning", "Motor stopped past the deployed angle by the driver."),
        EventSpec(29, "angle_sensor_invalid", "warning", "The angle sensor reports no valid angle."),
        EventSpec(30, "angle_sensor_restored", "info", "The angle sensor is valid again."),
        EventSpec(31, "limit_switch_disagrees", "warning", "A limit switch contradicts the angle sensor."),
        EventSpec(32, "deployment_slow", "warning", "Deployed, but slower than 1.5x nominal."),
        EventSpec(33, "deployment_verdict", "info",
                  "deployed (info), partial (warning) or failed (error), with evidence."),
        EventSpec(34, "confirmation_capture_requested", "info", "A camera was asked for a confirmation frame."),
        EventSpec(35, "confirmation_capture_failed", "warning", "The camera did not accept the confirmation capture."),
    ),
    telemetry=(
        ChannelSpec(1, "state", "", str, doc="stowed | armed | releasing | deploying | deployed | failed"),
        ChannelSpec(2, "angle_deg", "deg", float, 0.0, 360.0),
        ChannelSpec(3, "angle_valid", "", bool),
        ChannelSpec(4, "current_a", "A", float, 0.0),
        ChannelSpec(5, "temp_c", "degC", float, -150.0, 125.0),
        ChannelSpec(6, "element_temp_c", "degC", float),
        ChannelSpec(7, "stowed_switch", "", bool),
        ChannelSpec(8, "deployed_switch", "", bool),
        ChannelSpec(9, "circuit", "", str, doc="powered circuit, empty when none"),
        ChannelSpec(10, "device_t_s", "s", float, doc="the device's own clock"),
        ChannelSpec(11, "armed", "", bool),
        ChannelSpec(12, "inhibited", "", bool),
        ChannelSpec(13, "deploying", "", bool, doc="a deployment is being supervised"),
        # Health (tlm.<driver>, kind health, 1 Hz); "state" above is shared with it.
        ChannelSpec(14, "link_up", "", bool),
        ChannelSpec(17, "wire_errors", "count", int, high=0, doc="bad bytes or malformed messages from the device"),
        ChannelSpec(18, "reply_timeouts", "count", int, high=0),
        ChannelSpec(19, "reconnects", "count", int),
        ChannelSpec(20, "samples", "count", int, doc="device samples received"),
        ChannelSpec(21, "events", "count", int, doc="events published"),
        ChannelSpec(22, "verdicts", "count", int, doc="deployment verdicts given"),
        ChannelSpec(23, "auth_refused", "count", int, doc="client keys refused at the CURVE handshake"),
    ),
)

COMMANDS = INTERFACE.commands
EVENTS = INTERFACE.events
TELEMETRY = INTERFACE.telemetry

KIND = KindSpec(
    interface=INTERFACE,
    name="drivers.deploy",
    entry="drivers.deploy.process:run",
    endpoints={"link": "tcp", "bus_pub": "tcp|ipc", "command": "tcp"},
    binds=("command",),
    keys={
        "mechanism": Field(str, doc="the name operators ARM and FIRE"),
        "profile": Field(str),
        "profile_overrides": Field(dict, {}),
        "arm_window_s": Field(float, 10.0, min=0.1, max=600.0),
        "moving_rate_hz": Field(float, 10.0, min=10.0, max=200.0),
        "idle_rate_hz": Field(float, 1.0, min=0.1, max=10.0),
        "reply_timeout_s": Field(float, 1.0, min=0.05),
        "reconnect_max_s": Field(float, 2.0, min=0.1),
        "auth": Field(str, "curve", choices=("curve", "none"),
                      doc="none refuses every hazardous command (the port itself follows security.curve)"),
        "keys_dir": Field(str, "", path="dir", relative_to="cwd",
                          doc="old place of the run's key directory (relative to the working directory); "
                              "left out: security.keys_dir"),
        "confirm_camera": Field(str, "", doc="camera process for the confirmation frame (default: profile view)"),
        "state_file": Field(str, "", path="file", relative_to="cwd",
                            doc="fired and inhibited mechanisms survive restarts here"),
        "inhibited": Field(bool, False, doc="start with the mechanism inhibited"),
    },
    doc="Deploy driver: supervised deployments, verdicts, ARM/FIRE over CURVE.",
    check=lambda file, s: load_profile(s["profile"], file, s["profile_overrides"]),  # the profile it runs
)
