"""Host keys: generated once, stored in a file, compared in constant time.

Three keys, as in Azure Functions: ``default`` (function level), ``durabletask`` (the system key
of the management API, carried by status URLs) and ``master`` (everything).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from durafn.app import AuthLevel

KEYS_ENV_VAR = "DURAFN_KEYS_FILE"
DEFAULT_KEYS_FILE = Path(".durafn") / "keys.json"


class KeysFileError(Exception):
    """The keys file exists but cannot be read as keys."""


@dataclass(frozen=True)
class HostKeys:
    default: str
    durabletask: str
    master: str

    @classmethod
    def generate(cls) -> HostKeys:
        return cls(*(secrets.token_urlsafe(32) for _ in range(3)))

    @classmethod
    def load_or_create(cls, path: Path | None = None) -> HostKeys:
        """Read the keys file, creating it (mode 600) with fresh keys the first time."""
        path = path or keys_file()
        if path.exists():
            try:
                data = json.loads(path.read_text())
                return cls(str(data["default"]), str(data["durabletask"]), str(data["master"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise KeysFileError(
                    f"the keys file {path} is not a durafn keys file ({exc}); fix it, or "
                    "delete it to generate new keys"
                ) from exc
        keys = cls.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(asdict(keys), handle, indent=2)
        return keys

    def allows(self, level: AuthLevel | str, presented: str | None) -> bool:
        """Whether ``presented`` grants ``level`` (``"system"`` for the management API)."""
        if level == AuthLevel.ANONYMOUS:
            return True
        if not presented:
            return False
        accepted = [self.master]
        if level == AuthLevel.FUNCTION:
            accepted.append(self.default)
        elif level == "system":
            accepted.append(self.durabletask)
        # Compare against every candidate, so timing tells nothing about which one matched.
        results = [hmac.compare_digest(presented.encode(), key.encode()) for key in accepted]
        return any(results)


def keys_file() -> Path:
    """``$DURAFN_KEYS_FILE``, else ``.durafn/keys.json`` in the working directory."""
    return Path(os.environ.get(KEYS_ENV_VAR) or DEFAULT_KEYS_FILE)


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (keys are then optional)."""
    if host in {"localhost", ""}:
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
