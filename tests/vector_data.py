"""The standard test vectors of tests/vectors/vectors.json (sources named in each entry)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: Every entry as it is in the file: name, source, hex, meaning.
VECTOR_ENTRIES: list[dict[str, Any]] = json.loads(
    (Path(__file__).resolve().parent / "vectors" / "vectors.json").read_text(encoding="utf-8")
)
#: Name -> the vector's bytes.
VECTORS: dict[str, bytes] = {v["name"]: bytes.fromhex(v["hex"]) for v in VECTOR_ENTRIES}
