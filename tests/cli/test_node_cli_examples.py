"""The commented configurations in examples/ are valid, and the three-node line example really moves a file."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from dtn.config import load_config
from tests.system.procs import Dtnd, command, free_ports, run_cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("path", sorted(EXAMPLES.rglob("*.toml")), ids=lambda p: p.name)
def test_example_is_a_valid_configuration(path: Path) -> None:
    config = load_config(path)
    assert config.node_id


def test_line_example_moves_a_file(tmp_path: Path) -> None:
    ports = free_ports(6)
    fixed = ["4556", "4557", "4558", "4242", "4243", "4244"]
    for name in ("ipn1.toml", "ipn2.toml", "ipn3.toml"):
        text = (EXAMPLES / "line" / name).read_text(encoding="utf-8")
        text = re.sub(r"\b(4556|4557|4558|4242|4243|4244)\b", lambda m: str(ports[fixed.index(m.group(1))]), text)
        (tmp_path / name).write_text(text, encoding="utf-8")
    nodes = [Dtnd(tmp_path / "dtn-data", ["--config", str(tmp_path / f"ipn{i}.toml"), "--durability", "process"])
             for i in (1, 2, 3)]
    try:
        for node in nodes:
            node.start()
        assert [n.api for n in nodes] == [f"127.0.0.1:{p}" for p in ports[3:]]
        receiver = subprocess.Popen([*command("dtnrecv"), "--api", nodes[2].api, "--endpoint", "ipn:3.1", "--out",
                                     str(tmp_path / "received"), "--timeout", "60"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        document = tmp_path / "some-file.pdf"
        document.write_bytes(b"%PDF-1.7 example\n" * 500)
        sent = run_cli("dtnsend", "--api", nodes[0].api, "--to", "ipn:3.1", "--wait", "--timeout", "60",
                       str(document))
        assert sent.returncode == 0, sent.stderr.decode() + nodes[1].log()
        _, err = receiver.communicate(timeout=60)
        assert receiver.returncode == 0, err.decode()
        assert (tmp_path / "received" / "some-file.pdf").read_bytes() == document.read_bytes()
        ping = run_cli("dtnping", "--api", nodes[0].api, "ipn:3", "--count", "1")
        assert ping.returncode == 0, ping.stdout.decode() + ping.stderr.decode()
        assert (tmp_path / "dtn-data" / "ipn2" / "store.sqlite").exists()
    finally:
        for node in nodes:
            if node.running:
                assert node.terminate() == 0, node.log()
