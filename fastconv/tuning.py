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


def shape_key(x: torch.Tensor, extra: tuple = ()) -> str:
    """x's shape, dtype and layout plus the op's block configuration ``extra`` (two blocks with the
    same input but different weights must not share a table entry)."""
    fmt = "nhwc" if (not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)) else "nchw"
    key = f"{tuple(x.shape)}|{str(x.dtype).replace('torch.', '')}|{fmt}"
    return key + "".join(f"|{e}" for e in extra)


# op -> (key, backend) of the last eager backend="auto" call on a CUDA tensor; the benchmark reads it
# so that its tables use exactly the keys the ops look up, and reports what auto chose.
LAST: dict = {}


@functools.lru_cache(maxsize=None)
def _table(dev: str) -> dict:
    path = Path(os.environ.get("FASTCONV_TUNED_TABLE", TUNED_DIR / f"{dev}.json"))
    if not path.is_file():
        return {}
    return json.loads(path.read_text())


def lookup(op: str, device: torch.device, key: str) -> Optional[str]:
    """The measured-faster backend for ``op`` under ``key`` (see shape_key) on ``device``, or None."""
    if device.type != "cuda":
        return None
    return _table(device_key(device)).get(op, {}).get(key)
