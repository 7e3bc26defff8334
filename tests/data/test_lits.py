"""LiTS layout discovery and splits (liverseg.data.lits)."""

import logging
import os

import pytest

from liverseg.data import lits
from liverseg.errors import ConfigError, LayoutError


def touch(root, *names):
    for name in names:
        (root / name).write_bytes(b"x")


def test_pairs_volumes_and_segmentations(tmp_path):
    touch(
        tmp_path,
        "volume-0.nii",
        "segmentation-0.nii",
        "volume-10.nii.gz",
        "segmentation-10.nii.gz",
        "volume-2.nii.gz",
        "segmentation-2.nii",
        "test-volume-5.nii",
        "test-volume-1.nii.gz",
        "test-segmentation-1.nii.gz",
    )
    cases = lits.discover_cases(tmp_path, require_labels=False)
    assert [c.case_id for c in cases] == ["0", "2", "10", "test-1", "test-5"]
    assert [c.index for c in cases] == [0, 2, 10, 1, 5]
    assert cases[1].volume == tmp_path / "volume-2.nii.gz"
    assert cases[1].segmentation == tmp_path / "segmentation-2.nii"
    assert cases[3].segmentation == tmp_path / "test-segmentation-1.nii.gz"
    assert cases[4].segmentation is None and cases[4].is_test and not cases[0].is_test


def test_require_labels_leaves_out_unlabelled_test_volumes(tmp_path, caplog):
    touch(tmp_path, "volume-0.nii", "segmentation-0.nii", "test-volume-5.nii")
    with caplog.at_level(logging.WARNING, logger="liverseg.data.lits"):
        layout = lits.discover_layout(tmp_path)
    assert [c.case_id for c in layout.cases] == ["0"]
    assert layout.ignored == [tmp_path / "test-volume-5.nii"]
    assert "test-volume-5.nii" in caplog.text


def test_missing_segmentation_is_an_error(tmp_path):
    touch(tmp_path, "volume-0.nii", "segmentation-0.nii", "volume-1.nii.gz")
    with pytest.raises(LayoutError, match="without its segmentation") as info:
        lits.discover_cases(tmp_path)
    assert str(info.value).startswith(str(tmp_path / "volume-1.nii.gz"))
    assert len(lits.discover_cases(tmp_path, require_labels=False)) == 2


@pytest.mark.parametrize("name", ["segmentation-4.nii", "test-segmentation-4.nii.gz"])
def test_segmentation_without_volume_is_an_error(tmp_path, name):
    touch(tmp_path, "volume-0.nii", "segmentation-0.nii", name)
    with pytest.raises(LayoutError, match="without its volume") as info:
        lits.discover_cases(tmp_path, require_labels=False)
    assert str(info.value).startswith(str(tmp_path / name))


@pytest.mark.parametrize(
    "first, second",
    [("volume-3.nii", "volume-3.nii.gz"), ("segmentation-3.nii", "segmentation-03.nii")],
)
def test_duplicate_id_is_an_error_naming_both(tmp_path, first, second):
    touch(tmp_path, "volume-3.nii", "segmentation-3.nii", first, second)
    with pytest.raises(LayoutError, match="duplicate") as info:
        lits.discover_cases(tmp_path)
    message = str(info.value)
    assert first in message and second in message


def test_stray_entries_are_ignored_and_reported(tmp_path, caplog):
    touch(
        tmp_path,
        "volume-0.nii",
        "segmentation-0.nii",
        "notes.txt",
        "volume-1.nii.bak",
        "volume-x.nii",
        ".hidden",
    )
    (tmp_path / "volume-2.nii").mkdir()
    with caplog.at_level(logging.WARNING, logger="liverseg.data.lits"):
        layout = lits.discover_layout(tmp_path)
    assert [c.case_id for c in layout.cases] == ["0"]
    assert [p.name for p in layout.ignored] == [
        "notes.txt",
        "volume-1.nii.bak",
        "volume-2.nii",
        "volume-x.nii",
    ]
    assert "notes.txt" in caplog.text and ".hidden" not in caplog.text


def test_symlinked_files_are_discovered(tmp_path):
    data = tmp_path / "store"
    data.mkdir()
    touch(data, "a", "b")
    root = tmp_path / "lits"
    root.mkdir()
    os.symlink(data / "a", root / "volume-7.nii")
    os.symlink(data / "b", root / "segmentation-7.nii")
    assert [c.case_id for c in lits.discover_cases(root)] == ["7"]


def test_bad_directories(tmp_path):
    with pytest.raises(LayoutError, match="not found") as info:
        lits.discover_cases(tmp_path / "missing")
    assert str(info.value).startswith(str(tmp_path / "missing"))
    touch(tmp_path, "file")
    with pytest.raises(LayoutError, match="not a directory"):
        lits.discover_cases(tmp_path / "file")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LayoutError, match="no cases found") as info:
        lits.discover_cases(empty)
    assert str(info.value).startswith(str(empty))


def make_cases(indices, test_indices=()):
    cases = [lits.Case(str(i), i, f"volume-{i}.nii", f"segmentation-{i}.nii") for i in indices]
    cases += [lits.Case(f"test-{i}", i, f"test-volume-{i}.nii", None) for i in test_indices]
    return cases


def test_split_by_index_default_is_the_parents_split():
    train, test = lits.split_by_index(make_cases(range(131), test_indices=[0, 3]))
    assert [c.index for c in train] == list(range(105))
    assert [c.case_id for c in test] == [str(i) for i in range(105, 131)] + ["test-0", "test-3"]


def test_split_by_index_custom_and_overlap():
    train, test = lits.split_by_index(make_cases(range(10)), train=[0, 1, 2], test=range(8, 20))
    assert [c.index for c in train] == [0, 1, 2] and [c.index for c in test] == [8, 9]
    with pytest.raises(ConfigError, match="overlap"):
        lits.split_by_index(make_cases(range(10)), train=range(5), test=range(4, 10))


def test_split_by_fraction_is_seeded_and_complete():
    cases = make_cases(range(20))
    train, val = lits.split_by_fraction(cases, 0.25, seed=3)
    assert len(val) == 5 and len(train) == 15
    assert sorted(c.index for c in train + val) == list(range(20))
    assert lits.split_by_fraction(list(reversed(cases)), 0.25, seed=3) == (train, val)
    other = lits.split_by_fraction(cases, 0.25, seed=4)[1]
    assert [c.index for c in other] != [c.index for c in val]
    assert lits.split_by_fraction(cases, 0.0) == (cases, [])
    t2, v2 = lits.split_by_fraction(make_cases(range(2)), 0.1)
    assert len(t2) == 1 and len(v2) == 1
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(ConfigError, match="val_fraction"):
            lits.split_by_fraction(cases, bad)
