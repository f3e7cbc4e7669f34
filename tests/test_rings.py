"""The pure ring (bundle/, routing/, agent/, sans-I/O CL cores) does no I/O and reads no OS clock."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "dtn"
PURE = [ROOT / "bundle", ROOT / "routing", ROOT / "agent"]
PURE_FILES = ["convergence/tcpcl/messages.py", "convergence/tcpcl/session.py", "convergence/udpcl/framing.py"]
BANNED_MODULES = {"asyncio", "socket", "sqlalchemy", "aiohttp", "asyncio_dgram", "time", "selectors", "ssl"}
BANNED_CALLS = {("datetime", "now"), ("datetime", "utcnow"), ("random", "random"), ("random", "randint")}


def pure_files() -> list[Path]:
    files = [p for d in PURE if d.exists() for p in d.rglob("*.py")]
    files += [ROOT / f for f in PURE_FILES if (ROOT / f).exists()]
    return files


def test_pure_ring_has_files() -> None:
    assert any(p.name == "eid.py" for p in pure_files()), "the codec belongs to the pure ring"


def test_pure_ring_imports_no_io_and_no_clock() -> None:
    offences = []
    for path in pure_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module.split(".")[0]]
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                if (node.value.id, node.attr) in BANNED_CALLS:
                    offences.append(f"{path}:{node.lineno}: {node.value.id}.{node.attr}")
                continue
            else:
                continue
            offences += [f"{path}:{node.lineno}: import {n}" for n in names if n in BANNED_MODULES]
    assert offences == []
