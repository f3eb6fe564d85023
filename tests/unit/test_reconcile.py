"""The reconcile diff and the choice of wanted cameras (SPEC section 6)."""

from mirror_supervisor.camera import parse_row
from mirror_supervisor.reconcile import Plan, diff, wanted


def cam(camera_id, **columns):
    base = {"id": camera_id, "enabled": 1, "record_enabled": 1, "mirror_enabled": 1, "vendor": "hikvision", "address": "h"}
    return parse_row({**base, **columns})


def test_diff_start_stop_restart_and_leave_alone():
    running = {"a": 1, "b": 2, "c": 3}
    desired = {"a": 1, "b": 20, "d": 4}
    assert diff(running, desired) == Plan(start=("d",), stop=("c",), restart=("b",))


def test_no_change_is_an_empty_plan():
    assert not diff({"a": ("x",)}, {"a": ("x",)})


def test_wanted_splits_good_and_bad():
    good, bad = wanted([cam("a"), cam("b", vendor="generic"), cam("c", mirror_enabled=0)], True)
    assert list(good) == ["a"] and list(bad) == ["b"]


def test_recorder_disabled_wants_nothing():
    assert wanted([cam("a")], False) == ({}, {})


def test_duplicate_ids_are_refused_for_every_row():
    good, bad = wanted([cam("a"), cam("a", address="other")], True)
    assert good == {} and "duplicate" in bad["a"].problem
