"""Root runs the embedded PostgreSQL as an unprivileged user, or says in one line what to do."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from evmonitor.errors import ConfigError
from evmonitor.stack.unprivileged import root_only_dir, run_as_unprivileged, server_home

NOBODY = SimpleNamespace(pw_name="nobody", pw_uid=65534)  # what pwd.getpwnam("nobody") gives, in part


def _no_user(name: str) -> SimpleNamespace:
    raise KeyError(name)


def test_without_root_nothing_is_dropped():
    """A non-root euid runs the server as itself, whatever the machine has."""
    assert run_as_unprivileged(euid=1000, which=lambda _: None, getpwnam=_no_user) is None


def test_root_runs_the_server_as_nobody_through_runuser():
    """As root, the command is prefixed with `runuser -u nobody --`."""
    run_as = run_as_unprivileged(euid=0, which=lambda name: f"/usr/sbin/{name}", getpwnam=lambda _: NOBODY)
    assert run_as is not None and run_as.uid == 65534
    assert run_as.prefix == ["/usr/sbin/runuser", "-u", "nobody", "--"]


@pytest.mark.parametrize(
    ("which", "getpwnam", "says"),
    [
        (lambda _: None, lambda _: NOBODY, "`runuser` (util-linux) is missing"),
        (lambda name: f"/usr/sbin/{name}", _no_user, "no user `nobody`"),
    ],
)
def test_root_that_cannot_drop_privileges_gets_one_line_saying_what_to_do(which, getpwnam, says):
    """No runuser or no unprivileged user: one line naming the fix and the alternatives."""
    with pytest.raises(ConfigError) as raised:
        run_as_unprivileged(euid=0, which=which, getpwnam=getpwnam)
    message = str(raised.value)
    assert says in message and "\n" not in message
    assert "non-root user" in message and "EVMON_DATABASE_URL" in message


def test_a_folder_under_a_world_writable_one_is_refused(tmp_path: Path):
    """/tmp-like ancestors (anyone can plant a link there) are refused before anything is created."""
    tmp_path.chmod(0o777)
    with pytest.raises(ConfigError, match="writable by no one else"):
        root_only_dir(tmp_path / "evmonitor" / "pginstall")
    assert not (tmp_path / "evmonitor").exists()


def test_without_root_the_data_stays_in_the_state_dir(tmp_path: Path):
    """Nothing to drop: the server's folder is `<state_dir>/postgres`, created on the way."""
    assert server_home(tmp_path / "state", "postgres", None) == (tmp_path / "state" / "postgres").resolve()
    assert (tmp_path / "state").is_dir()
