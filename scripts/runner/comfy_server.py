"""Start a real ComfyUI server with the pack installed, and drive it over HTTP/WS.

Used by the `comfy_server` fixture (tests/conftest.py) and by `make demo`.
Everything talks to the server the way a user's browser does: `POST /prompt`
with an API graph, `/history` for results, `/view` for files, `/ws` for events.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable

from .comfy_env import PACK_FOLDER_NAME, PACK_PYTHON_MODULE, REPO, ComfyEnv, link_pack
from .workflow import is_api_format, load_workflow, ui_to_api

READY_TIMEOUT_S = 120.0


class ComfyError(AssertionError):
    """Base class: a failure that carries the server log tail."""


class PromptRejected(ComfyError):
    """`POST /prompt` answered HTTP 400 (validation failed).

    `.node_errors` is the server's `{node_id: {"errors": [...], ...}}`, `.error`
    its top-level error dict.
    """

    def __init__(self, status: int, body: dict):
        self.status = status
        self.body = body
        self.error = body.get("error", {})
        self.node_errors = body.get("node_errors", {})
        super().__init__(
            f"ComfyUI rejected the prompt (HTTP {status}): "
            f"{json.dumps(self.error, indent=1)}\nnode_errors: {json.dumps(self.node_errors, indent=1)}")

    def errors_for(self, node_id: str) -> list[dict]:
        return list(self.node_errors.get(str(node_id), {}).get("errors", []))


class ExecutionFailed(ComfyError):
    """A queued prompt finished with `status_str == "error"` (or was interrupted)."""

    def __init__(self, prompt_id: str, entry: dict, log_tail: str):
        self.prompt_id = prompt_id
        self.entry = entry
        messages = entry.get("status", {}).get("messages", [])
        details = []
        for kind, data in messages:
            if kind == "execution_error":
                details.append(
                    f"node {data.get('node_id')} ({data.get('node_type')}): "
                    f"{data.get('exception_type')}: {data.get('exception_message')}\n"
                    + "".join(data.get("traceback", [])))
            elif kind == "execution_interrupted":
                details.append(f"interrupted at node {data.get('node_id')} ({data.get('node_type')})")
        super().__init__(
            f"prompt {prompt_id} ended with status {entry.get('status', {}).get('status_str')!r}\n"
            + "\n".join(details) + f"\n--- server log tail ---\n{log_tail}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyServer:
    """One ComfyUI process on 127.0.0.1 with `<base_dir>` as its --base-directory.

    Files: put inputs with `put_input`, model files with `put_model` (any time:
    ComfyUI's file-list cache is keyed on folder mtimes, so a new file shows up
    in the next /object_info or prompt without a restart).  Outputs land in
    `output_dir`; `view()` fetches them through the server.
    """

    def __init__(self, env: ComfyEnv, base_dir: Path, pack_dir: Path = REPO,
                 extra_args: Iterable[str] = (), host: str = "127.0.0.1"):
        self.env = env
        self.base_dir = Path(base_dir)
        self.pack_dir = Path(pack_dir)
        self.extra_args = list(extra_args)
        self.host = host
        self.port: int | None = None
        self.client_id = uuid.uuid4().hex
        self.log_path = self.base_dir / "comfyui.log"
        self._proc: subprocess.Popen | None = None
        self._log_file = None

    # ----------------------------------------------------------------- layout
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def models_dir(self) -> Path:
        return self.base_dir / "models"

    @property
    def input_dir(self) -> Path:
        return self.base_dir / "input"

    @property
    def output_dir(self) -> Path:
        return self.base_dir / "output"

    @property
    def temp_dir(self) -> Path:
        return self.base_dir / "temp"

    # -------------------------------------------------------------- lifecycle
    def start(self, timeout: float = READY_TIMEOUT_S) -> "ComfyServer":
        if self._proc is not None:
            return self
        for sub in ("models", "input", "output", "temp", "user"):
            (self.base_dir / sub).mkdir(parents=True, exist_ok=True)
        link_pack(self.base_dir, self.pack_dir)
        for attempt in range(3):
            self.port = free_port()
            self._spawn()
            try:
                self._wait_ready(timeout)
                return self
            except ComfyError:
                port_clash = "address already in use" in self.log_text().lower()
                self.stop()
                if not port_clash or attempt == 2:
                    raise
        return self

    def _spawn(self) -> None:
        env = dict(os.environ)
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # doubles import time otherwise
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1",
                   HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        cmd = [str(self.env.python), "main.py"]
        if self.env.use_cpu:
            cmd.append("--cpu")
        cmd += ["--listen", self.host, "--port", str(self.port),
                "--base-directory", str(self.base_dir), "--disable-auto-launch",
                "--database-url", "sqlite:///:memory:", *self.extra_args]
        self._log_file = open(self.log_path, "ab")
        self._log_file.write(f"$ {' '.join(cmd)}\n".encode())
        self._log_file.flush()
        self._proc = subprocess.Popen(cmd, cwd=self.env.core, env=env, stdin=subprocess.DEVNULL,
                                      stdout=self._log_file, stderr=subprocess.STDOUT)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ComfyError(f"ComfyUI exited with code {self._proc.returncode} during start-up\n"
                                 f"--- log tail ---\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/system_stats", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.25)
        raise ComfyError(f"ComfyUI did not answer /system_stats within {timeout:.0f} s\n"
                         f"--- log tail ---\n{self.log_tail()}")

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> "ComfyServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -------------------------------------------------------------------- log
    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    # ------------------------------------------------------------------- HTTP
    def request(self, method: str, path: str, body: Any = None, *, params: dict | None = None,
                timeout: float = 60) -> tuple[int, bytes, str]:
        """(status, raw body, content type); never raises on HTTP error codes."""
        url = self.url + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = None
        headers = {}
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read(), r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            return e.code, e.read(), e.headers.get("Content-Type", "")
        except (urllib.error.URLError, ConnectionError) as e:
            raise ComfyError(f"{method} {path} failed: {e}\n--- server log tail ---\n{self.log_tail()}") from e

    def get_json(self, path: str, **params) -> Any:
        status, raw, _ = self.request("GET", path, params=params or None)
        if status != 200:
            raise ComfyError(f"GET {path} -> HTTP {status}: {raw[:500]!r}")
        return json.loads(raw)

    def post_json(self, path: str, body: Any) -> tuple[int, Any]:
        status, raw, ctype = self.request("POST", path, body)
        return status, (json.loads(raw) if raw and "json" in ctype else raw)

    # ------------------------------------------------------------ node schema
    def object_info(self, node_class: str | None = None) -> dict:
        """Fresh `/object_info` (or the entry of one node class)."""
        if node_class is None:
            return self.get_json("/object_info")
        return self.get_json(f"/object_info/{node_class}").get(node_class, {})

    def pack_node_ids(self, info: dict | None = None) -> set[str]:
        """Node ids that ComfyUI attributes to this pack (`python_module`)."""
        info = self.object_info() if info is None else info
        return {k for k, v in info.items() if v.get("python_module") == PACK_PYTHON_MODULE}

    def workflow_templates(self) -> dict[str, list[str]]:
        return self.get_json("/api/workflow_templates")

    # --------------------------------------------------------------- prompts
    def queue(self, prompt: dict, *, workflow: dict | None = None, prompt_id: str | None = None) -> str:
        """POST an API-format graph; returns its prompt_id.

        `workflow` (the UI json) is sent as extra_pnginfo, as the browser does,
        so SaveImage/SaveVideo embed it.  Raises PromptRejected on HTTP 400.
        """
        if not is_api_format(prompt):
            raise ValueError("queue() takes an API-format graph; convert UI workflows "
                             "with ui_to_api() or use run_workflow()")
        body: dict[str, Any] = {"prompt": prompt, "client_id": self.client_id}
        if prompt_id is not None:
            body["prompt_id"] = prompt_id
        if workflow is not None:
            body["extra_data"] = {"extra_pnginfo": {"workflow": workflow}}
        status, reply = self.post_json("/prompt", body)
        if status != 200:
            raise PromptRejected(status, reply if isinstance(reply, dict) else {"error": str(reply)})
        return reply["prompt_id"]

    def history(self, prompt_id: str) -> dict | None:
        return self.get_json(f"/history/{prompt_id}").get(prompt_id)

    def wait(self, prompt_id: str, timeout: float = 120.0) -> dict:
        """Poll /history until `prompt_id` is in it; return that entry.

        The WS `execution_success` event can arrive before /history has the
        entry, so this always polls.  Does not judge the outcome: see `run()`.
        """
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            entry = self.history(prompt_id)
            if entry is not None:
                return entry
            if not self.alive():
                raise ComfyError(f"ComfyUI died while running {prompt_id}\n--- log tail ---\n{self.log_tail()}")
            if time.monotonic() > deadline:
                queue = self.get_json("/queue")
                raise ComfyError(f"prompt {prompt_id} not in /history after {timeout:.0f} s; "
                                 f"queue: running={len(queue['queue_running'])} pending={len(queue['queue_pending'])}\n"
                                 f"--- log tail ---\n{self.log_tail()}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def run(self, prompt: dict, *, timeout: float = 120.0, workflow: dict | None = None,
            check: bool = True) -> dict:
        """queue + wait; with `check`, raise ExecutionFailed unless status is success."""
        prompt_id = self.queue(prompt, workflow=workflow)
        entry = self.wait(prompt_id, timeout)
        entry.setdefault("prompt_id", prompt_id)
        if check and entry.get("status", {}).get("status_str") != "success":
            raise ExecutionFailed(prompt_id, entry, self.log_tail())
        return entry

    def interrupt(self, prompt_id: str | None = None) -> None:
        """POST /interrupt (global, or only if `prompt_id` is the running one)."""
        status, _ = self.post_json("/interrupt", {"prompt_id": prompt_id} if prompt_id else {})
        if status != 200:
            raise ComfyError(f"/interrupt -> HTTP {status}")

    def free(self, unload_models: bool = True, free_memory: bool = True) -> None:
        """Ask the server to drop loaded models / cached outputs after the current prompt."""
        self.post_json("/free", {"unload_models": unload_models, "free_memory": free_memory})

    # ------------------------------------------------------------- workflows
    def ui_to_api(self, workflow: dict) -> dict:
        """Convert a UI ("save") workflow to an API graph using the live /object_info."""
        return ui_to_api(workflow, self.object_info())

    def run_workflow(self, workflow: dict | str | Path, *, timeout: float = 600.0,
                     check: bool = True) -> dict:
        """Load (if a path), convert (if UI format), run; returns the history entry."""
        wf = load_workflow(workflow) if isinstance(workflow, (str, Path)) else workflow
        if is_api_format(wf):
            return self.run(wf, timeout=timeout, check=check)
        return self.run(self.ui_to_api(wf), timeout=timeout, workflow=wf, check=check)

    # ------------------------------------------------------------------ files
    def view(self, filename: str, subfolder: str = "", type: str = "output") -> bytes:
        status, raw, _ = self.request("GET", "/view",
                                      params={"filename": filename, "subfolder": subfolder, "type": type})
        if status != 200:
            raise ComfyError(f"/view {type}/{subfolder}/{filename} -> HTTP {status}")
        return raw

    @staticmethod
    def output_items(entry: dict, kinds: Iterable[str] | None = None) -> list[dict]:
        """Flatten a history entry's file outputs.

        Each item: {"node", "kind" ("images"/"audio"/"video"/...), "filename",
        "subfolder", "type"}.  SaveVideo reports its mp4 under "images".
        """
        items = []
        for node_id, outputs in entry.get("outputs", {}).items():
            for kind, values in outputs.items():
                if kinds is not None and kind not in kinds:
                    continue
                for v in values if isinstance(values, list) else []:
                    if isinstance(v, dict) and "filename" in v:
                        items.append({"node": node_id, "kind": kind, "filename": v["filename"],
                                      "subfolder": v.get("subfolder", ""), "type": v.get("type", "output")})
        return items

    def output_path(self, item: dict) -> Path:
        """Path on disk of an `output_items()` item."""
        root = {"output": self.output_dir, "temp": self.temp_dir, "input": self.input_dir}[item["type"]]
        return root / item.get("subfolder", "") / item["filename"]

    def put_input(self, name: str, src: bytes | str | Path) -> str:
        """Place a file in `<base>/input/` (for LoadImage/LoadAudio); returns `name`."""
        _place(self.input_dir / name, src, link=False)
        return name

    def put_model(self, folder: str, relpath: str, src: bytes | str | Path, *, link: bool = True) -> Path:
        """Place a model file or folder at `<base>/models/<folder>/<relpath>`.

        `src` may be bytes or a path; paths are symlinked (cheap for big
        weights) unless link=False.  Visible to the server immediately.
        """
        return _place(self.models_dir / folder / relpath, src, link=link)

    # -------------------------------------------------------------- websocket
    def listen(self) -> "EventListener":
        """Context manager collecting WS events for this client (see EventListener).

        Open it *before* queueing: progress/executing events go only to the
        client_id that queued the prompt, and only while a socket is open.
        """
        return EventListener(self)


def _place(dest: Path, src: bytes | str | Path, *, link: bool) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_symlink() or dest.is_file():
        dest.unlink()
    elif dest.is_dir():
        shutil.rmtree(dest)
    if isinstance(src, (bytes, bytearray)):
        dest.write_bytes(src)
    elif link:
        dest.symlink_to(Path(src).resolve())
    elif Path(src).is_dir():
        shutil.copytree(src, dest)
    else:
        shutil.copyfile(src, dest)
    return dest


class EventListener:
    """Collects `/ws` messages in a background thread.

        with server.listen() as ev:
            pid = server.queue(graph)
            entry = server.wait(pid)
            ev.wait_for("execution_success", pid)
        types = [e["type"] for e in ev.events(pid)]

    Each event is {"type": str, "data": dict, "t": monotonic time}; binary
    frames (latent previews) are recorded as type "binary" with data {"size"}.
    """

    def __init__(self, server: ComfyServer):
        self.server = server
        self._events: list[dict] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._ws = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "EventListener":
        import websocket  # websocket-client (requirements-test.txt)

        url = f"ws://{self.server.host}:{self.server.port}/ws?clientId={self.server.client_id}"
        self._ws = websocket.create_connection(url, timeout=10)
        self._ws.settimeout(0.2)
        self._thread = threading.Thread(target=self._loop, name="comfy-ws", daemon=True)
        self._thread.start()
        # The server greets every socket with a "status" message: once it is
        # here the socket is registered and no prompt event can be missed.
        self.wait_for("status", timeout=10)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._ws is not None:
            try:
                self._ws.close()
            except Exception:
                pass
            self._ws = None

    def _loop(self) -> None:
        import websocket

        while not self._stop.is_set():
            try:
                opcode, payload = self._ws.recv_data()
            except websocket.WebSocketTimeoutException:
                continue
            except Exception:
                break
            if opcode == websocket.ABNF.OPCODE_TEXT:
                msg = json.loads(payload.decode())
                event = {"type": msg.get("type"), "data": msg.get("data") or {}, "t": time.monotonic()}
            elif opcode == websocket.ABNF.OPCODE_BINARY:
                event = {"type": "binary", "data": {"size": len(payload)}, "t": time.monotonic()}
            else:
                continue
            with self._cond:
                self._events.append(event)
                self._cond.notify_all()

    def events(self, prompt_id: str | None = None, types: Iterable[str] | None = None) -> list[dict]:
        """Events so far, optionally only those of one prompt and/or some types."""
        types = set(types) if types is not None else None
        with self._cond:
            out = list(self._events)
        if prompt_id is not None:
            out = [e for e in out if e["data"].get("prompt_id") == prompt_id]
        if types is not None:
            out = [e for e in out if e["type"] in types]
        return out

    def wait_for(self, type: str, prompt_id: str | None = None, timeout: float = 60.0,
                 predicate: Callable[[dict], bool] | None = None) -> dict:
        """Block until an event of `type` (for `prompt_id`, matching `predicate`) arrives."""
        deadline = time.monotonic() + timeout

        def match(e):
            return (e["type"] == type and (prompt_id is None or e["data"].get("prompt_id") == prompt_id)
                    and (predicate is None or predicate(e)))

        with self._cond:
            while True:
                for e in self._events:
                    if match(e):
                        return e
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [e["type"] for e in self._events][-30:]
                    raise ComfyError(f"no WS event {type!r} (prompt {prompt_id}) within {timeout:.0f} s; "
                                     f"last events: {seen}\n--- server log tail ---\n{self.server.log_tail()}")
                self._cond.wait(min(left, 0.5))


__all__ = ["ComfyServer", "ComfyError", "PromptRejected", "ExecutionFailed", "EventListener",
           "PACK_FOLDER_NAME", "PACK_PYTHON_MODULE", "free_port"]
