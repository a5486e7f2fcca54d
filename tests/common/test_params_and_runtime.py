import pytest
import yaml

from phys_ml.stages.common.errors import UserError
from phys_ml.stages.common.params import apply_profile, deep_merge, load_params
from phys_ml.stages.common.runtime import resolve_device


def test_deep_merge_overrides_leaves_and_keeps_the_rest():
    base = {"a": {"b": 1, "c": {"d": 2, "e": 3}}, "f": [1, 2]}
    merged = deep_merge(base, {"a": {"c": {"d": 20}}, "f": [9]})
    assert merged == {"a": {"b": 1, "c": {"d": 20, "e": 3}}, "f": [9]}
    assert base["a"]["c"]["d"] == 2  # the input is untouched


def test_apply_profile_overlays_and_unknown_profile_is_an_error(tmp_path):
    (tmp_path / "profiles").mkdir()
    (tmp_path / "params.yaml").write_text("t:\n  train: {epochs: 10, seed: 1}\n")
    (tmp_path / "profiles" / "smoke.yaml").write_text("t:\n  train: {epochs: 1}\n")
    apply_profile(tmp_path, "smoke")
    assert load_params(tmp_path / "params.yaml") == {"t": {"train": {"epochs": 1, "seed": 1}}}
    with pytest.raises(UserError, match="unknown profile 'huge'"):
        apply_profile(tmp_path, "huge")


def test_bad_yaml_is_a_user_error(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("a: [1, 2\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_params(path)
    with pytest.raises(UserError, match="not found"):
        load_params(tmp_path / "missing.yaml")


def test_committed_profiles_are_valid_yaml(project_root):
    for path in [project_root / "params.yaml", *sorted((project_root / "profiles").glob("*.yaml"))]:
        assert isinstance(yaml.safe_load(path.read_text()), dict), path


def test_device_resolution():
    import torch

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UserError, match="device must be one of"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA device"):
            resolve_device("cuda")


@pytest.mark.parametrize("profile", ["smoke", "paper"])
def test_profile_apply_keeps_comments_and_gives_the_merged_values(tmp_path, project_root, profile):
    import shutil

    from phys_ml.stages.common.params import load_yaml

    shutil.copy(project_root / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(project_root / "profiles", tmp_path / "profiles")
    expected = deep_merge(load_params(tmp_path / "params.yaml"),
                          load_yaml(tmp_path / "profiles" / f"{profile}.yaml"))
    comments = [line.split("#", 1)[1] for line in (tmp_path / "params.yaml").read_text().splitlines()
                if "#" in line]
    apply_profile(tmp_path, profile)
    apply_profile(tmp_path, profile)  # twice: the same file, one header
    text = (tmp_path / "params.yaml").read_text()
    assert load_params(tmp_path / "params.yaml") == expected
    assert text.count("profile applied") == 1
    kept = sum(comment in text for comment in comments)
    assert kept == len(comments), f"{len(comments) - kept} comments of params.yaml were dropped"


def test_params_errors_name_the_file_given(tmp_path):
    from phys_ml.stages.common.config import section

    with pytest.raises(UserError, match="is a folder"):
        load_params(tmp_path)
    empty = tmp_path / "mine.yaml"
    empty.write_text("")
    with pytest.raises(UserError, match="mine.yaml has no section 'rre'"):
        section(load_params(empty), "rre")
