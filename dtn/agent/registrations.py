"""Application registrations (RFC 9171 §3.1): endpoints on this node that applications receive from."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum


class DeliveryMode(Enum):
    ACTIVE = "active"  # an application is attached: deliver at once
    PASSIVE = "passive"  # registered but not attached: keep the bundle until the application comes back


@dataclass
class Registration:
    endpoint: str
    mode: DeliveryMode = DeliveryMode.ACTIVE


class Registrations:
    """The endpoints registered on one node (no module-level state: one table per agent)."""

    def __init__(self) -> None:
        self._by_endpoint: dict[str, Registration] = {}

    def register(self, endpoint: str, mode: DeliveryMode = DeliveryMode.ACTIVE) -> Registration:
        registration = self._by_endpoint.get(endpoint)
        if registration is None:
            registration = self._by_endpoint[endpoint] = Registration(endpoint, mode)
        else:
            registration.mode = mode
        return registration

    def unregister(self, endpoint: str) -> bool:
        return self._by_endpoint.pop(endpoint, None) is not None

    def get(self, endpoint: str) -> Registration | None:
        return self._by_endpoint.get(endpoint)

    def is_active(self, endpoint: str) -> bool:
        registration = self._by_endpoint.get(endpoint)
        return registration is not None and registration.mode is DeliveryMode.ACTIVE

    def __contains__(self, endpoint: object) -> bool:
        return endpoint in self._by_endpoint

    def __iter__(self) -> Iterator[Registration]:
        return iter(list(self._by_endpoint.values()))

    def __len__(self) -> int:
        return len(self._by_endpoint)
