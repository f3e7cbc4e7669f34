from pathlib import Path

import pytest

from dtn.config import config_from_dict, load_config, normalise_node_id
from dtn.errors import ConfigError

FULL = """
node_id = "ipn:2"
data_dir = "data/node2"
log_level = "debug"
listen = ["tcpcl://127.0.0.1:4557", "udp://127.0.0.1:4557"]

[store]
durability = "process"
quota_bytes = 1_000_000

[api]
bind = "127.0.0.1:4243"

[[neighbour]]
node_id = "ipn:1.0"
url = "tcpcl://127.0.0.1:4556"

[[neighbour]]
node_id = "ipn:3"
url = "udp://127.0.0.1:4558"
rate_bytes_per_s = 125000

[[route]]
destination = "ipn:9.*"
via = "ipn:3.0"
"""


def test_full_config_loads(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text(FULL)
    config = load_config(path)
    assert config.node_id == "ipn:2.0"
    assert config.data_dir == tmp_path / "data/node2"
    assert config.store_url == f"sqlite:///{tmp_path / 'data/node2/store.sqlite'}"
    assert config.store.durability == "process" and config.store.quota_bytes == 1_000_000
    assert config.listen == ("tcpcl://127.0.0.1:4557", "udp://127.0.0.1:4557")
    assert [n.node_id for n in config.neighbours] == ["ipn:1.0", "ipn:3.0"]
    assert config.neighbours[1].rate_bytes_per_s == 125000
    assert config.routes[0].destination == "ipn:9.*" and config.routes[0].via == "ipn:3.0"
    assert config.api.bind == "127.0.0.1:4243"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "node_id: missing"),
        ({"node_id": "ipn:2.1"}, "not a node ID"),
        ({"node_id": "ipn:2.0", "colour": 1}, "colour: unknown key"),
        ({"node_id": "ipn:2.0", "listen": ["http://x:1"]}, "listen[0]"),
        ({"node_id": "ipn:2.0", "listen": ["tcpcl://127.0.0.1"]}, "needs a host and a port"),
        ({"node_id": "ipn:2.0", "store": {"durability": "maybe"}}, "store.durability"),
        ({"node_id": "ipn:2.0", "api": {"bind": "0.0.0.0:4242"}}, "requires api.token"),
        ({"node_id": "ipn:2.0", "api": {"bind": "localhost"}}, "api.bind"),
        ({"node_id": "ipn:2.0", "neighbour": [{"node_id": "ipn:1.0"}]}, "neighbour[0].url: missing"),
        ({"node_id": "ipn:2.0", "route": [{"destination": "ipn:9*", "via": "ipn:3.0"}]}, "route[0].destination"),
        ({"node_id": "ipn:2.0", "log_level": 3}, "log_level: expected str"),
        ({"node_id": "ipn:2.0", "fragment_payload_bytes": 1000}, "fragment_payload_bytes: 1000 is below"),
        ({"node_id": "ipn:2.0", "fragment_payload_bytes": "16M"}, "fragment_payload_bytes: expected int"),
        ({"node_id": "ipn:2.0", "route_method": "dijkstra"}, "route_method: 'dijkstra' is not one of"),
        ({"node_id": "ipn:2.0", "max_bundle_bytes": 10}, "max_bundle_bytes: 10 is below"),
        ({"node_id": "ipn:2.0", "max_bundle_bytes": "4G"}, "max_bundle_bytes: expected int"),
    ],
)
def test_config_errors_name_the_key(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(raw)
    assert message in str(info.value)


def test_max_bundle_bytes_defaults_to_4_gib() -> None:
    assert config_from_dict({"node_id": "ipn:2.0"}).max_bundle_bytes == 4 << 30
    assert config_from_dict({"node_id": "ipn:2.0", "max_bundle_bytes": 1 << 34}).max_bundle_bytes == 1 << 34


def test_api_off_loopback_with_token_is_allowed() -> None:
    config = config_from_dict({"node_id": "dtn://n2/", "api": {"bind": "0.0.0.0:4242", "token": "s3cret"}})
    assert config.api.token == "s3cret"


def test_bad_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("node_id = ")
    with pytest.raises(ConfigError, match="broken.toml: not valid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")


def test_node_id_normalisation() -> None:
    assert normalise_node_id("ipn:7") == "ipn:7.0"
    assert normalise_node_id("dtn://relay/") == "dtn://relay/"
    with pytest.raises(ConfigError, match="did you mean dtn://relay/"):
        normalise_node_id("dtn://relay/inbox")
