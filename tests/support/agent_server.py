"""A real `langgraph dev` on a free loopback port, serving a test project.

The project (written into a temporary directory) has one graph whose
declared async tool writes files into `world/` and logs each call and each
inverse to `world/calls.log`; its `langgraph.json` points the checkpointer
and the app at `langgraph_rollback.server`. The server runs in its own
session (`setsid`), and is stopped by its pid: the whole process group gets
SIGTERM, then SIGKILL after a deadline.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.waiting import wait_for

AGENT = '''
"""The test graph: modes "plain" (two writes), "combo" (a write, then an
interrupt in the same node), "hold" (a write, then wait for a release file)."""

import asyncio
import json
import os
from pathlib import Path
from typing import Annotated, TypedDict
import operator

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt

from langgraph_rollback import Effect, reversible

WORLD = Path(os.environ["WORLD_DIR"])


def _log(entry):
    with open(WORLD / "calls.log", "a") as fh:
        fh.write(json.dumps(entry) + "\\n")


def _read(path):
    return Path(path).read_text() if Path(path).exists() else None


async def observe(path: str, content: str = ""):
    return await asyncio.to_thread(_read, path)


def delete_file(effect: Effect) -> str:
    _log({"kind": "inverse", "path": effect.args["path"]})
    Path(effect.args["path"]).unlink()
    return f"deleted {Path(effect.args['path']).name}"


def _write(path, content):
    Path(path).write_text(content)


@reversible(undo=delete_file, observe=observe)
async def write_file(path: str, content: str) -> str:
    await asyncio.to_thread(_log, {"kind": "forward", "path": path})
    await asyncio.to_thread(_write, path, content)
    return path


class State(TypedDict, total=False):
    name: str
    mode: str
    files: Annotated[list[str], operator.add]
    answer: str


def _file(state, n):
    return str(WORLD / f"{state['name']}-{n}.txt")


async def first(state: State) -> State:
    return {"files": [await write_file(_file(state, 1), "one")]}


async def second(state: State) -> State:
    return {"files": [await write_file(_file(state, 2), "two")]}


async def combo(state: State) -> State:
    path = await write_file(_file(state, 1), "one")
    answer = interrupt({"question": "continue?"})
    return {"files": [path], "answer": answer}


async def hold(state: State) -> State:
    path = await write_file(_file(state, 1), "one")
    release = WORLD / f"{state['name']}.release"
    while not await asyncio.to_thread(release.exists):
        await asyncio.sleep(0.02)
    return {"files": [path]}


def start(state: State) -> str:
    return {"combo": "combo", "hold": "hold"}.get(state.get("mode", ""), "first")


builder = StateGraph(State)
builder.add_node(first)
builder.add_node(second)
builder.add_node(combo)
builder.add_node(hold)
builder.add_conditional_edges(START, start, ["first", "combo", "hold"])
builder.add_edge("first", "second")
builder.add_edge("second", END)
builder.add_edge("combo", END)
builder.add_edge("hold", END)
graph = builder.compile()
'''

AUTH = '''
"""Token = user name ("Authorization: Bearer alice"); a thread is its creator's."""

from langgraph_sdk import Auth

auth = Auth()


@auth.authenticate
async def authenticate(authorization: str | None) -> Auth.types.MinimalUserDict:
    if not authorization or not authorization.startswith("Bearer "):
        raise Auth.exceptions.HTTPException(status_code=401, detail="missing token")
    name = authorization.removeprefix("Bearer ").strip()
    return {"identity": name, "permissions": [f"user:{name}"]}


@auth.on.threads.create
async def on_create(ctx: Auth.types.AuthContext, value):
    value.setdefault("metadata", {})["owner"] = ctx.user.identity
    return {"owner": ctx.user.identity}


@auth.on.threads
async def on_threads(ctx: Auth.types.AuthContext, value):
    return {"owner": ctx.user.identity}
'''

QUIET_ENV = {
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGGRAPH_NO_VERSION_CHECK": "true",
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
}
"""No telemetry, version check or tracing: the server needs no network."""

START_DEADLINE_S = 60.0
STOP_DEADLINE_S = 15.0


def langgraph_json(
    world: Path, *, auth: bool = False, route_auth: bool | None = None
) -> dict[str, Any]:
    """The `langgraph.json` of the test project."""
    config: dict[str, Any] = {
        "dependencies": ["."],
        "graphs": {"agent": "./agent.py:graph"},
        "checkpointer": {"path": "langgraph_rollback.server.checkpointer"},
        "http": {"app": "langgraph_rollback.server:app"},
        "env": {
            "LANGGRAPH_ROLLBACK_URI": str(world.parent / "rollback.sqlite"),
            "WORLD_DIR": str(world),
        },
        "disable_persistence": True,
    }
    if auth:
        config["auth"] = {"path": "./auth.py:auth", "disable_studio_auth": True}
    if route_auth if route_auth is not None else auth:
        config["http"]["enable_custom_route_auth"] = True
    return config


def write_project(root: Path, config: dict[str, Any]) -> Path:
    """Write the test project into `root`; return its `world/` directory."""
    world = root / "world"
    world.mkdir(parents=True, exist_ok=True)
    (root / "agent.py").write_text(AGENT)
    (root / "auth.py").write_text(AUTH)
    (root / "langgraph.json").write_text(json.dumps(config, indent=2))
    return world


def free_port() -> int:
    """A loopback port nobody listens on now (never the default 2024)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port != 2024:
            return port


@dataclass
class AgentServer:
    root: Path
    world: Path
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def calls(self, kind: str | None = None) -> list[dict[str, Any]]:
        path = self.world / "calls.log"
        if not path.exists():
            return []
        lines = [json.loads(x) for x in path.read_text().splitlines() if x]
        return [e for e in lines if kind is None or e["kind"] == kind]

    def files(self) -> list[str]:
        return sorted(p.name for p in self.world.glob("*.txt"))

    def stop(self) -> None:
        stop(self.process)


def _api_url(log: Path, port: int) -> str | None:
    """The URL the server says it serves on (it picks another port when the
    one asked for is taken, and says so)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", log.read_text(errors="replace"))
    found = re.search(r"API: (http://127\.0\.0\.1:\d+)", text)
    if found is None:
        return None
    if not found.group(1).endswith(f":{port}"):
        raise AssertionError(f"the server did not take port {port}: {found.group(1)}")
    return found.group(1)


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""Straight to the loopback server, whatever proxy the environment names."""


def _ok(url: str) -> bool:
    try:
        with _DIRECT.open(f"{url}/ok", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def start(root: Path, world: Path, *, config: str = "langgraph.json") -> AgentServer:
    """Start `langgraph dev` in `root`; return once `/ok` answers."""
    port = free_port()
    log = root / "server.log"
    langgraph = Path(sys.executable).with_name("langgraph")
    env = {**os.environ, **QUIET_ENV}
    for key in ("LANGSMITH_API_KEY", "LANGCHAIN_API_KEY", "LANGGRAPH_ROLLBACK_URI"):
        env.pop(key, None)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(langgraph),
                "dev",
                "--port",
                str(port),
                "--host",
                "127.0.0.1",
                "--no-browser",
                "--no-reload",
                "--config",
                config,
            ],
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # setsid: its pid is its process group
        )
    url: list[str] = []

    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"langgraph dev exited:\n{log.read_text()[-4000:]}")
        if not url:
            found = _api_url(log, port)
            if found is None:
                return False
            url.append(found)
        return _ok(url[0])

    try:
        wait_for(up, "langgraph dev to answer /ok", START_DEADLINE_S)
    except BaseException:
        stop(process)
        raise
    return AgentServer(root, world, url[0], process, log)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group, SIGKILL after the deadline."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(STOP_DEADLINE_S)
    deadline = time.monotonic() + STOP_DEADLINE_S
    while time.monotonic() < deadline:  # the group's other members, if any
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
