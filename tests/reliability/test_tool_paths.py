"""train.py, export.py and convert_checkpoint.py given missing or malformed paths and
checkpoints: one ``error:`` line naming the path, exit 1, nothing written.

(evaluate.py is covered in test_evaluate_tool.py, infer.py in test_infer_tool.py.)
"""

import os
import pickle

import pytest

from liverseg.phantoms.training import write_phantoms
from tests.reliability.conftest import assert_one_line_error, run_tool


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    directory = tmp_path_factory.mktemp("train_data")
    write_phantoms(directory, 2, (32, 32, 6), seed=5)
    return directory


TRAIN = ("--stage=liver", "--max_steps=1", "--batch_size=1", "--val_every=0", "--val_fraction=0")


def pickle_file(path):
    path.write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    return path


# ----------------------------------------------------------------------------
# train.py


def test_train_missing_data_dir(tmp_path):
    result = run_tool(
        "train", *TRAIN, f"--data_dir={tmp_path / 'nope'}", f"--model_dir={tmp_path / 'model'}"
    )
    assert_one_line_error(result, f"error: {tmp_path / 'nope'}: data directory not found")


def test_train_bad_files_in_the_data_dir(tmp_path, phantoms):
    data = tmp_path / "data"
    data.mkdir()
    for name in os.listdir(phantoms):
        os.symlink(phantoms / name, data / name)
    (data / "notes.txt").write_text("x")
    blob = (phantoms / "segmentation-1.nii.gz").read_bytes()
    os.remove(data / "segmentation-1.nii.gz")
    (data / "segmentation-1.nii.gz").write_bytes(blob[: len(blob) // 2])  # truncated
    result = run_tool("train", *TRAIN, f"--data_dir={data}", f"--model_dir={tmp_path / 'model'}")
    assert_one_line_error(result, f"error: {data / 'segmentation-1.nii.gz'}: file is truncated")

    os.remove(data / "segmentation-1.nii.gz")
    result = run_tool("train", *TRAIN, f"--data_dir={data}", f"--model_dir={tmp_path / 'model'}")
    assert_one_line_error(
        result, f"error: {data / 'volume-1.nii.gz'}: volume without its segmentation"
    )


@pytest.fixture(scope="module")
def pickled_init(tmp_path_factory, phantoms):
    root = tmp_path_factory.mktemp("pickled_init")
    checkpoint = pickle_file(root / "vgg_16.npy")
    result = run_tool(
        "train",
        *TRAIN,
        f"--data_dir={phantoms}",
        f"--model_dir={root / 'model'}",
        f"--init_checkpoint={checkpoint}",
    )
    return root, checkpoint, result


def test_train_refuses_a_pickled_init_checkpoint(pickled_init):
    root, checkpoint, result = pickled_init
    assert_one_line_error(result, f"error: {checkpoint}: ")
    assert not (root / "model" / "model.weights.h5").exists()


def test_train_failed_start_leaves_no_run_behind(pickled_init):
    root, _, _ = pickled_init
    assert not (root / "model" / "config.json").exists()


def test_train_model_dir_that_is_a_file(tmp_path, phantoms):
    (tmp_path / "model").write_text("x")
    result = run_tool(
        "train", *TRAIN, f"--data_dir={phantoms}", f"--model_dir={tmp_path / 'model'}"
    )
    assert_one_line_error(result, str(tmp_path / "model"))
    assert (tmp_path / "model").read_text() == "x"


def test_train_tumour_stage_with_a_missing_liver_model(tmp_path, phantoms):
    missing = tmp_path / "no_liver_model"
    result = run_tool(
        "train",
        "--stage=tumor",
        "--max_steps=1",
        "--batch_size=1",
        "--val_every=0",
        "--val_fraction=0",
        f"--data_dir={phantoms}",
        f"--model_dir={tmp_path / 'model'}",
        f"--liver_model={missing}",
    )
    assert_one_line_error(result, f"error: {missing}: ")


# ----------------------------------------------------------------------------
# export.py


def test_export_model_with_truncated_weights(tmp_path, tiny_models):
    liver, _ = tiny_models
    model = tmp_path / "liver"
    model.mkdir()
    (model / "model_config.json").write_bytes((liver / "model_config.json").read_bytes())
    (model / "model.weights.h5").write_bytes((liver / "model.weights.h5").read_bytes()[:4096])
    result = run_tool(
        "export", f"--model={model}", "--stage=liver", f"--export_dir={tmp_path / 'serving'}"
    )
    assert_one_line_error(result, f"error: {model / 'model.weights.h5'}: cannot read HDF5 weights")
    assert not (tmp_path / "serving" / "1").exists()


def test_export_dir_that_is_a_file(tmp_path, tiny_models):
    liver, _ = tiny_models
    (tmp_path / "serving").write_text("x")
    result = run_tool(
        "export", f"--model={liver}", "--stage=liver", f"--export_dir={tmp_path / 'serving'}"
    )
    assert_one_line_error(
        result, f"error: {tmp_path / 'serving'}: export directory exists and is not a directory"
    )
    assert (tmp_path / "serving").read_text() == "x"


def test_export_version_symlink_is_refused_then_replaced_not_followed(tmp_path, tiny_models):
    from liverseg.errors import OutputError
    from liverseg.export import export_model_file

    liver, _ = tiny_models
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "keep.txt").write_text("keep")
    serving = tmp_path / "serving"
    serving.mkdir()
    os.symlink(target, serving / "1")
    with pytest.raises(OutputError, match="version exists \\(a symlink\\); pass --overwrite"):
        export_model_file(liver, serving, stage="liver")
    path = export_model_file(liver, serving, stage="liver", overwrite=True)
    assert not path.is_symlink() and (path / "saved_model.pb").is_file()
    assert os.listdir(target) == ["keep.txt"] and (target / "keep.txt").read_text() == "keep"
    assert sorted(os.listdir(serving)) == ["1"]


# ----------------------------------------------------------------------------
# convert_checkpoint.py


def test_convert_refuses_a_pickle_posing_as_a_checkpoint(tmp_path):
    checkpoint = tmp_path / "seg_liver.ckpt"
    pickle_file(tmp_path / "seg_liver.ckpt.index")
    pickle_file(tmp_path / "seg_liver.ckpt.data-00000-of-00001")
    result = run_tool(
        "convert_checkpoint",
        f"--tf1_checkpoint={checkpoint}",
        "--stage=liver",
        f"--output={tmp_path / 'model'}",
    )
    assert_one_line_error(result, f"error: {checkpoint}: cannot read TensorFlow checkpoint")
    assert not (tmp_path / "model").exists()


def test_convert_refuses_an_output_that_is_a_file_before_reading(tmp_path):
    (tmp_path / "model").write_text("x")
    result = run_tool(
        "convert_checkpoint",
        f"--tf1_checkpoint={tmp_path / 'missing.ckpt'}",
        "--stage=liver",
        f"--output={tmp_path / 'model'}",
    )
    assert_one_line_error(
        result, f"error: {tmp_path / 'model'}: output path exists and is not a directory"
    )
    assert (tmp_path / "model").read_text() == "x"
