"""Linode Backup Service window of an instance, set through the Linode API v4.

pulumi-linode enables the backup service (Instance.backups_enabled) but cannot choose when it
runs, so this small dynamic provider does `PUT /linode/instances/{id}` with
`{"backups": {"schedule": {"day": ..., "window": ...}}}`. Windows are two-hour UTC slots
(W2 = 02:00-04:00). Deleting the resource hands the choice back to Linode ("Scheduling").
The API base URL is an input so the tests can point it at a local fake of the API.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pulumi
import pulumi.dynamic

LINODE_API_URL = "https://api.linode.com/v4"
LET_LINODE_CHOOSE = "Scheduling"
_TIMEOUT_SECONDS = 30


class LinodeApiError(Exception):
    """The Linode API refused a request; the message carries its status and reasons."""


def _request(api_url: str, token: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{api_url.rstrip('/')}{path}",
        data=data,
        method=method,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "platform-infra-backup-window",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_SECONDS) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        raise LinodeApiError(
            f"Linode API {method} {path} failed with HTTP {error.code}: {_reasons(error)}"
        ) from None
    except urllib.error.URLError as error:
        raise LinodeApiError(f"Linode API {method} {path} unreachable: {error.reason}") from None


def _reasons(error: urllib.error.HTTPError) -> str:
    try:
        payload = json.loads(error.read() or b"{}")
    except ValueError:
        return error.reason or "no details"
    reasons = [
        f"{item['field']}: {item['reason']}" if item.get("field") else str(item.get("reason"))
        for item in payload.get("errors", [])
    ]
    return "; ".join(reasons) or "no details"


def _schedule(instance: dict[str, Any]) -> dict[str, str]:
    schedule = (instance.get("backups") or {}).get("schedule") or {}
    return {
        "day": schedule.get("day") or LET_LINODE_CHOOSE,
        "window": schedule.get("window") or LET_LINODE_CHOOSE,
    }


def _put_schedule(props: dict[str, Any], day: str, window: str) -> dict[str, str]:
    instance = _request(
        props["api_url"],
        props["token"],
        "PUT",
        f"/linode/instances/{props['linode_id']}",
        {"backups": {"schedule": {"day": day, "window": window}}},
    )
    applied = _schedule(instance)
    if applied != {"day": day, "window": window}:
        raise LinodeApiError(
            f"Linode API accepted the backup window for instance {props['linode_id']} "
            f"but reports {applied}, not day={day} window={window}"
        )
    return applied


class BackupWindowProvider(pulumi.dynamic.ResourceProvider):
    """CRUD of one instance's backup schedule."""

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        applied = _put_schedule(props, props["day"], props["window"])
        return pulumi.dynamic.CreateResult(id_=str(props["linode_id"]), outs={**props, "applied": applied})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.DiffResult:
        changed = [key for key in ("linode_id", "day", "window", "api_url") if olds.get(key) != news.get(key)]
        return pulumi.dynamic.DiffResult(
            changes=bool(changed),
            replaces=["linode_id"] if "linode_id" in changed else [],
            delete_before_replace=False,
        )

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.UpdateResult:
        applied = _put_schedule(news, news["day"], news["window"])
        return pulumi.dynamic.UpdateResult(outs={**news, "applied": applied})

    def read(self, id_: str, props: dict[str, Any]) -> pulumi.dynamic.ReadResult:
        instance = _request(props["api_url"], props["token"], "GET", f"/linode/instances/{id_}")
        return pulumi.dynamic.ReadResult(id_=id_, outs={**props, **_schedule(instance)})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        try:
            _put_schedule(props, LET_LINODE_CHOOSE, LET_LINODE_CHOOSE)
        except LinodeApiError as error:
            if "HTTP 404" not in str(error):  # the instance is already gone: nothing to undo
                raise


class LinodeBackupWindow(pulumi.dynamic.Resource):
    """`day`/`window` of the Linode Backup Service on one instance (backups must be enabled)."""

    applied: pulumi.Output[dict[str, str]]

    def __init__(
        self,
        name: str,
        linode_id: pulumi.Input[str],
        day: str,
        window: str,
        token: pulumi.Input[str],
        api_url: str = LINODE_API_URL,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        secret_opts = pulumi.ResourceOptions(additional_secret_outputs=["token"])
        super().__init__(
            BackupWindowProvider(),
            name,
            {
                "linode_id": linode_id,
                "day": day,
                "window": window,
                "token": pulumi.Output.secret(token),
                "api_url": api_url,
                "applied": None,
            },
            pulumi.ResourceOptions.merge(secret_opts, opts),
        )
