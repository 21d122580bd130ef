"""Per-model recipes (`epochs: auto`, `lr: auto`) and the train stage's candidates (a list of models, or
auto): each trains within its share of train.budget_seconds and the best by validation score is kept."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml

from edgeops.config import parse_params, split_candidate
from edgeops.errors import EdgeopsError
from edgeops.pipeline import train as train_module
from edgeops.pipeline.train import Candidate, candidate_budget, pick_candidate, train_model
from edgeops.vision import get_task, task_names
from tests.unit.test_batchnorm_reestimation import LABELS, _shapes_split
from tests.unit.test_finetune_rules import _fake_epochs

ROOT_PARAMS = yaml.safe_load((Path(__file__).resolve().parents[2] / "params.yaml").read_text())


def _params(**classification) -> dict:
    raw = yaml.safe_load(yaml.safe_dump(ROOT_PARAMS))
    raw["by_task"]["classification"].update(classification)
    return raw


@pytest.mark.parametrize("task", task_names())
def test_every_model_of_every_task_has_a_recipe(task: str) -> None:
    vision = get_task(task)
    assert set(vision.recipes) == set(vision.models)
    assert all(r.epochs >= 1 and r.lr > 0 for r in vision.recipes.values())


def test_auto_epochs_and_lr_come_from_the_model_recipe_and_numbers_win() -> None:
    params = parse_params(_params(model="mobilenet_v3_small", epochs="auto", lr="auto"))
    recipe = get_task("classification").recipes["mobilenet_v3_small"]
    assert params.epochs_and_lr("mobilenet_v3_small") == (recipe.epochs, recipe.lr)
    assert recipe != get_task("classification").recipes["small_cnn"]  # the model decides, not the task
    params = parse_params(_params(model="mobilenet_v3_small", epochs=5, lr=0.01))
    assert params.epochs_and_lr("mobilenet_v3_small") == (5, 0.01)


def test_candidates_of_a_model_a_list_and_auto() -> None:
    zoo = list(get_task("classification").models)
    assert parse_params(_params(model="resnet18")).candidates() == ["resnet18"]
    listed = parse_params(_params(model=["resnet18", "small_cnn", "resnet18"]))
    assert listed.candidates() == ["resnet18", "small_cnn"]
    assert parse_params(_params(model="auto")).candidates() == zoo


def test_auto_trains_a_model_too_big_for_the_input_size_at_its_minimum() -> None:
    recipes = get_task("classification").recipes
    auto = parse_params(_params(model="auto"))
    assert recipes["mobilenet_v3_small"].min_image_size == 64
    assert auto.candidates(image_size=32) == ["small_cnn", "mobilenet_v3_small@64", "resnet18"]
    assert auto.candidate_sizes(32) == [64]
    assert auto.candidates(image_size=64) == auto.candidates()  # every model fits 64 px
    assert auto.candidate_sizes(64) == []
    listed = parse_params(_params(model=["mobilenet_v3_small", "small_cnn"]))
    assert listed.candidates(image_size=32) == ["mobilenet_v3_small", "small_cnn"]  # asked for: at 32 px


def test_model_at_size_entries_are_validated_and_normalised() -> None:
    assert split_candidate("mobilenet_v3_small@64") == ("mobilenet_v3_small", 64)
    assert split_candidate("small_cnn") == ("small_cnn", None)
    assert split_candidate("small_cnn@big") == ("small_cnn@big", None)
    listed = parse_params(_params(model=["small_cnn", "small_cnn@32", "small_cnn@48", "resnet18@48"]))
    # an entry at the run's own size is that model; the same model at two sizes is two candidates
    assert listed.candidates(image_size=32) == ["small_cnn", "small_cnn@48", "resnet18@48"]
    assert listed.candidate_sizes(32) == [48]
    assert listed.candidates(image_size=48) == ["small_cnn", "small_cnn@32", "resnet18"]
    for bad, message in [
        ("small_cnn@big", "'small_cnn@big' is not auto or one of"),
        ("small_cnn@8", "the size after @ must be 16..1024"),
        ("tiny_net@64", "'tiny_net' \\(in 'tiny_net@64'\\) is not auto or one of"),
        (
            "@64",
            "'' \\(in '@64'\\) is not auto or one of .* \\(model@size: a zoo model, @, a size in pixels\\)",
        ),
    ]:
        with pytest.raises(EdgeopsError, match=message):
            parse_params(_params(model=[bad]))


def test_an_image_size_list_makes_every_model_a_candidate_at_each_size() -> None:
    listed = parse_params(_params(model=["small_cnn", "resnet18@40"], image_size=[32, 48]))
    assert listed.image_sizes(32) == [32, 48]
    assert listed.candidates(image_size=32) == ["small_cnn", "small_cnn@48", "resnet18@40"]
    assert listed.candidate_sizes(32) == [40, 48]
    auto = parse_params(_params(model="auto", image_size=[32, 48, 64]))
    assert auto.candidates(image_size=32) == [
        "small_cnn", "small_cnn@48", "small_cnn@64", "mobilenet_v3_small@64",  # not below its minimum
        "resnet18", "resnet18@48", "resnet18@64",
    ]  # fmt: skip
    for bad in ([], [32, 8], ["auto"]):
        with pytest.raises(EdgeopsError, match="image_size"):
            parse_params(_params(image_size=bad))


def test_prepare_uses_the_first_size_of_a_list() -> None:
    from edgeops.pipeline.prepare import model_input_size

    params = parse_params(_params(image_size=[48, 32]))
    assert model_input_size(params, get_task("classification"), None) == 48  # type: ignore[arg-type]
    assert params.candidates(48) == ["small_cnn", "small_cnn@32"] and params.candidate_sizes(48) == [32]


def test_prepare_decodes_each_candidate_size_and_load_split_finds_it(tmp_path) -> None:
    from PIL import Image

    from edgeops.pipeline.prepare import load_split, prepare_dataset, read_manifest

    shapes = _shapes_split(6, 40, seed=0)
    for i, (image, label) in enumerate(zip(shapes.images, shapes.targets, strict=True)):
        (tmp_path / "data" / LABELS[label]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(tmp_path / "data" / LABELS[label] / f"{i}.png")
    raw = _params(model=["small_cnn", "mobilenet_v3_small@64"], image_size=24)
    raw["data"]["path"] = str(tmp_path / "data")
    manifest = prepare_dataset(parse_params(raw), tmp_path / "prepared", log=lambda _: None)
    assert manifest["image_size"] == 24 and manifest["extra_sizes"] == [64]
    assert read_manifest(tmp_path / "prepared")["extra_sizes"] == [64]
    for name in ("train", "val", "test"):
        base, big = load_split(tmp_path / "prepared", name), load_split(tmp_path / "prepared", name, 64)
        assert base.images.shape[1:] == (24, 24, 3) and big.images.shape[1:] == (64, 64, 3)
        assert (base.targets == big.targets).all()  # the same images, in the same order
        assert load_split(tmp_path / "prepared", name, 24).images.shape == base.images.shape
    with pytest.raises(EdgeopsError, match="holds no 48 px copy of the data; rerun the prepare stage"):
        load_split(tmp_path / "prepared", "train", 48)


def test_a_candidate_at_another_size_trains_on_the_data_at_that_size(monkeypatch) -> None:
    seen = []
    real_fit = train_module.fit

    def spy(model, task, labels, train, val, **kwargs):
        seen.append((kwargs["tag"], train.images.shape[1], val.images.shape[1]))
        return real_fit(model, task, labels, train, val, **{**kwargs, "epochs": 1})

    monkeypatch.setattr(train_module, "fit", spy)
    params = parse_params(_params(model=["small_cnn", "small_cnn@24"], image_size=16))
    small, large = _shapes_split(4, 16, seed=0), _shapes_split(4, 24, seed=0)
    result = train_model(params, small, small, LABELS, lambda _: None, splits_at=lambda size: (large, large))
    assert seen == [("train small_cnn", 16, 16), ("train small_cnn@24", 24, 24)]
    assert [(c.name, c.model, c.image_size) for c in result.candidates] == [
        ("small_cnn", "small_cnn", 16),
        ("small_cnn@24", "small_cnn", 24),
    ]
    with pytest.raises(EdgeopsError, match="no data at 24px was prepared"):
        train_model(params, small, small, LABELS, lambda _: None)


@pytest.mark.parametrize("task", task_names())
def test_auto_with_pretrained_takes_only_the_models_with_imagenet_weights(task: str) -> None:
    raw = yaml.safe_load(yaml.safe_dump(ROOT_PARAMS))
    raw["task"], raw["train"]["pretrained"] = task, True
    raw["by_task"][task]["model"] = "auto"
    vision = get_task(task)
    with_weights = [m for m in vision.models if vision.recipes[m].imagenet_weights]
    if with_weights:
        assert parse_params(raw).candidates() == with_weights
    else:
        with pytest.raises(EdgeopsError, match="no detection model has ImageNet weights"):
            parse_params(raw).candidates()
    for name in vision.models:  # the recipe tells the truth: a model without weights refuses them
        if name not in with_weights:
            with pytest.raises(EdgeopsError, match="no pretrained weights"):
                vision.build_model(name, 3, pretrained=True)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("nope", "'nope' is not auto or one of small_cnn"),
        (["small_cnn", "auto"], "auto means the whole zoo"),
        ([], "an empty list"),
        ("small_cnn", None),
    ],
)
def test_bad_models_are_named_in_one_line(model, message) -> None:
    if message is None:
        parse_params(_params(model=model))
        return
    with pytest.raises(EdgeopsError, match=message) as e:
        parse_params(_params(model=model))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("bad", [{"epochs": "many"}, {"epochs": 0}, {"lr": "fast"}, {"lr": 0}])
def test_bad_epochs_or_lr_is_an_error(bad) -> None:
    with pytest.raises(EdgeopsError, match="by_task.classification"):
        parse_params(_params(**bad))


def _candidate(model: str, val: float, parameters: int, image_size: int = 32) -> Candidate:
    return Candidate(
        name=model, model=model, image_size=image_size, best_val=val, parameters=parameters, epochs=3,
        seconds=1.0, stopped="max_epochs", max_epochs=3, lr=1e-3,
    )  # fmt: skip


def test_pick_candidate_takes_the_best_score_and_a_tie_goes_to_the_smaller_model() -> None:
    assert pick_candidate([_candidate("a", 0.80, 10), _candidate("b", 0.85, 1000)]) == 1
    assert pick_candidate([_candidate("big", 0.85, 1000), _candidate("small", 0.85, 10)]) == 1
    assert pick_candidate([_candidate("small", 0.85, 10), _candidate("big", 0.85, 1000)]) == 0
    assert pick_candidate([_candidate("only", 0.1, 5)]) == 0
    at_32, at_24 = _candidate("small_cnn", 0.9, 10, 32), _candidate("small_cnn@24", 0.9, 10, 24)
    assert (
        pick_candidate([at_32, at_24]) == 1 and pick_candidate([at_24, at_32]) == 0
    )  # then the smaller input


def test_candidate_budget_splits_what_is_left() -> None:
    assert candidate_budget(None, 50, 2) is None
    assert candidate_budget(300, 0, 3) == 100
    assert candidate_budget(300, 60, 2) == 120  # the first one stopped early: the rest share its savings
    assert candidate_budget(300, 400, 1) == 1.0  # overrun: the last one still gets an epoch


@pytest.mark.parametrize("seed", range(4))
def test_candidates_share_one_budget_and_never_overrun_it_by_more_than_an_epoch_each(
    seed: int, monkeypatch
) -> None:
    """The real train_model on a fake clock: every candidate's epochs take random times."""
    rng = random.Random(seed)
    clock = _fake_epochs(monkeypatch, [rng.uniform(1, 15) for _ in range(200)])
    budget = rng.uniform(20, 80)
    raw = _params(model=["small_cnn", "mobilenet_v3_small"], epochs=6, image_size=32)
    raw["train"]["budget_seconds"] = budget
    params = parse_params(raw)
    data = _shapes_split(6, 32, seed=0)
    start, lines = clock.now, []
    result = train_model(params, data, data, LABELS, lines.append)
    assert [c.model for c in result.candidates] == ["small_cnn", "mobilenet_v3_small"]
    longest = max(r["seconds"] for r in result.history) if result.history else 0
    assert clock.now - start <= budget + 2 * max(15.0, longest)
    assert result.kept is result.candidates[pick_candidate(result.candidates)]
    assert any("<- kept" in line for line in lines)


def test_one_model_trains_as_before_with_its_recipe(monkeypatch) -> None:
    seen = {}
    real_fit = train_module.fit

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real_fit(*args, **{**kwargs, "epochs": 1})

    monkeypatch.setattr(train_module, "fit", spy)
    params = parse_params(_params(model="small_cnn", epochs="auto", lr="auto", image_size=16))
    data = _shapes_split(6, 16, seed=0)
    result = train_model(params, data, data, LABELS, lambda _: None)
    recipe = get_task("classification").recipes["small_cnn"]
    assert (seen["epochs"], seen["lr"], seen["tag"]) == (recipe.epochs, recipe.lr, "train")
    assert result.kept.model == "small_cnn" and len(result.candidates) == 1
    assert (result.kept.max_epochs, result.kept.lr) == (recipe.epochs, recipe.lr)


def test_report_names_the_model_and_why_the_other_candidates_lost() -> None:
    from edgeops.pipeline.report import training_section

    training = {
        "model": "small_cnn",
        "best_val_score": 0.85,
        "epochs": 8,
        "stopped": "max_epochs",
        "candidates": [
            {"model": "small_cnn", "best_val": 0.85, "parameters": 288_000, "epochs": 8, "seconds": 50.0,
             "stopped": "max_epochs"},
            {"name": "mobilenet_v3_small@64", "model": "mobilenet_v3_small", "image_size": 64, "best_val": 0.70,
             "parameters": 1_500_000, "epochs": 12, "seconds": 120.0, "stopped": "budget"},
            {"model": "resnet18", "best_val": 0.85, "parameters": 11_000_000, "epochs": 5, "seconds": 130.0,
             "stopped": "budget"},
        ],
    }  # fmt: skip
    text = "\n".join(training_section("accuracy", training))
    assert "Every variant comes from `small_cnn`" in text
    assert "| small_cnn |  | 0.29 | 0.8500 | 8 | 50 | max_epochs | **kept** |" in text  # an older train.json
    assert "| mobilenet_v3_small@64 | 64 | 1.50 | 0.7000 | 12 | 120 | budget | val -0.1500 |" in text
    assert "| resnet18 |  | 11.00 | 0.8500 | 5 | 130 | budget | tie: larger model |" in text
    same_model = {**training, "candidates": [training["candidates"][0], {**training["candidates"][0], "name": "small_cnn@48",
                                                                        "image_size": 48}]}  # fmt: skip
    assert "| small_cnn@48 | 48 | 0.29 | 0.8500 | 8 | 50 | max_epochs | tie: larger input |" in "\n".join(
        training_section("accuracy", same_model)
    )
    single = {k: v for k, v in training.items() if k != "candidates"}
    assert "candidates" not in "\n".join(training_section("accuracy", single))
    assert training_section("accuracy", {}) == []
