"""tools/export.py end to end in a subprocess."""

import json
import os

import pytest

from liverseg.models import build_ds_sffnet, save_model
from tests.tools import helpers as tool_helpers

run_export = tool_helpers.tool("export")


def assert_one_line_error(result, *fragments):
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ")
    for fragment in fragments:
        assert fragment in last


@pytest.fixture(scope="module")
def liver_model(tmp_path_factory):
    return save_model(build_ds_sffnet("liver", seed=1), tmp_path_factory.mktemp("models") / "liver")


@pytest.mark.slow  # two TensorFlow subprocesses, one exporting the full network
def test_export_tool_writes_version_and_refuses_to_replace_it(liver_model, tmp_path):
    export_dir = tmp_path / "serving" / "liver"
    result = run_export(f"--model={liver_model}", "--stage=liver", f"--export_dir={export_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(os.listdir(export_dir)) == ["1"]
    assert (export_dir / "1" / "saved_model.pb").is_file()
    meta = json.loads((export_dir / "1" / "assets.extra" / "liverseg_export.json").read_text())
    assert meta["model_config"]["stage"] == "liver"
    assert str(export_dir / "1") in result.stdout

    again = run_export(
        f"--model={liver_model}", "--stage=liver", f"--export_dir={export_dir}", "--version=1"
    )
    assert_one_line_error(again, str(export_dir / "1"), "pass --overwrite")


def test_export_tool_checks_the_stage(liver_model, tmp_path):
    result = run_export(f"--model={liver_model}", "--stage=tumor", f"--export_dir={tmp_path / 'e'}")
    assert_one_line_error(result, str(liver_model), "liver network", "tumor")
    assert not (tmp_path / "e" / "1").exists()


def test_export_tool_bad_model_paths(tmp_path):
    missing = run_export(
        f"--model={tmp_path / 'nope'}", "--stage=liver", f"--export_dir={tmp_path / 'e'}"
    )
    assert_one_line_error(missing, str(tmp_path / "nope"), "does not exist")

    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"this is not a zip archive")
    result = run_export(f"--model={corrupt}", "--stage=liver", f"--export_dir={tmp_path / 'e'}")
    assert_one_line_error(result, str(corrupt), "cannot load")
    assert not (tmp_path / "e").exists()
