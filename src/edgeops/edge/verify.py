"""Verifying a model folder before it is used: sizes and sha256s against its manifest, and OpenVINO loading it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgeops.edge.publish import (
    MANIFEST,
    REQUIRED_FILES,
)
from edgeops.errors import EdgeopsError
from edgeops.files import sha256_file


class IntegrityError(EdgeopsError):
    """A downloaded version failed verification; the current model was kept."""


def verify_file(path: Path, name: str, entry: dict[str, Any], where: str) -> None:
    size = path.stat().st_size
    if size != entry.get("size"):
        raise IntegrityError(
            f"{name} from {where} has {size} bytes, manifest says {entry.get('size')}: partial or tampered "
            "download refused, current model kept"
        )
    actual = sha256_file(path)
    if actual != entry.get("sha256"):
        raise IntegrityError(
            f"{name} from {where} has sha256 {actual[:12]}…, manifest says {str(entry.get('sha256'))[:12]}…: "
            "tampered or corrupt file refused, current model kept"
        )


def local_damage(folder: Path) -> str | None:
    """Why an installed version folder can't be trusted (missing, truncated, tampered file), or None.

    Checks every file against the folder's own manifest.json: sizes, then sha256."""
    if not folder.is_dir():
        return f"{folder} is missing"
    try:
        files = json.loads((folder / MANIFEST).read_text())["files"]
        if not isinstance(files, dict) or not all(n in files for n in REQUIRED_FILES):
            return f"{folder / MANIFEST} is not a valid manifest"
        for name, entry in files.items():
            if not (folder / name).is_file():
                return f"{name} is missing from {folder}"
            verify_file(folder / name, name, entry, str(folder))
    except FileNotFoundError:
        return f"{folder} has no {MANIFEST}"
    except (ValueError, KeyError, TypeError, AttributeError):
        return f"{folder / MANIFEST} is not a valid manifest"
    except IntegrityError as e:
        return str(e).split(":", 1)[0]  # "model.bin from DIR has N bytes, manifest says M"
    except OSError as e:
        return f"cannot read {folder}: {e.strerror or e}"
    return None


def verify_folder(folder: Path) -> None:
    """Raise IntegrityError unless every file of an installed version matches its manifest."""
    damage = local_damage(folder)
    if damage:
        raise IntegrityError(f"v{folder.name} on disk is damaged: {damage}; not loading it")


def disk_error(agent_dir: Path, e: OSError) -> EdgeopsError:
    """A local write/read failure (disk full, read-only, permissions) as one actionable line."""
    where = e.filename or agent_dir
    return EdgeopsError(
        f"cannot write the agent folder {agent_dir}: {e.strerror or e} ({where}); "
        "free space or fix permissions and re-run, current model kept"
    )


def check_loadable(folder: Path) -> None:
    """The last gate before a swap: OpenVINO must read the IR and it must match model.json."""
    import openvino as ov

    meta = json.loads((folder / "model.json").read_text())
    try:
        model = ov.Core().read_model(str(folder / "model.xml"))
    except Exception as e:  # openvino raises RuntimeError subclasses with long messages
        raise IntegrityError(f"model.xml does not load in OpenVINO: {str(e).splitlines()[0]}") from None
    want = meta.get("input", {}).get("shape")
    got = (
        list(model.inputs[0].get_partial_shape().to_shape())
        if model.inputs[0].get_partial_shape().is_static
        else None
    )
    if want and got and list(want) != got:
        raise IntegrityError(f"model.xml input shape {got} does not match model.json input.shape {want}")
