"""pdh request without a running system: which downlink command, with what arguments, answered by which product."""

from __future__ import annotations

import pytest

from pdh.cli_request import parse_region, request_of


def test_a_full_frame_by_camera_and_counter_is_send_full_answered_by_its_full_product() -> None:
    assert request_of("full", None, "navcam", 12, None) == (
        "SEND_FULL", {"camera": "navcam", "counter": 12}, "navcam-00000012-full")
    assert request_of("full", "navcam-00000012-full", None, None, None) == (
        "SEND_FULL", {"id": "navcam-00000012-full"}, "navcam-00000012-full")


def test_a_stored_product_is_send_product() -> None:
    assert request_of("product", "navcam-00000003-lossy", None, None, None) == (
        "SEND_PRODUCT", {"id": "navcam-00000003-lossy"}, "navcam-00000003-lossy")


def test_a_region_is_send_region_answered_by_the_frame_roi_or_a_new_one_of_the_newest_frame() -> None:
    assert request_of("region", None, "navcam", 5, "10,20,64,48") == (
        "SEND_REGION", {"camera": "navcam", "counter": 5, "region": [10, 20, 64, 48]}, "navcam-00000005-roi")
    assert request_of("region", None, "navcam", None, "[0, 0, 8, 8]") == (
        "SEND_REGION", {"camera": "navcam", "region": [0, 0, 8, 8]}, None)


@pytest.mark.parametrize(("what", "pid", "camera", "counter", "region", "match"), [
    ("full", None, None, None, None, "give the product id, or --camera and --counter"),
    ("full", None, "navcam", None, None, "give the product id, or --camera and --counter"),
    ("full", "x", "navcam", 1, None, "not both"),
    ("full", None, "navcam", 1, "0,0,1,1", "--region is for 'request region'"),
    ("product", None, None, None, None, "give the product's id"),
    ("region", None, "navcam", 1, None, "give --camera and --region"),
    ("region", "x", "navcam", 1, "0,0,1,1", "give --camera and --region"),
])
def test_a_request_missing_what_it_needs_says_so(what: str, pid: str | None, camera: str | None,
                                                 counter: int | None, region: str | None, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        request_of(what, pid, camera, counter, region)


@pytest.mark.parametrize("text", ["1,2,3", "a,b,c,d", "0,0,0,5", "-1,0,4,4", "1,2,3,4,5"])
def test_a_region_that_is_not_four_sensible_integers_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="X,Y,WIDTH,HEIGHT"):
        parse_region(text)
