"""Documents generated from the code stay in step with it (docs/design.md, "Settings").

README.md's settings table is rendered from the one definition of every setting in
``mirror_supervisor/settings.py``; the design document names sections that code and tests cite.
"""

import re
from pathlib import Path

from mirror_supervisor import cli, settings

ROOT = Path(__file__).resolve().parents[2]
REGENERATE = "python -m mirror_supervisor.settings --update-readme README.md"


def _readme_table() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.count(settings.README_TABLE_BEGIN) == 1 and text.count(settings.README_TABLE_END) == 1, (
        "README.md must hold the settings table between its two markers, once "
        f"({settings.README_TABLE_BEGIN!r} ... {settings.README_TABLE_END!r})")
    begin = text.index(settings.README_TABLE_BEGIN) + len(settings.README_TABLE_BEGIN)
    return text[begin:text.index(settings.README_TABLE_END)]


def test_readme_settings_table_is_the_rendered_one():
    assert _readme_table().strip() == settings.markdown_table().strip(), (
        "README.md's settings table differs from the settings definitions in mirror_supervisor/settings.py. "
        f"Edit the definition (OPTIONS, CONFIG, LOG_LEVEL), never the table, then regenerate it: `{REGENERATE}` "
        "(or print it with `python -m mirror_supervisor.settings --markdown`)")


def test_regenerating_an_up_to_date_readme_changes_nothing():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert settings.replace_readme_table(text) == text, f"README.md is not as `{REGENERATE}` writes it"


def test_the_table_lists_every_flag_of_the_settings_parser():
    parser = cli.build_parser()
    run = parser._subparsers._group_actions[0].choices["run"]  # noqa: SLF001 - argparse has no public way
    flags = {flag for action in run._actions for flag in action.option_strings}  # noqa: SLF001
    for option in settings.TABLE_OPTIONS:
        assert option.flag in flags
        assert f"`{option.flag}" in _readme_table()
    for name in ("--daemon", "--log-file", "--help", "-h"):
        flags.discard(name)
    assert flags == {option.flag for option in settings.TABLE_OPTIONS}


def test_every_environment_name_is_in_the_table():
    table = _readme_table()
    for option in settings.TABLE_OPTIONS:
        for name in option.env:
            assert f"`{name}`" in table


def test_the_help_comes_from_the_definition():
    check = cli.build_parser()._subparsers._group_actions[0].choices["check"]  # noqa: SLF001
    helps = {action.dest: action.help for action in check._actions}  # noqa: SLF001
    for option in (*settings.OPTIONS, settings.CONFIG):
        assert helps[option.field] == settings.help_text(option)
        assert settings.plain(option.help) in helps[option.field]


DESIGN_SECTIONS = ("Database", "Recorded URL", "ffmpeg command", "Worker loop", "Master rules", "Settings",
                   "Commands", "Process titles", "Failure rules", "Retention", "Status", "Invariants", "Package map")


def test_design_document_has_the_sections_code_and_tests_cite():
    text = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^## (.+?)\s*$", text, re.MULTILINE))
    assert set(DESIGN_SECTIONS) <= headings


def test_design_document_refers_to_nothing_outside_the_repository():
    text = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    assert "../" not in text and "SPEC" not in text


def test_design_document_states_the_exact_ffmpeg_options():
    from mirror_supervisor.worker import ffmpeg

    text = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    assert ffmpeg.MOVFLAGS in text and ffmpeg.SEGMENT_PATTERN in text and str(ffmpeg.SOCKET_TIMEOUT_US) in text
