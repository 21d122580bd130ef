"""NNCF compression methods. Each returns an OpenVINO model that takes u8 NHWC RGB pixels."""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import openvino as ov
import torch
from torch import nn

from edgeops.config import PruneConfig, PtqAcConfig, PtqConfig, QatConfig
from edgeops.pipeline.export import float_ir, postprocessor_ops
from edgeops.pipeline.train import convergence_warning, fit, seed_everything, validation_score
from edgeops.runtime import core, predict_all
from edgeops.vision import Split, VisionTask
from edgeops.vision.base import Recipe
from edgeops.vision.preprocess import normalize

Log = Callable[[str], None]

# torch warns "No CUDA runtime is found" when NNCF imports its extension loader, and of a deprecated Enum
# registration inside torch.export: noise in every compress stage that no user can act on
for _torch_logger in ("torch.utils.cpp_extension", "torch.utils._pytree"):
    logging.getLogger(_torch_logger).setLevel(logging.ERROR)


def use_reference_fake_quantize() -> None:
    """QAT's fake-quantize in torch with NNCF's pure-torch reference functions, run eagerly.

    NNCF's default compiles a C++ extension on the first fake-quantize: ~45-50 s on 2 cores, once per
    TORCH_EXTENSIONS_DIR, so in every fresh clone and workspace (its fallback, these functions through
    torch.compile, costs ~10 s per new input shape). The reference functions compute the same formulas
    (outputs differ only where float rounding lands on a level boundary) and, eagerly, fine-tune about
    as fast as the extension: per training step mobilenet_v3_small, resnet18 and unet within 3 %,
    centernet 8 % and small_cnn 24 % slower, seconds against the compile's ~45 s."""
    from nncf.torch.quantization import extensions, reference

    # as if the extension were loaded already: NNCF neither builds it nor logs "Compiling ... extension"
    extensions.QuantizedFunctionsCPU._loaded_namespace = reference.ReferenceQuantizedFunctions
    for compiled in (reference.torch_forward, reference.torch_backward):
        compiled._compiled_func = compiled._func


@dataclass
class Compressed:
    model: ov.Model
    precision: str  # what the weights are stored as: FP32, FP16, INT8
    compress_to_fp16: bool = False
    details: dict = field(default_factory=dict)  # method-specific facts for reports (sparsity, reverted ops)


def _subset(split: Split, size: int, seed: int) -> np.ndarray:
    """A seeded sample of train images (u8 NHWC) for calibration."""
    rng = np.random.default_rng(seed)
    ix = rng.permutation(len(split))[: min(size, len(split))]
    return split.images[np.sort(ix)]


def _ov_dataset(images_u8: np.ndarray):  # -> nncf.Dataset
    import nncf

    return nncf.Dataset(list(images_u8), lambda img: img[None])


def _torch_dataset(images_u8: np.ndarray, batch_size: int = 1):  # -> nncf.Dataset
    import nncf

    tensors = torch.from_numpy(images_u8)
    batches = [normalize(tensors[i : i + batch_size]) for i in range(0, len(tensors), batch_size)]
    return nncf.Dataset(batches)


def fp32(model: nn.Module, image_size: int, task: VisionTask) -> Compressed:
    return Compressed(float_ir(model, task, image_size), "FP32")


def fp16(model: nn.Module, image_size: int, task: VisionTask) -> Compressed:
    """FP16-compressed weights; the CPU plugin still computes in f32/bf16 after decompression."""
    return Compressed(float_ir(model, task, image_size), "FP16", compress_to_fp16=True)


class _QuietIgnoredOps(logging.Filter):
    """NNCF logs one INFO line per ignored operation: ~60 for a detector's box decoding, none useful."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Not adding activation input quantizer" not in record.getMessage()


_QUIET_IGNORED_OPS = _QuietIgnoredOps()


def _ignored_scope(model: ov.Model, patterns: list[str] | None = None):  # -> nncf.IgnoredScope | None
    """The user's ignored patterns plus the task's postprocessor (box decoding stays in float)."""
    import nncf

    logging.getLogger("nncf").addFilter(_QUIET_IGNORED_OPS)  # added once: filters are kept in a list
    names = postprocessor_ops(model)
    if not patterns and not names:
        return None
    return nncf.IgnoredScope(names=names, patterns=list(patterns or []))


def _preset(name: str):  # -> nncf.QuantizationPreset
    import nncf

    return nncf.QuantizationPreset.MIXED if name == "mixed" else nncf.QuantizationPreset.PERFORMANCE


def ptq(
    model: nn.Module, image_size: int, train: Split, config: PtqConfig, seed: int, log: Log, task: VisionTask
) -> Compressed:
    """Post-training INT8 on the OpenVINO model, calibrated on raw u8 pixels like the edge app feeds."""
    import nncf

    float_model = float_ir(model, task, image_size)
    calibration = _subset(train, config.subset_size, seed)
    log(f"ptq: calibrating on {len(calibration)} train images (preset {config.preset})")
    quantized = nncf.quantize(
        float_model,
        _ov_dataset(calibration),
        preset=_preset(config.preset),
        subset_size=len(calibration),
        fast_bias_correction=config.fast_bias_correction,
        model_type=nncf.ModelType.TRANSFORMER if config.model_type == "transformer" else None,
        ignored_scope=_ignored_scope(float_model, config.ignored_scopes),
    )
    return Compressed(quantized, "INT8", details={"subset_size": len(calibration), "preset": config.preset})


def ptq_ac(
    model: nn.Module,
    image_size: int,
    train: Split,
    val: Split,
    config: PtqAcConfig,
    seed: int,
    log: Log,
    task: VisionTask,
    labels: list[str],
) -> Compressed:
    """INT8 with accuracy control: NNCF reverts the most harmful layers to float until the drop of the
    task's validation metric is within max_drop (absolute)."""
    import nncf

    float_model = float_ir(model, task, image_size)
    calibration = _subset(train, config.subset_size, seed)
    items = list(range(len(val)))

    def validate(compiled: ov.CompiledModel, indices: list) -> float:
        """The task's metric on the val images NNCF passes (indices into val), through OpenVINO."""
        chosen = list(indices)
        subset = Split(val.images[chosen], val.targets[chosen])
        predictions = predict_all(compiled, subset.images, task.decode_output)
        return float(task.score(predictions, subset, labels)[task.metric])

    log(
        f"ptq_ac: calibrating on {len(calibration)} images, validating on {len(items)} (max_drop {config.max_drop})"
    )
    quantized = nncf.quantize_with_accuracy_control(
        float_model,
        calibration_dataset=_ov_dataset(calibration),
        validation_dataset=nncf.Dataset(items),
        validation_fn=validate,
        max_drop=config.max_drop,
        drop_type=nncf.DropType.ABSOLUTE,
        preset=_preset(config.preset),
        subset_size=len(calibration),
        ignored_scope=_ignored_scope(float_model),
    )
    f32 = {"INFERENCE_PRECISION_HINT": "f32"}
    reference = validate(core().compile_model(float_model, "CPU", f32), items)
    achieved = validate(core().compile_model(quantized, "CPU", f32), items)
    float_ops = _count_float_matmul_conv(quantized)
    details = {
        "metric": task.metric,
        "val_score_fp32": reference,
        "val_score": achieved,
        "val_drop": reference - achieved,
        "met_max_drop": reference - achieved <= config.max_drop + 1e-9,
        "float_conv_matmul_ops": float_ops,
    }
    if not details["met_max_drop"]:
        log(
            f"ptq_ac: WARNING could not keep the val drop within {config.max_drop}: {details['val_drop']:.4f}"
        )
    return Compressed(quantized, "INT8", details=details)


def _count_float_matmul_conv(model: ov.Model) -> int:
    """Convolutions/MatMuls whose weights are not fed through a FakeQuantize: layers left in float."""
    count = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() in ("Convolution", "GroupConvolution", "MatMul"):
            weight_producer = op.input_value(1).get_node()
            if weight_producer.get_type_name() not in ("FakeQuantize", "Convert", "Multiply", "Subtract"):
                count += 1
    return count


def _quantize_torch(
    model: nn.Module, train: Split, subset_size: int, seed: int, batch_size: int
) -> nn.Module:
    """NNCF's torch quantization, calibrated in batches of batch_size: its statistics cost about the same
    per call whatever the batch (mobilenet_v3_small, 300 images at 64 px: 62 s one by one, 5 s in batches
    of 32)."""
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters

    use_reference_fake_quantize()
    calibration = _subset(train, subset_size, seed)
    return nncf.quantize(
        model,
        _torch_dataset(calibration, batch_size),
        subset_size=math.ceil(len(calibration) / batch_size),  # NNCF counts dataset items: batches
        advanced_parameters=AdvancedQuantizationParameters(batchwise_statistics=True),
    )


def _strip_to_openvino(model: nn.Module, image_size: int, task: VisionTask) -> ov.Model:
    import nncf

    example = torch.zeros(1, 3, image_size, image_size)
    stripped = nncf.strip(model, example_input=example)
    return float_ir(stripped, task, image_size)


def qat(
    model: nn.Module,
    image_size: int,
    train: Split,
    val: Split,
    config: QatConfig,
    seed: int,
    log: Log,
    task: VisionTask,
    labels: list[str],
    batch_size: int = 64,
    on_epoch: Callable[[dict], None] | None = None,
    train_history: list[dict] | None = None,
    recipe: Recipe | None = None,
) -> Compressed:
    """Quantize in torch, fine-tune with fake-quantization, strip, export INT8.

    Fine-tuning follows the training rules (fit): epochs at most, within config.budget_seconds, early
    stopping with config.patience, the best validation epoch kept; BatchNorm statistics are frozen after
    config.freeze_bn_after_epochs epochs. batch_size: the training batch size (train.batch_size), which
    bounds the fine-tuning memory. train_history: the train stage's rows, if known; when they say FP32 was
    still improving at its last epoch, a note says so (no block). recipe: the model's, for
    freeze_bn_after_epochs: auto (without one, auto freezes after 1 epoch)."""
    freeze_after = config.freeze_bn_after_epochs
    if freeze_after == "auto":
        freeze_after = recipe.qat_freeze_bn_after if recipe else 1
    notes = []
    warning = convergence_warning(train_history) if train_history else None
    if warning:
        notes.append(warning)
        log(f"qat: WARNING {warning}")
    seed_everything(seed)
    model = copy.deepcopy(model).eval()
    quantized = _quantize_torch(model, train, config.subset_size, seed, batch_size)
    before = validation_score(quantized, task, val, labels)
    log(
        f"qat: val {task.metric} after quantization {before:.4f}; fine-tuning {config.epochs} epoch(s) at most"
        + (f" within {config.budget_seconds:.0f}s" if config.budget_seconds else "")
    )
    quantized, history = fit(
        quantized,
        task,
        labels,
        train,
        val,
        epochs=config.epochs,
        lr=config.lr,
        batch_size=batch_size,
        seed=seed,
        log=log,
        tag="qat",
        on_epoch=on_epoch,
        budget_seconds=config.budget_seconds,
        patience=config.patience,
        freeze_bn_after=freeze_after,
        start_score=before,
    )
    return Compressed(
        _strip_to_openvino(quantized, image_size, task),
        "INT8",
        details={
            "val_score_before_finetune": before,
            "finetune_epochs": len(history),
            "finetune_stopped": history[-1]["stopped"],
            "kept_epoch": next((row["epoch"] for row in history if row["kept"]), 0),
            "freeze_bn_after_epochs": freeze_after,
            "notes": notes,
            "history": history,
        },
    )


def prune_int8(
    model: nn.Module,
    image_size: int,
    train: Split,
    val: Split,
    config: PruneConfig,
    seed: int,
    log: Log,
    task: VisionTask,
    labels: list[str],
    batch_size: int = 64,
    on_epoch: Callable[[dict], None] | None = None,
) -> Compressed:
    """Magnitude pruning ramped up to the target sparsity while fine-tuning, BN adaptation, then INT8.

    batch_size: the training batch size (train.batch_size), which bounds the fine-tuning memory.

    Unstructured zeros do not make the CPU runtime faster; the report shows sparsity and size,
    and the latency is measured, not assumed."""
    import nncf
    from nncf.torch.function_hook.pruning.magnitude.schedulers import ExponentialMagnitudePruningScheduler

    seed_everything(seed)
    example = torch.zeros(1, 3, image_size, image_size)
    mode = nncf.PruneMode.UNSTRUCTURED_MAGNITUDE_GLOBAL
    pruned = nncf.prune(copy.deepcopy(model).eval(), mode=mode, ratio=config.ratio, examples_inputs=example)
    scheduler = ExponentialMagnitudePruningScheduler(
        pruned,
        mode=mode,
        initial_ratio=config.ratio / 4,
        target_ratio=config.ratio,
        target_epoch=max(1, config.epochs - 1),
    )
    scheduler.step(0)

    def replan(planned: int) -> None:  # a budget that fits fewer epochs: reach the target ratio sooner
        scheduler.target_epoch = max(1, planned - 1)

    def at_target(epoch: int) -> bool:  # only models at the target sparsity are kept or count for patience
        return scheduler.current_ratio >= config.ratio - 1e-9

    log(
        f"prune_int8: pruning to {config.ratio:.0%} sparsity over {config.epochs} epoch(s) at most"
        + (f" within {config.budget_seconds:.0f}s" if config.budget_seconds else "")
    )
    pruned, history = fit(
        pruned,
        task,
        labels,
        train,
        val,
        epochs=config.epochs,
        lr=config.lr,
        batch_size=batch_size,
        seed=seed,
        log=log,
        tag="prune",
        on_epoch=on_epoch,
        after_epoch=scheduler.step,  # end of epoch: raise sparsity for the next one
        budget_seconds=config.budget_seconds,
        patience=config.patience,
        on_plan=replan,
        eligible=at_target,
    )
    scheduler.step(config.epochs)  # make sure the final model is at the target ratio
    calibration = _subset(train, config.subset_size, seed)
    pruned = nncf.batch_norm_adaptation(
        pruned, _torch_dataset(calibration, batch_size=max(2, min(32, batch_size)))
    )
    stats = nncf.pruning_statistic(pruned)
    sparsity = float(stats.pruning_ratio)
    log(
        f"prune_int8: sparsity {sparsity:.1%} of prunable weights, {stats.global_pruning_ratio:.1%} of all; "
        "quantizing to INT8"
    )
    dense = _strip_to_openvino(pruned, image_size, task)
    quantized = nncf.quantize(
        dense, _ov_dataset(calibration), subset_size=len(calibration), ignored_scope=_ignored_scope(dense)
    )
    return Compressed(
        quantized,
        "INT8",
        details={
            "sparsity": sparsity,
            "sparsity_all_params": float(stats.global_pruning_ratio),
            "target_sparsity": config.ratio,
            "finetune_epochs": len(history),
            "finetune_stopped": history[-1]["stopped"],
            "history": history,
        },
    )
