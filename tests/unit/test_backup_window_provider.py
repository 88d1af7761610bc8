"""The backup-window dynamic provider against a local fake of the Linode API v4."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from components.operations.backup_window import BackupWindowProvider, LinodeApiError

TOKEN = "fake-linode-token"
VALID_WINDOWS = {f"W{hour}" for hour in range(0, 24, 2)} | {"Scheduling"}
VALID_DAYS = {"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Scheduling"}


@dataclass
class FakeLinodeApi:
    """Just enough of /v4/linode/instances/{id}: auth, validation, backups.schedule."""

    instances: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    url: str = ""


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
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
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
    return {
        "linode_id": "4242",
        "day": "Sunday",
        "window": "W2",
        "token": TOKEN,
        "api_url": api.url,
        **overrides,
    }


def test_create_puts_the_schedule_on_the_instance(api: FakeLinodeApi) -> None:
    result = BackupWindowProvider().create(_props(api))
    assert result.id == "4242"
    assert api.requests == [
        ("PUT", "/v4/linode/instances/4242", {"backups": {"schedule": {"day": "Sunday", "window": "W2"}}})
    ]
    assert api.instances["4242"]["backups"]["schedule"] == {"day": "Sunday", "window": "W2"}
    assert (result.outs or {})["applied"] == {"day": "Sunday", "window": "W2"}


def test_update_moves_the_window(api: FakeLinodeApi) -> None:
    provider = BackupWindowProvider()
    provider.create(_props(api))
    result = provider.update("4242", _props(api), _props(api, window="W22", day="Saturday"))
    assert api.instances["4242"]["backups"]["schedule"] == {"day": "Saturday", "window": "W22"}
    assert (result.outs or {})["applied"] == {"day": "Saturday", "window": "W22"}


def test_delete_hands_the_choice_back_to_linode(api: FakeLinodeApi) -> None:
    provider = BackupWindowProvider()
    provider.create(_props(api))
    provider.delete("4242", _props(api))
    assert api.instances["4242"]["backups"]["schedule"] == {"day": "Scheduling", "window": "Scheduling"}


def test_delete_of_an_instance_already_gone_succeeds(api: FakeLinodeApi) -> None:
    BackupWindowProvider().delete("9999", _props(api, linode_id="9999"))
    assert api.requests[-1][1] == "/v4/linode/instances/9999"


def test_read_reports_the_live_schedule(api: FakeLinodeApi) -> None:
    api.instances["4242"]["backups"]["schedule"] = {"day": "Monday", "window": "W10"}
    result = BackupWindowProvider().read("4242", _props(api))
    assert ((result.outs or {})["day"], (result.outs or {})["window"]) == ("Monday", "W10")


def test_diff_replaces_only_when_the_instance_changes(api: FakeLinodeApi) -> None:
    provider = BackupWindowProvider()
    same = provider.diff("4242", _props(api), _props(api))
    moved = provider.diff("4242", _props(api), _props(api, window="W4"))
    other = provider.diff("4242", _props(api), _props(api, linode_id="5151"))
    assert (same.changes, moved.changes, moved.replaces) == (False, True, [])
    assert other.replaces == ["linode_id"]


def test_api_error_surfaces_with_status_and_reason(api: FakeLinodeApi) -> None:
    with pytest.raises(
        LinodeApiError, match=r"PUT /linode/instances/5151 failed with HTTP 400: .*not enabled"
    ):
        BackupWindowProvider().create(_props(api, linode_id="5151"))


def test_invalid_window_error_names_the_field(api: FakeLinodeApi) -> None:
    with pytest.raises(LinodeApiError, match=r"HTTP 400: backups.schedule.window: Must be W0..W22"):
        BackupWindowProvider().create(_props(api, window="W3"))


def test_bad_token_is_a_clear_error(api: FakeLinodeApi) -> None:
    with pytest.raises(LinodeApiError, match=r"HTTP 401: Invalid Token"):
        BackupWindowProvider().create(_props(api, token="wrong"))


def test_unreachable_api_is_a_clear_error() -> None:
    props = {
        "linode_id": "1",
        "day": "Sunday",
        "window": "W2",
        "token": TOKEN,
        "api_url": "http://127.0.0.1:9/v4",
    }
    with pytest.raises(LinodeApiError, match="unreachable"):
        BackupWindowProvider().create(props)
