"""Torch -> OpenVINO IR with the pre-processing inside, and the model folder contract."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import openvino as ov
import torch
from openvino.preprocess import ColorFormat, PrePostProcessor
from torch import nn

from edgeops.files import IR_FILES, MODEL_FORMAT_VERSION, MODEL_JSON, replaced_dir, sha256_file
from edgeops.vision import VisionTask, get_task
from edgeops.vision.preprocess import MEAN, STD

INPUT_NAME = "image"


def to_openvino(model: nn.Module, image_size: int) -> ov.Model:
    """Float IR with input f32 NCHW normalized (what NNCF's torch-side variants expect)."""
    model.eval()
    example = torch.zeros(1, 3, image_size, image_size)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit tracing deprecation/tracer notes: not actionable here
        return ov.convert_model(model, example_input=example, input=[(1, 3, image_size, image_size)])


def with_preprocessing(model: ov.Model) -> ov.Model:
    """Make the IR take u8 NHWC RGB pixels: conversion and normalization run inside the model."""
    ppp = PrePostProcessor(model)
    tensor = ppp.input().tensor()
    tensor.set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC")).set_color_format(ColorFormat.RGB)
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    ppp.input().preprocess().convert_element_type(ov.Type.f32).mean([m * 255 for m in MEAN]).scale(
        [s * 255 for s in STD]
    )
    ppp.output().tensor().set_element_type(ov.Type.f32)
    built = ppp.build()
    built.input(0).get_tensor().set_names({INPUT_NAME})
    return built


def set_model_info(model: ov.Model, task: VisionTask, labels: list[str]) -> None:
    """OpenVINO Model API metadata (rt_info model_info), so Model API wrappers can load the IR.

    Our input already takes u8 NHWC RGB and normalizes inside, so the Model API must not do it again:
    mean 0, scale 1, no channel swap (see docs/model-contract.md)."""
    info = {
        "model_type": task.model_api_type,
        "task_type": task.name,
        "labels": " ".join(label.replace(" ", "_") for label in labels),
        "label_ids": " ".join(str(i) for i in range(len(labels))),
        "mean_values": "0 0 0",
        "scale_values": "1 1 1",
        "reverse_input_channels": "False",
        "resize_type": "standard",
        **task.model_info(labels),
    }
    for key, value in info.items():
        model.set_rt_info(value, ["model_info", key])


def write_model_dir(
    model: ov.Model,
    out_dir: str | Path,
    meta: dict,
    compress_to_fp16: bool = False,
    measure: Callable[[Path], dict] | None = None,
) -> dict:
    """Save IR + model.json into out_dir atomically; returns the model.json content.

    `measure(folder)` runs on the saved IR before model.json is written: its result joins `metrics`."""
    task = get_task(meta["task"])
    labels = meta["labels"]
    model.output(0).get_tensor().set_names({task.output_name})
    set_model_info(model, task, labels)
    with replaced_dir(out_dir) as tmp:
        ov.save_model(model, tmp / "model.xml", compress_to_fp16=compress_to_fp16)
        metrics = dict(meta.get("metrics", {}))
        if measure:
            metrics.update(measure(tmp))
        shape = [int(d) for d in model.input(0).get_partial_shape().to_shape()]
        contract = {
            "format_version": MODEL_FORMAT_VERSION,
            "task": task.name,
            "variant": meta["variant"],
            "precision": meta["precision"],
            "labels": labels,
            "input": {
                "name": INPUT_NAME,
                "shape": shape,
                "layout": "NHWC",
                "element_type": "u8",
                "color": "RGB",
                "resize": "bilinear, done by the caller (PIL Image.resize)",
            },
            "output": task.output_contract(labels, (shape[2], shape[1])),
            "metric": task.metric,
            "metrics": metrics,
            "compression": meta.get("compression", {}),
            "dataset_fingerprint": meta.get("dataset_fingerprint"),
            "git_commit": meta.get("git_commit"),
            "mlflow_run_id": meta.get("mlflow_run_id"),
            "files": {name: sha256_file(tmp / name) for name in IR_FILES},
        }
        (tmp / MODEL_JSON).write_text(json.dumps(contract, indent=2))
    return contract
