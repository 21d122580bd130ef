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


# names of the appended postprocessor's operations start with this: quantization ignores them
POSTPROCESSOR_PREFIX = "postprocessor/"


def float_ir(model: nn.Module, task: VisionTask, image_size: int) -> ov.Model:
    """The float IR of a torch network as the edge runs it: u8 NHWC RGB in, the task's outputs out (with
    the task's postprocessor appended, e.g. detection's box decoding), outputs named as the contract says."""
    ir = to_openvino(model, image_size)
    postprocessor = task.postprocessor(model, image_size)
    if postprocessor is not None:
        ir = append_postprocessor(ir, postprocessor)
    ir = with_preprocessing(ir)
    name_outputs(ir, task)
    return ir


def append_postprocessor(network: ov.Model, postprocessor: nn.Module) -> ov.Model:
    """Converts `postprocessor` on its own (input = the network's one output) and feeds it the network's
    output, so NNCF can be told to leave it out of quantization by name (POSTPROCESSOR_PREFIX)."""
    shape = [int(d) for d in network.output(0).get_partial_shape().to_shape()]
    postprocessor.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tail = ov.convert_model(postprocessor, example_input=torch.zeros(shape), input=[shape])
    for op in tail.get_ordered_ops():
        op.set_friendly_name(POSTPROCESSOR_PREFIX + op.get_friendly_name())
    source = network.get_results()[0].input_value(0)
    (parameter,) = tail.get_parameters()
    for target in list(parameter.output(0).get_target_inputs()):
        target.replace_source_output(source)
    return ov.Model(tail.get_results(), network.get_parameters(), network.get_friendly_name())


def postprocessor_ops(model: ov.Model) -> list[str]:
    """Names of the appended postprocessor's operations (empty when the task has none)."""
    return [
        op.get_friendly_name()
        for op in model.get_ops()
        if op.get_friendly_name().startswith(POSTPROCESSOR_PREFIX)
    ]


def name_outputs(model: ov.Model, task: VisionTask) -> None:
    if len(model.outputs) != len(task.output_names):
        raise ValueError(
            f"the IR has {len(model.outputs)} outputs, the {task.name} task names {task.output_names}"
        )
    for output, name in zip(model.outputs, task.output_names, strict=True):
        output.get_tensor().set_names({name})


def with_preprocessing(model: ov.Model) -> ov.Model:
    """Make the IR take u8 NHWC RGB pixels: conversion and normalization run inside the model."""
    ppp = PrePostProcessor(model)
    tensor = ppp.input().tensor()
    tensor.set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC")).set_color_format(ColorFormat.RGB)
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    ppp.input().preprocess().convert_element_type(ov.Type.f32).mean([m * 255 for m in MEAN]).scale(
        [s * 255 for s in STD]
    )
    for i, output in enumerate(model.outputs):  # float outputs stay f32 (also for FP16-stored weights)
        if output.get_element_type().is_real():
            ppp.output(i).tensor().set_element_type(ov.Type.f32)
    built = ppp.build()
    built.input(0).get_tensor().set_names({INPUT_NAME})
    return built


def set_model_info(model: ov.Model, task: VisionTask, labels: list[str], serving: dict | None = None) -> None:
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
        **task.model_info(labels, serving or {}),
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
    serving = meta.get("serving", {})  # AnswerOptions defaults chosen on val (task.serving_defaults)
    name_outputs(model, task)
    set_model_info(model, task, labels, serving)
    with replaced_dir(out_dir) as tmp:
        ov.save_model(model, tmp / "model.xml", compress_to_fp16=compress_to_fp16)
        metrics = dict(meta.get("metrics", {}))
        if measure:
            metrics.update(measure(tmp))
        shape = [int(d) for d in model.input(0).get_partial_shape().to_shape()]
        contract = {
            "format_version": MODEL_FORMAT_VERSION,
            "task": task.name,
            **{k: meta[k] for k in ("model", "candidate") if k in meta},  # the architecture, its candidate
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
            "output": {**task.output_contract(labels, (shape[2], shape[1])), "serving": serving},
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
