from pathlib import Path

import pytest

from edgeops.config import Params, load_params, parse_params
from edgeops.errors import EdgeopsError

ROOT = Path(__file__).resolve().parents[2]


def test_repository_params_are_valid_and_enable_every_variant():
    params = load_params(ROOT / "params.yaml")
    assert params.compress.variants.enabled() == ["fp32", "fp16", "ptq", "ptq_ac", "qat", "prune_int8"]
    assert params.data.path == "data/demo"


def test_unknown_key_is_named_in_one_line():
    with pytest.raises(EdgeopsError) as e:
        parse_params({"train": {"epochs": 2, "epoch": 3}})
    message = str(e.value)
    assert "unknown key 'train.epoch'" in message
    assert "\n" not in message


def test_unknown_top_level_key():
    with pytest.raises(EdgeopsError, match="unknown key 'traning'"):
        parse_params({"traning": {}})


def test_bad_value_is_explained():
    with pytest.raises(EdgeopsError, match="train.model"):
        parse_params({"train": {"model": "vgg16"}})
    with pytest.raises(EdgeopsError, match="must be 1.0"):
        parse_params({"data": {"split": {"train": 0.5, "val": 0.1, "test": 0.1}}})


def test_fp32_variant_is_required():
    with pytest.raises(EdgeopsError, match="compress.variants.fp32"):
        parse_params({"compress": {"variants": {"fp32": None, "ptq": {}}}})


def test_variants_enabled_in_fixed_order():
    params = parse_params({"compress": {"variants": {"qat": {}, "fp32": {}, "ptq": {"subset_size": 10}}}})
    assert params.compress.variants.enabled() == ["fp32", "ptq", "qat"]
    assert params.compress.variants.ptq is not None and params.compress.variants.ptq.subset_size == 10


def test_target_scheme_is_checked():
    with pytest.raises(EdgeopsError, match="file:// or s3://"):
        parse_params({"targets": {"production": [{"uri": "ftp://x"}]}})


def test_missing_and_invalid_yaml(tmp_path):
    with pytest.raises(EdgeopsError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(EdgeopsError, match="not valid YAML"):
        load_params(bad)
    bad.write_text("- a list\n")
    with pytest.raises(EdgeopsError, match="mapping"):
        load_params(bad)


def test_empty_file_means_defaults(tmp_path):
    empty = tmp_path / "params.yaml"
    empty.write_text("")
    assert load_params(empty) == Params()
