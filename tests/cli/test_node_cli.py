"""dtnd, dtnsend, dtnrecv, dtnping and dtn status|neighbours|bundles|routes as real subprocesses against a real
dtnd on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import signal
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.system.procs import Dtnd, command, dtnd, free_port, run_cli


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dtnd]:
    tmp = tmp_path_factory.mktemp("cli-node")
    proc = dtnd(tmp, "n1", "ipn:1", neighbours=[f"ipn:2=tcpcl://127.0.0.1:{free_port()}"],
                routes=["ipn:9.*=ipn:2"]).start()
    yield proc
    assert proc.terminate() == 0, proc.log()
    assert "node ipn:1.0 stopped" in proc.log()


def text(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stdout.decode() + result.stderr.decode()


def test_dtnd_help_documents_every_option() -> None:
    result = run_cli("dtnd", "--help")
    assert result.returncode == 0
    for option in ("--node", "--data-dir", "--store", "--api", "--api-token", "--listen", "--neighbour", "--route",
                   "--config", "--log-level", "--clock-rate", "--epoch", "--durability", "--plan"):
        assert option in result.stdout.decode(), option


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["--node", "ipn:x"], "node_id"),
        ([], "node_id"),
        (["--node", "ipn:2", "--neighbour", "ipn:1"], "--neighbour"),
        (["--node", "ipn:2", "--listen", "http://127.0.0.1:80"], "listen[0]"),
        (["--node", "ipn:2", "--api", "0.0.0.0:4242"], "api.bind"),
        (["--node", "ipn:2", "--route", "ipn:9.*=nonsense"], "route[0].via"),
        (["--node", "ipn:2", "--log-level", "loud"], "--log-level"),
    ],
)
def test_dtnd_configuration_errors(args: list[str], key: str, tmp_path: Path) -> None:
    result = run_cli("dtnd", "--data-dir", str(tmp_path), *args)
    assert result.returncode == 2
    assert key in result.stderr.decode() and "Traceback" not in result.stderr.decode()


def test_dtnd_config_file_with_flags_over_it(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    port = free_port()
    config.write_text('node_id = "ipn:5"\ndata_dir = "data"\n[api]\nbind = "127.0.0.1:1"\n', encoding="utf-8")
    proc = Dtnd(tmp_path / "data", ["--config", str(config), "--api", f"127.0.0.1:{port}"]).start()
    try:
        assert proc.ready_line.startswith(f"dtnd ipn:5.0 ready: api 127.0.0.1:{port}")
        status = json.loads(run_cli("dtn", "status", "--json", "--api", proc.api).stdout)
        assert status["node_id"] == "ipn:5.0"
        assert (tmp_path / "data" / "store.sqlite").exists()  # data_dir relative to the file
    finally:
        assert proc.terminate() == 0
    bad = tmp_path / "bad.toml"
    bad.write_text('node_id = "ipn:5"\n[api]\nbindd = "x"\n', encoding="utf-8")
    result = run_cli("dtnd", "--config", str(bad))
    assert result.returncode == 2 and "api.bindd" in result.stderr.decode() and str(bad) in result.stderr.decode()


@pytest.mark.parametrize(
    "args",
    [
        ("dtnsend", "--to", "ipn:2.1", os.devnull),
        ("dtnrecv", "--endpoint", "ipn:2.1"),
        ("dtnping", "ipn:2"),
        ("dtn", "status"),
        ("dtn", "neighbours"),
        ("dtn", "bundles", "--json"),
        ("dtn", "routes"),
    ],
)
def test_every_client_says_when_dtnd_is_not_running(args: tuple[str, ...]) -> None:
    address = f"127.0.0.1:{free_port()}"
    result = run_cli(args[0], *args[1:], env={"DTN_API": address})
    assert result.returncode == 3
    assert result.stderr.decode().strip().splitlines() == [f"{args[0]}: dtnd is not running at {address}"]


def test_not_running_on_a_unix_socket() -> None:
    unix = run_cli("dtn", "status", "--api", "unix:/nonexistent/dtn.sock")
    assert unix.returncode == 3
    assert unix.stderr.decode() == "dtn: dtnd is not running at unix:/nonexistent/dtn.sock\n"


def test_send_and_receive_a_file(node: Dtnd, tmp_path: Path) -> None:
    source = tmp_path / "report.pdf"
    source.write_bytes(os.urandom(200_000))
    sent = run_cli("dtnsend", "--api", node.api, "--to", "ipn:1.1", str(source), "--lifetime", "1h")
    assert sent.returncode == 0, text(sent)
    bundle_id = sent.stdout.decode().strip()
    assert bundle_id.startswith("ipn:1.0/")
    listed = json.loads(run_cli("dtn", "bundles", "--json", "--api", node.api).stdout)
    assert bundle_id in [b["id"] for b in listed]
    table = run_cli("dtn", "bundles", "--api", node.api).stdout.decode()
    assert table.splitlines()[0].split()[:2] == ["ID", "DESTINATION"] and bundle_id in table
    out = tmp_path / "inbox"
    received = run_cli("dtnrecv", "--api", node.api, "--endpoint", "ipn:1.1", "--out", str(out), "--count", "1",
                       "--timeout", "20")
    assert received.returncode == 0, text(received)
    assert (out / "report.pdf").read_bytes() == source.read_bytes()
    assert bundle_id in received.stdout.decode() and str(out / "report.pdf") in received.stdout.decode()
    # the same name again does not overwrite
    run_cli("dtnsend", "--api", node.api, "--to", "ipn:1.1", str(source))
    again = run_cli("dtnrecv", "--api", node.api, "--endpoint", "ipn:1.1", "--out", str(out), "--timeout", "20")
    assert again.returncode == 0, text(again)
    assert (out / "report-1.pdf").read_bytes() == source.read_bytes()
    assert not [b for b in json.loads(run_cli("dtn", "bundles", "--json", "--api", node.api).stdout)
                if b["destination"] == "ipn:1.1"]


def test_stdin_to_stdout_and_wait_for_delivery(node: Dtnd) -> None:
    receiver = subprocess.Popen(
        [*command("dtnrecv"), "--api", node.api,
         "--endpoint", "ipn:1.2", "--count", "2", "--timeout", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    first = run_cli("dtnsend", "--api", node.api, "--to", "ipn:1.2", "-", "--wait", "--timeout", "30",
                    input_bytes=b"from stdin\n")
    assert first.returncode == 0, text(first)
    assert "delivered" in first.stderr.decode()
    second = run_cli("dtnsend", "--api", node.api, "--to", "ipn:1.2", "--report", "received",
                     input_bytes=b"second\n")
    assert second.returncode == 0, text(second)
    out, err = receiver.communicate(timeout=60)
    assert receiver.returncode == 0, err.decode()
    assert out == b"from stdin\nsecond\n"
    assert err.decode().count("bytes") == 2


def test_a_large_payload_from_stdin_to_stdout(node: Dtnd) -> None:
    """17 MiB through pipes: dtnsend streams stdin without a length (the node keeps it in a temporary file, then
    sends it as two fragments); dtnrecv gets the reassembled bundle into a spool file, then copies it out."""
    payload = os.urandom(17 << 20)
    before = statistics(node)
    sent = run_cli("dtnsend", "--api", node.api, "--to", "ipn:1.4", "-", input_bytes=payload, timeout_s=120)
    assert sent.returncode == 0, text(sent)
    received = subprocess.run([*command("dtnrecv"), "--api", node.api, "--endpoint", "ipn:1.4", "--timeout", "60"],
                              capture_output=True, timeout=120, check=False)
    assert received.returncode == 0, received.stderr.decode()
    assert received.stdout == payload
    assert f"{len(payload)} bytes" in received.stderr.decode()
    assert statistics(node)["reassembled"] == before["reassembled"] + 1


def statistics(node: Dtnd) -> dict[str, int]:
    with urllib.request.urlopen(f"http://{node.api}/v1/statistics", timeout=10) as response:
        doc: dict[str, int] = json.loads(response.read())
    return doc


def test_wait_reports_deletion_of_an_expired_bundle(node: Dtnd) -> None:
    # ipn:9 is routed via ipn:2, which is down: the bundle waits, expires, and its deletion is reported.
    result = run_cli("dtnsend", "--api", node.api, "--to", "ipn:9.1", "--lifetime", "500ms", "--wait",
                     "--timeout", "20", input_bytes=b"too late")
    assert result.returncode == 1
    assert "deleted before delivery: lifetime_expired" in result.stderr.decode()


def test_receive_timeout(node: Dtnd) -> None:
    result = run_cli("dtnrecv", "--api", node.api, "--endpoint", "ipn:1.3", "--count", "2", "--timeout", "0.3")
    assert result.returncode == 1 and "received 0 of 2 bundle(s) within 0.3 s" in result.stderr.decode()


def test_ping_the_echo_service(node: Dtnd) -> None:
    result = run_cli("dtnping", "ipn:1", "--api", node.api, "--count", "3", "--interval", "0.05")
    lines = result.stdout.decode().splitlines()
    assert result.returncode == 0, text(result)
    assert lines[0].startswith("PING ipn:1.7 from ipn:1.")
    assert [line.split("seq=")[1].split()[0] for line in lines if "bytes from ipn:1.7" in line] == ["0", "1", "2"]
    assert "3 bundles transmitted, 3 received, 0% bundle loss" in result.stdout.decode()
    assert lines[-1].startswith("rtt min/avg/max/mdev = ")
    lost = run_cli("dtnping", "ipn:9", "--api", node.api, "--count", "1", "--timeout", "0.3")
    assert lost.returncode == 1 and "1 bundles transmitted, 0 received, 100% bundle loss" in lost.stdout.decode()


def test_status_neighbours_routes(node: Dtnd) -> None:
    status = run_cli("dtn", "status", "--api", node.api)
    assert status.returncode == 0 and "node_id" in status.stdout.decode() and "ipn:1.0" in status.stdout.decode()
    neighbours = json.loads(run_cli("dtn", "neighbours", "--json", "--api", node.api).stdout)
    assert [(n["node_id"], n["up"]) for n in neighbours] == [("ipn:2.0", False)]
    assert "ipn:2.0" in run_cli("dtn", "neighbours", "--api", node.api).stdout.decode()
    routes = json.loads(run_cli("dtn", "routes", "--json", "--api", node.api).stdout)
    assert routes == [{"destination": "ipn:9.*", "via": "ipn:2.0", "kind": "static"}]
    assert "ipn:9.*" in run_cli("dtn", "routes", "--api", node.api).stdout.decode()


def test_unix_socket_api(tmp_path: Path) -> None:
    sock = tmp_path / "api.sock"
    proc = Dtnd(tmp_path / "d", ["--node", "ipn:4", "--data-dir", str(tmp_path / "d"), "--api", f"unix:{sock}"])
    proc.start()
    try:
        assert proc.api == f"unix:{sock}"
        result = run_cli("dtn", "status", "--json", env={"DTN_API": f"unix:{sock}"})
        assert json.loads(result.stdout)["node_id"] == "ipn:4.0"
    finally:
        assert proc.terminate() == 0
    assert not sock.exists()


def test_sigint_stops_cleanly_and_a_busy_port_is_one_line(tmp_path: Path) -> None:
    proc = dtnd(tmp_path, "n7", "ipn:7").start()
    busy = run_cli("dtnd", "--node", "ipn:8", "--data-dir", str(tmp_path / "n8"), "--api", proc.api)
    assert busy.returncode == 1
    assert "cannot serve the API" in busy.stderr.decode() and "Traceback" not in busy.stderr.decode()
    assert proc.proc is not None
    proc.proc.send_signal(signal.SIGINT)
    assert proc.proc.wait(30) == 0
    proc.kill()  # joins the stderr reader
    assert "node ipn:7.0 stopped" in proc.log() and "Traceback" not in proc.log()


def on_terminal(args: list[str], timeout_s: float = 120) -> tuple[int, bytes, bytes]:
    """Run a command with its stderr on a pseudo-terminal: (exit code, stdout, what the terminal showed)."""
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=terminal)
        stdout, _ = proc.communicate(timeout=timeout_s)
        os.close(terminal)
        terminal = -1
        shown = b""
        with contextlib.suppress(OSError):  # EIO once the writer side is closed and drained
            while chunk := os.read(controller, 65536):
                shown += chunk
    finally:
        os.close(controller)
        if terminal >= 0:
            os.close(terminal)
    return proc.returncode, stdout, shown


def test_progress_bar_on_a_terminal(node: Dtnd, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 << 20))
    returncode, stdout, shown = on_terminal([*command("dtnsend"), "--api", node.api, "--to", "ipn:1.4", str(big)])
    assert returncode == 0 and stdout.decode().startswith("ipn:1.0/")
    assert b"100%" in shown and b"3.1/3.1 MB" in shown
    quiet = run_cli("dtnsend", "--api", node.api, "--to", "ipn:1.4", str(big))
    assert quiet.returncode == 0 and quiet.stderr == b""  # not a terminal: no progress bar


def test_receive_progress_bar_on_a_terminal(node: Dtnd, tmp_path: Path) -> None:
    big = tmp_path / "large.bin"
    big.write_bytes(os.urandom(17 << 20))  # above the client's spool threshold: streamed to a file, with progress
    sent = run_cli("dtnsend", "--api", node.api, "--to", "ipn:1.6", str(big), timeout_s=120)
    assert sent.returncode == 0, text(sent)
    returncode, _, shown = on_terminal([*command("dtnrecv"), "--api", node.api, "--endpoint", "ipn:1.6", "--out",
                                        str(tmp_path / "in"), "--timeout", "60"])
    assert returncode == 0, shown.decode(errors="replace")
    assert b"100%" in shown and b"17.8/17.8 MB received" in shown
    assert (tmp_path / "in" / "large.bin").read_bytes() == big.read_bytes()
    assert not list((tmp_path / "in").glob(".*"))  # the spool file became large.bin


def test_payload_without_a_file_name_is_named_after_the_bundle_id(node: Dtnd, tmp_path: Path) -> None:
    sent = run_cli("dtnsend", "--api", node.api, "--to", "ipn:1.5", input_bytes=b"nameless")
    assert sent.returncode == 0, text(sent)
    bundle_id = sent.stdout.decode().strip()
    received = run_cli("dtnrecv", "--api", node.api, "--endpoint", "ipn:1.5", "--out", str(tmp_path), "--timeout",
                       "20")
    assert received.returncode == 0, text(received)
    expected = bundle_id.replace(":", "_").replace("/", "_")
    assert (tmp_path / expected).read_bytes() == b"nameless"
    assert [p.name for p in tmp_path.iterdir()] == [expected]  # no partial file left behind
