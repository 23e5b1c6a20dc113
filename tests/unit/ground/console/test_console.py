"""The console's I/O-free logic and its routes: limits, the feed, the desk's checks and hazard guard,
products, transactions, events and parameters through the ground's archive, contact windows, and the
HTTP answers (Starlette's TestClient, a fake ground port; no sockets)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from starlette.testclient import TestClient

from drivers.deploy.interface import INTERFACE as DEPLOY
from framework.crc import pixels_crc32c
from framework.errors import CommandRejected, ConfigError
from framework.interface import ChannelSpec
from fsw.downlink.interface import INTERFACE as DOWNLINK
from ground.archive import Archive, ProductRecord
from ground.console.app import Console, GroundUnreachable, build_app
from ground.console.archive_view import ArchiveUnavailable, ArchiveView
from ground.console.bind import check_bind
from ground.console.desk import CommandDesk, HazardRefused, operator_secret
from ground.console.linkview import windows
from ground.console.model import ConsoleModel, Feed, limit_state
from ground.console.shelf import ProductShelf, stretch_8bit
from ground.interface import INTERFACE as GROUND
from link.contacts import load_plan
from link.tmtc import encode_event, encode_housekeeping, decode_tm
from link.dictionary import Dictionary

SECRET = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
KEY_FILE = ('metadata\ncurve\n    public-key = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"\n'
            '    secret-key = "' + SECRET + '"\n')
TABLES = {"downlink": DOWNLINK, "boom_driver": DEPLOY}


def desk(key: str | None = KEY_FILE) -> CommandDesk:
    return CommandDesk(TABLES, "downlink", key)


# -- limits and the feed ---------------------------------------------------------------------------
@pytest.mark.parametrize("value,state", [(0.5, "ok"), (0.95, "high"), (-1.0, "low"), ("x", None), (True, None),
                                         (float("nan"), None)])
def test_a_value_outside_its_channels_limits_is_named_low_or_high(value: Any, state: str | None) -> None:
    assert limit_state(ChannelSpec(1, "fill", "", float, 0.0, 0.9), value) == state


def test_a_channel_without_limits_has_no_limit_state() -> None:
    assert limit_state(ChannelSpec(1, "n", "count", int), 10**9) is None and limit_state(None, 1) is None


def test_a_reader_behind_the_feeds_ring_is_told_it_lost_updates() -> None:
    feed = Feed(kept=3)
    start = feed.head
    for i in range(5):
        feed.put({"i": i})
    items, cursor, lost = feed.since(start)
    assert lost and [u["i"] for u in items] == [2, 3, 4] and cursor == feed.head
    assert feed.since(cursor) == ([], cursor, False)


# -- the model -------------------------------------------------------------------------------------
def model(on_product: Any = lambda pid: None) -> ConsoleModel:
    return ConsoleModel({"ground": GROUND, **TABLES}, {"downlink", "boom_driver"}, Feed(), history_points=3,
                        on_product=on_product)


def test_lander_telemetry_keeps_limits_and_a_bounded_history() -> None:
    m = model()
    for i, fill in enumerate((0.1, 0.5, 0.95, 0.2)):
        m.take("lander.tlm.downlink", "ground", 100.0 + i, {"store_fill": fill, "contact": "relay_a"})
    snap = m.snapshot()
    assert snap["telemetry"]["downlink"]["store_fill"] == {"v": 0.2, "t": 103.0, "limit": "ok"}
    assert m.history("downlink", "store_fill") == [(101.0, 0.5), (102.0, 0.95), (103.0, 0.2)]
    assert m.history("downlink", "contact") == [], "strings are shown, not charted"
    updates, _, _ = m.feed.since(1)
    assert [u["values"]["store_fill"]["limit"] for u in updates] == ["ok", "ok", "high", "ok"]
    assert all(u["origin"] == "lander" for u in updates)


def test_product_received_adds_the_card_the_shelf_reads_and_command_stages_follow_their_command() -> None:
    m = model(on_product=lambda pid: {"id": pid, "kind": "thumbnail", "camera": "navcam", "counter": 3})
    m.take("evt.ground", "ground", 5.0, {"name": "product_received", "severity": "info", "event_id": 0x401,
                                         "id": "navcam-00000003-thumbnail", "ok": True})
    m.take("evt.ground", "ground", 6.0, {"name": "command_stage", "severity": "info", "id": 7, "target": "downlink",
                                         "cmd": "SEND_FULL", "stage": "sent#1"})
    m.take("evt.ground", "ground", 6.0, {"name": "command_stage", "severity": "info", "id": 7, "stage": "sent#1"})
    m.take("evt.ground", "ground", 7.0, {"name": "command_stage", "severity": "info", "id": 7, "stage": "completed"})
    snap = m.snapshot()
    assert [c["id"] for c in snap["products"]] == ["navcam-00000003-thumbnail"]
    (cmd,) = snap["commands"]
    assert [s["stage"] for s in cmd["stages"]] == ["sent#1", "completed"] and cmd["state"] == "completed"
    assert [e["name"] for e in snap["events"]] == ["product_received"] + ["command_stage"] * 3


def test_a_lander_event_is_logged_with_its_severity_and_never_taken_for_a_ground_product() -> None:
    m = model(on_product=lambda pid: pytest.fail("a lander event is not the ground's product"))
    m.take("lander.evt.downlink", "ground", 9.0, {"name": "product_received", "severity": "error", "id": "x"})
    (e,) = m.snapshot()["events"]
    assert (e["origin"], e["process"], e["severity"]) == ("lander", "downlink", "error")


# -- the desk --------------------------------------------------------------------------------------
def test_the_catalog_lists_each_lander_process_commands_with_argument_types_ranges_and_hazard() -> None:
    cat = {p["process"]: {c["name"]: c for c in p["commands"]} for p in desk().catalog()}
    assert cat["boom_driver"]["FIRE"]["hazardous"] and not cat["downlink"]["SEND_FULL"]["hazardous"]
    counter = next(a for a in cat["downlink"]["SEND_FULL"]["args"] if a["name"] == "counter")
    assert (counter["type"], counter["min"], counter["required"]) == ("int", 0, False)


def test_arguments_are_checked_again_on_the_server() -> None:
    d = desk()
    assert d.check("downlink", "SEND_FULL", {"camera": "navcam", "counter": 3}).args == {"camera": "navcam",
                                                                                         "counter": 3}
    with pytest.raises(CommandRejected, match="below"):
        d.check("downlink", "SEND_FULL", {"camera": "navcam", "counter": -1})
    with pytest.raises(CommandRejected, match="unknown command"):
        d.check("downlink", "SELF_DESTRUCT", {})
    with pytest.raises(CommandRejected, match="no lander process"):
        d.check("ground", "UPLINK", {})


@pytest.mark.parametrize("confirm,key,why", [("", KEY_FILE, "type 'boom'"), ("BOOM", KEY_FILE, "type 'boom'"),
                                             ("boom", "", "key"), ("boom", "x" * 40, "key")])
def test_arm_and_fire_need_the_typed_mechanism_name_and_the_operators_key(confirm: str, key: str, why: str) -> None:
    for cmd in ("ARM", "FIRE"):
        with pytest.raises(HazardRefused, match=why):
            desk().check("boom_driver", cmd, {"mechanism": "boom"}, confirm=confirm, key=key)


def test_a_hazardous_command_goes_with_confirmation_and_key_given_as_file_or_secret() -> None:
    for key in (KEY_FILE, SECRET):
        out = desk().check("boom_driver", "FIRE", {"mechanism": "boom"}, confirm="boom", key=key)
        assert out.hazardous and out.args == {"mechanism": "boom"}


def test_without_an_operator_key_configured_every_hazardous_command_is_refused() -> None:
    with pytest.raises(HazardRefused, match="no operator key"):
        desk(None).check("boom_driver", "ARM", {"mechanism": "boom"}, confirm="boom", key=KEY_FILE)
    assert operator_secret("not a key") is None


def test_frame_requests_are_the_downlinks_send_full_product_and_region() -> None:
    d = desk()
    assert d.frame_request("navcam", 4).cmd == "SEND_FULL"
    assert d.frame_request("navcam", product="navcam-00000004-full").cmd == "SEND_PRODUCT"
    region = d.frame_request("navcam", 4, region=[0, 0, 16, 16])
    assert (region.cmd, region.args) == ("SEND_REGION", {"camera": "navcam", "counter": 4, "region": [0, 0, 16, 16]})
    with pytest.raises(CommandRejected):
        CommandDesk(TABLES, None, None).frame_request("navcam", 4)


# -- binding ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "*", "example.org"])
def test_a_bind_beyond_loopback_is_refused_unless_allowed(host: str) -> None:
    with pytest.raises(ConfigError, match="allow_remote"):
        check_bind(host, 8080, False, "processes.console.endpoints.http")
    assert check_bind(host, 8080, True, "x") == (host, 8080)


def test_loopback_binds_are_fine() -> None:
    for host in ("127.0.0.1", "127.0.0.4", "::1", "localhost"):
        assert check_bind(host, 1, False, "x") == (host, 1)


# -- products through the archive -----------------------------------------------------------------
def archive_at(tmp_path: Path) -> str:
    """A fresh SQLite archive's URL, relative to ``tmp_path`` (as a run's out dir holds it)."""
    Archive("sqlite:///archive.sqlite", tmp_path).close()
    return "sqlite:///archive.sqlite"


def write_product(d: Path, pid: str, pixels: np.ndarray, kind: str = "full", counter: int = 1, camera: str = "navcam",
                  t_capture: float = 1000.0, score: float = 0.5) -> None:
    """A product as the station leaves it: its PNG on disk and its row in the archive."""
    (d / "ground").mkdir(parents=True, exist_ok=True)
    png = d / "ground" / f"{pid}.png"
    cv2.imwrite(str(png), pixels)
    depth = 8 if pixels.dtype == np.uint8 else 12
    with Archive("sqlite:///archive.sqlite", d) as archive:
        archive.record_product(ProductRecord(pid, kind, camera, counter, t_capture, t_capture + 1, score, "png",
                                             pixels_crc32c(pixels), pixels.nbytes, pixels.shape[1], pixels.shape[0],
                                             depth, str(png), None, {"score": score, "mean_dn": 1.0}))


def view(tmp_path: Path) -> ArchiveView:
    return ArchiveView("sqlite:///archive.sqlite", tmp_path)


def test_pixels_come_back_as_written_and_hash_to_the_frames_crc(tmp_path: Path) -> None:
    frame = np.random.default_rng(1).integers(0, 4096, (24, 40), dtype=np.uint16)
    write_product(tmp_path, "navcam-00000001-full", frame)
    shelf = ProductShelf(view(tmp_path))
    px = shelf.pixels("navcam-00000001-full", 12)
    assert px is not None and (px.width, px.height, px.bytes_per_pixel, px.bit_depth) == (40, 24, 2, 12)
    import crc32c

    assert crc32c.crc32c(px.data) == pixels_crc32c(frame)
    assert [c["id"] for c in view(tmp_path).cards()] == ["navcam-00000001-full"]


def test_the_gallery_preview_of_a_12_bit_frame_is_stretched_to_8_bits_not_its_dark_high_byte(tmp_path: Path) -> None:
    """A browser draws a 16-bit PNG by its high byte: 12-bit data (at most 4095) would show at most 15 of 255."""
    frame = (np.arange(64 * 512, dtype=np.uint32).reshape(64, 512) % 4096).astype(np.uint16)
    write_product(tmp_path, "navcam-00000001-full", frame)
    png = ProductShelf(view(tmp_path)).preview("navcam-00000001-full")
    assert png is not None
    shown = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    assert shown.dtype == np.uint8 and shown.shape[1] == 256, "shrunk to gallery size"
    assert shown.max() > 200 and shown.min() < 30 and (frame >> 8).max() == 15, "the whole grey range is used"
    thumb = np.full((8, 8), 77, np.uint8)
    assert stretch_8bit(thumb) is thumb, "8-bit data is shown as it is"
    assert set(np.unique(stretch_8bit(np.full((4, 4), 900, np.uint16)))) == {128}


def test_the_shelf_refuses_ids_that_are_paths_and_answers_none_for_what_is_not_there(tmp_path: Path) -> None:
    archive_at(tmp_path)
    shelf = ProductShelf(view(tmp_path))
    for pid in ("../etc/passwd", ".hidden", "a/b", "missing"):
        assert shelf.png(pid) is None and shelf.pixels(pid) is None and shelf.preview(pid) is None


def test_an_archive_not_made_yet_is_unavailable_until_the_station_makes_it(tmp_path: Path) -> None:
    v = view(tmp_path)
    with pytest.raises(ArchiveUnavailable, match="no archive at"):
        v.missing()
    assert not v.status()["ok"]
    archive_at(tmp_path)
    assert v.missing() == {"thumbnails_without_full": [], "open_transfers": [], "tm_gaps": [], "evicted": []}
    assert v.status()["ok"]


# -- link ------------------------------------------------------------------------------------------
PLAN = {"time_scale": 360.0, "relays": [
    {"name": "relay_a", "period_s": 7200, "lander_windows_s": [[0, 3000]], "ground_windows_s": [[0, 7200]],
     "rate_bps": [24e6], "latency_ms": 1290},
    {"name": "relay_b", "period_s": 7200, "lander_windows_s": [[3600, 6600]], "ground_windows_s": [[0, 7200]],
     "rate_bps": [20e6], "latency_ms": 1310}]}


def test_windows_name_the_current_pass_and_the_next_ones_in_order() -> None:
    plan = load_plan(PLAN, "test")
    got = windows(plan, 1.0, 60.0)
    assert got["current"]["relay"] == "relay_a"
    opens = [w["opens"] for w in got["windows"]]
    assert opens == sorted(opens) and {w["relay"] for w in got["windows"]} == {"relay_a", "relay_b"}
    assert all(w["opens"] - 1.0 <= 60.0 for w in got["windows"])
    gap = windows(plan, 9.0, 60.0)
    assert gap["current"] is None and gap["windows"][0]["relay"] == "relay_b"


def test_open_transactions_show_progress_missing_ranges_and_naks_from_the_archive(tmp_path: Path) -> None:
    archive_at(tmp_path)
    with Archive("sqlite:///archive.sqlite", tmp_path) as a:
        a.transfer_opened((1, 9), "00000009-navcam-00000001-full.prod", 1000, 5.0)
        a.transfer_progress((1, 9), [(0, 300), (500, 900)], True, 6.0)
        a.transfer_nak((1, 9), [(300, 500)], 7.0)
        a.transfer_opened((1, 8), "00000008-navcam-00000000-full.prod", 10, 1.0)
        a.transfer_outcome("00000008-navcam-00000000-full.prod", True, "", 2.0)
    x, done = view(tmp_path).transactions()
    assert (x["size"], x["held"], x["missing"], x["open"], x["naks"]) == (1000, 700, [[300, 500], [900, 1000]], True, 1)
    assert x["last_nak_ranges"] == [[300, 500]] and x["id"] == "navcam-00000001-full"
    assert (done["seq"], done["open"], done["state"], done["held"]) == (8, False, "delivered", 10)


# -- routes ----------------------------------------------------------------------------------------
class FakeGround:
    def __init__(self, fail: Exception | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail = fail

    async def call(self, cmd: str, args: dict[str, Any]) -> Any:
        self.calls.append((cmd, args))
        if self.fail is not None:
            raise self.fail
        return {"id": len(self.calls)}


def client(tmp_path: Path, ground: FakeGround) -> tuple[TestClient, Console]:
    reported: list[str] = []
    if not (tmp_path / "archive.sqlite").exists():
        archive_at(tmp_path)
    v = view(tmp_path)
    c = Console(model(on_product=v.card), desk(), v, ground, lambda: {"current": None, "windows": []},
                report=lambda name, fields: reported.append(name))
    c.reported = reported  # type: ignore[attr-defined]
    return TestClient(build_app(c)), c


def test_a_command_from_the_page_is_uplinked_once_checked_and_recorded(tmp_path: Path) -> None:
    ground = FakeGround()
    http, console = client(tmp_path, ground)
    r = http.post("/api/command", json={"target": "downlink", "cmd": "SEND_FULL", "args": {"camera": "navcam",
                                                                                        "counter": 2}})
    assert r.status_code == 200 and r.json()["id"] == 1
    assert ground.calls == [("UPLINK", {"target": "downlink", "cmd": "SEND_FULL",
                                        "args_json": json.dumps({"camera": "navcam", "counter": 2})})]
    state = http.get("/api/state").json()
    assert state["commands"][0]["stages"][0]["stage"] == "queued"
    assert {p["process"] for p in state["catalog"]} == {"downlink", "boom_driver"}
    assert state["channels"]["downlink"]["store_fill"]["high"] == 0.9


def test_bad_arguments_and_unconfirmed_hazards_never_reach_the_ground(tmp_path: Path) -> None:
    ground = FakeGround()
    http, console = client(tmp_path, ground)
    bad = http.post("/api/command", json={"target": "downlink", "cmd": "SEND_FULL", "args": {"counter": "x"}})
    assert bad.status_code == 400 and "must be a number" in bad.json()["error"]
    fire = http.post("/api/command", json={"target": "boom_driver", "cmd": "FIRE", "args": {"mechanism": "boom"},
                                           "key": KEY_FILE})
    assert fire.status_code == 403 and fire.json()["hazardous"]
    nokey = http.post("/api/command", json={"target": "boom_driver", "cmd": "ARM", "args": {"mechanism": "boom"},
                                            "confirm": "boom"})
    assert nokey.status_code == 403
    assert http.post("/api/command", content=b"[1]").status_code == 400
    assert ground.calls == [] and console.hazardous_refused == 2 and console.refused == 2
    assert console.reported.count("hazardous_refused") == 2  # type: ignore[attr-defined]
    ok = http.post("/api/command", json={"target": "boom_driver", "cmd": "ARM", "args": {"mechanism": "boom"},
                                         "confirm": "boom", "key": KEY_FILE})
    assert ok.status_code == 200 and ground.calls[0][1]["cmd"] == "ARM"


def test_a_ground_that_does_not_answer_is_a_502_with_the_reason(tmp_path: Path) -> None:
    http, console = client(tmp_path, FakeGround(GroundUnreachable("no reply")))
    r = http.post("/api/request", json={"camera": "navcam", "counter": 3})
    assert r.status_code == 502 and r.json()["error"] == "no reply" and console.unreachable == 1


def test_the_page_its_files_and_a_products_pixels_are_served(tmp_path: Path) -> None:
    frame = np.arange(12, dtype=np.uint16).reshape(3, 4) * 300
    write_product(tmp_path, "navcam-00000001-full", frame)
    http, _ = client(tmp_path, FakeGround())
    assert "lunar-pdh console" in http.get("/").text
    for f in ("console.js", "console.css"):
        assert http.get(f"/static/{f}").status_code == 200
    r = http.get("/api/products/navcam-00000001-full/pixels")
    assert r.status_code == 200 and (r.headers["x-width"], r.headers["x-height"]) == ("4", "3")
    assert np.array_equal(np.frombuffer(r.content, "<u2").reshape(3, 4), frame) and r.headers["x-bit-depth"] == "12"
    assert http.get("/api/products/navcam-00000001-full/image").headers["content-type"] == "image/png"
    preview = http.get("/api/products/navcam-00000001-full/preview")
    assert preview.headers["content-type"] == "image/png"
    assert cv2.imdecode(np.frombuffer(preview.content, np.uint8), cv2.IMREAD_UNCHANGED).dtype == np.uint8
    assert http.get("/api/products/..%2Fsecret/pixels").status_code == 404


def test_products_are_listed_by_camera_time_and_grade_from_the_archive(tmp_path: Path) -> None:
    for n, camera in ((1, "navcam"), (2, "navcam"), (3, "hazcam")):
        write_product(tmp_path, f"{camera}-{n:08d}-thumbnail", np.full((4, 4), n, np.uint8), kind="thumbnail",
                      counter=n, camera=camera, t_capture=1000.0 + n, score=0.1 * n)
    http, _ = client(tmp_path, FakeGround())
    ids = lambda q: [c["id"] for c in http.get(f"/api/products{q}").json()["products"]]  # noqa: E731
    assert ids("") == ["navcam-00000001-thumbnail", "navcam-00000002-thumbnail", "hazcam-00000003-thumbnail"]
    assert ids("?camera=navcam&min_grade=0.15") == ["navcam-00000002-thumbnail"]
    assert ids("?since=1002.5") == ["hazcam-00000003-thumbnail"] and ids("?until=1001.5&camera=navcam") == [
        "navcam-00000001-thumbnail"]
    card = http.get("/api/products/navcam-00000002-thumbnail").json()
    assert card["grades"] == {"score": 0.2, "mean_dn": 1.0} and card["preview"].endswith("/preview")
    assert http.get("/api/products?min_grade=x").status_code == 400
    assert http.get("/api/products/nope").status_code == 404
    assert [c["id"] for c in http.get("/api/state").json()["products"]] == [], "the model is fed by the process"


def test_events_and_lander_parameter_history_come_from_the_archive(tmp_path: Path) -> None:
    archive_at(tmp_path)
    dictionary = Dictionary.from_interfaces({"downlink": DOWNLINK})
    apid = dictionary.apid_of("downlink")
    spec = next(iter(DOWNLINK.events.values()))
    raws = [encode_housekeeping(apid, n, 100.0 + n, DOWNLINK, {"store_fill": 0.1 * n}) for n in range(1, 4)]
    raws.append(encode_event(apid, 4, 104.0, spec.id, "warning", {}))
    with Archive("sqlite:///archive.sqlite", tmp_path) as a:
        a.record_tm([(decode_tm(r, dictionary), 1.0) for r in raws])
        a.record_event("ground", 105.0, "product_received", "info", {"id": "x"})
    http, console = client(tmp_path, FakeGround())
    console.model.take("evt.console", "console", 106.0, {"name": "console_serving", "severity": "info"})
    console.model.take("evt.ground", "ground", 105.01, {"name": "product_received", "severity": "info"})
    got = http.get("/api/events").json()["events"]
    assert [(e["process"], e["name"], e["origin"]) for e in got] == [
        ("downlink", spec.name, "lander"), ("ground", "product_received", "ground"),
        ("console", "console_serving", "ground")], "the station's events once, from the archive"
    assert [e["name"] for e in http.get("/api/events?min_severity=warning").json()["events"]] == [spec.name]
    assert [e["process"] for e in http.get("/api/events?source=ground").json()["events"]] == ["ground"]
    assert http.get("/api/events?min_severity=loud").status_code == 400
    assert http.get("/api/state").json()["events"] == got
    h = http.get("/api/history?process=downlink&channel=store_fill").json()
    assert h["from"] == "archive" and [t for t, _ in h["points"]] == [101.0, 102.0, 103.0]
    assert http.get("/api/history?process=downlink&channel=store_fill&since=102").json()["points"][0][0] == 102.0
    console.model.take("tlm.ground", "ground", 5.0, {"receive_rate_bps": 8})
    assert http.get("/api/history?process=ground&channel=receive_rate_bps").json() == {"points": [[5.0, 8.0]],
                                                                                      "from": "live"}


def test_an_unreadable_archive_is_a_503_with_the_reason_and_the_link_says_so(tmp_path: Path) -> None:
    v = ArchiveView("sqlite:///absent.sqlite", tmp_path)
    c = Console(model(), desk(), v, FakeGround(), lambda: {"current": None, "windows": []})
    http = TestClient(build_app(c))
    r = http.get("/api/missing")
    assert r.status_code == 503 and "no archive at" in r.json()["error"]
    link = http.get("/api/link").json()
    assert link["transactions"] == [] and not link["archive"]["ok"]
    assert http.get("/api/state").status_code == 200
