"""The error family of dtn. Every error that can go back on the wire carries its RFC reason code."""

from __future__ import annotations

from dtn.bundle.reasons import StatusReason


class DtnError(Exception):
    """Root of every error dtn raises on purpose."""


class DecodeError(DtnError):
    """Malformed bundle or record; ``reason`` is the status-report reason to send back (RFC 9171 §6.1.1)."""

    def __init__(self, message: str, reason: StatusReason = StatusReason.BLOCK_UNINTELLIGIBLE) -> None:
        super().__init__(message)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.args[0]} (reason {int(self.reason)} {self.reason.name.lower()})"


class EncodeError(DtnError):
    """A value that cannot be put on the wire (out of range, inconsistent fields)."""


class InvalidEid(DtnError, ValueError):
    """An endpoint ID that is not valid text or CBOR."""


class RemoteProtocolError(DtnError):
    """The peer broke a protocol rule; ``reason`` is the protocol's own code to send back (e.g. SESS_TERM)."""

    def __init__(self, message: str, reason: int = 0) -> None:
        super().__init__(message)
        self.reason = reason


class LocalProtocolError(DtnError):
    """We were asked to do something the protocol state does not allow."""


class StoreError(DtnError):
    """The bundle store cannot do what was asked; the message says what to do about it."""


class StoreFull(StoreError):
    """Adding the bundle would exceed the store's byte quota (reason 4, depleted storage)."""

    reason = StatusReason.DEPLETED_STORAGE


class ConfigError(DtnError, ValueError):
    """A configuration value is wrong; the message names the key."""
