"""What many tests share: reading procmap's JSON as the Python API would hold it."""

from __future__ import annotations

import json
import re
from typing import Any

# JSON keys whose values are addresses or file offsets: "0x..." strings in every
# command's JSON (numbers past 2**53 lose precision in jq 1.6 and JavaScript).
ADDRESS_KEYS = frozenset(
    (
        "start",
        "end",
        "address",
        "bias",
        "offset",
        "vaddr",
        "entry",
        "value",
        "addr",
        "plan_start",
        "plan_end",
        "user_end",
        "kernel_start",
    )
)
_HEX = re.compile(r"0x[0-9a-f]+")


def procmap_json(text: str | bytes) -> Any:
    """procmap's JSON output, with each address checked to be a hex string and made an int."""
    return json.loads(text, object_hook=_addresses)


def _addresses(d: dict) -> dict:
    for key in ADDRESS_KEYS & d.keys():
        value = d[key]
        if value is None:
            continue
        assert type(value) is str and _HEX.fullmatch(value), f"{key}: {value!r} is not hex text"
        d[key] = int(value, 16)
    return d
