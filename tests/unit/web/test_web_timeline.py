"""The timeline of one camera (web/timeline.py): stretches from coverage, their geometry in the
bar, their hover titles, the axis per window and the legend."""

from __future__ import annotations

import calendar
import re

import pytest

from mirror_supervisor.web import timeline as tl

T0 = calendar.timegm((2026, 12, 7, 0, 0, 0))  # a Monday, 00:00 UTC


def kinds(timeline: tl.Timeline) -> list[tuple[str, float, float]]:
    return [(s.kind, s.start - T0, s.end - T0) for s in timeline.stretches]


def test_covered_and_gaps_partition_the_window():
    drawn = tl.build(T0, T0 + 1000, [(T0, T0 + 400), (T0 + 500, T0 + 1000)], first=T0 - 50)
    assert kinds(drawn) == [("covered", 0, 400), ("gap", 400, 500), ("covered", 500, 1000)]
    assert not drawn.compared


def test_a_gap_at_a_known_place_has_the_right_x_and_width():
    window = 3600.0
    drawn = tl.build(T0, T0 + window, [(T0, T0 + 900), (T0 + 1800, T0 + window)], first=T0)
    (gap,) = drawn.of_kind("gap")
    x, width = tl.geometry(drawn, gap)
    assert x == pytest.approx(900 / window * tl.WIDTH) and width == pytest.approx(900 / window * tl.WIDTH)
    svg = tl.svg(drawn)
    rect = re.search(r'<rect class="k-gap" x="([\d.]+)" y="\d+" width="([\d.]+)"[^>]*data-start="([\d.]+)" '
                     r'data-end="([\d.]+)"><title>([^<]*)</title>', svg)
    assert rect is not None
    assert float(rect[1]) == pytest.approx(150.0) and float(rect[2]) == pytest.approx(150.0)
    assert float(rect[3]) == T0 + 900 and float(rect[4]) == T0 + 1800
    assert rect[5] == "gap: nothing recorded: 2026-12-07 00:15:00 UTC to 2026-12-07 00:30:00 UTC (15 min 00 s)"


def test_a_short_gap_stays_visible_and_nothing_leaves_the_bar():
    day = 86400.0
    drawn = tl.build(T0, T0 + day, [(T0, T0 + 40000), (T0 + 40010, T0 + day - 3)], first=T0)
    gaps = drawn.of_kind("gap")
    assert [(g.start - T0, g.end - T0) for g in gaps] == [(40000, 40010), (day - 3, day)]
    for gap in gaps:
        x, width = tl.geometry(drawn, gap)
        assert width >= tl.MIN_WIDTH and x + width <= tl.WIDTH + 1e-9


def test_not_read_yet_before_the_first_footage_and_no_footage_at_all():
    drawn = tl.build(T0, T0 + 100, [(T0 + 20, T0 + 60)], pending=[(T0 + 90, T0 + 200)], first=T0 + 20)
    assert kinds(drawn) == [("before", 0, 20), ("covered", 20, 60), ("gap", 60, 90), ("pending", 90, 100)]
    nothing = tl.build(T0, T0 + 100, [], first=None)
    assert kinds(nothing) == [("before", 0, 100)]


def test_with_the_primary_each_second_is_in_both_one_or_neither():
    mirror = [(T0, T0 + 50), (T0 + 70, T0 + 100)]
    primary = [(T0 + 10, T0 + 80)]
    drawn = tl.build(T0, T0 + 100, mirror, primary=primary, first=T0 + 999)
    assert drawn.compared
    assert kinds(drawn) == [("only_mirror", 0, 10), ("both", 10, 50), ("only_primary", 50, 70), ("both", 70, 80),
                            ("only_mirror", 80, 100)]
    assert kinds(tl.build(T0, T0 + 10, [], primary=[]))[0][0] == "neither"


def test_an_invalid_segment_is_a_mark_on_top_with_its_name():
    drawn = tl.build(T0, T0 + 600, [(T0, T0 + 600)], invalid=[("20261207_000500.mp4", T0 + 300)], first=T0)
    (mark,) = drawn.of_kind("invalid")
    assert tl.geometry(drawn, mark) == (300.0, tl.INVALID_WIDTH)
    svg = tl.svg(drawn)
    assert svg.index('data-kind="covered"') < svg.index('data-kind="invalid"'), "drawn after the bar"
    assert "invalid segment 20261207_000500.mp4, named 2026-12-07 00:05:00 UTC" in svg


@pytest.mark.parametrize(("window", "labels"), [
    (3600, ["00:10", "00:20", "00:30", "00:40", "00:50", "01:00"]),
    (86400, ["03:00", "06:00", "09:00", "12:00", "15:00", "18:00", "21:00", "00:00"]),
    (7 * 86400, ["Tue 08", "Wed 09", "Thu 10", "Fri 11", "Sat 12", "Sun 13", "Mon 14"]),
])
def test_the_axis_labels_depend_on_the_window(window, labels):
    start = T0 + 1  # just after a round moment: the first label is the next one
    assert [text for _, text in tl.ticks(start, start + window)] == labels
    svg = tl.svg(tl.build(start, start + window, []))
    assert re.findall(r'<text class="tick"[^>]*>([^<]*)</text>', svg) == labels


def test_titles_and_labels_are_escaped():
    svg = tl.svg(tl.build(T0, T0 + 10, []), label='"><script>alert(1)</script>')
    assert "<script>" not in svg and 'aria-label="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in svg


def test_the_legend_names_what_a_mode_can_show():
    compared = tl.legend(True)
    assert "only in the primary" in compared and "only in the mirror" in compared and "in both" in compared
    assert 'class="swatch k-only_primary"' in compared and 'class="swatch k-only_mirror"' in compared
    assert tl.KINDS["only_primary"][1] != tl.KINDS["only_mirror"][1] != tl.KINDS["both"][1]
    mirror = tl.legend(False, pending=False)
    assert "recorded" in mirror and "only in" not in mirror and "not read yet" not in mirror


@pytest.mark.parametrize(("seconds", "text"), [(42, "42 s"), (725, "12 min 05 s"), (12000, "3 h 20 min"),
                                               (187200, "2 d 04 h")])
def test_lengths(seconds, text):
    assert tl.length(seconds) == text
