"""Linode Backup Service window of an instance, set through the Linode API v4.

pulumi-linode enables the backup service (Instance.backups_enabled) but cannot choose when it
runs, so this small dynamic provider does `PUT /linode/instances/{id}` with
`{"backups": {"schedule": {"day": ..., "window": ...}}}`. Windows are two-hour UTC slots
(W2 = 02:00-04:00). The API base URL is an input so the tests can point it at a local fake.

How it behaves where the engine runs it, without the program:
- The token is read when each call runs, never from state: the stack's `linode:token` config
  (which the engine hands the provider through `configure`) or else the `LINODE_TOKEN`
  environment variable, so a rotated token is used by refresh and destroy too.
- `read` of an instance that no longer exists reports the resource gone (empty id), so a
  refresh after someone deleted a VM drops the window instead of failing.
- `delete` is a no-op: the schedule belongs to the instance, which is deleted or keeps a
  harmless window; there is nothing of ours to remove and nothing that can fail.
- 429 and 5xx answers are retried with exponential backoff, honouring `Retry-After`.
- The engine stores the provider pickled (dill) in the state and unpickles it in the dynamic
  provider host, where this repository may not be importable (pulumi/pulumi#7453). So the
  provider class is pickled by value (`__module__` = "__main__", the way dill decides) and
  everything it calls is a method of the class or the standard library; errors are the
  built-in `RuntimeError`. tests/unit/test_backup_window_provider.py unpickles it in a bare
  interpreter to prove it.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi.dynamic

LINODE_API_URL = "https://api.linode.com/v4"
LET_LINODE_CHOOSE = "Scheduling"
TOKEN_CONFIG_KEY = "linode:token"
TOKEN_ENVIRONMENT = "LINODE_TOKEN"


class BackupWindowProvider(pulumi.dynamic.ResourceProvider):
    """CRUD of one instance's backup schedule. Self-contained: see the module docstring."""

    timeout_seconds: float = 30.0
    attempts: int = 5
    first_backoff_seconds: float = 1.0
    max_backoff_seconds: float = 30.0
    serialize_as_secret_always = False  # nothing secret is captured: the token is read per call

    def __init__(self) -> None:
        super().__init__()
        self._configured_token: str | None = None

    # --- the engine's calls -------------------------------------------------------------------

    def configure(self, req: pulumi.dynamic.ConfigureRequest) -> None:
        token = req.config.get(TOKEN_CONFIG_KEY)
        self._configured_token = str(token) if token else None

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        applied = self._put_schedule(props, props["day"], props["window"])
        return pulumi.dynamic.CreateResult(id_=str(props["linode_id"]), outs={**props, "applied": applied})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.DiffResult:
        changed = [key for key in ("linode_id", "day", "window", "api_url") if olds.get(key) != news.get(key)]
        return pulumi.dynamic.DiffResult(
            changes=bool(changed),
            replaces=["linode_id"] if "linode_id" in changed else [],
            delete_before_replace=False,
        )

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.UpdateResult:
        applied = self._put_schedule(news, news["day"], news["window"])
        return pulumi.dynamic.UpdateResult(outs={**news, "applied": applied})

    def read(self, id_: str, props: dict[str, Any]) -> pulumi.dynamic.ReadResult:
        status, instance = self._request(props["api_url"], "GET", f"/linode/instances/{id_}", None, (404,))
        if status == 404:
            # The instance is gone: so is its backup window. An empty id tells the engine.
            return pulumi.dynamic.ReadResult(id_="", outs={})
        schedule = self._schedule(instance)
        return pulumi.dynamic.ReadResult(id_=id_, outs={**props, **schedule, "applied": schedule})

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        # Nothing to undo: the window is a property of the instance, not an object of ours.
        return None

    # --- the API, with retries ----------------------------------------------------------------

    def _token(self) -> str:
        import os

        token = self._configured_token or os.environ.get(TOKEN_ENVIRONMENT)
        if not token:
            raise RuntimeError(
                f"no Linode API token: set the stack's {TOKEN_CONFIG_KEY} secret or {TOKEN_ENVIRONMENT}"
            )
        return token

    def _request(
        self, api_url: str, method: str, path: str, body: dict[str, Any] | None, tolerate: tuple[int, ...] = ()
    ) -> tuple[int, Any]:
        """(status, JSON body); retries 429 and 5xx; other errors (but `tolerate`) raise."""
        import json
        import time
        import urllib.error
        import urllib.request

        data = json.dumps(body).encode() if body is not None else None
        delay = self.first_backoff_seconds
        for attempt in range(1, self.attempts + 1):
            request = urllib.request.Request(
                f"{api_url.rstrip('/')}{path}",
                data=data,
                method=method,
                headers={
                    "Authorization": f"Bearer {self._token()}",
                    "Content-Type": "application/json",
                    "Accept": "application/json",
                    "User-Agent": "platform-infra-backup-window",
                },
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
                    return response.status, json.loads(response.read() or b"{}")
            except urllib.error.HTTPError as error:
                if error.code in tolerate:
                    return error.code, {}
                retryable = error.code == 429 or error.code >= 500
                if not retryable or attempt == self.attempts:
                    raise RuntimeError(
                        f"Linode API {method} {path} failed with HTTP {error.code}: {self._reasons(error)}"
                    ) from None
                retry_after = error.headers.get("Retry-After") if error.headers else None
                wait = float(retry_after) if retry_after and retry_after.isdigit() else delay
            except urllib.error.URLError as error:
                if attempt == self.attempts:
                    raise RuntimeError(f"Linode API {method} {path} unreachable: {error.reason}") from None
                wait = delay
            time.sleep(min(wait, self.max_backoff_seconds))
            delay = min(delay * 2, self.max_backoff_seconds)
        raise AssertionError("unreachable")  # the loop returns or raises

    @staticmethod
    def _reasons(error: Any) -> str:
        import json

        try:
            payload = json.loads(error.read() or b"{}")
        except ValueError:
            return str(error.reason or "no details")
        reasons = [
            f"{item['field']}: {item['reason']}" if item.get("field") else str(item.get("reason"))
            for item in payload.get("errors", [])
        ]
        return "; ".join(reasons) or "no details"

    @staticmethod
    def _schedule(instance: dict[str, Any]) -> dict[str, str]:
        schedule = (instance.get("backups") or {}).get("schedule") or {}
        return {
            "day": schedule.get("day") or LET_LINODE_CHOOSE,
            "window": schedule.get("window") or LET_LINODE_CHOOSE,
        }

    def _put_schedule(self, props: dict[str, Any], day: str, window: str) -> dict[str, str]:
        _, instance = self._request(
            props["api_url"],
            "PUT",
            f"/linode/instances/{props['linode_id']}",
            {"backups": {"schedule": {"day": day, "window": window}}},
        )
        applied = self._schedule(instance)
        if applied != {"day": day, "window": window}:
            raise RuntimeError(
                f"Linode API accepted the backup window for instance {props['linode_id']} "
                f"but reports {applied}, not day={day} window={window}"
            )
        return applied


def _pickle_by_value(cls: type) -> None:
    """dill pickles a class or function by reference (module + qualified name) unless it belongs
    to __main__; by value, the provider host needs nothing of this repository to unpickle it
    (pulumi/pulumi#7453, pulumi/pulumi#7755)."""
    cls.__module__ = "__main__"
    for member in vars(cls).values():
        function = getattr(member, "__func__", member)
        if callable(function) and hasattr(function, "__code__"):
            function.__module__ = "__main__"


_pickle_by_value(BackupWindowProvider)


class LinodeBackupWindow(pulumi.dynamic.Resource):
    """`day`/`window` of the Linode Backup Service on one instance (backups must be enabled)."""

    applied: pulumi.Output[dict[str, str]]

    def __init__(
        self,
        name: str,
        linode_id: pulumi.Input[str],
        day: str,
        window: str,
        api_url: str = LINODE_API_URL,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            BackupWindowProvider(),
            name,
            {"linode_id": linode_id, "day": day, "window": window, "api_url": api_url, "applied": None},
            opts,
        )
