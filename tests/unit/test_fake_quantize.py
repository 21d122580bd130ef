"""QAT fake-quantizes with NNCF's pure-torch reference functions, eagerly: no C++ extension is compiled
(it cost ~45 s in every fresh clone) and no torch.compile runs, and the outputs still lie on the INT8
grid with straight-through gradients."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from torch import nn

from edgeops.pipeline import compress


class _Tiny(nn.Module):  # not nn.Sequential: it would call NNCF's hook storage as a layer
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Linear(8 * 8 * 8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)).flatten(1))


def _quantized_tiny_model() -> nn.Module:
    import nncf

    torch.manual_seed(0)
    model = _Tiny().eval()
    calibration = nncf.Dataset([torch.randn(1, 3, 8, 8) for _ in range(4)])
    return nncf.quantize(model, calibration, subset_size=4)


def test_qat_fake_quantize_compiles_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nncf.torch.quantization import extensions, reference

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setattr(extensions.QuantizedFunctionsCPU, "_loaded_namespace", None)  # as in a fresh stage
    monkeypatch.setattr(reference.torch_forward, "_compiled_func", reference.torch_forward._compiled_func)
    monkeypatch.setattr(reference.torch_backward, "_compiled_func", reference.torch_backward._compiled_func)

    messages: list[str] = []
    listener = logging.Handler(logging.INFO)
    listener.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("nncf").addHandler(listener)
    try:
        compress.use_reference_fake_quantize()
        model = _quantized_tiny_model().train()
        model(torch.randn(2, 3, 8, 8)).sum().backward()
    finally:
        logging.getLogger("nncf").removeHandler(listener)

    assert (
        extensions.QuantizedFunctionsCPU.get("Quantize_forward")
        is reference.ReferenceQuantizedFunctions.Quantize_forward
    )
    assert reference.torch_forward._compiled_func == reference.torch_forward._func  # eager, not torch.compile
    assert not any(tmp_path.iterdir()), "an NNCF extension was built"
    assert not [m for m in messages if "extension" in m], messages  # no "Compiling ... extension" in the log


def test_reference_fake_quantize_lands_on_the_grid_with_straight_through_gradients() -> None:
    from nncf.torch.quantization.extensions import QuantizedFunctionsCPU

    compress.use_reference_fake_quantize()
    forward = QuantizedFunctionsCPU.get("Quantize_forward")
    backward = QuantizedFunctionsCPU.get("Quantize_backward")
    torch.manual_seed(0)
    x = torch.randn(4, 3, 5, 5) * 2
    # a range whose zero point is a whole level, as NNCF's range setting makes it
    low, width = torch.full((1, 3, 1, 1), -1.0), torch.full((1, 3, 1, 1), 255 / 128)

    out = forward(x, low, width, 256)

    step = width / 255
    levels = out / step  # an integer zero point: every value is a whole number of steps from 0
    assert torch.allclose(levels, levels.round(), atol=1e-3)
    assert levels.round().unique().numel() > 50  # not collapsed onto a few values
    inside = (x >= low) & (x <= low + width)
    assert (out - x)[inside].abs().max() <= step.max() / 2 + 1e-6  # the nearest level
    assert (out - x).abs().max() > 0.5  # values outside the range are clipped to it
    grad_in, _, _ = backward(torch.ones_like(x), x, low, width, 256, -128, 127, True)
    assert torch.equal(grad_in, inside.float())  # straight-through inside the range, zero outside
