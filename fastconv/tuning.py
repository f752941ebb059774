"""Per-shape backend choice for backend="auto" on CUDA.

The benchmark suite (bench/) can write a table of the measured-faster backend per op and shape to
``fastconv/tuned/<device>.json``; ``lookup`` reads it. Without a table for this device the static
preference in ``fastconv._common.resolve_backend`` applies (cuda, then triton).
"""
from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path
from typing import Optional

import torch

TUNED_DIR = Path(__file__).parent / "tuned"


def device_key(device: torch.device) -> str:
    name = torch.cuda.get_device_name(device)
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower()


def shape_key(x: torch.Tensor) -> str:
    fmt = "nhwc" if (not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)) else "nchw"
    return f"{tuple(x.shape)}|{str(x.dtype).replace('torch.', '')}|{fmt}"


@functools.lru_cache(maxsize=None)
def _table(dev: str) -> dict:
    path = Path(os.environ.get("FASTCONV_TUNED_TABLE", TUNED_DIR / f"{dev}.json"))
    if not path.is_file():
        return {}
    return json.loads(path.read_text())


def lookup(op: str, x: torch.Tensor) -> Optional[str]:
    """The measured-faster backend for ``op`` on x's shape/dtype/layout, or None if not tuned."""
    if x.device.type != "cuda":
        return None
    return _table(device_key(x.device)).get(op, {}).get(shape_key(x))
