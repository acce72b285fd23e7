"""The routes `"http": {"app": "langgraph_rollback.server:app"}` mounts.

| route | does |
|---|---|
| `GET /threads/{id}/effects` | the ledger, newest first; `status` (repeatable), `tool`, `before`, `limit`, `checkpoint_id` filter it as `list_effects` does |
| `POST /threads/{id}/rollback/plan` | what a rollback would do (JSON body as below) |
| `POST /threads/{id}/rollback` | roll back: `{"to": ..., "on_conflict": ..., "on_irreversible": ..., "on_failure": ..., "skip": [...], "inverse_timeout": ..., "by": ..., "reason": ...}` |
| `POST /threads/{id}/effects/{effect_id}/resolve` | an operator's decision on an unknown outcome: `{"applied": bool}`, `{"compensated": bool}` or `{"result": ...}`, with `"by"` and `"reason"` |

The thread id is a UUID in any spelling the server takes (`uuid.UUID`'s);
the routes use the server's canonical spelling of it, as its runs do. Who
decided (`by`, kept in the audit trail with `skip`, `on_conflict="force"`
and resolutions) is the authenticated user when auth is configured (a body
`"by"` naming someone else is refused), else the body's `"by"`, else
"unknown"; `"reason"` is kept with it.

Answers: 200 with JSON; 404 for a thread, checkpoint or effect that is not
there (or that the requesting user may not read and update); 409 while the
thread has a run in progress, another rollback holds it, or a call may
still be in flight; 422 for bad input. Errors answer
`{"error": <type>, "detail": <message>}`, whose "Fix:" names JSON fields.

The graph of a thread is built the way the server builds it: from the
assistant of the thread's latest run (its graph and config), through
`_platform.graph_for`.

Auth: without auth configured (plain `langgraph dev`) the routes are open,
like the rest of that server. When the deployment configures auth, the app
refuses to start unless `"http": {"enable_custom_route_auth": true}` (else
the server would mount these routes unauthenticated), and each request runs
the deployment's `@auth.on.threads` handlers for "read" and "update" on the
thread; a thread they refuse or filter out answers 404.
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from langgraph_rollback._errors import (
    CheckpointNotFoundError,
    DurabilityError,
    EffectInFlightError,
    EffectNotFoundError,
    EffectStateError,
    InvalidConfigError,
    NotAnAncestorError,
    RollbackError,
    RollbackInProgressError,
    UnregisteredToolError,
)
from langgraph_rollback._rollback import aplan_rollback, arollback
from langgraph_rollback.core.config import INT64_MAX
from langgraph_rollback.core.resolve import UNSET
from langgraph_rollback.core.voice import Voice
from langgraph_rollback.server import _platform
from langgraph_rollback.server._json import effect_json, plan_json, report_json

__all__ = ["app", "auth_configured", "check_auth_setup", "routes"]

logger = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[JSONResponse]]


class HTTPError(Exception):
    def __init__(self, status: int, detail: str, error: str = "HTTPError") -> None:
        super().__init__(detail)
        self.status, self.detail, self.error = status, detail, error


# --- auth ------------------------------------------------------------------------


def _env_json(name: str) -> Any:
    raw = os.environ.get(name)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def auth_configured() -> bool:
    """Whether the deployment configures custom auth (`"auth": {"path": ...}`)."""
    found = _env_json("LANGGRAPH_AUTH")
    return isinstance(found, dict) and bool(found.get("path"))


def check_auth_setup() -> None:
    """Refuse to serve the routes unauthenticated where the server has auth.

    Raises:
        InvalidConfigError: Auth is configured but custom routes are not
            authenticated (`enable_custom_route_auth` is not true).
    """
    http = _env_json("LANGGRAPH_HTTP")
    if auth_configured() and not (
        isinstance(http, dict) and http.get("enable_custom_route_auth") is True
    ):
        raise InvalidConfigError(
            "This deployment configures auth, but custom routes are not "
            "authenticated, so the rollback routes would let anyone undo any "
            'thread. Fix: in langgraph.json, set "http": {"app": '
            '"langgraph_rollback.server:app", "enable_custom_route_auth": true}.'
        )


def _matches(metadata: Mapping[str, Any], filters: Mapping[str, Any]) -> bool:
    """Whether a thread's metadata passes an `@auth.on` filter (plain values,
    `$eq`, `$contains`); an operator this does not know refuses."""
    for key, wanted in filters.items():
        have = metadata.get(key)
        if isinstance(wanted, Mapping):
            for op, value in wanted.items():
                if op == "$eq":
                    ok = have == value
                elif op == "$contains":
                    ok = isinstance(have, list) and value in have
                else:
                    ok = False
                if not ok:
                    return False
        elif have != wanted:
            return False
    return True


async def _allowed(request: Request, thread_id: str) -> list[dict[str, Any]]:
    """The filters the thread must match for this user to read and update it."""
    if not auth_configured():
        return []
    user = request.scope.get("user")
    if user is None:
        raise HTTPError(401, "Not authenticated.", "Unauthorized")
    auth = request.scope.get("auth")
    permissions = list(getattr(auth, "scopes", None) or [])
    filters = []
    actions: tuple[tuple[Literal["read", "update"], dict[str, Any]], ...] = (
        ("read", {"thread_id": thread_id}),
        ("update", {"thread_id": thread_id, "metadata": {}}),
    )
    for action, value in actions:
        try:
            found = await _platform.authorize(user, permissions, action, value)
        except PermissionError:
            raise _not_found(thread_id) from None
        if found:
            filters.append(found)
    return filters


def _not_found(thread_id: str) -> HTTPError:
    return HTTPError(
        404,
        f"Thread {thread_id!r} not found. Fix: check the thread id "
        "(GET /threads/<id> on this server).",
        "NotFound",
    )


# --- the thread, its graph and saver ------------------------------------------


_UUID_SPELLING = re.compile(r"(?:urn:uuid:)?\{?[0-9A-Fa-f-]{32,36}\}?")
"""The spellings of a UUID the server takes as a thread id (`uuid.UUID`'s),
without the whitespace, underscores, `?`, `#` or NUL that `int()` or a URL
would read as something else."""


def _canonical(raw: str) -> str:
    """The path's thread id as the server keeps it: a UUID, spelled canonically.

    Raises:
        HTTPError: 422, it is not a UUID (as the server's own routes answer).
    """
    if _UUID_SPELLING.fullmatch(raw):
        try:
            return str(uuid.UUID(raw))
        except ValueError:
            pass
    raise HTTPError(
        422,
        f"Thread id {raw[:80]!r} is not a UUID. Fix: use the thread_id the "
        "server answered (POST /threads, GET /threads/<id>).",
        "InvalidInput",
    )


async def _thread(request: Request) -> dict[str, Any]:
    """The path's thread as the server answers it (its `thread_id` canonical),
    once the requesting user may read and update it."""
    from langgraph_sdk import get_client
    from langgraph_sdk.errors import (
        BadRequestError,
        NotFoundError,
        UnprocessableEntityError,
    )

    thread_id = _canonical(request.path_params["thread_id"])
    filters = await _allowed(request, thread_id)
    try:
        thread = dict(await get_client().threads.get(thread_id))
    except NotFoundError:
        raise _not_found(thread_id) from None
    except (BadRequestError, UnprocessableEntityError) as exc:
        raise HTTPError(422, f"Thread {thread_id!r}: {exc}", "InvalidInput") from None
    metadata: Any = thread.get("metadata") or {}
    if not all(_matches(metadata, f) for f in filters):
        raise _not_found(thread_id)
    thread["thread_id"] = str(thread.get("thread_id") or thread_id)
    return thread


def _refuse_busy(thread: Mapping[str, Any]) -> None:
    if thread.get("status") == "busy":
        raise HTTPError(
            409,
            f"Thread {thread['thread_id']!r} has a run in progress. Fix: wait for "
            "it to end (or cancel it), then send the request again.",
            "ThreadBusy",
        )


async def _graph_source(thread: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The graph id and config of the assistant of the thread's latest run."""
    from langgraph_sdk import get_client

    client = get_client()
    thread_id = str(thread["thread_id"])
    runs = await client.runs.list(thread_id, limit=1)
    assistant_config: Mapping[str, Any] = {}
    graph_id = (thread.get("metadata") or {}).get("graph_id")
    assistant = await _assistant(runs[0]["assistant_id"]) if runs else None
    if assistant is not None:
        graph_id = assistant["graph_id"]
        assistant_config = assistant.get("config") or {}
    if not graph_id:
        raise HTTPError(404, f"Thread {thread_id!r} has never run a graph.", "NotFound")
    thread_config: Mapping[str, Any] = thread.get("config") or {}
    configurable = {
        **(assistant_config.get("configurable") or {}),
        **(thread_config.get("configurable") or {}),
        "thread_id": thread_id,
    }
    return str(graph_id), {**assistant_config, "configurable": configurable}


async def _assistant(assistant_id: str) -> Mapping[str, Any] | None:
    """The assistant, or None once it was deleted (the thread's `graph_id`
    metadata then names the graph, built with the thread's config only)."""
    from langgraph_sdk import get_client
    from langgraph_sdk.errors import NotFoundError

    try:
        found: Mapping[str, Any] = await get_client().assistants.get(assistant_id)
    except NotFoundError:
        logger.info(
            "Assistant %s of the thread's latest run is gone; building the "
            "thread's graph from its graph_id metadata",
            assistant_id,
        )
        return None
    return found


# --- input -----------------------------------------------------------------------


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise HTTPError(422, "The body is not JSON.", "InvalidInput") from None
    if not isinstance(body, dict):
        raise HTTPError(422, "The body must be a JSON object.", "InvalidInput")
    return body


_ROLLBACK_FIELDS = {
    "to",
    "on_conflict",
    "on_irreversible",
    "on_failure",
    "skip",
    "by",
    "reason",
}


def _rollback_args(body: Mapping[str, Any], *, plan: bool) -> dict[str, Any]:
    allowed = {"to"} if plan else {*_ROLLBACK_FIELDS, "inverse_timeout"}
    unknown = sorted(set(body) - allowed - (_ROLLBACK_FIELDS if plan else set()))
    if unknown:
        raise HTTPError(
            422,
            f"Unknown field(s) {', '.join(map(repr, unknown))}. Fix: send "
            + ", ".join(f'"{f}"' for f in sorted(allowed | _ROLLBACK_FIELDS))
            + ".",
            "InvalidInput",
        )
    to = body.get("to")
    if not isinstance(to, str) or not to:
        raise HTTPError(
            422,
            'The body needs "to", a target as text. Fix: send "to": "first", '
            '"run_start", "run_start:<run id>", "before_node:<node>", an effect '
            "id from GET /threads/<id>/effects, or a checkpoint id.",
            "InvalidInput",
        )
    args: dict[str, Any] = {"to": to}
    if plan:
        return args
    for name in ("on_conflict", "on_irreversible", "on_failure"):
        if name in body:
            if not isinstance(body[name], str):
                raise HTTPError(422, f'"{name}" must be text.', "InvalidInput")
            args[name] = body[name]
    skip = body.get("skip", [])
    if not isinstance(skip, list) or not all(isinstance(s, str) for s in skip):
        raise HTTPError(
            422, '"skip" must be a list of effect ids (text).', "InvalidInput"
        )
    args["skip"] = skip
    if "inverse_timeout" in body:
        args["inverse_timeout"] = body["inverse_timeout"]
    return args


def _decision(request: Request, body: Mapping[str, Any]) -> dict[str, Any]:
    """`by` and `reason` for the audit trail: the authenticated user (a body
    `by` naming anyone else is refused), else the body's `by` (None: the
    library's "unknown"); the body's `reason`."""
    for name in ("by", "reason"):
        if name in body and not isinstance(body[name], str):
            raise HTTPError(422, f'"{name}" must be text.', "InvalidInput")
    by = body.get("by")
    user = request.scope.get("user")
    if getattr(user, "is_authenticated", False):
        identity = str(getattr(user, "identity", "") or "")
        if by is not None and by.strip() != identity:
            raise HTTPError(
                422,
                f'"by": {by!r} is not the authenticated user ({identity!r}); the '
                'audit trail names who sent the request. Fix: leave "by" out.',
                "InvalidInput",
            )
        by = identity or None
    return {"by": by, "reason": body.get("reason")}


def _effect_filters(request: Request) -> dict[str, Any]:
    params = request.query_params
    unknown = sorted(
        set(params) - {"status", "tool", "before", "limit", "checkpoint_id"}
    )
    if unknown:
        raise HTTPError(
            422,
            f"Unknown filter(s) {', '.join(map(repr, unknown))}. Fix: use status, "
            "tool, before, limit or checkpoint_id.",
            "InvalidInput",
        )
    filters: dict[str, Any] = {}
    statuses = params.getlist("status")
    if statuses:
        filters["status"] = statuses
    if "tool" in params:
        filters["tool"] = params["tool"]
    for name in ("before", "limit"):
        if name in params:
            filters[name] = _whole(name, params[name])
    return filters


def _whole(name: str, text: str) -> int:
    """A `before` or `limit` query value: a whole number a 64-bit integer holds."""
    try:
        value = int(text)
    except ValueError:
        raise HTTPError(
            422, f"{name}={text[:40]!r} is not a whole number.", "InvalidInput"
        ) from None
    if not -INT64_MAX - 1 <= value <= INT64_MAX:
        raise HTTPError(
            422,
            f"{name}={text[:40]!r} is past the 64-bit integers the ledger holds. "
            f"Fix: send {name} between {-INT64_MAX - 1} and {INT64_MAX}, or leave "
            "it out.",
            "InvalidInput",
        )
    return value


# --- output ----------------------------------------------------------------------


def _status_of(exc: RollbackError) -> int:
    if isinstance(exc, NotAnAncestorError):
        return 422
    if isinstance(exc, CheckpointNotFoundError | EffectNotFoundError):
        return 404
    if isinstance(
        exc, RollbackInProgressError | EffectInFlightError | EffectStateError
    ):
        return 409
    if isinstance(exc, InvalidConfigError | UnregisteredToolError | DurabilityError):
        return 422
    return 500


def _route(handler: Handler) -> Handler:
    async def run(request: Request) -> JSONResponse:
        try:
            return await handler(request)
        except HTTPError as exc:
            body = {"error": exc.error, "detail": exc.detail}
            return JSONResponse(body, status_code=exc.status)
        except RollbackError as exc:
            body = {"error": type(exc).__name__, "detail": str(exc)}
            return JSONResponse(body, status_code=_status_of(exc))

    run.__name__ = handler.__name__
    run.__doc__ = handler.__doc__
    return run


# --- the routes ------------------------------------------------------------------


def _config(thread_id: str, **configurable: Any) -> Any:
    return {"configurable": {"thread_id": thread_id, **configurable}}


@_route
async def list_effects(request: Request) -> JSONResponse:
    """GET /threads/{thread_id}/effects: the thread's ledger, newest first."""
    filters = _effect_filters(request)
    thread_id = (await _thread(request))["thread_id"]
    checkpoint = request.query_params.get("checkpoint_id")
    extra = {} if checkpoint is None else {"checkpoint_id": checkpoint}
    saver = await _platform.server_saver()
    effects = await saver.alist_effects(_config(thread_id, **extra), **filters)
    return JSONResponse(
        {"thread_id": thread_id, "effects": [effect_json(e) for e in effects]}
    )


@_route
async def plan(request: Request) -> JSONResponse:
    """POST /threads/{thread_id}/rollback/plan: what a rollback would do."""
    args = _rollback_args(await _body(request), plan=True)
    thread = await _thread(request)
    thread_id = thread["thread_id"]
    graph_id, config = await _graph_source(thread)
    async with _platform.graph_for(
        graph_id, config, access_context="threads.read"
    ) as graph:
        found = await aplan_rollback(
            graph, _config(thread_id), to=args["to"], voice=Voice.HTTP
        )
    return JSONResponse(plan_json(found))


@_route
async def roll_back(request: Request) -> JSONResponse:
    """POST /threads/{thread_id}/rollback: undo, newest first, and restore."""
    body = await _body(request)
    args = {**_rollback_args(body, plan=False), **_decision(request, body)}
    thread = await _thread(request)
    thread_id = thread["thread_id"]
    _refuse_busy(thread)
    graph_id, config = await _graph_source(thread)
    async with _platform.graph_for(
        graph_id, config, access_context="threads.update"
    ) as graph:
        report = await arollback(graph, _config(thread_id), voice=Voice.HTTP, **args)
    return JSONResponse(report_json(report))


@_route
async def resolve(request: Request) -> JSONResponse:
    """POST /threads/{thread_id}/effects/{effect_id}/resolve."""
    effect_id = request.path_params["effect_id"]
    body = await _body(request)
    decisions = set(body) & {"applied", "compensated", "result"}
    if set(body) - {"applied", "compensated", "result", "by", "reason"} or not (
        decisions
    ):
        raise HTTPError(
            422,
            'Fix: send one of {"applied": true|false}, {"compensated": '
            'true|false} or {"result": <what the call returned>}, optionally '
            'with "by" and "reason".',
            "InvalidInput",
        )
    for name in ("applied", "compensated"):
        if name in body and not isinstance(body[name], bool):
            raise HTTPError(422, f'"{name}" must be true or false.', "InvalidInput")
    decision = _decision(request, body)
    thread = await _thread(request)
    _refuse_busy(thread)
    saver = await _platform.server_saver()
    effect = await saver.aresolve_effect(
        _config(thread["thread_id"]),
        effect_id,
        applied=body.get("applied"),
        compensated=body.get("compensated"),
        result=body.get("result", UNSET),
        **decision,
    )
    return JSONResponse(effect_json(effect))


@asynccontextmanager
async def _lifespan(_: Starlette) -> AsyncIterator[None]:
    check_auth_setup()
    yield


routes = [
    Route("/threads/{thread_id}/effects", list_effects, methods=["GET"]),
    Route("/threads/{thread_id}/rollback/plan", plan, methods=["POST"]),
    Route("/threads/{thread_id}/rollback", roll_back, methods=["POST"]),
    Route(
        "/threads/{thread_id}/effects/{effect_id}/resolve", resolve, methods=["POST"]
    ),
]
"""The routes, for mounting into an app of your own (then call
`check_auth_setup()` in its lifespan)."""

app = Starlette(routes=routes, lifespan=_lifespan)
"""The app for `"http": {"app": "langgraph_rollback.server:app"}`."""
