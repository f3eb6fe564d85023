"""The choice of wanted cameras (docs/design.md, "Master rules")."""

from mirror_supervisor.cameras.camera import parse_row
from mirror_supervisor.master.reconcile import wanted


def cam(camera_id, **columns):
    base = {"id": camera_id, "enabled": 1, "record_enabled": 1, "mirror_enabled": 1, "vendor": "hikvision", "address": "h"}
    return parse_row({**base, **columns})


def test_wanted_splits_good_and_bad():
    good, bad = wanted([cam("a"), cam("b", vendor="generic"), cam("c", mirror_enabled=0)], True)
    assert list(good) == ["a"] and list(bad) == ["b"]


def test_recorder_disabled_wants_nothing():
    assert wanted([cam("a")], False) == ({}, {})


def test_duplicate_ids_are_refused_for_every_row():
    good, bad = wanted([cam("a"), cam("a", address="other")], True)
    assert good == {} and "duplicate" in bad["a"].problem


def test_ids_differing_in_case_are_distinct_by_default():
    good, bad = wanted([cam("Gate"), cam("gate")], True)
    assert set(good) == {"Gate", "gate"} and bad == {}


def test_fold_case_refuses_every_id_differing_only_in_case():
    good, bad = wanted([cam("Gate"), cam("gate"), cam("GATE", vendor="generic"), cam("yard")], True, fold_case=True)
    assert list(good) == ["yard"] and set(bad) == {"Gate", "gate", "GATE"}
    assert "ignores upper/lower case" in bad["gate"].problem and "'Gate'" in bad["gate"].problem


def test_fold_case_uses_unicode_case_folding():
    good, bad = wanted([cam("Straße"), cam("STRASSE")], True, fold_case=True)
    assert good == {} and set(bad) == {"Straße", "STRASSE"}


def test_fold_case_ignores_rows_that_are_not_mirrored():
    good, bad = wanted([cam("Gate"), cam("gate", mirror_enabled=0)], True, fold_case=True)
    assert list(good) == ["Gate"] and bad == {}


def test_exact_duplicate_under_fold_case_keeps_the_plain_message():
    good, bad = wanted([cam("a"), cam("a")], True, fold_case=True)
    assert good == {} and bad["a"].problem == "duplicate id: more than one row has it"
