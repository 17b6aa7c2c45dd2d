"""The service as processes: real `tfyolo worker`s on the SQLite queue and on Redis, a worker killed mid-job, a
server restart, and the web pages driven by headless Chromium. Slow (each worker imports TensorFlow): `large`."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.large

TOKEN = "b" * 32
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROOT = Path(__file__).resolve().parents[1]


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(arguments, log):
    """`python -m tfyolo ARGUMENTS` in its own process group (a kill takes its conversion children too)."""
    environment = dict(os.environ, TFYOLO_API_TOKEN=TOKEN, PYTHONPATH=str(ROOT))
    handle = open(log, "w")
    return subprocess.Popen(
        [sys.executable, "-m", "tfyolo", *arguments],
        stdout=handle,
        stderr=subprocess.STDOUT,
        env=environment,
        start_new_session=True,
    )


def stop(process):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_for(read, condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = read()
        if condition(value):
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {value}")


def client_for(data_dir, broker=None):
    from fastapi.testclient import TestClient

    from tfyolo.service.app import ServiceConfig, create_app

    return TestClient(create_app(ServiceConfig(data_dir=str(data_dir), token=TOKEN, broker=broker)))


def submit_squares(client, model, recipes="fp32,int8"):
    response = client.post(
        "/jobs",
        headers=AUTH,
        files={"model": ("best.keras", model.read_bytes())},
        data={"recipes": recipes, "data_dataset": "squares", "calibration_dataset": "squares"},
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def job(client, job_id):
    return client.get(f"/jobs/{job_id}", headers=AUTH).json()


@pytest.fixture
def data_dir(tmp_path, squares):
    folder = tmp_path / "service"
    folder.mkdir()
    (folder / "datasets.json").write_text(json.dumps({"squares": str(squares[1])}))
    return folder


def test_a_job_survives_a_server_restart_and_a_worker_killed_mid_job(data_dir, squares, tmp_path):
    model, _ = squares
    job_id = submit_squares(client_for(data_dir), model)
    # The "server" restarts: a new app on the same folder still knows the queued job.
    client = client_for(data_dir)
    assert job(client, job_id)["state"] == "queued"
    first = start(["worker", "--data-dir", str(data_dir), "--stale-seconds", "6"], tmp_path / "worker1.log")
    try:
        wait_for(
            lambda: job(client, job_id),
            lambda j: j["state"] == "running" and j["stage"] != "starting",
            180,
            "the first worker to be mid-job",
        )
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        assert job(client, job_id)["state"] == "running"  # nobody has noticed yet
        second = start(["worker", "--data-dir", str(data_dir), "--stale-seconds", "6"], tmp_path / "worker2.log")
        try:
            record = wait_for(
                lambda: job(client, job_id),
                lambda j: j["state"] in ("succeeded", "failed"),
                300,
                "the second worker to finish the re-queued job",
            )
        finally:
            stop(second)
    finally:
        stop(first)
    assert record["state"] == "succeeded", (record, (tmp_path / "worker2.log").read_text()[-2000:])
    assert record["attempts"] == 2
    texts = [event["text"] for event in record["events"]]
    assert any(text.startswith("re-queued: worker ") and "stopped during" in text for text in texts), texts
    assert sum(text.startswith("running on") for text in texts) == 2
    rows = {row["recipe"]: row for row in client.get(f"/jobs/{job_id}/report", headers=AUTH).json()["rows"]}
    assert rows["fp32"]["map50_95"] == pytest.approx(1.0)


def test_the_same_jobs_run_with_redis_as_the_broker(data_dir, squares, tmp_path):
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        pytest.skip("redis-server is not installed (make test-large installs it from the distribution's packages)")
    port = free_port()
    redis = subprocess.Popen(
        [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    broker = f"redis://127.0.0.1:{port}/0"
    try:
        client = client_for(data_dir, broker)
        wait_for(lambda: client.get("/readyz", headers=AUTH).status_code, lambda code: code == 200, 20, "redis")
        job_ids = [submit_squares(client, squares[0], recipes="fp32") for _ in range(2)]
        assert not (data_dir / "queue.db").exists()  # the queue is in Redis, not SQLite
        worker = start(["worker", "--data-dir", str(data_dir), "--broker", broker], tmp_path / "worker.log")
        try:
            for job_id in job_ids:
                record = wait_for(
                    lambda: job(client, job_id), lambda j: j["state"] in ("succeeded", "failed"), 300, f"job {job_id}"
                )
                assert record["state"] == "succeeded", (tmp_path / "worker.log").read_text()[-2000:]
        finally:
            stop(worker)
    finally:
        redis.terminate()
        redis.wait()


def test_a_browser_submits_a_job_and_sees_its_report(data_dir, squares, tmp_path):
    chromedriver = shutil.which("chromedriver")
    if chromedriver is None or shutil.which("chromium") is None:
        pytest.skip("chromium / chromedriver are not installed (make test-large installs them from the distribution)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    port = free_port()
    server = start(
        ["serve", "--data-dir", str(data_dir), "--port", str(port), "--workers", "1"], tmp_path / "serve.log"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1600"):
        options.add_argument(argument)
    browser = None
    try:
        wait_for(lambda: _status(f"http://127.0.0.1:{port}/healthz"), lambda code: code == 200, 60, "the server")
        browser = webdriver.Chrome(service=Service(chromedriver), options=options)
        browser.get(f"http://127.0.0.1:{port}/")
        assert browser.current_url.endswith("/login")
        browser.find_element(By.ID, "token").send_keys(TOKEN)
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        browser.get(f"http://127.0.0.1:{port}/submit")
        browser.find_element(By.ID, "model").send_keys(str(squares[0]))
        browser.find_element(By.ID, "recipes").send_keys("fp32")
        browser.find_element(By.CSS_SELECTOR, "#data_dataset option[value=''] ~ option").click()
        browser.find_element(By.ID, "submit").click()
        assert "/ui/jobs/" in browser.current_url
        wait_for(
            lambda: browser.find_element(By.ID, "state").text,
            lambda state: state in ("succeeded", "failed"),
            300,
            "the job page to show the job finished",
        )
        assert browser.find_element(By.ID, "state").text == "succeeded", (tmp_path / "serve.log").read_text()[-2000:]
        table = browser.find_element(By.ID, "report")
        assert "fp32" in table.text and "1.0000" in table.text
        browser.save_screenshot(str(tmp_path / "report.png"))
        assert (tmp_path / "report.png").stat().st_size > 10_000
    finally:
        if browser is not None:
            browser.quit()
        stop(server)


def _status(url):
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except (urllib.error.URLError, ConnectionError):
        return None


def descendants(pid):
    """Every live process below `pid` (read from /proc: the test needs no psutil)."""
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                # The command name may hold spaces and parentheses: the fields after its last ")" are fixed.
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def command_line(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_serve_stops_its_worker_and_the_conversion_child(data_dir, squares, tmp_path, signum):
    model, _ = squares
    port = free_port()
    # Not in a session of its own: the signal goes to the server's pid only, as `kill PID` or systemd send it.
    environment = dict(os.environ, TFYOLO_API_TOKEN=TOKEN, PYTHONPATH=str(ROOT))
    log = open(tmp_path / "serve.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "tfyolo", "serve", "--data-dir", str(data_dir), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=environment,
    )
    below = []
    try:
        client = client_for(data_dir)
        wait_for(lambda: client.get("/readyz", headers=AUTH).status_code, lambda code: code == 200, 120, "a worker")
        job_id = submit_squares(client, model, recipes="fp32,int8,int16x8")
        wait_for(
            lambda: job(client, job_id),
            lambda j: j["state"] == "running" and j["stage"] not in ("", "starting"),
            180,
            "the worker to be mid-job",
        )
        # serve -> worker -> the job's process group -> the spawned conversion child (multiprocessing's spawn_main).
        below = wait_for(
            lambda: descendants(server.pid),
            lambda pids: any(b"spawn_main" in command_line(pid) for pid in pids),
            180,
            "a conversion child below the job",
        )
        server.send_signal(signum)
        server.wait(timeout=60)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(alive(pid) for pid in below):
            time.sleep(0.2)
        assert not [pid for pid in below if alive(pid)], (tmp_path / "serve.log").read_text()[-2000:]
    finally:
        for pid in [server.pid, *below]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        server.wait()
