"""Per-model recipes (`epochs: auto`, `lr: auto`) and the model candidates (a list of models, or auto): the plan
that dvc.yaml expands into one train stage per candidate, each within its share of train.budget_seconds."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml

from edgeops.config import parse_params, split_candidate
from edgeops.errors import EdgeopsError
from edgeops.pipeline import plan
from edgeops.pipeline import train as train_module
from edgeops.pipeline.train import train_candidate
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


def test_a_candidate_trains_with_its_own_entry_of_the_plan(monkeypatch) -> None:
    seen = []
    real_fit = train_module.fit

    def spy(model, task, labels, train, val, **kwargs):
        seen.append((kwargs["tag"], train.images.shape[1], kwargs["epochs"], kwargs["batch_size"]))
        return real_fit(model, task, labels, train, val, **{**kwargs, "epochs": 1})

    monkeypatch.setattr(train_module, "fit", spy)
    params = parse_params(_params(model=["small_cnn", "small_cnn@24"], image_size=16, epochs=3, batch_size=8))
    entries = plan.resolve(params)
    assert list(entries) == ["small_cnn", "small_cnn_24"]
    large = _shapes_split(4, 24, seed=0)
    model, history, trained = train_candidate(
        params, entries["small_cnn_24"], large, large, LABELS, lambda _: None, tag="train@small_cnn_24"
    )
    assert seen == [("train@small_cnn_24", 24, 3, 8)]
    assert (trained.name, trained.model, trained.image_size, len(history)) == (
        "small_cnn@24",
        "small_cnn",
        24,
        1,
    )
    assert trained.parameters == sum(p.numel() for p in model.parameters())


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


def test_the_plan_lists_each_candidate_with_its_settings_and_an_even_share_of_the_budget() -> None:
    raw = _params(model=["small_cnn", "mobilenet_v3_small@64"], image_size=32, epochs="auto", lr="auto")
    raw["train"]["budget_seconds"] = 300
    entries = plan.resolve(parse_params(raw))
    recipes = get_task("classification").recipes
    assert entries == {
        "small_cnn": {"name": "small_cnn", "model": "small_cnn", "image_size": None,
                      "epochs": recipes["small_cnn"].epochs, "lr": recipes["small_cnn"].lr, "batch_size": 64,
                      "budget_seconds": 150.0},
        "mobilenet_v3_small_64": {"name": "mobilenet_v3_small@64", "model": "mobilenet_v3_small", "image_size": 64,
                                  "epochs": recipes["mobilenet_v3_small"].epochs,
                                  "lr": recipes["mobilenet_v3_small"].lr, "batch_size": 64, "budget_seconds": 150.0},
    }  # fmt: skip
    assert list(plan.resolve(parse_params(_params(model="auto", image_size=32)))) == [
        "small_cnn",
        "mobilenet_v3_small_64",
        "resnet18",
    ]
    detection = yaml.safe_load(yaml.safe_dump(ROOT_PARAMS)) | {"task": "detection"}
    assert detection["by_task"]["detection"]["image_size"] == "auto"  # resolved by prepare, from the images
    assert [e["image_size"] for e in plan.resolve(parse_params(detection)).values()] == [None]


def test_a_stale_plan_is_rewritten_and_stops_the_stage_with_what_to_do(tmp_path: Path) -> None:
    one, two = (
        parse_params(_params(model="small_cnn")),
        parse_params(_params(model=["small_cnn", "resnet18"])),
    )
    assert plan.write(one, tmp_path) and not plan.write(one, tmp_path)  # unchanged: not rewritten
    assert list(plan.current(one, tmp_path)) == ["small_cnn"]
    with pytest.raises(
        EdgeopsError, match=r"changed \(small_cnn -> small_cnn, resnet18\).*run `dvc repro` again"
    ):
        plan.current(two, tmp_path)
    assert list(plan.read(tmp_path)) == ["small_cnn", "resnet18"]  # the next `dvc repro` expands both
    assert plan.entry(two, "resnet18", tmp_path)["model"] == "resnet18"
    with pytest.raises(EdgeopsError, match="their settings"):
        plan.current(parse_params(_params(model=["small_cnn", "resnet18"], epochs=2)), tmp_path)
    with pytest.raises(EdgeopsError, match="'vgg' is not a model candidate"):
        plan.entry(parse_params(_params(model=["small_cnn", "resnet18"], epochs=2)), "vgg", tmp_path)
    (tmp_path / "candidates.yaml").write_text("candidates: [broken")  # a hand-edited file is rewritten too
    with pytest.raises(EdgeopsError, match="none -> small_cnn"):
        plan.current(one, tmp_path)
    (tmp_path / "candidates.yaml").unlink()  # no file: DVC expanded nothing from it (a stage run by hand)
    assert list(plan.current(two, tmp_path)) == ["small_cnn", "resnet18"]


def test_dvc_expands_a_stage_per_candidate_and_per_candidate_and_variant(tmp_path: Path) -> None:
    import shutil
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    shutil.copy(root / "dvc.yaml", tmp_path)
    raw = _params(model=["small_cnn", "mobilenet_v3_small@64"])
    raw["compress"]["variants"] = {"fp32": {}, "qat": raw["compress"]["variants"]["qat"]}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    plan.write(parse_params(raw), tmp_path)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run([*dvc, "init", "-q"], cwd=tmp_path, check=True)
    listed = subprocess.run(
        [*dvc, "stage", "list", "--name-only"], cwd=tmp_path, check=True, capture_output=True
    )
    stages = listed.stdout.decode().split()
    assert [s for s in stages if s.startswith(("train", "compress"))] == [
        "train@small_cnn",
        "train@mobilenet_v3_small_64",
        "compress@small_cnn-fp32",
        "compress@small_cnn-qat",
        "compress@mobilenet_v3_small_64-fp32",
        "compress@mobilenet_v3_small_64-qat",
    ]
    assert "evaluate@mobilenet_v3_small_64-qat" in stages and "select" in stages
    from edgeops.orchestration.dvcgraph import stage_order

    order = stage_order(tmp_path)  # the flow's order: dependencies first, then as listed (candidates in turn)
    assert order[:4] == ["demo", "prepare", "train@small_cnn", "train@mobilenet_v3_small_64"], order
    assert (
        order.index("compress@small_cnn-qat") < order.index("evaluate@small_cnn-qat") < order.index("select")
    )


def test_each_candidate_keeps_to_its_share_of_the_budget_within_an_epoch(monkeypatch) -> None:
    """The real train_candidate on a fake clock, each candidate in turn as its stage would: random epochs."""
    rng = random.Random(0)
    clock = _fake_epochs(monkeypatch, [rng.uniform(1, 15) for _ in range(200)])
    raw = _params(model=["small_cnn", "mobilenet_v3_small"], epochs=6, image_size=32)
    raw["train"]["budget_seconds"] = 60
    params = parse_params(raw)
    data = _shapes_split(6, 32, seed=0)
    for entry in plan.resolve(params).values():
        start = clock.now
        _, history, trained = train_candidate(params, entry, data, data, LABELS, lambda _: None)
        assert entry["budget_seconds"] == 30
        assert clock.now - start <= 30 + max(r["seconds"] for r in history)
        assert trained.stopped in ("budget", "max_epochs")


def test_one_model_trains_as_before_with_its_recipe(monkeypatch) -> None:
    seen = {}
    real_fit = train_module.fit

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real_fit(*args, **{**kwargs, "epochs": 1})

    monkeypatch.setattr(train_module, "fit", spy)
    params = parse_params(_params(model="small_cnn", epochs="auto", lr="auto", image_size=16))
    data = _shapes_split(6, 16, seed=0)
    (entry,) = plan.resolve(params).values()
    _, _, trained = train_candidate(params, entry, data, data, LABELS, lambda _: None)
    recipe = get_task("classification").recipes["small_cnn"]
    assert (seen["epochs"], seen["lr"], seen["tag"]) == (recipe.epochs, recipe.lr, "train")
    assert trained.model == "small_cnn"
    assert (trained.max_epochs, trained.lr) == (recipe.epochs, recipe.lr)


def test_report_lists_every_candidate_and_its_training() -> None:
    from edgeops.pipeline.report import training_section

    def trained(model: str, size: int, val: float, parameters: int, stopped: str, **extra) -> dict:
        return {"model": model, "image_size": size, "best_val": val, "parameters": parameters, "epochs": 8,
                "seconds": 50.0, "stopped": stopped, **extra}  # fmt: skip

    training = {
        "small_cnn": trained(
            "small_cnn", 32, 0.85, 288_000, "max_epochs", note="small_cnn was still improving"
        ),
        "mobilenet_v3_small_64": trained("mobilenet_v3_small", 64, 0.70, 1_500_000, "budget"),
    }
    text = "\n".join(training_section("accuracy", training))
    assert "## Model candidates" in text
    assert "| small_cnn | small_cnn | 32 | 0.29 | 0.8500 | 8 | 50 | max_epochs |" in text
    assert "| mobilenet_v3_small_64 | mobilenet_v3_small | 64 | 1.50 | 0.7000 | 8 | 50 | budget |" in text
    assert "**Note (small_cnn):** small_cnn was still improving." in text
    single = "\n".join(training_section("accuracy", {"small_cnn": training["small_cnn"]}))
    assert "Every variant comes from `small_cnn` (best val accuracy 0.8500, 8 epochs" in single
    assert "## Model candidates" not in single
    assert training_section("accuracy", {}) == []
