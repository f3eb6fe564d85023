"""``coverage --html FILE`` (web/report_file.py, coverage_command.py): the report's timelines as one
self-contained file, compared with the primary when asked, and a one-line error for a file that
cannot be written."""

from __future__ import annotations

import datetime
import os
import re
import stat

from support import fmp4

from mirror_supervisor import cli
from mirror_supervisor.footage import coverage
from mirror_supervisor.web import report_file

T0 = datetime.datetime(2026, 11, 25, 10, tzinfo=datetime.UTC).timestamp()
FROM, TO = "2026-11-25T10:00:00Z", "2026-11-25T11:00:00Z"


name, record = fmp4.segment_name, fmp4.record


def test_the_file_holds_the_timelines_and_nothing_it_would_load(tmp_path, capsys):
    record(tmp_path / "mirror" / "cam", T0, T0 + 1200)
    record(tmp_path / "mirror" / "cam", T0 + 1500, T0 + 3600)
    out = tmp_path / "report.html"
    code = cli.main(["coverage", "--mirror-dir", str(tmp_path / "mirror"), "--state-dir", str(tmp_path / "s"),
                     "--from", FROM, "--to", TO, "--html", str(out)])
    assert code == 0 and "cam: 91.67% covered" in capsys.readouterr().out, "the usual output too"
    text = out.read_text()
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o644
    assert '<meta http-equiv="Content-Security-Policy" content="default-src &#x27;none&#x27;;' in text
    assert "<script" not in text and "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    (gap,) = re.findall(r'data-kind="gap" data-start="([\d.]+)" data-end="([\d.]+)"', text)
    assert (float(gap[0]), float(gap[1])) == (T0 + 1200, T0 + 1500)
    assert "gap 2026-11-25 10:20:00 UTC to 2026-11-25 10:25:00 UTC (5 min 00 s)" in text
    assert "not read yet" not in text, "a finished report has nothing pending"


def test_compared_with_the_primary_both_sides_are_drawn(tmp_path):
    record(tmp_path / "mirror" / "cam", T0, T0 + 1800)
    record(tmp_path / "nvr" / "cam", T0 + 600, T0 + 3600)
    report = coverage.compute(tmp_path / "mirror", T0, T0 + 3600, primary_dir=tmp_path / "nvr", now=T0 + 7200)
    text = report_file.render(report, str(tmp_path / "mirror"))
    kinds = re.findall(r'data-kind="(\w+)" data-start="([\d.]+)" data-end="([\d.]+)"', text)
    assert [(k, float(a) - T0, float(b) - T0) for k, a, b in kinds] == [
        ("only_mirror", 0, 600), ("both", 600, 1800), ("only_primary", 1800, 3600)]
    assert "only in the primary (the mirror missed it)" in text and "only in the mirror (the mirror saved it)" in text
    assert "only in the primary 30 min 00 s, only in the mirror 10 min 00 s, in both 20 min 00 s" in text


def test_a_file_that_cannot_be_written_is_a_one_line_error(tmp_path, capsys):
    record(tmp_path / "mirror" / "cam", T0, T0 + 600)
    args = ["coverage", "--mirror-dir", str(tmp_path / "mirror"), "--state-dir", str(tmp_path / "s"),
            "--from", FROM, "--to", TO, "--html"]
    assert cli.main([*args, str(tmp_path / "no" / "such" / "dir" / "r.html")]) == 2
    assert "--html: " in capsys.readouterr().err
    (tmp_path / "taken").mkdir()
    assert cli.main([*args, str(tmp_path / "taken")]) == 2
    assert "--html: cannot write" in capsys.readouterr().err
