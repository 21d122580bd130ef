"""What a user sees in the UIs after `edgeops run`: the MLflow and Prefect web apps in headless Chromium.

One pipeline run on the demo digits in a temporary project with the embedded stores that `make run` leaves
(mlflow.db, and .prefect/prefect.db written by `edgeops run`'s own temporary Prefect server), the
registered version promoted to production; then `make ui` and `make prefect-ui` serve those stores as a
user starts them, and Chromium opens the pages. Screenshots go to a temp dir, and with
EDGEOPS_SAVE_SCREENSHOTS=1 to docs/images/ (the README shows them).

Both UIs are single-page apps, so a page is ready when its text is there and no spinner is in view: the
test asks the page itself, polling over Chrome's DevTools protocol on a pipe (--remote-debugging-pipe:
JSON on fds 3/4, no driver or websocket client needed). `--dump-dom --virtual-time-budget=N` is not
enough: under virtual time MLflow's metric charts never leave their spinners, whatever the budget.

Needs Debian's `chromium` (.ci/run installs it): without it the module skips, unless
EDGEOPS_REQUIRE_BROWSER=1 (CI) makes that a failure.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgeops.vision.classification.demo import make_demo_dataset
from tests.integration.test_pipeline import KEY, VARIANTS, make_project
from tests.unit.edge_helpers import free_port, stop_process_group

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MODEL = "tiny-digits"  # make_project's mlflow.model_name
WINDOW = (1400, 900)
PAGE_SECONDS = 120  # a loaded 2-core machine: MLflow's charts took 8 s to draw beside a pipeline run
# loading indicators of MLflow (its design system's Spin) and Prefect (Tailwind's animate-*)
SPINNERS = '[class*="spin-spinning"], [role="progressbar"], [aria-busy="true"], .animate-spin, .animate-pulse'
# MLflow opens its Assistant panel on a local server's first visit; a user closes it once (remembered)
MLFLOW_ASSISTANT_CLOSE = "document.querySelector('[data-component-id=\"mlflow.assistant.chat_panel.close\"]')"


# --------------------------------------------------------------------------- the browser


class Browser:
    """One headless Chromium, driven over the DevTools protocol on a pipe (NUL-terminated JSON)."""

    def __init__(self, exe: str, profile: Path, shots: Path) -> None:
        self.shots = shots
        to_chrome, self._out = os.pipe()
        self._in, from_chrome = os.pipe()

        def on_fds_3_and_4() -> None:  # in the child: --remote-debugging-pipe reads fd 3, writes fd 4
            os.setsid()
            read, write = os.dup(to_chrome), os.dup(from_chrome)  # both > 4 or already in place
            os.dup2(read, 3)
            os.dup2(write, 4)

        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        cmd += ["--hide-scrollbars", "--no-first-run", "--disable-extensions", "--mute-audio"]
        cmd += [f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}"]
        cmd += ["--remote-debugging-pipe", "about:blank"]
        with open(profile.parent / "chromium.log", "w") as log:
            self.proc = subprocess.Popen(  # the pipe fds are close-on-exec: only 3 and 4 are inherited
                cmd, stdout=log, stderr=log, preexec_fn=on_fds_3_and_4, close_fds=False
            )
        os.close(to_chrome)
        os.close(from_chrome)
        self._buffer, self._id, self.session = b"", 0, ""
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)[
            "sessionId"
        ]
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=WINDOW[0],
            height=WINDOW[1],
            deviceScaleFactor=1,
            mobile=False,
        )

    def call(self, method: str, timeout: float = 60, **params: Any) -> dict[str, Any]:
        """One DevTools command (to the page once attached); its result. Events in between are skipped."""
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if self.session:
            message["sessionId"] = self.session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self._in], [], [], left)[0]:
                    raise TimeoutError(f"chromium did not answer {method} within {timeout:.0f}s")
                chunk = os.read(self._in, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"chromium exited (code {self.proc.poll()})")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply["result"])

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def wait(self, url: str, expect: list[str], ready: str) -> None:
        """Until the visible text holds every string of `expect`, no spinner is in view and `ready` is true."""
        check = f"""(() => {{
            const text = document.body ? document.body.innerText : "";
            const inView = e => {{ const r = e.getBoundingClientRect();
                return r.width > 0 && r.height > 0 && r.bottom > 0 && r.top < innerHeight; }};
            const spinning = [...document.querySelectorAll({json.dumps(SPINNERS)})].some(inView);
            return {json.dumps(expect)}.every(t => text.includes(t)) && !spinning && Boolean({ready});
        }})()"""
        deadline = time.monotonic() + PAGE_SECONDS
        while not self.evaluate(check):
            if time.monotonic() > deadline:
                text = self.evaluate("document.body ? document.body.innerText : ''") or ""
                missing = [t for t in expect if t not in text]
                pytest.fail(f"{url} not ready in {PAGE_SECONDS}s: missing {missing}; it shows: {text[:3000]}")
            time.sleep(0.5)

    def page(
        self,
        url: str,
        expect: list[str],
        shot: str,
        *,
        ready: str = "true",
        dismiss: str | None = None,
        click: str | None = None,
        fill: tuple[str, str] | None = None,
        after: tuple[str, ...] = (),
    ) -> str:
        """Open `url` and wait until it shows `expect`; close what `dismiss` finds; click what `click`
        finds or type into `fill` = (CSS selector, text), then wait for `after` too; once the JS `ready`
        is true, save a screenshot as `shot`. `dismiss` and `click` are JS expressions for an element.
        Returns the page's visible text."""
        self.call("Page.navigate", url="about:blank")
        self.call("Page.navigate", url=url)
        self.wait(url, expect, "true" if click or fill else ready)
        if dismiss:
            for _ in range(6):  # a panel may open once its data arrived, after the page looked ready
                self.click(dismiss)
                time.sleep(0.5)
        if click:
            assert self.click(click), f"nothing to click ({click}) on {url}"
        if fill:
            assert self.type_into(*fill), f"no {fill[0]} to type into on {url}"
        if click or fill:
            self.wait(url, [*expect, *after], ready)
        time.sleep(1.5)  # charts and tables animate in
        png = self.shots / shot
        png.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        assert_not_blank(png)
        if os.environ.get("EDGEOPS_SAVE_SCREENSHOTS") == "1":
            (ROOT / "docs" / "images").mkdir(parents=True, exist_ok=True)
            shutil.copy(png, ROOT / "docs" / "images" / shot)
        return str(self.evaluate("document.body.innerText"))

    def click(self, element: str) -> bool:
        """Click the element the JS expression `element` evaluates to, if any."""
        return bool(self.evaluate(f"(e => e ? (e.click(), true) : false)({element})"))

    def type_into(self, selector: str, text: str) -> bool:
        js = f"(e => e ? (e.focus(), true) : false)(document.querySelector({json.dumps(selector)}))"
        if not self.evaluate(js):
            return False
        self.call("Input.insertText", text=text)  # as typed: React sees the input events
        return True

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call("Browser.close", timeout=10)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait(timeout=5)
        os.close(self._out)
        os.close(self._in)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    found = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    if found is None:
        msg = (
            "chromium not installed, the UI screenshots need a headless browser: "
            "apt-get install -y --no-install-recommends chromium"
        )
        if os.environ.get("EDGEOPS_REQUIRE_BROWSER") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    folder = tmp_path_factory.mktemp("chromium")
    browser = Browser(found, folder / "profile", tmp_path_factory.mktemp("screenshots"))
    try:
        yield browser
    finally:
        browser.close()


def assert_not_blank(png: Path) -> None:
    """Not an empty page or a lone spinner: a rendered app has text and widgets all over the window."""
    from PIL import Image

    with Image.open(png) as img:
        assert img.size == WINDOW, img.size
        small = img.convert("L").resize((70, 45))
    cells = list(small.getdata())  # type: ignore[arg-type]
    background = max(set(cells), key=cells.count)
    busy = sum(abs(int(c) - int(background)) > 12 for c in cells) / len(cells)
    assert busy > 0.05, f"{png.name} looks blank ({busy:.1%} of it differs from the background)"


# --------------------------------------------------------------------------- the project and its servers


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> dict[str, Any]:
    """One `edgeops run` with the embedded stores, as `make run` does, then `edgeops promote` to production."""
    base = tmp_path_factory.mktemp("ui")
    data = make_demo_dataset(base / "digits", per_class=30)
    root = make_project(base / "project", data)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env.update(
        PREFECT_HOME=str(root / ".prefect"),  # what `edgeops run` defaults to in a project
        PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # as after `source .venv/bin/activate`
    )
    start = time.monotonic()
    run = subprocess.run(
        [str(BIN / "edgeops"), "run"], cwd=root, env=env, capture_output=True, text=True, timeout=1500
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    print(f"\nui: pipeline run {time.monotonic() - start:.0f}s")
    registration = json.loads((root / "reports/registration.json").read_text())
    promote = subprocess.run(
        [str(BIN / "edgeops"), "promote", MODEL, "--version", str(registration["version"])]
        + ["--to", "production", "--reason", "UI screenshots", "--no-publish"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert promote.returncode == 0, promote.stdout + promote.stderr
    return {"root": root, "env": env, "registration": registration}


@contextlib.contextmanager
def make_target(project: dict[str, Any], target: str, port_var: str, health: str) -> Iterator[str]:
    """`make <target>` of our Makefile run in the project (its setup already done), until /health answers."""
    root, port = project["root"], free_port()
    url = f"http://127.0.0.1:{port}"
    log = root / f"make-{target}.log"
    cmd = ["make", "--no-print-directory", "-C", str(root), "-f", str(ROOT / "Makefile")]
    cmd += ["-o", "setup", target, f"VENV={BIN.parent}", f"{port_var}={port}"]
    with open(log, "w") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=project["env"], start_new_session=True
        )
    try:
        start = time.monotonic()
        while True:
            with contextlib.suppress(OSError), urllib.request.urlopen(url + health, timeout=2) as r:
                if r.status == 200:
                    break
            if proc.poll() is not None or time.monotonic() - start > 120:
                pytest.fail(f"make {target} did not serve {url}: {log.read_text()[-3000:]}")
            time.sleep(0.3)
        print(f"\nui: make {target} healthy after {time.monotonic() - start:.1f}s")
        assert url in log.read_text().splitlines()[0], "the URL is the first thing it prints"
        yield url
    finally:
        stop_process_group(proc, timeout=5)  # nothing to flush; `mlflow ui` takes ~20 s to obey SIGTERM


@pytest.fixture(scope="module")
def mlflow_ui(project: dict[str, Any]) -> Iterator[str]:
    with make_target(project, "ui", "MLFLOW_PORT", "/health") as url:
        yield url


@pytest.fixture(scope="module")
def prefect_ui(project: dict[str, Any]) -> Iterator[str]:
    with make_target(project, "prefect-ui", "PREFECT_PORT", "/api/health") as url:
        yield url


def api(url: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as r:
        return json.loads(r.read())


def mlflow_api(mlflow_ui: str, path: str, body: dict[str, Any] | None = None) -> Any:
    return api(f"{mlflow_ui}/api/2.0/mlflow/{path}", body)


def experiment_id(mlflow_ui: str) -> str:
    found = mlflow_api(mlflow_ui, "experiments/get-by-name?experiment_name=edgeops")
    return str(found["experiment"]["experiment_id"])


# --------------------------------------------------------------------------- MLflow


def mlflow_page(mlflow_ui: str, route: str) -> str:
    """A page of MLflow's UI (hash routes), in its "Model training" view (not the GenAI one it opens with)."""
    return f"{mlflow_ui}/#{route}?workflowType=machine_learning"


def pipeline_run(mlflow_ui: str, project: dict[str, Any]) -> dict[str, Any]:
    run_id = project["registration"]["pipeline_run_id"]
    return dict(mlflow_api(mlflow_ui, f"runs/get?run_id={run_id}")["run"])


def test_mlflow_runs_table_lists_the_pipeline_run_and_its_variants(browser, project, mlflow_ui):
    parent = pipeline_run(mlflow_ui, project)
    name, exp = parent["info"]["run_name"], parent["info"]["experiment_id"]
    assert name.startswith("pipeline-")
    search = {"experiment_ids": [exp], "filter": f"tags.mlflow.parentRunId = '{parent['info']['run_id']}'"}
    variants = sorted(r["info"]["run_name"] for r in mlflow_api(mlflow_ui, "runs/search", search)["runs"])
    assert variants == sorted(f"{KEY}/{v}" for v in VARIANTS)
    browser.page(
        mlflow_page(mlflow_ui, f"/experiments/{exp}/runs"),
        [name, "edgeops"],
        "mlflow-runs.png",
        dismiss=MLFLOW_ASSISTANT_CLOSE,
        # expand the pipeline run: a nested run per variant
        click="document.querySelector('[data-component-id*=\"runnamecellrenderer\"]')",
        after=tuple(variants),
    )


def training_curve_run(mlflow_ui: str, project: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The run whose charts the README shows, and its step metrics to draw: the pipeline run's training
    curve (a point per epoch; classification's validation score is accuracy), learning rate, epoch time."""
    return pipeline_run(mlflow_ui, project), ["train_loss", "val_accuracy", "lr", "epoch_seconds"]


def test_mlflow_run_page_shows_the_training_curve(browser, project, mlflow_ui):
    run, curves = training_curve_run(mlflow_ui, project)
    exp, run_id = run["info"]["experiment_id"], run["info"]["run_id"]
    epochs = yaml.safe_load((project["root"] / "params.yaml").read_text())["by_task"]["classification"][
        "epochs"
    ]
    for key in curves:
        history = mlflow_api(mlflow_ui, f"metrics/get-history?run_id={run_id}&metric_key={key}")["metrics"]
        assert len({m["step"] for m in history}) == epochs, (key, history)
    # the page charts every metric, alphabetically; its search box (a regex) keeps the curves in view
    search = ('input[placeholder="Search metric charts"]', f"^({'|'.join(curves)})$")
    # drawn by Plotly as lines (a scatter trace with a line), not as single-value bars
    lines = "document.querySelectorAll('.js-plotly-plot .scatterlayer .trace .js-line').length"
    text = browser.page(
        mlflow_page(mlflow_ui, f"/experiments/{exp}/runs/{run_id}/model-metrics"),
        [run["info"]["run_name"], "Model metrics"],
        "mlflow-run-metrics.png",
        dismiss=MLFLOW_ASSISTANT_CLOSE,
        fill=search,
        after=tuple(f"{run['info']['run_name']} ({key})" for key in curves),  # each chart's legend
        ready=f"{lines} >= {len(curves)}",
    )
    assert "best_val_accuracy" not in text  # only the curves are left


def test_mlflow_registered_model_page_shows_the_production_alias(browser, project, mlflow_ui):
    version = str(project["registration"]["version"])
    found = mlflow_api(mlflow_ui, f"registered-models/get?name={MODEL}")["registered_model"]
    assert {"alias": "production", "version": version} in found["aliases"]
    text = browser.page(
        mlflow_page(mlflow_ui, f"/models/{MODEL}"),
        [MODEL, "Versions", "Aliases"],
        "mlflow-model.png",
        dismiss=MLFLOW_ASSISTANT_CLOSE,
        # fold the model's tags (its promotion history as JSON) so that the versions are in view
        click="[...document.querySelectorAll('[aria-expanded=\"true\"]')].find(e => e.innerText.trim() === 'Tags')",
        ready=r"/@\s*production/.test(document.body.innerText)",  # the alias tag in the versions table
    )
    row = re.search(rf"Version {version}\b(.*?)(?:Version \d|$)", text, re.S)
    assert row and re.search(r"@\s*production", row[1]), text[-3000:]  # on the promoted version's row


# --------------------------------------------------------------------------- Prefect


def flow_runs(prefect_ui: str) -> list[dict[str, Any]]:
    return list(api(f"{prefect_ui}/api/flow_runs/filter", {}))


def test_prefect_runs_page_lists_the_pipeline_flow_run(browser, project, prefect_ui):
    runs = flow_runs(prefect_ui)
    assert [r["state_type"] for r in runs] == ["COMPLETED"], runs
    # http://127.0.0.1:4200 redirects a browser to Prefect's default UI, at /v2
    browser.page(
        f"{prefect_ui}/v2/runs", [runs[0]["name"], "edgeops-pipeline", "Completed"], "prefect-runs.png"
    )


def test_prefect_flow_run_page_shows_every_stage_with_its_logs(browser, project, prefect_ui):
    from edgeops.orchestration.dvcgraph import stage_order

    (run,) = flow_runs(prefect_ui)
    stages = stage_order(project["root"])
    tasks = api(f"{prefect_ui}/api/task_runs/filter", {})
    assert sorted(t["name"] for t in tasks) == sorted(stages)  # one task run per DVC stage
    assert all(t["state_type"] == "COMPLETED" and t["total_run_time"] > 0 for t in tasks), tasks
    for task in tasks:  # each stage's log is in Prefect, the DVC and stage output included
        body = {"logs": {"task_run_id": {"any_": [task["id"]]}}, "limit": 1}
        assert api(f"{prefect_ui}/api/logs/filter", body), f"no log for {task['name']}"
    browser.page(
        f"{prefect_ui}/v2/runs/flow-run/{run['id']}",
        [run["name"], f"{len(stages)} Task runs", "Running stage 'prepare'", "> python -m tasks.prepare"],
        "prefect-flow-run.png",
    )
