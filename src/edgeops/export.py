"""Torch -> OpenVINO IR with the pre-processing inside, and the model folder contract."""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import openvino as ov
import torch
from openvino.preprocess import ColorFormat, PrePostProcessor
from torch import nn

from edgeops.models import MEAN, STD
from edgeops.runtime import sha256_file

INPUT_NAME = "image"
OUTPUT_NAME = "logits"


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
    built.output(0).get_tensor().set_names({OUTPUT_NAME})
    return built


def write_model_dir(
    model: ov.Model,
    out_dir: str | Path,
    meta: dict,
    compress_to_fp16: bool = False,
    measure: Callable[[Path], dict] | None = None,
) -> dict:
    """Save IR + model.json into out_dir atomically; returns the model.json content.

    `measure(folder)` runs on the saved IR before model.json is written: its result joins `metrics`."""
    out = Path(out_dir)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        ov.save_model(model, tmp / "model.xml", compress_to_fp16=compress_to_fp16)
        metrics = dict(meta.get("metrics", {}))
        if measure:
            metrics.update(measure(tmp))
        shape = [int(d) for d in model.input(0).get_partial_shape().to_shape()]
        contract = {
            "task": meta["task"],
            "variant": meta["variant"],
            "precision": meta["precision"],
            "labels": meta["labels"],
            "input": {
                "name": INPUT_NAME,
                "shape": shape,
                "layout": "NHWC",
                "element_type": "u8",
                "color": "RGB",
                "resize": "bilinear, done by the caller (PIL Image.resize)",
            },
            "output": {"name": OUTPUT_NAME, "kind": "logits", "classes": len(meta["labels"])},
            "metrics": metrics,
            "compression": meta.get("compression", {}),
            "dataset_fingerprint": meta.get("dataset_fingerprint"),
            "git_commit": meta.get("git_commit"),
            "mlflow_run_id": meta.get("mlflow_run_id"),
            "files": {name: sha256_file(tmp / name) for name in ("model.xml", "model.bin")},
        }
        (tmp / "model.json").write_text(json.dumps(contract, indent=2))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return contract
