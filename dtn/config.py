"""Node configuration: frozen dataclasses loaded from one TOML file, every value validated with a message that
names the key. ``dtnd`` flags override the file (see ``dtn.cli.dtnd``).

    node_id = "ipn:2.0"                 # or "ipn:2" (service 0 implied), "dtn://node2/"
    data_dir = "dtn-data/node2"          # the SQLite store and large payload files live here
    log_level = "info"
    listen = ["tcpcl://127.0.0.1:4557", "udp://127.0.0.1:4557"]
    fragment_payload_bytes = 16_777_216  # larger payloads are sent as fragments of this size; 0: never
    max_bundle_bytes = 4_294_967_296     # largest bundle taken from a TCPCL peer (streamed to a file)
    route_method = "yen"                 # CGR alternatives: "yen" (ION 4) or "suppression" (classic CGR)

    [store]
    url = "sqlite:///dtn-data/node2/store.sqlite"   # default; or postgresql+psycopg://user@host/db
    durability = "power"                # "power": fsync every commit; "process": survive a process crash
    quota_bytes = 10_000_000_000

    [api]
    bind = "127.0.0.1:4243"             # or "unix:/run/dtn/node2.sock"; a token is required off loopback
    token = ""

    [[neighbour]]
    node_id = "ipn:1.0"
    url = "tcpcl://127.0.0.1:4556"
    rate_bytes_per_s = 0                # 0: unpaced

    [[route]]
    destination = "ipn:9.*"
    via = "ipn:3.0"
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dtn.bundle.eid import Eid, IpnEid, parse_eid
from dtn.errors import ConfigError, InvalidEid

CL_SCHEMES = ("tcpcl", "udp", "mem")
LOG_LEVELS = ("debug", "info", "warning", "error")
DURABILITY_LEVELS = ("power", "process")
DEFAULT_API_BIND = "127.0.0.1:4242"
#: Payloads an application sends that are larger than this go out as fragments of this size made at the source
#: (RFC 9171 §5.8), so that no node ever holds more than one piece of them in memory.
DEFAULT_FRAGMENT_PAYLOAD_BYTES = 16 * 1024 * 1024
#: The largest bundle a node takes from a TCPCL peer (its transfer MRU). Bundles above the in-memory threshold
#: (``fragment_payload_bytes``, 16 MiB when 0) are written to the store as they arrive, never held whole.
DEFAULT_MAX_BUNDLE_BYTES = 4 * 1024 * 1024 * 1024
#: Smallest fragment size accepted (below, the per-bundle overhead dominates).
MIN_FRAGMENT_PAYLOAD_BYTES = 64 * 1024
#: How contact graph routing finds alternative routes: Yen's k earliest routes (ION 4) or contact suppression
#: (classic CGR, ION 3: one search per route).
ROUTE_METHODS = ("yen", "suppression")


@dataclass(frozen=True, slots=True)
class NeighbourConfig:
    node_id: str
    url: str
    rate_bytes_per_s: float = 0.0


@dataclass(frozen=True, slots=True)
class RouteConfig:
    destination: str
    via: str


@dataclass(frozen=True, slots=True)
class StoreConfig:
    url: str | None = None
    durability: str = "power"
    quota_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class ApiConfig:
    bind: str = DEFAULT_API_BIND
    token: str = ""


@dataclass(frozen=True, slots=True)
class NodeConfig:
    node_id: str
    data_dir: Path
    log_level: str = "info"
    listen: tuple[str, ...] = ()
    neighbours: tuple[NeighbourConfig, ...] = ()
    routes: tuple[RouteConfig, ...] = ()
    store: StoreConfig = field(default_factory=StoreConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    clock_rate: float = 1.0
    epoch: str | None = None
    plan: Path | None = None
    fragment_payload_bytes: int = DEFAULT_FRAGMENT_PAYLOAD_BYTES
    route_method: str = "yen"
    max_bundle_bytes: int = DEFAULT_MAX_BUNDLE_BYTES

    @property
    def node_eid(self) -> Eid:
        return parse_eid(self.node_id)

    @property
    def store_url(self) -> str:
        return self.store.url or f"sqlite:///{self.data_dir / 'store.sqlite'}"


def normalise_node_id(text: str, key: str = "node_id") -> str:
    """``ipn:2`` → ``ipn:2.0``; checks the EID is a node ID (``ipn:N.0`` or ``dtn://node/``)."""
    candidate = text.strip()
    if candidate.startswith("ipn:") and candidate.count(".") == 0:
        candidate += ".0"
    try:
        eid = parse_eid(candidate)
    except InvalidEid as exc:
        raise ConfigError(f"{key}: {exc}") from exc
    if not eid.is_node_id:
        hint = f" (did you mean {eid.node_id()}?)" if not eid.is_null else ""
        raise ConfigError(f"{key}: {text!r} is not a node ID (ipn:N.0 or dtn://node/){hint}")
    return str(eid)


def check_cl_url(url: str, key: str) -> str:
    """A convergence-layer URL: ``tcpcl://HOST:PORT``, ``udp://HOST:PORT`` or ``mem://NAME``."""
    parts = urlsplit(url)
    if parts.scheme not in CL_SCHEMES:
        known = ", ".join(CL_SCHEMES)
        raise ConfigError(f"{key}: {url!r} has scheme {parts.scheme!r}; expected one of {known}")
    if parts.scheme == "mem":
        if not parts.netloc:
            raise ConfigError(f"{key}: {url!r} needs a name: mem://NAME")
        return url
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{key}: {url!r} has an invalid port") from exc
    if not parts.hostname or port is None:
        raise ConfigError(f"{key}: {url!r} needs a host and a port, e.g. {parts.scheme}://127.0.0.1:4556")
    return url


def check_api_bind(bind: str, token: str, key: str = "api.bind") -> str:
    """``HOST:PORT`` or ``unix:PATH``; anything off loopback requires a bearer token."""
    if bind.startswith("unix:"):
        if len(bind) <= 5:
            raise ConfigError(f"{key}: unix socket path missing: {bind!r}")
        return bind
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{key}: {bind!r} must be HOST:PORT (e.g. 127.0.0.1:4242) or unix:PATH")
    host = host.strip("[]")
    if not is_loopback(host) and not token:
        raise ConfigError(f"{key}: binding the API to {host} (not loopback) requires api.token")
    return bind


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _expect(table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = table[key]
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigError(f"{where}{key}: expected {names}, got {type(value).__name__} {value!r}")
    return value


def _unknown_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise ConfigError(f"{where}{extra[0]}: unknown key (known: {', '.join(sorted(allowed))})")


def _route_pattern(pattern: str, key: str) -> str:
    """``*`` (default route), ``ipn:N.*`` (every service of node N), or an EID, or a ``dtn://`` prefix ending
    in ``*``."""
    if pattern == "*":
        return pattern
    if pattern.endswith("*"):
        stem = pattern[:-1]
        if stem.startswith("ipn:") and stem.endswith(".") and stem.count(".") == 1:
            candidate = stem + "0"
        elif stem.startswith("dtn://") and "/" in stem[6:]:
            candidate = stem
        else:
            raise ConfigError(f"{key}: {pattern!r}: a wildcard must be *, ipn:N.* or dtn://node/prefix*")
    else:
        candidate = pattern
    try:
        parse_eid(candidate)
    except InvalidEid as exc:
        raise ConfigError(f"{key}: {pattern!r}: {exc}") from exc
    return pattern


def config_from_dict(raw: dict[str, Any], *, base_dir: Path | None = None) -> NodeConfig:
    """Validate a parsed TOML document; relative paths are taken relative to ``base_dir``."""
    top = {"node_id", "data_dir", "log_level", "listen", "store", "api", "neighbour", "route", "clock_rate",
           "epoch", "plan", "fragment_payload_bytes", "route_method", "max_bundle_bytes"}
    _unknown_keys(raw, top, "")
    if "node_id" not in raw:
        raise ConfigError("node_id: missing (e.g. node_id = \"ipn:2.0\")")
    node_id = normalise_node_id(_expect(raw, "node_id", str, ""))
    base = base_dir or Path.cwd()
    data_dir = base / _expect(raw, "data_dir", str, "") if "data_dir" in raw else base / "dtn-data"
    log_level = _expect(raw, "log_level", str, "").lower() if "log_level" in raw else "info"
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"log_level: {log_level!r} is not one of {', '.join(LOG_LEVELS)}")
    listen = tuple(
        check_cl_url(_expect({"listen": u}, "listen", str, ""), f"listen[{i}]")
        for i, u in enumerate(_expect(raw, "listen", list, "") if "listen" in raw else [])
    )
    store_raw = _expect(raw, "store", dict, "") if "store" in raw else {}
    _unknown_keys(store_raw, {"url", "durability", "quota_bytes"}, "store.")
    durability = _expect(store_raw, "durability", str, "store.") if "durability" in store_raw else "power"
    if durability not in DURABILITY_LEVELS:
        raise ConfigError(f"store.durability: {durability!r} is not one of {', '.join(DURABILITY_LEVELS)}")
    quota = _expect(store_raw, "quota_bytes", int, "store.") if "quota_bytes" in store_raw else None
    if quota is not None and quota <= 0:
        raise ConfigError(f"store.quota_bytes: must be positive, got {quota}")
    store = StoreConfig(
        url=_expect(store_raw, "url", str, "store.") if "url" in store_raw else None,
        durability=durability,
        quota_bytes=quota,
    )
    api_raw = _expect(raw, "api", dict, "") if "api" in raw else {}
    _unknown_keys(api_raw, {"bind", "token"}, "api.")
    token = _expect(api_raw, "token", str, "api.") if "token" in api_raw else ""
    bind = _expect(api_raw, "bind", str, "api.") if "bind" in api_raw else DEFAULT_API_BIND
    api = ApiConfig(bind=check_api_bind(bind, token), token=token)
    neighbours = []
    for i, item in enumerate(_expect(raw, "neighbour", list, "") if "neighbour" in raw else []):
        where = f"neighbour[{i}]."
        if not isinstance(item, dict):
            raise ConfigError(f"neighbour[{i}]: expected a table with node_id and url")
        _unknown_keys(item, {"node_id", "url", "rate_bytes_per_s"}, where)
        for key in ("node_id", "url"):
            if key not in item:
                raise ConfigError(f"{where}{key}: missing")
        rate = 0.0
        if "rate_bytes_per_s" in item:
            rate = float(_expect(item, "rate_bytes_per_s", (int, float), where))
        if rate < 0:
            raise ConfigError(f"{where}rate_bytes_per_s: must be >= 0, got {rate}")
        neighbours.append(
            NeighbourConfig(
                node_id=normalise_node_id(_expect(item, "node_id", str, where), f"{where}node_id"),
                url=check_cl_url(_expect(item, "url", str, where), f"{where}url"),
                rate_bytes_per_s=rate,
            )
        )
    routes = []
    for i, item in enumerate(_expect(raw, "route", list, "") if "route" in raw else []):
        where = f"route[{i}]."
        if not isinstance(item, dict):
            raise ConfigError(f"route[{i}]: expected a table with destination and via")
        _unknown_keys(item, {"destination", "via"}, where)
        for key in ("destination", "via"):
            if key not in item:
                raise ConfigError(f"{where}{key}: missing")
        routes.append(
            RouteConfig(
                destination=_route_pattern(_expect(item, "destination", str, where), f"{where}destination"),
                via=normalise_node_id(_expect(item, "via", str, where), f"{where}via"),
            )
        )
    clock_rate = float(_expect(raw, "clock_rate", (int, float), "")) if "clock_rate" in raw else 1.0
    if clock_rate <= 0:
        raise ConfigError(f"clock_rate: must be positive, got {clock_rate}")
    plan = base / _expect(raw, "plan", str, "") if "plan" in raw else None
    fragment_bytes = DEFAULT_FRAGMENT_PAYLOAD_BYTES
    if "fragment_payload_bytes" in raw:
        fragment_bytes = _expect(raw, "fragment_payload_bytes", int, "")
        if fragment_bytes != 0 and fragment_bytes < MIN_FRAGMENT_PAYLOAD_BYTES:
            raise ConfigError(
                f"fragment_payload_bytes: {fragment_bytes} is below the minimum of {MIN_FRAGMENT_PAYLOAD_BYTES} "
                "(0 turns source fragmentation off)"
            )
    route_method = _expect(raw, "route_method", str, "") if "route_method" in raw else "yen"
    max_bundle = DEFAULT_MAX_BUNDLE_BYTES
    if "max_bundle_bytes" in raw:
        max_bundle = _expect(raw, "max_bundle_bytes", int, "")
        if max_bundle < MIN_FRAGMENT_PAYLOAD_BYTES:
            raise ConfigError(f"max_bundle_bytes: {max_bundle} is below the minimum of {MIN_FRAGMENT_PAYLOAD_BYTES}")
    if route_method not in ROUTE_METHODS:
        raise ConfigError(f"route_method: {route_method!r} is not one of {', '.join(ROUTE_METHODS)}")
    return NodeConfig(
        node_id=node_id,
        data_dir=data_dir,
        log_level=log_level,
        listen=listen,
        neighbours=tuple(neighbours),
        routes=tuple(routes),
        store=store,
        api=api,
        clock_rate=clock_rate,
        epoch=_expect(raw, "epoch", str, "") if "epoch" in raw else None,
        plan=plan,
        fragment_payload_bytes=fragment_bytes,
        route_method=route_method,
        max_bundle_bytes=max_bundle,
    )


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a dict; ``ConfigError`` naming the file when it cannot be read or parsed."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def load_config(path: Path) -> NodeConfig:
    """Read and validate a TOML config file; errors name the file and the key."""
    raw = read_toml(path)
    try:
        return config_from_dict(raw, base_dir=path.parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def node_service_eid(config: NodeConfig, service: int) -> Eid:
    eid = config.node_eid
    if isinstance(eid, IpnEid):
        return eid.with_service(service)
    return parse_eid(f"{eid}{service}")
