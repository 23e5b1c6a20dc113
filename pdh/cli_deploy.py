"""``pdh keys`` and ``pdh deploy``: operator keys, and arming, firing and watching a mechanism.

    pdh keys --dir KEYS [--operator NAME] [--force] [--sdls KEY_ID ...]
        the service keypair (kept if present) and an operator keypair, authorized; SDLS keys when asked
    pdh deploy [--config FILE] [--keys KEYS] [--operator NAME] DRIVER ACTION [MECHANISM]
        ACTION: status | arm | fire | go (arm, fire, watch) | disarm | inhibit | enable | abort | watch

``fire`` and ``go`` wait for the verdict and print the mechanism's telemetry
and events as they arrive; the exit status is 0 only for "deployed".
Wiring (the driver's command endpoint and the bus) comes from the config.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import zmq

from framework.config import Config, load_config
from framework.bus.auth import (SERVICE_NAME, authorize, ensure_run_keys, generate_keypair, load_keypair,
                                load_public_key)
from framework.bus.client import Subscriber
from framework.bus.commands import CommandClient, CommandReply, CurveClientKeys

__all__ = ["add_keys_parser", "add_deploy_parser", "cmd_keys", "cmd_deploy"]

ACTIONS = ("status", "arm", "fire", "go", "disarm", "inhibit", "enable", "abort", "watch")


def add_keys_parser(sub: Any) -> argparse.ArgumentParser:
    k = sub.add_parser("keys", help="generate the service keypair and an authorized operator keypair")
    k.add_argument("--dir", default="keys", help="key directory (default ./keys)")
    k.add_argument("--operator", default="operator", help="operator key name (default operator)")
    k.add_argument("--force", action="store_true", help="replace an existing operator keypair (and SDLS keys)")
    k.add_argument("--sdls", nargs="+", default=[], metavar="KEY_ID",
                   help="also write these SDLS keys (KEYS/sdls/KEY_ID.key, 32 random bytes as hex, mode 0600)")
    k.set_defaults(func=cmd_keys)
    return k


def add_deploy_parser(sub: Any, default_config: str = "configs/demo.yaml") -> argparse.ArgumentParser:
    d = sub.add_parser("deploy", help="arm, fire and watch a deployable mechanism")
    d.add_argument("driver", help="the deploy driver's process name in the config")
    d.add_argument("action", choices=ACTIONS)
    d.add_argument("mechanism", nargs="?", help="mechanism name (default: the driver's)")
    d.add_argument("--config", default=default_config)
    d.add_argument("--keys", default=None, help="key directory (default: the run's, OUT/keys or security.keys_dir)")
    d.add_argument("--operator", default="operator")
    d.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for a verdict")
    d.add_argument("--out", default="OUT", help="the run's output directory (ipc endpoints live there; default OUT)")
    d.set_defaults(func=cmd_deploy)
    return d


def cmd_keys(args: argparse.Namespace) -> int:
    keys_dir = Path(args.dir)
    ensure_run_keys(keys_dir, [args.operator])  # the directory 0700, the service key kept if present
    service = load_keypair(keys_dir / f"{SERVICE_NAME}.key_secret")
    operator = generate_keypair(keys_dir, args.operator, overwrite=args.force)
    authorize(keys_dir, keys_dir / f"{args.operator}.key")
    print(f"service  {keys_dir / (SERVICE_NAME + '.key')}  public {service.public_text}")
    print(f"operator {keys_dir / (args.operator + '.key_secret')}  public {operator.public_text} (authorized)")
    if args.sdls:
        try:
            from link.sdls import generate_key
        except ImportError:
            print("--sdls: link.sdls (SDLS keys) is not available in this installation", file=sys.stderr)
            return 2
        for key_id in args.sdls:
            generate_key(keys_dir, key_id, overwrite=args.force)
            print(f"sdls     {keys_dir / 'sdls' / (key_id + '.key')}")
    return 0


def _client(ctx: zmq.Context, config: Config, driver: str, keys_dir: Path, operator: str) -> CommandClient:
    me = load_keypair(keys_dir / f"{operator}.key_secret")
    server = load_public_key(keys_dir / f"{SERVICE_NAME}.key")
    return CommandClient(ctx, config.reach(driver, "command"), CurveClientKeys(me.public, me.secret, server))


def _show(replies: list[CommandReply]) -> int:
    if not replies:
        print("no reply: is the driver running, and is this key authorized?", file=sys.stderr)
        return 1
    for r in replies:
        print(f"{r.status:10s} {r.reason} {'' if r.result is None else r.result}")
    return 0 if replies[-1].status == "completed" else 1


def _print_message(topic: str, fields: dict[str, Any]) -> None:
    if topic.startswith("evt."):
        detail = {k: v for k, v in fields.items() if k not in ("name", "severity", "mechanism", "evidence")}
        print(f"EVENT {fields.get('severity', ''):7s} {fields.get('name', '')} {detail}")
        if "evidence" in fields:
            print(f"      evidence {fields['evidence']}")
    elif fields.get("state") is not None and "angle_deg" in fields:
        angle = f"{fields['angle_deg']:7.2f}" if fields.get("angle_valid") else "   ----"
        print(f"TLM   {fields['state']:10s} angle {angle} deg  current {fields['current_a']:.3f} A  "
              f"switches stowed={int(fields['stowed_switch'])} deployed={int(fields['deployed_switch'])}")


def _watch(sub: Subscriber, client: CommandClient | None, fire_id: int | None, timeout_s: float) -> int:
    """Print telemetry and events until FIRE's final reply (or the timeout, or Ctrl-C).

    Watching alone (no FIRE of ours) ends at the first deployment verdict, whoever fired: exit 0 if
    deployed, 1 if not; a timeout with nothing to judge is not an error there."""
    end = time.monotonic() + timeout_s
    try:
        while time.monotonic() < end:
            m = sub.recv(timeout_ms=100)
            if m is not None:
                _print_message(m.topic, m.header.fields)
            if client is None or fire_id is None:
                if m is not None and m.header.kind == "evt" and m.header.fields.get("name") == "deployment_verdict":
                    return 0 if m.header.fields.get("outcome") == "deployed" else 1
                continue
            r = client.recv(0)
            if r is not None and r.id == fire_id and r.status in ("rejected", "completed", "failed"):
                time.sleep(0.3)
                for _ in range(50):
                    m = sub.recv(timeout_ms=20)
                    if m is None:
                        break
                    _print_message(m.topic, m.header.fields)
                print(f"FIRE {r.status}: {r.reason or (r.result or {}).get('text', '')}")
                return 0 if r.status == "completed" else 1
    except KeyboardInterrupt:
        return 130
    print("no verdict before the timeout", file=sys.stderr)
    return 0 if fire_id is None else 1


def cmd_deploy(args: argparse.Namespace) -> int:
    config = load_config(args.config).for_run(args.out)
    if args.driver not in config.processes or config.processes[args.driver]["kind"] != "drivers.deploy":
        print(f"{args.config}: no deploy driver named '{args.driver}'", file=sys.stderr)
        return 2
    settings = config.processes[args.driver]
    mech = args.mechanism or settings["mechanism"]
    keys_dir = Path(args.keys) if args.keys else config.keys_dir(args.out)
    ctx = zmq.Context()
    try:
        client = _client(ctx, config, args.driver, keys_dir, args.operator)
        if args.action == "status":
            return _show(client.call("STATUS", {}, 5.0))
        sub = Subscriber(ctx, _bus_of(config, args.driver), [f"evt.{args.driver}", f"tlm.{args.driver}"])
        if args.action == "watch":
            return _watch(sub, None, None, args.timeout)
        if args.action in ("arm", "go"):
            rc = _show(client.call("ARM", {"mechanism": mech}, 5.0))
            if rc or args.action == "arm":
                return rc
        if args.action in ("fire", "go"):
            time.sleep(0.2)  # let the subscription join before the first sample
            cid = client.send("FIRE", {"mechanism": mech})
            return _watch(sub, client, cid, args.timeout)
        return _show(client.call(args.action.upper(), {"mechanism": mech}, 5.0))
    finally:
        ctx.destroy(linger=0)


def _bus_of(config: Config, process: str) -> str:
    """The XPUB address of the broker ``process`` publishes to (a config may run several buses)."""
    publishes_to = config.processes[process]["endpoints"].get("bus_pub")
    for name in config.processes_of_kind("bus.broker"):
        if config.processes[name]["endpoints"]["xsub"] == publishes_to:
            return config.reach(name, "xpub")
    raise SystemExit(f"{config.file}: no bus.broker process takes {process}'s bus_pub to watch through")
