"""`pdh cmd NAME key=value ...`: how a value on the command line becomes a command argument."""

from __future__ import annotations

from pdh.cli_command import parse_value as _parse_value


def test_numbers_booleans_and_words_keep_their_kinds() -> None:
    assert _parse_value("3") == 3 and isinstance(_parse_value("3"), int)
    assert _parse_value("2.5") == 2.5
    assert _parse_value("true") is True and _parse_value("False") is False
    assert _parse_value("navcam") == "navcam"


def test_a_bracketed_value_is_a_list_or_map_so_regions_can_be_sent() -> None:
    assert _parse_value("[0, 16, 64, 32]") == [0, 16, 64, 32]
    assert _parse_value("[0,16,64,32]") == [0, 16, 64, 32]
    assert _parse_value("{effort: 7}") == {"effort": 7}


def test_a_bracketed_value_that_is_not_yaml_stays_a_string() -> None:
    assert _parse_value("[0, 1") == "[0, 1"
