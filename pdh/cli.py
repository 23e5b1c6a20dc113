"""``pdh``: the operator's command line.

    pdh demo [--duration S] [--loss P] [--out DIR] [--config FILE]   whole chain on emulated hardware
    pdh run CONFIG [--host NAME] [--out DIR]                           run a config (one host's processes) as a service
    pdh check-config CONFIG                                            validate a config and exit
    pdh cmd CONFIG PROCESS COMMAND [key=value ...] [--out DIR] [--keys DIR] [--operator NAME]
                                                                       send one command to a service (as an operator)
    pdh keys [--dir DIR]                                               operator and service CURVE keypairs
    pdh deploy ...                                                     arm, fire and watch a deployment
    pdh scenario FILE [--out DIR]                                      run a scripted scenario, report, exit 0 if all held
    pdh status [--out DIR]                                             one screen: processes, link, passes, store, events
    pdh tlm [--process P] [--channel GLOB] [--json]                    live telemetry, lander and ground
    pdh events [--severity S] [--source P] [--since T] [--follow]      events from the archive, or live
    pdh request full|product|region ... [--wait]                       ask the lander for a frame or region
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from framework.config import EVERY_HOST, config_dir, find_config, load_config
from framework.errors import ConfigError
from pdh.cli_command import follow_command, not_running, parse_value
from pdh.supervisor import Interrupted, catch_stop_signals

__all__ = ["main"]

def _default_config() -> Path:
    """The demo config shipped with the distribution (configs/demo.yaml), wherever it is installed."""
    return config_dir() / "demo.yaml"


def _cmd_demo(args: argparse.Namespace) -> int:
    from pdh.demo import run_demo

    if args.loss is not None and not 0.0 <= args.loss <= 0.95:
        print(f"--loss: expected a probability in [0, 0.95], got {args.loss}", file=sys.stderr)
        return 2
    for flag, value in (("--duration", args.duration), ("--drain", args.drain)):
        if not (math.isfinite(value) and value > 0):
            print(f"{flag}: expected a number of seconds above 0, got {value:g}", file=sys.stderr)
            return 2
    return run_demo(find_config(args.config), Path(args.out), args.duration, args.loss, args.drain, force=args.force)


def _cmd_run(args: argparse.Namespace) -> int:
    from framework.logs import configure_logging
    from pdh.supervisor import Supervisor

    path = find_config(args.config)
    config = load_config(path)
    if args.host is not None and not config.processes_on(args.host):  # an unknown host raises ConfigError
        print(f"{path}: host '{args.host}' runs no process", file=sys.stderr)
        return 2
    if args.host is None:
        config.check_here()  # every host's processes start here: their bind addresses must be this machine's
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = configure_logging("supervisor", out / "logs" if not sys.stderr.isatty() else None)

    def on_report(name: str, fields: dict[str, Any]) -> None:
        log.info(name, **fields)
        if name == "process_gave_up":  # on screen, whatever the log goes to
            print(f"{fields['process']}: given up after {fields['restarts']} restarts; last error: "
                  f"{fields['last_error']}", file=sys.stderr, flush=True)

    sup = Supervisor(config, path, out, on_report=on_report, host=args.host)
    busy = sup.busy_ports()
    if busy:
        print(f"{path}: cannot start, {len(busy)} port(s) in use (another run?):", file=sys.stderr)
        for line in busy:
            print(f"  {line}", file=sys.stderr)
        return 2
    log.info("service_starting", host=args.host, processes=list(sup.children))
    restore = catch_stop_signals()  # SIGINT, SIGTERM, SIGHUP: every child is stopped
    signame = ""
    try:
        sup.start()
        while True:
            sup.watch()
            time.sleep(0.2)
    except Interrupted as exc:
        signame = exc.signame
    finally:
        sup.stop()
        restore()
    log.info("service_stopped", signal=signame)
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    path = find_config(args.config)
    config = load_config(path)
    if args.host is not None:
        config.processes_on(args.host)  # an unknown host is named
        config.check_here(args.host)  # this host's bind addresses must be this machine's
    if args.ports:
        busy = config.busy_ports(args.host or EVERY_HOST)
        for line in busy:
            print(f"{path}: {line}", file=sys.stderr)
        if busy:
            return 2
    print(f"{path}: ok, {len(config.processes)} processes on {len(config.hosts)} host(s), "
          f"{len(config.endpoints)} endpoints")
    return 0


def _cmd_cmd(args: argparse.Namespace) -> int:
    """One command over the run's command port, with the operator's CURVE key (``--keys``, default the
    run's key directory; ``--operator``, default ``operator``); every failure says what is wrong."""
    import zmq

    from framework.bus.auth import AUTHORIZED_DIR, operator_client

    config = load_config(find_config(args.config)).for_run(args.out)  # the run's ipc directory, if it has one
    if args.process not in config.processes:
        print(f"{args.config}: no process '{args.process}'; its processes: {', '.join(config.processes)}",
              file=sys.stderr)
        return 2
    if "command" not in config.processes[args.process]["endpoints"]:
        with_port = [n for n, p in config.processes.items() if "command" in p["endpoints"]]
        print(f"{args.config}: {args.process} has no command port (those with one: {', '.join(with_port)})",
              file=sys.stderr)
        return 2
    down = not_running(config, Path(args.out), args.process)
    if down:
        print(down, file=sys.stderr)
        return 1
    cmd_args = {}
    for kv in args.args:
        if "=" not in kv:
            print(f"argument '{kv}': expected key=value", file=sys.stderr)
            return 2
        k, v = kv.split("=", 1)
        cmd_args[k] = parse_value(v)
    keys_dir = Path(args.keys) if args.keys else config.keys_dir(args.out)
    curve = config.security["curve"]
    if curve and not (keys_dir / f"{args.operator}.key_secret").is_file():
        print(f"no key file {keys_dir / (args.operator + '.key_secret')}: give --keys (the run's key directory, "
              f"made at run start; or pdh keys --dir DIR --operator {args.operator})", file=sys.stderr)
        return 2
    ctx = zmq.Context()
    try:
        client = operator_client(ctx, config, args.out, args.process, name=args.operator, keys_dir=keys_dir)
        replies = follow_command(client, args.command, cmd_args, args.timeout, args.wait)
        client.close()
    finally:
        ctx.destroy(linger=0)
    if replies and replies[-1].status == "accepted":
        print(f"no completed/failed within {args.wait:g} s of acceptance (--wait): {args.process} is still "
              f"working on it, or stopped", file=sys.stderr)
        return 1
    if not replies:
        if curve and not (keys_dir / AUTHORIZED_DIR / f"{args.operator}.key").is_file():
            print(f"no reply: refused by the port? the key '{args.operator}' is not authorised "
                  f"({keys_dir / AUTHORIZED_DIR} has no {args.operator}.key)", file=sys.stderr)
        elif curve:
            print(f"no reply within {args.timeout:g} s: is {args.process} running, and is {keys_dir} the key "
                  "directory of its run (the port refuses keys it does not know)?", file=sys.stderr)
        else:
            print(f"no reply within {args.timeout:g} s: is {args.process} running?", file=sys.stderr)
        return 1
    return 0 if replies[-1].status == "completed" else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="pdh", description="lunar-pdh payload data handling")
    sub = ap.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="run the whole chain on emulated hardware and check it bit-exact")
    d.add_argument("--duration", type=float, default=20.0, help="seconds of capture (default 20)")
    d.add_argument("--loss", type=float, default=None, help="relay packet loss probability (overrides config)")
    d.add_argument("--out", default="OUT", help="output directory (default OUT)")
    d.add_argument("--config", default=str(_default_config()),
                   help="config file, or the name of a shipped one (default configs/demo.yaml)")
    d.add_argument("--drain", type=float, default=180.0, help="max seconds to wait for the downlink to drain")
    d.add_argument("--force", action="store_true", help="clear a previous run's output in --out (else refused)")
    d.set_defaults(func=_cmd_demo)
    r = sub.add_parser("run", help="run every process of a config (or of one host) until stopped")
    r.add_argument("config")
    r.add_argument("--host", default=None, help="start only the processes the config places on this host")
    r.add_argument("--out", default="OUT")
    r.set_defaults(func=_cmd_run)
    c = sub.add_parser("check-config", help="validate a config file")
    c.add_argument("config")
    c.add_argument("--host", default=None, help="also check that this host's bind addresses are this machine's")
    c.add_argument("--ports", action="store_true", help="also check that no port it binds is in use now")
    c.set_defaults(func=_cmd_check)
    k = sub.add_parser("cmd", help="send one command to a service and print its replies")
    k.add_argument("config")
    k.add_argument("process")
    k.add_argument("command")
    k.add_argument("args", nargs="*", help="key=value arguments")
    k.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for accepted/rejected (default 5)")
    k.add_argument("--wait", type=float, default=600.0,
                   help="seconds to wait, once accepted, for completed/failed (default 600)")
    k.add_argument("--out", default="OUT", help="the run's output directory (ipc endpoints live there; default OUT)")
    k.add_argument("--keys", default=None, help="key directory (default: the run's, OUT/keys or security.keys_dir)")
    k.add_argument("--operator", default="operator", help="operator key name (default operator)")
    k.set_defaults(func=_cmd_cmd)
    from pdh.cli_deploy import add_deploy_parser, add_keys_parser

    from pdh.cli_scenario import add_scenario_parser

    add_keys_parser(sub)
    add_deploy_parser(sub, default_config=str(_default_config()))
    add_scenario_parser(sub)
    from pdh.cli_interfaces import add_interfaces_parser

    add_interfaces_parser(sub)
    from pdh.cli_uplink import add_queue_parser, add_uplink_parser

    add_uplink_parser(sub, default_config=str(_default_config()))
    add_queue_parser(sub, default_config=str(_default_config()))
    from pdh.cli_dictionary import add_dictionary_parser

    add_dictionary_parser(sub, default_config=str(_default_config()))
    from pdh.cli_archive import add_archive_parsers

    add_archive_parsers(sub)
    from pdh.cli_request import add_request_parser
    from pdh.cli_status import add_status_parser
    from pdh.cli_tlm import add_tlm_parsers

    add_status_parser(sub)
    add_tlm_parsers(sub, default_config=str(_default_config()))
    add_request_parser(sub, default_config=str(_default_config()))
    args = ap.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
