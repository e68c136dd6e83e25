"""Credentials found in an export: one name per distinct value, written only where asked.

config.toml names secrets and never holds them. An import therefore

- gives each distinct credential value one secret name (the same token used by
  14 jobs is one secret, ``CRON_SECRET`` by default; a second, different token
  is named after the first job that uses it, ``<JOB_ID>_SECRET``);
- writes a value only into ``--secrets-dir DIR``: the directory is made 0700 if
  it is new, each file ``DIR/<NAME>`` is created 0600 before a byte is written,
  and an existing file with a different value is never overwritten;
- prints, to stderr, the command that installs each secret where the daemon reads
  it (a systemd credential, as systemd/README.md does it). Without --secrets-dir
  the command asks for the value on the terminal, so it is never echoed.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

from scheduler.errors import UsageError
from scheduler.migrate.model import SecretValue

CREDENTIALS_DIR = "/etc/cronhost"  # where systemd/README.md keeps root-only credential files
_NOT_NAME = re.compile(r"[^A-Z0-9_]+")


class SecretNamer:
    """Hands out secret names: equal values share one, the first gets ``first_name``."""

    def __init__(self, first_name: str) -> None:
        self.first_name = first_name
        self._by_value: dict[str, str] = {}
        self._users: dict[str, list[str]] = {}

    def name_for(self, value: str, job_id: str) -> str:
        name = self._by_value.get(value)
        if name is None:
            if not self._by_value:
                name = self.first_name
            else:
                name = _NOT_NAME.sub("_", job_id.upper()).strip("_")[:57] + "_SECRET"
                taken = set(self._by_value.values())
                base, n = name, 2
                while name in taken:
                    name, n = f"{base}_{n}", n + 1
            self._by_value[value] = name
        users = self._users.setdefault(name, [])
        if job_id not in users:
            users.append(job_id)
        return name

    def forget_job(self, job_id: str) -> None:
        """A job refused after its secret was named: drop it, and the secret if unused."""
        for value, name in list(self._by_value.items()):
            users = self._users.get(name, [])
            if job_id in users:
                users.remove(job_id)
            if not users:
                del self._by_value[value]
                self._users.pop(name, None)

    def secrets(self) -> list[SecretValue]:
        return [
            SecretValue(name=name, value=value, used_by=tuple(self._users.get(name, ())))
            for value, name in self._by_value.items()
        ]


def write_secrets(secrets: list[SecretValue], directory: Path) -> list[Path]:
    """Write each value to ``directory/NAME`` (0600); returns the files written or kept."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--secrets-dir {directory}: cannot create it: {exc.strerror}") from None
    written = []
    for secret in secrets:
        path = directory / secret.name
        if path.exists():
            try:
                same = path.read_text(encoding="utf-8").strip() == secret.value
            except (OSError, UnicodeDecodeError):
                same = False
            if not same:
                raise UsageError(
                    f"--secrets-dir: {path} already exists and holds another value for "
                    f"{secret.name}; move it away or pick another directory (nothing was written "
                    "for it)"
                )
            os.chmod(path, 0o600)
            written.append(path)
            continue
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise UsageError(f"--secrets-dir: cannot create {path}: {exc.strerror}") from None
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secret.value + "\n")
        os.chmod(path, 0o600)  # O_CREAT's mode is masked by the umask; make sure
        written.append(path)
    return written


def install_commands(secret: SecretValue, directory: Path | None) -> list[str]:
    """Shell lines that install one secret as a systemd credential. Never the value."""
    target = f"{CREDENTIALS_DIR}/{secret.name.lower()}"
    if directory is not None:
        source = shlex.quote(str(directory.resolve() / secret.name))
        copy = f"sudo install -m 0600 -o root -g root {source} {target}"
    else:
        prompt = shlex.quote(f"{secret.name}: ")
        copy = (f"sudo install -m 0600 -o root -g root /dev/null {target} && "
                f"systemd-ask-password -n {prompt} | sudo tee {target} >/dev/null")
    return [
        copy,
        f"sudo systemctl edit cronhost   # add under [Service]: LoadCredential={secret.name}:{target}",
    ]
