"""Run a local server as an unprivileged user when we are root, from wherever the clone is.

PostgreSQL refuses to run as root, so as root `evmonitor up` runs it as `nobody` (via `runuser`).
`nobody` must then reach two things that may sit in a folder only root can enter (a clone in
`mktemp -d`, anything under /root; both mode 700):

- the server's program files, inside `.venv`: we run a copy of them kept under
  `/var/lib/evmonitor/<what>/<digest>/`, root-owned and world-readable, named by the digest of
  what it holds (one copy serves every clone with the same wheel; an upgraded wheel gets its own);
- its data directory: `<state_dir>/<what>` when `nobody` can reach the state dir, else
  `/var/lib/evmonitor/<what>/<digest of the state dir's path>/`: the stack's own, kept across
  `down` / `up`, and removed by no tmp cleaner.

Why /var/lib and not /tmp: no one but root can write on the way to it, so nobody can plant a
symbolic link or a program between our check and our use. Every level is checked all the same
(`root_only_dir`). Without root none of this applies (`run_as_unprivileged` returns None).

Everything that can go wrong here is a `ConfigError` whose one line says what to do.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from evmonitor.errors import ConfigError

__all__ = ["SHARED_DIR", "RunAs", "readable_copy", "root_only_dir", "run_as_unprivileged", "server_home"]

SHARED_DIR = Path("/var/lib/evmonitor")
UNPRIVILEGED_USER = "nobody"
_INSTEAD = "run evmonitor as a non-root user, or start a PostgreSQL server and point EVMON_DATABASE_URL at it"


@dataclass(frozen=True)
class RunAs:
    """How root runs a program as `user`: `[*prefix, program, ...]`."""

    user: str
    uid: int
    runuser: str

    @property
    def prefix(self) -> list[str]:
        return [self.runuser, "-u", self.user, "--"]

    def can_enter(self, directory: Path) -> bool:
        """Whether `user` can reach `directory`: asked as `user`, so every ancestor and ACL counts."""
        return subprocess.run([*self.prefix, "test", "-x", str(directory)], capture_output=True).returncode == 0


def run_as_unprivileged(
    *,
    euid: int,
    which: Callable[[str], str | None] = shutil.which,
    getpwnam: Callable[[str], pwd.struct_passwd] = pwd.getpwnam,
    user: str = UNPRIVILEGED_USER,
) -> RunAs | None:
    """None when we are not root (nothing to drop); else how to run a program as `user`.

    Raises ConfigError when root cannot drop privileges (no `runuser`, no such user).
    """
    if euid != 0:
        return None
    runuser = which("runuser")
    if runuser is None:
        raise ConfigError(
            f"PostgreSQL will not run as root and `runuser` (util-linux) is missing: install it, or {_INSTEAD}"
        )
    try:
        uid = getpwnam(user).pw_uid
    except KeyError:
        raise ConfigError(f"PostgreSQL will not run as root and there is no user `{user}` to run it as: "
                          f"create one (useradd --system {user}), or {_INSTEAD}") from None  # fmt: skip
    return RunAs(user=user, uid=uid, runuser=runuser)


def root_only_dir(path: Path) -> Path:
    """`path` (symbolic links resolved) as a directory that only root can change, at every level.

    Missing levels are created 0755, each one inside a level already checked. Raises
    ConfigError if some level is not a directory, not owned by root, or writable by others.
    """
    path = Path(os.path.abspath(path))
    existing = next(p for p in (path, *path.parents) if p.exists())
    real = Path(os.path.realpath(existing)) / path.relative_to(existing)
    for level in (*reversed(real.parents), real):
        try:
            os.mkdir(level, 0o755)
            os.chmod(level, 0o755)  # whatever the umask
        except FileExistsError:
            pass
        except OSError as exc:
            raise ConfigError(
                f"cannot create {level} for the unprivileged PostgreSQL ({exc.strerror}): {_INSTEAD}"
            ) from None
        st = os.lstat(level)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022:
            raise ConfigError(f"{level} must be a directory owned by root and writable by no one else "
                              f"(it holds what root lets `{UNPRIVILEGED_USER}` run): fix it, or {_INSTEAD}")  # fmt: skip
    return real


def _files(root: Path, parts: Iterable[str]) -> Iterable[Path]:
    for part in parts:
        for folder, dirs, files in os.walk(root / part):
            dirs.sort()
            # a link to a folder is listed among the folders, not followed: copied as a link all the same
            links = [name for name in dirs if os.path.islink(os.path.join(folder, name))]
            for name in sorted([*files, *links]):
                yield Path(folder, name)


def _digest(root: Path, parts: tuple[str, ...]) -> str:
    """Names, links, executable bits and contents of `parts`: equal digests, interchangeable copies."""
    digest = hashlib.sha256()
    for path in _files(root, parts):
        st = os.lstat(path)
        executable = bool(st.st_mode & 0o111)
        digest.update(f"{path.relative_to(root)}\0{stat.S_IFMT(st.st_mode)}\0{executable}\0".encode())
        if stat.S_ISLNK(st.st_mode):
            digest.update(os.readlink(path).encode())
        else:
            with open(path, "rb") as f:
                digest.update(hashlib.file_digest(f, "sha256").digest())
    return digest.hexdigest()[:24]


def readable_copy(root: Path, parts: Iterable[str], *, into: Path) -> Path:
    """A copy of `root`'s `parts` (same relative layout) that any user can read and run; made once.

    `into` is made root-only (`root_only_dir`); the copy is `<into>/<digest>`. It is written
    under a temporary name and renamed into place, so it is complete once it exists, and two
    concurrent `up`s both end with the same copy. The layout is kept because the programs find
    their libraries and share files relative to themselves.
    """
    parts = tuple(parts)
    base = root_only_dir(into)
    copy = base / _digest(root, parts)
    if copy.is_dir():
        return copy
    partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=base))
    try:
        for part in (part for part in parts if (root / part).exists()):
            # symlinks=True: a link is copied as a link, never as the (maybe secret) file it names
            shutil.copytree(root / part, partial / part, symlinks=True)
        for folder, dirs, files in os.walk(partial):
            os.chmod(folder, 0o755)
            for name in files:
                path = Path(folder, name)
                mode = os.lstat(path).st_mode
                if stat.S_ISREG(mode):
                    os.chmod(path, 0o755 if mode & 0o100 else 0o644)
        try:
            os.rename(partial, copy)
        except OSError:
            if not copy.is_dir():
                raise
    except OSError as exc:
        raise ConfigError(f"cannot copy {root} to {base} for the unprivileged PostgreSQL ({exc}): {_INSTEAD}") from None
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return copy


def server_home(state_dir: Path, what: str, run_as: RunAs | None, *, shared_dir: Path = SHARED_DIR) -> Path:
    """The folder for `what`'s data: `<state_dir>/<what>`, unless `run_as` cannot enter the state dir.

    Then `<shared_dir>/<what>/<digest of the state dir's resolved path>`: the same folder for
    the same state dir at every `up`, another for another state dir.
    """
    state_dir = Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    if run_as is None or run_as.can_enter(state_dir):
        return state_dir / what
    return root_only_dir(shared_dir / what) / hashlib.sha256(str(state_dir).encode()).hexdigest()[:16]
