"""``pdh uplink`` and ``pdh queue``: commanding the lander through the ground station's queue.

    pdh uplink TARGET CMD [key=value ...] [--spi N] [--wait] [--out OUT] [--config FILE]
        queue one command for a lander process (the ground checks it against the target's table and
        the security association now); --wait prints each stage as it reaches the ground, until
        completed, failed, rejected, not_delivered or cancelled (exit 0 only for completed)
    pdh queue list [--all] | move ID POS | cancel ID   [--out OUT] [--config FILE]
        the ground's command queue: in flight, then waiting in order (--all: also the last finished)

Both speak to the ground station's command port (``command`` endpoint of the config's
``ground.station`` process, ``--ground`` to pick one) with the operator's CURVE key from the run's
key directory, as ``pdh cmd`` does.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from framework.config import Config, find_config, load_config

__all__ = ["add_uplink_parser", "add_queue_parser", "cmd_uplink", "cmd_queue", "FINAL_STAGES", "GroundClient",
           "add_ground_args", "follow_stages"]

FINAL_STAGES = ("completed", "failed", "rejected", "not_delivered", "cancelled")
"""A command's stages after which nothing more comes (``--wait`` stops there)."""
_POLL_S = 0.5


def add_ground_args(p: argparse.ArgumentParser, default_config: str) -> None:
    """The options every command through the ground's command port takes (run, config, ground, keys, operator)."""
    p.add_argument("--out", default="OUT", help="the run's output directory (ipc endpoints live there; default OUT)")
    p.add_argument("--config", default=default_config, help="the run's config (default the demo's)")
    p.add_argument("--ground", default=None, help="the ground station's process name (default: the config's one)")
    p.add_argument("--keys", default=None, help="key directory (default: the run's, OUT/keys or security.keys_dir)")
    p.add_argument("--operator", default="operator", help="operator key name (default operator)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the ground's reply")


def add_uplink_parser(sub: Any, default_config: str) -> argparse.ArgumentParser:
    u = sub.add_parser("uplink", help="queue a command for the lander at the ground station (sent at the next pass)")
    u.add_argument("target", help="the lander process the command is for (its name in the config)")
    u.add_argument("cmd", help="the command, as in the target's interface table (pdh interfaces)")
    u.add_argument("args", nargs="*", help="key=value arguments")
    u.add_argument("--spi", type=int, default=None, help="security association (default: the ground's uplink_spi)")
    u.add_argument("--wait", action="store_true", help="print each stage until the command's fate is known")
    u.add_argument("--wait-s", type=float, default=600.0, help="with --wait: give up after this many seconds")
    add_ground_args(u, default_config)
    u.set_defaults(func=cmd_uplink)
    return u


def add_queue_parser(sub: Any, default_config: str) -> argparse.ArgumentParser:
    q = sub.add_parser("queue", help="list, reorder or cancel the ground's queued commands")
    q.add_argument("action", choices=("list", "move", "cancel"))
    q.add_argument("id", nargs="?", type=int, help="move, cancel: the command's queue id")
    q.add_argument("position", nargs="?", type=int, help="move: its new position among the waiting (0: next)")
    q.add_argument("--all", action="store_true", help="list: also the last finished commands")
    add_ground_args(q, default_config)
    q.set_defaults(func=cmd_queue)
    return q


class GroundClient:
    """The operator's client of the ground's command port, with what went wrong said plainly."""

    def __init__(self, args: argparse.Namespace) -> None:
        import zmq

        from framework.bus.auth import operator_client

        config = load_config(find_config(args.config)).for_run(args.out)
        self.name = _ground_name(config, args.ground)
        self.timeout = args.timeout
        keys_dir = Path(args.keys) if args.keys else config.keys_dir(args.out)
        if config.security["curve"] and not (keys_dir / f"{args.operator}.key_secret").is_file():
            raise SystemExit(f"no key file {keys_dir / (args.operator + '.key_secret')}: give --keys (the run's key "
                             f"directory) or --out (the run's output directory)")
        self.zctx = zmq.Context()
        self.client = operator_client(self.zctx, config, args.out, self.name, name=args.operator, keys_dir=keys_dir)

    def call(self, cmd: str, args: dict[str, Any]) -> Any:
        """The command's result; SystemExit with the reason if it was rejected, failed or not answered."""
        replies = self.client.call(cmd, args, timeout_s=self.timeout)
        if not replies:
            raise SystemExit(f"no reply from {self.name} within {self.timeout:g} s: is it running, with a command "
                             "port, in the run of --out (and is the key directory that run's)?")
        last = replies[-1]
        if last.status != "completed":
            raise SystemExit(f"{cmd} {last.status}: {last.reason}")
        return last.result

    def close(self) -> None:
        self.client.close()
        self.zctx.destroy(linger=0)


def _ground_name(config: Config, wanted: str | None) -> str:
    grounds = [n for n in config.processes_of_kind("ground.station") if "command" in config.processes[n]["endpoints"]]
    if wanted is not None:
        if wanted not in grounds:
            raise SystemExit(f"{config.file}: no ground station '{wanted}' with a command endpoint (have: {grounds})")
        return wanted
    if len(grounds) != 1:
        raise SystemExit(f"{config.file}: {len(grounds)} ground stations with a command endpoint ({grounds}); "
                         "name one with --ground")
    return grounds[0]


def _arguments(pairs: list[str]) -> dict[str, Any]:
    from pdh.cli_command import parse_value  # the one way the CLI reads key=value arguments

    out: dict[str, Any] = {}
    for kv in pairs:
        if "=" not in kv:
            raise SystemExit(f"argument '{kv}': expected key=value")
        k, v = kv.split("=", 1)
        out[k] = parse_value(v)
    return out


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%H:%M:%S.%f")[:-3]


def _stage_line(stage: dict[str, Any]) -> str:
    detail = f"  {stage['detail']}" if stage.get("detail") else ""
    return f"{_when(stage['t'])}  {stage['stage']:<14s}{detail}"


def cmd_uplink(args: argparse.Namespace) -> int:
    cmd_args = _arguments(args.args)
    request: dict[str, Any] = {"target": args.target, "cmd": args.cmd, "args_json": json.dumps(cmd_args)}
    if args.spi is not None:
        request["spi"] = args.spi
    ground = GroundClient(args)
    try:
        cid = ground.call("UPLINK", request)["id"]
        print(f"queued as {cid} at {ground.name}: {args.target} {args.cmd} {json.dumps(cmd_args)}")
        if not args.wait:
            return 0
        return follow_stages(ground, cid, args.wait_s)
    finally:
        ground.close()


def follow_stages(ground: GroundClient, cid: int, wait_s: float) -> int:
    """Print each new stage of command ``cid`` until a final one (0 for completed) or ``wait_s`` passed."""
    shown, state = 0, "queued"
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        (entry,) = ground.call("QUEUE_LIST", {"id": cid})["commands"]
        for stage in entry["stages"][shown:]:
            print(_stage_line(stage), flush=True)
        shown, state = len(entry["stages"]), entry["state"]
        if state in FINAL_STAGES:
            return 0 if state == "completed" else 1
        time.sleep(_POLL_S)
    print(f"command {cid}: no final stage within {wait_s:g} s (still {state}); pdh queue list shows it",
          file=sys.stderr)
    return 1


def cmd_queue(args: argparse.Namespace) -> int:
    if args.action in ("move", "cancel") and args.id is None:
        raise SystemExit(f"queue {args.action}: give the command's id")
    if args.action == "move" and args.position is None:
        raise SystemExit("queue move: give the new position (0: next to go)")
    ground = GroundClient(args)
    try:
        if args.action == "list":
            _print_listing(ground.call("QUEUE_LIST", {"all": args.all})["commands"])
        elif args.action == "move":
            waiting = ground.call("QUEUE_MOVE", {"id": args.id, "position": args.position})["waiting"]
            print(f"waiting, next first: {' '.join(str(i) for i in waiting)}")
        else:
            ground.call("QUEUE_CANCEL", {"id": args.id})
            print(f"cancelled {args.id}")
        return 0
    finally:
        ground.close()


def _print_listing(commands: list[dict[str, Any]]) -> None:
    if not commands:
        print("the queue is empty")
        return
    print(f"{'id':>5}  {'state':<14}{'tries':>5}  {'seq':>6}  target / command / arguments / last stage")
    for c in commands:
        last = c["stages"][-1] if c["stages"] else None
        seq = "" if c["seq"] is None else str(c["seq"])
        print(f"{c['id']:>5}  {c['state']:<14}{c['attempts']:>5}  {seq:>6}  {c['target']} {c['cmd']} "
              f"{json.dumps(c['args'])}  [{_stage_line(last) if last else ''}]")
