"""No candidate learns from the images it is scored on: the rule calibration follows, applied to every image a
fine-tune learns from (`tfyolo qat`, `tfyolo compress`, the search's QAT candidate, cluster_int8 / prune_int8)."""

import shutil

import pytest
import yaml
from click.testing import CliRunner

from tfyolo.cli.main import cli
from tfyolo.data.calibration_images import evaluation_image_paths, refuse_training_overlap
from tfyolo.errors import DataError


@pytest.fixture()
def same_folder_data(tiny_synthetic, tmp_path):
    """coco128's own data.yaml shape: train and val name the same folder."""
    config = yaml.safe_load(tiny_synthetic.read_text())
    folder = tiny_synthetic.parent
    path = tmp_path / "same.yaml"
    path.write_text(yaml.safe_dump(dict(config, path=str(folder), train=config["val"], val=config["val"])))
    return path


@pytest.fixture()
def copied_val_data(tiny_synthetic, tmp_path):
    """A train folder that holds a byte copy of one val image (and its label) beside the real train images."""
    config = yaml.safe_load(tiny_synthetic.read_text())
    folder = tmp_path / "set"
    shutil.copytree(tiny_synthetic.parent, folder)
    val_image = sorted((folder / config["val"]).iterdir())[0]
    shutil.copy(val_image, folder / config["train"] / ("copy_" + val_image.name))
    labels = folder / "labels"
    train_labels = labels / "train"
    val_label = labels / "val" / (val_image.stem + ".txt")
    if val_label.is_file():
        shutil.copy(val_label, train_labels / ("copy_" + val_label.name))
    path = folder / "data.yaml"
    path.write_text(yaml.safe_dump(dict(config, path=str(folder))))
    return path, val_image


def test_distinct_splits_pass(tiny_synthetic):
    assert refuse_training_overlap(tiny_synthetic, evaluation_image_paths(tiny_synthetic)) == []


def test_a_same_folder_data_yaml_is_refused_unless_forced(same_folder_data):
    evaluated = evaluation_image_paths(same_folder_data)
    with pytest.raises(DataError, match=r"5 of the train images tfyolo qat learns from .* --force-training-overlap"):
        refuse_training_overlap(same_folder_data, evaluated, who="tfyolo qat")
    assert len(refuse_training_overlap(same_folder_data, evaluated, force=True)) == len(evaluated) == 5


def test_a_copy_under_another_name_is_the_same_image(copied_val_data):
    data, val_image = copied_val_data
    with pytest.raises(DataError, match=r"1 of the train images .*copy_"):
        refuse_training_overlap(data, evaluation_image_paths(data))


@pytest.mark.parametrize("command", ["qat", "compress"])
def test_qat_and_compress_refuse_before_any_training(command, tiny_float_run, same_folder_data, tmp_path):
    arguments = [command, "--model", str(tiny_float_run), "--data", str(same_folder_data), "--out", str(tmp_path / "o")]
    if command == "compress":
        arguments += ["--method", "prune"]
    result = CliRunner().invoke(cli, arguments)
    assert result.exit_code == 1
    assert "learns from have the same content as evaluated images" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "o").exists()


def test_the_search_s_qat_candidate_is_refused_and_the_search_goes_on(tiny_float_run, same_folder_data, tmp_path):
    """The candidate learns from the calibration images: calibrating on evaluated images was forced (True below),
    learning from them was not, so the candidate is refused with its reason and nothing is trained."""
    from tfyolo.jobs.auto_session import AutoSession
    from tfyolo.quantization.auto import QAT_CANDIDATE
    from tfyolo.quantization.recipe import Recipe

    session = AutoSession(
        tiny_float_run, same_folder_data, same_folder_data, "val", 4, 1, True, qat_epochs=1, work=tmp_path
    )
    assert session.calibration["overlap_with_evaluation"] > 0
    candidate = session.measure(Recipe(name=QAT_CANDIDATE, mode="int8"))
    assert "the search's QAT candidate learns from" in candidate.error
    assert "--force-training-overlap" in candidate.error
    assert not (tmp_path / "auto_qat").exists()
