"""The backup-window dynamic provider against a local fake of the Linode API v4.

Each way it could break a deploy, refresh or destroy has a test here: the token is read per
call (a rotated token works), read of a deleted instance reports it gone, delete never fails,
429/5xx are retried, and the pickled provider loads in a bare interpreter (pulumi/pulumi#7453).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pulumi.dynamic import ConfigureRequest
from pulumi.dynamic.config import Config
from pulumi.dynamic.dynamic import serialize_provider

from components.operations.backup_window import BackupWindowProvider

TOKEN = "fake-linode-token"
VALID_WINDOWS = {f"W{hour}" for hour in range(0, 24, 2)} | {"Scheduling"}
VALID_DAYS = {"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Scheduling"}


@dataclass
class FakeLinodeApi:
    """Just enough of /v4/linode/instances/{id}: auth, validation, backups.schedule."""

    instances: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    url: str = ""
    token: str = TOKEN
    # Answers to give before serving normally: (status, Retry-After or None), first first.
    failures: list[tuple[int, str | None]] = field(default_factory=list)


def _handler(api: FakeLinodeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:
            pass

        def _reply(self, status: int, payload: Any) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _instance(self) -> dict[str, Any] | None:
            if api.failures:
                status, retry_after = api.failures.pop(0)
                body = json.dumps({"errors": [{"reason": "Too many requests" if status == 429 else "oops"}]})
                self.send_response(status)
                if retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())
                return None
            if self.headers.get("Authorization") != f"Bearer {api.token}":
                self._reply(401, {"errors": [{"reason": "Invalid Token"}]})
                return None
            linode_id = self.path.rsplit("/", 1)[1]
            if not self.path.startswith("/v4/linode/instances/") or linode_id not in api.instances:
                self._reply(404, {"errors": [{"reason": "Not found"}]})
                return None
            return api.instances[linode_id]

        def do_GET(self) -> None:
            api.requests.append(("GET", self.path, None))
            instance = self._instance()
            if instance is not None:
                self._reply(200, instance)

        def do_PUT(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            api.requests.append(("PUT", self.path, body))
            instance = self._instance()
            if instance is None:
                return
            schedule = body.get("backups", {}).get("schedule", {})
            if schedule.get("window") not in VALID_WINDOWS:
                self._reply(
                    400, {"errors": [{"field": "backups.schedule.window", "reason": "Must be W0..W22"}]}
                )
                return
            if schedule.get("day") not in VALID_DAYS:
                self._reply(400, {"errors": [{"field": "backups.schedule.day", "reason": "Invalid day"}]})
                return
            if not instance["backups"]["enabled"]:
                self._reply(400, {"errors": [{"reason": "Backups are not enabled for this Linode"}]})
                return
            instance["backups"]["schedule"] = dict(schedule)
            self._reply(200, instance)

    return Handler


@pytest.fixture
def api() -> Iterator[FakeLinodeApi]:
    fake = FakeLinodeApi()
    fake.instances["4242"] = {
        "id": 4242,
        "backups": {"enabled": True, "schedule": {"day": None, "window": None}},
    }
    fake.instances["5151"] = {
        "id": 5151,
        "backups": {"enabled": False, "schedule": {"day": None, "window": None}},
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/v4"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _props(api: FakeLinodeApi, **overrides: Any) -> dict[str, Any]:
    return {"linode_id": "4242", "day": "Sunday", "window": "W2", "api_url": api.url, **overrides}


def provider(token: str | None = TOKEN) -> BackupWindowProvider:
    """A provider configured the way the engine does it: the stack's config through `configure`."""
    made = BackupWindowProvider()
    made.configure(ConfigureRequest(Config({"linode:token": token} if token else {}, "platform-infra")))
    made.first_backoff_seconds = 0.01
    return made


@pytest.fixture(autouse=True)
def no_token_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LINODE_TOKEN", raising=False)


def test_create_puts_the_schedule_on_the_instance(api: FakeLinodeApi) -> None:
    result = provider().create(_props(api))
    assert result.id == "4242"
    assert api.requests == [
        ("PUT", "/v4/linode/instances/4242", {"backups": {"schedule": {"day": "Sunday", "window": "W2"}}})
    ]
    assert api.instances["4242"]["backups"]["schedule"] == {"day": "Sunday", "window": "W2"}
    assert (result.outs or {})["applied"] == {"day": "Sunday", "window": "W2"}


def test_update_moves_the_window(api: FakeLinodeApi) -> None:
    windows = provider()
    windows.create(_props(api))
    result = windows.update("4242", _props(api), _props(api, window="W22", day="Saturday"))
    assert api.instances["4242"]["backups"]["schedule"] == {"day": "Saturday", "window": "W22"}
    assert (result.outs or {})["applied"] == {"day": "Saturday", "window": "W22"}


def test_delete_is_a_no_op_that_cannot_fail(api: FakeLinodeApi) -> None:
    windows = provider()
    windows.create(_props(api))
    calls = len(api.requests)
    windows.delete("4242", _props(api))  # the instance keeps its window; nothing of ours to remove
    windows.delete("9999", _props(api, linode_id="9999"))  # instance already gone
    provider(token=None).delete("4242", _props(api))  # even without any token
    assert len(api.requests) == calls


def test_read_of_a_deleted_instance_reports_it_gone(api: FakeLinodeApi) -> None:
    windows = provider()
    windows.create(_props(api))
    del api.instances["4242"]
    result = windows.read("4242", _props(api))
    assert result.id == ""  # the engine drops the resource from state instead of failing refresh


def test_a_rotated_token_is_used_not_the_one_from_creation(api: FakeLinodeApi) -> None:
    provider(token=TOKEN).create(_props(api))
    api.token = "rotated-token"
    # Refresh and destroy run with the state's props only: no token there to go stale.
    assert "token" not in _props(api)
    rotated = provider(token="rotated-token")
    api.instances["4242"]["backups"]["schedule"] = {"day": "Monday", "window": "W10"}
    assert (rotated.read("4242", _props(api)).outs or {})["window"] == "W10"
    with pytest.raises(RuntimeError, match="HTTP 401"):
        provider(token=TOKEN).read("4242", _props(api))


def test_the_token_comes_from_the_environment_when_config_has_none(
    api: FakeLinodeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(RuntimeError, match="no Linode API token"):
        provider(token=None).create(_props(api))
    monkeypatch.setenv("LINODE_TOKEN", TOKEN)
    assert provider(token=None).create(_props(api)).id == "4242"


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_throttling_and_server_errors_are_retried(api: FakeLinodeApi, status: int) -> None:
    api.failures = [(status, "0" if status == 429 else None), (status, None)]
    result = provider().create(_props(api))
    assert (result.outs or {})["applied"] == {"day": "Sunday", "window": "W2"}
    assert [method for method, _, _ in api.requests] == ["PUT", "PUT", "PUT"]


def test_retries_give_up_with_the_last_status(api: FakeLinodeApi) -> None:
    windows = provider()
    api.failures = [(503, None)] * windows.attempts
    with pytest.raises(RuntimeError, match="HTTP 503"):
        windows.create(_props(api))
    assert len(api.requests) == windows.attempts


def test_client_errors_are_not_retried(api: FakeLinodeApi) -> None:
    with pytest.raises(RuntimeError, match="HTTP 400"):
        provider().create(_props(api, window="W3"))
    assert len(api.requests) == 1


def test_the_pickled_provider_runs_in_a_bare_interpreter(api: FakeLinodeApi, tmp_path: Path) -> None:
    """What the engine stores is loaded where this repository is not importable (pulumi#7453)."""
    pickled = tmp_path / "provider.b64"
    pickled.write_text(serialize_provider(BackupWindowProvider()))
    script = f"""
import base64, dill, importlib.util
from pulumi.dynamic import ConfigureRequest
from pulumi.dynamic.config import Config
assert importlib.util.find_spec("components") is None, "the repository must not be importable here"
provider = dill.loads(base64.b64decode(open({str(pickled)!r}).read()))
provider.configure(ConfigureRequest(Config({{"linode:token": {TOKEN!r}}}, "platform-infra")))
result = provider.create({{"linode_id": "4242", "day": "Saturday", "window": "W4", "api_url": {api.url!r}}})
print(result.id, result.outs["applied"]["window"])
"""
    done = subprocess.run(
        [sys.executable, "-I", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["4242", "W4"]


def test_read_reports_the_live_schedule(api: FakeLinodeApi) -> None:
    api.instances["4242"]["backups"]["schedule"] = {"day": "Monday", "window": "W10"}
    result = provider().read("4242", _props(api))
    assert ((result.outs or {})["day"], (result.outs or {})["window"]) == ("Monday", "W10")


def test_diff_replaces_only_when_the_instance_changes(api: FakeLinodeApi) -> None:
    windows = provider()
    same = windows.diff("4242", _props(api), _props(api))
    moved = windows.diff("4242", _props(api), _props(api, window="W4"))
    other = windows.diff("4242", _props(api), _props(api, linode_id="5151"))
    assert (same.changes, moved.changes, moved.replaces) == (False, True, [])
    assert other.replaces == ["linode_id"]


def test_api_error_surfaces_with_status_and_reason(api: FakeLinodeApi) -> None:
    with pytest.raises(
        RuntimeError, match=r"PUT /linode/instances/5151 failed with HTTP 400: .*not enabled"
    ):
        provider().create(_props(api, linode_id="5151"))


def test_invalid_window_error_names_the_field(api: FakeLinodeApi) -> None:
    with pytest.raises(RuntimeError, match=r"HTTP 400: backups.schedule.window: Must be W0..W22"):
        provider().create(_props(api, window="W3"))


def test_bad_token_is_a_clear_error(api: FakeLinodeApi) -> None:
    with pytest.raises(RuntimeError, match=r"HTTP 401: Invalid Token"):
        provider(token="wrong").create(_props(api))


def test_unreachable_api_is_a_clear_error() -> None:
    props = {"linode_id": "1", "day": "Sunday", "window": "W2", "api_url": "http://127.0.0.1:9/v4"}
    with pytest.raises(RuntimeError, match="unreachable"):
        provider().create(props)
