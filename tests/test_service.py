"""The conversion service: auth, hostile uploads, job records, and one real job run by a worker function."""

import contextlib
import errno
import hashlib
import io
import json
import os
import pickle
import stat
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

TOKEN = "a" * 32
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def tflite_bytes():
    """A minimal buffer carrying the TFLite file identifier at bytes 4-8, which is what the sniffer reads."""
    return b"\x1c\x00\x00\x00TFL3" + bytes(64)


@pytest.fixture
def service(tmp_path):
    return make_service(tmp_path, max_upload_bytes=4096)


@pytest.fixture
def roomy_service(tmp_path):
    """The service with room for an HDF5 file (h5py writes 6 KiB for a few attributes)."""
    return make_service(tmp_path, max_upload_bytes=1 << 20)


def make_service(tmp_path, max_upload_bytes):
    from fastapi.testclient import TestClient

    from tfyolo.service.app import ServiceConfig, create_app
    from tfyolo.service.queue import make_huey

    data_dir = tmp_path / "service"
    data_dir.mkdir()
    (data_dir / "datasets.json").write_text(json.dumps({"tiny": str(tmp_path)}))
    config = ServiceConfig(data_dir=str(data_dir), token=TOKEN, max_upload_bytes=max_upload_bytes)
    huey = make_huey(data_dir)
    client = TestClient(create_app(config, huey))
    client.data_dir, client.huey = data_dir, huey
    return client


def job_folders(client):
    return sorted(path.name for path in (client.data_dir / "jobs").iterdir())


def test_every_route_but_healthz_and_login_refuses_a_request_without_the_token(service):
    paths = {route.path for route in service.app.routes if hasattr(route, "methods")}
    assert {"/jobs", "/jobs/{job_id}", "/artifacts/{sha256}", "/docs", "/openapi.json", "/"} <= paths
    for path in paths - {"/healthz", "/login"}:
        concrete = path.replace("{job_id}", "0" * 32).replace("{sha256}", "0" * 64).replace("{name}", "pr")
        for method in ("get", "post"):
            for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"Authorization": TOKEN}):
                response = getattr(service, method)(concrete, headers=headers, follow_redirects=False)
                assert response.status_code == 401, (method, concrete, headers, response.status_code)
    assert service.get("/healthz").json() == {"status": "ok"}
    # A browser asking for a page without the token is sent to the sign-in page, which sets a cookie.
    page = service.get("/", headers={"accept": "text/html"}, follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login"
    assert service.post("/login", data={"token": "nope"}).status_code == 401
    service.post("/login", data={"token": TOKEN}, follow_redirects=False)
    assert service.get("/jobs").status_code == 200


def test_a_browser_session_is_not_the_token_and_posts_only_the_pages_forms(service):
    """Issue 34's trial: the cookie's value was the API token itself, and SameSite was the only CSRF guard. The
    session cookie is derived from the token (it does not open the API); with it a browser reads pages and posts
    the pages' own forms, each carrying a form secret another site's page cannot read; the API's writes need the
    bearer header."""
    from tfyolo.service.store import JobStore

    store = JobStore(service.data_dir)
    job_id = store.create({"model": "m.tflite", "kind": "bench"}, {"model": "m.tflite"})
    service.post("/login", data={"token": TOKEN}, follow_redirects=False)
    cookie = service.cookies.get("tfyolo_session")
    assert cookie and TOKEN not in cookie
    service.cookies.clear()
    assert service.get("/jobs", headers={"Authorization": f"Bearer {cookie}"}).status_code == 401
    service.cookies.set("tfyolo_session", cookie)
    page = service.get(f"/ui/jobs/{job_id}")
    assert page.status_code == 200
    secret = page.text.split('name="form_secret" value="', 1)[1].split('"', 1)[0]
    assert secret not in (TOKEN, cookie)
    upload = {"model": ("m.tflite", tflite_bytes())}
    assert service.post("/jobs", data={"kind": "bench"}, files=upload).status_code == 403
    assert service.post(f"/jobs/{job_id}/cancel").status_code == 403
    refused = service.post(f"/ui/jobs/{job_id}/cancel", data={"form_secret": "guess"}, follow_redirects=False)
    assert refused.status_code == 403 and store.get(job_id)["state"] == "queued"
    cancelled = service.post(f"/ui/jobs/{job_id}/cancel", data={"form_secret": secret}, follow_redirects=False)
    assert cancelled.status_code == 303 and store.get(job_id)["state"] == "cancelled"
    missing = service.post("/submit", data={"kind": "bench"}, files=upload, follow_redirects=False)
    assert missing.status_code == 403


def test_submissions_past_the_pending_job_limit_are_a_429_until_one_ends(tmp_path):
    """Issue 34's trial: 1000 jobs were accepted in 33 s. Past `max_pending_jobs` queued or running, a submission is
    answered 429 and leaves no folder; once a job ends, the next is accepted."""
    from fastapi.testclient import TestClient

    from tfyolo.service.app import ServiceConfig, create_app
    from tfyolo.service.queue import make_huey
    from tfyolo.service.store import JobStore

    data_dir = tmp_path / "service"
    data_dir.mkdir()
    config = ServiceConfig(data_dir=str(data_dir), token=TOKEN, max_upload_bytes=4096, max_pending_jobs=2)
    client = TestClient(create_app(config, make_huey(data_dir)))
    client.data_dir = data_dir

    def post():
        return client.post("/jobs", headers=AUTH, data={"kind": "bench"}, files={"model": ("m.tflite", tflite_bytes())})

    first, second, third = post(), post(), post()
    assert (first.status_code, second.status_code, third.status_code) == (201, 201, 429), third.text
    assert third.json()["detail"].startswith("2 jobs are queued or running, this server's limit")
    assert len(job_folders(client)) == 2
    store = JobStore(data_dir)
    assert store.claim(first.json()["id"], "host:1")
    store.finish(first.json()["id"], "succeeded")
    assert post().status_code == 201


def test_the_token_must_be_long_enough_and_comes_from_a_file_or_the_environment(tmp_path, monkeypatch):
    from tfyolo.errors import ConfigError
    from tfyolo.service.security import load_token

    monkeypatch.setenv("TFYOLO_API_TOKEN", "short")
    with pytest.raises(ConfigError, match=r"\$TFYOLO_API_TOKEN: expected an API token of at least 16"):
        load_token()
    (tmp_path / "token").write_text(TOKEN + "\n")
    assert load_token(tmp_path / "token") == TOKEN


def test_uploads_over_the_limit_are_refused_and_leave_nothing(service):
    response = service.post(
        "/jobs", headers=AUTH, files={"model": ("m.tflite", tflite_bytes() + bytes(5000))}, data={"kind": "bench"}
    )
    assert response.status_code == 413 and "4,096-byte upload limit" in response.json()["detail"]
    assert job_folders(service) == []


def test_the_file_type_is_read_from_the_bytes_not_the_name(service):
    hostile = pickle.dumps({"not": "a model"})
    response = service.post("/jobs", headers=AUTH, files={"model": ("model.keras", hostile)}, data={"kind": "convert"})
    assert response.status_code == 415 and "not a model format" in response.json()["detail"]
    response = service.post("/jobs", headers=AUTH, files={"model": ("x.tflite", b"hello" * 10)}, data={"kind": "bench"})
    assert response.status_code == 415
    # A real flatbuffer under a misleading name is stored under the name its content earns.
    response = service.post(
        "/jobs", headers=AUTH, files={"model": ("../../evil.keras", tflite_bytes())}, data={"kind": "bench"}
    )
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["state"] == "queued" and job["spec"]["model"] == "model.tflite"
    assert sorted(os.listdir(service.data_dir / "jobs" / job["id"] / "uploads")) == ["model.tflite"]


def calibration_zip(members):
    """A zip of (name, bytes, mode) members; mode sets the Unix file type bits (links, devices)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "members, expected",
    [
        ([("../escape.png", b"x", stat.S_IFREG | 0o644)], "points outside the archive"),
        ([("/etc/cron.d/x.png", b"x", stat.S_IFREG | 0o644)], "points outside the archive"),
        ([("images/link.png", b"/etc/passwd", stat.S_IFLNK | 0o777)], "is a link or a device"),
        ([("bomb.png", bytes(50 << 20), stat.S_IFREG | 0o644)], "x its size"),
        ([("readme.txt", b"no images here", stat.S_IFREG | 0o644)], "no images found"),
    ],
)
def test_hostile_calibration_zips_are_refused_and_nothing_lands_outside(service, tmp_path, members, expected):
    from tfyolo.service.app import ServiceConfig, create_app

    # The bomb must get past the upload limit to reach the extraction check.
    app = create_app(ServiceConfig(data_dir=str(service.data_dir), token=TOKEN, max_upload_bytes=1 << 22), service.huey)
    from fastapi.testclient import TestClient

    client = TestClient(app)
    response = client.post(
        "/jobs",
        headers=AUTH,
        files={"model": ("m.tflite", tflite_bytes()), "calibration": ("c.zip", calibration_zip(members))},
        data={"kind": "bundle"},
    )
    assert response.status_code == 422 and expected in response.json()["detail"], response.text
    assert job_folders(service) == []
    assert not (service.data_dir / "jobs" / "escape.png").exists() and not (tmp_path / "escape.png").exists()


def test_a_calibration_zip_unpacks_its_images_flat_and_numbered(tmp_path):
    from tfyolo.service.security import extract_images

    archive = tmp_path / "c.zip"
    archive.write_bytes(
        calibration_zip(
            [
                ("a/x.png", b"1", stat.S_IFREG | 0o644),
                ("b/x.png", b"2", stat.S_IFREG | 0o644),
                ("b/notes.txt", b"3", stat.S_IFREG | 0o644),
                ("b/", b"", stat.S_IFDIR | 0o755),
                ("c/" + "n" * 300 + ".JPG", b"4", stat.S_IFREG | 0o644),  # longer than a file name may be
            ]
        )
    )
    assert extract_images(archive, tmp_path / "out") == 3
    assert sorted(os.listdir(tmp_path / "out")) == ["00000.png", "00001.png", "00002.jpg"]
    assert (tmp_path / "out" / "00001.png").read_bytes() == b"2"


def test_a_full_disk_at_upload_is_a_507_and_nothing_is_kept(service, tmp_path, monkeypatch):
    """Issue 34's trial: a full disk at upload gave a bare 500."""
    from tfyolo.service import submission

    def full(upload, target, limit):
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    monkeypatch.setattr(submission, "save_upload", full)
    upload = {"model": ("m.tflite", tflite_bytes())}
    response = service.post("/jobs", headers=AUTH, data={"kind": "bench"}, files=upload)
    assert response.status_code == 507, response.text
    assert response.json()["detail"] == "the server has no space left for this job's files; nothing was kept."
    assert job_folders(service) == []


def test_an_unknown_dataset_or_missing_evaluation_data_is_refused_before_the_queue(service, tiny_model, tmp_path):
    path = tmp_path / "m.keras"
    tiny_model.save(path)
    files = {"model": ("m.keras", path.read_bytes())}
    from fastapi.testclient import TestClient

    from tfyolo.service.app import ServiceConfig, create_app

    client = TestClient(create_app(ServiceConfig(data_dir=str(service.data_dir), token=TOKEN), service.huey))
    response = client.post("/jobs", headers=AUTH, files=files, data={"data_dataset": "nope"})
    assert response.status_code == 422 and "'nope' is not registered here; registered: ['tiny']" in response.text
    response = client.post("/jobs", headers=AUTH, files=files, data={})
    assert response.status_code == 422 and "data_dataset: a convert job evaluates" in response.text
    response = client.post("/jobs", headers=AUTH, files=files, data={"data_dataset": "tiny", "auto": "true"})
    assert response.status_code == 422 and "max_drop: auto needs a budget" in response.text
    assert job_folders(service) == [] and service.huey.pending_count() == 0


def test_a_claim_succeeds_for_exactly_one_worker(tmp_path):
    from tfyolo.service.store import JobStore

    store = JobStore(tmp_path)
    job_id = store.create({"model": "m.tflite", "kind": "bench"}, {"model": "m.tflite"})
    results = []
    threads = [threading.Thread(target=lambda n=n: results.append(store.claim(job_id, f"w{n}"))) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    assert store.get(job_id)["state"] == "running" and store.get(job_id)["attempts"] == 1


def test_a_lost_worker_re_queues_its_job_once_then_fails_it_with_the_reason(tmp_path):
    from tfyolo.service.store import JobStore

    store = JobStore(tmp_path)
    job_id = store.create({"model": "m.tflite", "kind": "bench"}, {"model": "m.tflite"})
    assert store.claim(job_id, "host:1")
    store.report_progress(job_id, "timing", 0.5)
    assert store.requeue_lost(stale_seconds=60, max_attempts=2) == []  # its heartbeat is fresh
    time.sleep(0.05)
    assert store.requeue_lost(stale_seconds=0.01, max_attempts=2) == [job_id]
    assert store.get(job_id)["state"] == "queued"
    assert store.claim(job_id, "host:2")
    time.sleep(0.05)
    assert store.requeue_lost(stale_seconds=0.01, max_attempts=2) == []
    record = store.get(job_id)
    assert record["state"] == "failed"
    assert (
        record["error"].startswith("worker host:2 stopped during 'starting'")
        and "after 2 attempt(s)" in record["error"]
    )
    assert [event["text"].split(":")[0] for event in store.events(job_id)] == [
        "queued",
        "running on host",
        "re-queued",
        "running on host",
        "failed",
    ]


def test_orderly_restarts_never_fail_a_healthy_job_and_a_crash_still_counts(tmp_path):
    """Issue 34's trial: two orderly restarts (SIGTERM to the workers) failed a healthy job. A stopping worker gives
    the job back with its attempt: five restarts in a row leave it queued with no attempt spent; a worker that dies
    still spends one, and the second death fails it."""
    from tfyolo.service.store import JobStore

    store = JobStore(tmp_path)
    job_id = store.create({"model": "m.tflite", "kind": "bench"}, {"model": "m.tflite"})
    for restart in range(5):
        assert store.claim(job_id, f"host:{restart}")
        assert store.requeue_jobs_of(f"host:{restart}", "stopped", max_attempts=2, orderly=True) == [job_id]
        assert (store.get(job_id)["state"], store.get(job_id)["attempts"]) == ("queued", 0)
    assert store.claim(job_id, "host:10")
    assert store.requeue_jobs_of("host:10", "died (killed by SIGKILL)", max_attempts=2) == [job_id]
    assert store.claim(job_id, "host:11")
    assert store.requeue_jobs_of("host:11", "died (killed by SIGKILL)", max_attempts=2) == []
    record = store.get(job_id)
    assert record["state"] == "failed" and "after 2 attempt(s)" in record["error"], record


def test_the_jobs_serve_enqueues_again_at_start_are_exactly_the_queued_ones(tmp_path):
    """Issue 34's trial: a server killed with SIGKILL between a job's record and its enqueue left the job queued for
    ever. `serve` enqueues every queued job when it starts; running, cancelled and finished ones are not."""
    from tfyolo.service.store import JobStore

    store = JobStore(tmp_path)
    made = [store.create({"model": "m.tflite", "kind": "bench"}, {"model": "m.tflite"}) for _ in range(5)]
    assert store.claim(made[1], "host:1")
    store.cancel(made[2])
    assert store.claim(made[3], "host:1")
    store.finish(made[3], "succeeded")
    assert store.queued_ids() == [made[0], made[4]]


def test_cancel_stops_a_queued_job_at_once_and_a_running_one_at_its_next_step(tmp_path):
    from tfyolo.jobs.progress import JobCancelled
    from tfyolo.service.store import JobStore
    from tfyolo.service.worker import StoreProgress

    store = JobStore(tmp_path)
    queued = store.create({"model": "m.tflite", "kind": "bench"}, {"model": "m.tflite"})
    assert store.cancel(queued) == "cancelled" and not store.claim(queued, "w")
    running = store.create({"model": "m.tflite", "kind": "bench"}, {"model": "m.tflite"})
    store.claim(running, "w")
    progress = StoreProgress(store, running)
    progress.stage("evaluating", 10)
    assert store.cancel(running) == "running"
    with pytest.raises(JobCancelled, match="cancelled during 'timing'"):
        progress.stage("timing", 3)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_child_whose_parent_died_before_it_asked_to_die_with_it_ends_at_once(tmp_path):
    """Issue 34: a job process started just before its worker is SIGKILLed asks to die with a parent already gone.
    The kernel's request then never fires (it was made under the process that adopted the child), so the child
    compares its parent with the pid its starter gave it. Here the starter is the intermediate `sh`, which exits
    at once: its child is adopted before it asks, as in the race."""
    import subprocess

    import psutil

    child = "import os, sys, time; from tfyolo.processes import die_with_parent; print(os.getpid(), flush=True); "
    child += "time.sleep(0.5); die_with_parent(int(sys.argv[1])); print('went on')"
    environment = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    command = [sys.executable, "-c", child, str(os.getpid())]
    kept = subprocess.run(command, env=environment, capture_output=True, text=True)
    assert kept.stdout.split("\n")[1] == "went on"  # its parent alive: the child goes on
    output = tmp_path / "orphan.txt"
    # `sh` starts the child with its own pid ($$), then exits during the child's sleep.
    subprocess.run(["sh", "-c", f'"{sys.executable}" -c "{child}" $$ > {output} & exit 0'], env=environment, check=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (output.exists() and output.read_text().endswith("\n")):
        time.sleep(0.1)
    pid = int(output.read_text())
    with contextlib.suppress(psutil.NoSuchProcess):
        while time.monotonic() < deadline and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
            time.sleep(0.1)
    assert output.read_text() == f"{pid}\n"  # ended in die_with_parent, never reaching its print


def test_vela_asks_the_kernel_to_kill_it_when_its_parent_dies(monkeypatch):
    import subprocess

    from tfyolo import processes
    from tfyolo.errors import ModelError
    from tfyolo.targets import npu_target

    calls = []

    def fake_run(command, **options):
        calls.append(options)
        return subprocess.CompletedProcess(command, 1, stdout="", stderr="Error: stopped by the test")

    monkeypatch.setattr(npu_target, "require_vela", lambda: None)
    monkeypatch.setattr(npu_target, "_refuse_float_compute", lambda content, name: None)
    monkeypatch.setattr(npu_target.subprocess, "run", fake_run)
    with pytest.raises(ModelError, match="stopped by the test"):
        npu_target.compile_for_npu(b"model", npu_target.NpuTarget("ethos-u55-128"), "m")
    assert len(calls) == 1 and calls[0].get("preexec_fn").func is processes._request_death_with
    parent, prctl = calls[0]["preexec_fn"].args
    assert parent == os.getpid() and (prctl is not None) == sys.platform.startswith("linux")


def h5_upload(path, attributes):
    """An .h5 of no weights whose root attributes are `attributes` (bytes: a fixed-length string, as tf_keras writes
    model_config; str: a variable-length one, as tfyolo writes its metadata); returns its bytes."""
    import h5py

    with h5py.File(path, "w") as stream:
        for name, value in attributes.items():
            stream.attrs[name] = value
    return path.read_bytes()


CLEAN_CONFIG = json.dumps({"class_name": "Functional", "config": {"name": "m", "layers": []}})


@pytest.mark.parametrize("as_bytes", [True, False])
@pytest.mark.parametrize("attribute", ["model_config", "tfyolo_metadata"])
def test_h5_json_attributes_past_their_bound_are_refused_at_the_door_before_json_reads_them(
    roomy_service, tmp_path, monkeypatch, attribute, as_bytes
):
    """The .h5 model_config and tfyolo_metadata attributes are parsed in the web process: bounded there as the
    .keras config.json (MAX_JSON_BYTES) and a .tflite's metadata (MAX_METADATA_BYTES) are; bounds made small here."""
    from tfyolo import metadata
    from tfyolo.models import model_file_check

    service = roomy_service
    monkeypatch.setattr(model_file_check, "MAX_JSON_BYTES", 200)
    monkeypatch.setattr(metadata, "MAX_METADATA_BYTES", 100)
    parsed = []
    real_loads = json.loads
    monkeypatch.setattr(json, "loads", lambda text, **options: parsed.append(len(text)) or real_loads(text, **options))
    big = json.dumps({"names": ["x" * 240]})
    value = big.encode() if as_bytes else big
    attributes = {"model_config": value} if attribute == "model_config" else {"model_config": CLEAN_CONFIG.encode()}
    if attribute == "tfyolo_metadata":
        attributes["tfyolo_metadata"] = value
    content = h5_upload(tmp_path / "big.h5", attributes)
    response = service.post("/jobs", headers=AUTH, files={"model": ("big.h5", content)}, data={"kind": "convert"})
    detail = response.json()["detail"]
    assert response.status_code == 422 and "\n" not in detail, detail
    bound = 200 if attribute == "model_config" else 100
    assert f"model.h5: its attribute {attribute!r} holds" in detail and f"at most {bound:,}" in detail, detail
    assert str(tmp_path) not in detail and all(size <= 200 for size in parsed), parsed
    assert job_folders(service) == []


@pytest.mark.parametrize("value", ["[1, 2, 3]", '"text"', "7"])
def test_h5_metadata_that_is_not_a_json_object_is_a_422_not_a_500(roomy_service, tmp_path, value):
    service = roomy_service
    content = h5_upload(tmp_path / "odd.h5", {"model_config": CLEAN_CONFIG.encode(), "tfyolo_metadata": value})
    response = service.post("/jobs", headers=AUTH, files={"model": ("odd.h5", content)}, data={"kind": "convert"})
    detail = response.json()["detail"]
    assert response.status_code == 422 and "'tfyolo_metadata' holds a JSON" in detail and "\n" not in detail, detail
    assert job_folders(service) == []


def test_an_h5_attribute_that_is_not_one_string_is_refused_in_one_line(tmp_path):
    import numpy as np

    from tfyolo.errors import ModelError
    from tfyolo.models.model_file_check import read_model_config

    h5_upload(tmp_path / "array.h5", {"model_config": np.array([CLEAN_CONFIG.encode()] * 3)})
    with pytest.raises(ModelError, match="attribute 'model_config' is not one string"):
        read_model_config(tmp_path / "array.h5")


def test_a_pickle_upload_is_only_ever_read_by_the_restricted_unpickler(service, tmp_path):
    """A .pt whose pickle calls os.system: accepted as a checkpoint by its bytes, then refused by the import
    with a clear error, and the command never runs."""
    from tfyolo.service.worker import execute_job

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("best/data.pkl", pickle.dumps({"model": Exploit()}))
    (service.data_dir / "datasets.json").write_text(json.dumps({"tiny": str(tmp_path)}))
    response = service.post(
        "/jobs", headers=AUTH, files={"model": ("best.pt", buffer.getvalue())}, data={"data_dataset": "tiny"}
    )
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    execute_job(service.data_dir, job_id)
    record = service.get(f"/jobs/{job_id}", headers=AUTH).json()
    # os.system pickles as posix.system on Linux.
    assert record["state"] == "failed" and f"refused to load {os.system.__module__}.system" in record["error"]
    assert not marker.exists()


def test_a_convert_job_runs_end_to_end_and_its_artifacts_are_content_addressed(service, squares, tmp_path):
    """The square detector scores mAP50-95 1.0 in float: its fp32 artifact must too (the oracle), the gate passes,
    and every download is the bytes its sha256 names."""
    from fastapi.testclient import TestClient

    from tfyolo.bundle import verify_bundle
    from tfyolo.service.app import ServiceConfig, create_app
    from tfyolo.service.worker import execute_job

    model, data = squares
    (service.data_dir / "datasets.json").write_text(json.dumps({"squares": str(data)}))
    client = TestClient(create_app(ServiceConfig(data_dir=str(service.data_dir), token=TOKEN), service.huey))
    response = client.post(
        "/jobs",
        headers=AUTH,
        files={"model": ("best.keras", model.read_bytes())},
        data={"recipes": "fp32", "data_dataset": "squares", "calibration_dataset": "squares", "max_drop": "0.5"},
    )
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    assert service.huey.pending_count() == 1
    execute_job(service.data_dir, job_id)
    record = client.get(f"/jobs/{job_id}", headers=AUTH).json()
    assert record["state"] == "succeeded", record
    report = client.get(f"/jobs/{job_id}/report", headers=AUTH).json()
    rows = {row["recipe"]: row for row in report["rows"]}
    assert rows["float"]["map50_95"] == pytest.approx(1.0) and rows["fp32"]["map50_95"] == pytest.approx(1.0)
    assert report["verdict"]["passed"] is True and rows["fp32"]["latency_ms_p50"] > 0
    for artifact in report["artifacts"]:
        content = client.get(f"/artifacts/{artifact['sha256']}", headers=AUTH).content
        assert hashlib.sha256(content).hexdigest() == artifact["sha256"] and len(content) == artifact["size_bytes"]
    bundle = client.get(f"/jobs/{job_id}/bundle.zip", headers=AUTH)
    with zipfile.ZipFile(io.BytesIO(bundle.content)) as archive:
        archive.extractall(tmp_path / "unzipped")
    assert verify_bundle(tmp_path / "unzipped" / "bundle") == []
    markdown = client.get(f"/jobs/{job_id}/report.md", headers=AUTH).text
    assert "| fp32 |" in markdown and "Gate (max drop 0.5 points): PASS" in markdown
    page = client.get(f"/ui/jobs/{job_id}", headers=AUTH).text
    assert 'id="report"' in page and "fp32" in page and "/plots/latency.png" in page
    assert client.get(f"/jobs/{job_id}/plots/latency.png", headers=AUTH).headers["content-type"] == "image/png"
    assert client.get("/artifacts/../../jobs.db", headers=AUTH).status_code == 404


@pytest.mark.large  # imports Ultralytics' YOLO11n-seg and scores it twice on 51 images: about a minute on 2 cores
def test_a_segmentation_job_scores_boxes_and_masks(tmp_path, pennfudan_seg):
    """Ultralytics' YOLO11n-seg checkpoint, uploaded as a .pt to a convert job on a registered pennfudan_seg: the
    float row scores what tfyolo-eval measured for that checkpoint (box 0.3919, mask 0.3140,
    tests/test_segment_evaluation.py), and its fp32 artifact the same masks within float arithmetic."""
    from tests.conftest import SHARED
    from tfyolo.service.worker import execute_job

    checkpoint = SHARED / "weights" / "ultralytics_yolo11n_pennfudan_seg" / "best.pt"
    if not checkpoint.is_file():
        pytest.skip("needs ../shared/weights/ultralytics_yolo11n_pennfudan_seg beside the project (present in CI)")
    client = make_service(tmp_path, max_upload_bytes=16 << 20)
    (client.data_dir / "datasets.json").write_text(json.dumps({"pennfudan_seg": str(pennfudan_seg)}))
    response = client.post(
        "/jobs",
        headers=AUTH,
        files={"model": ("best.pt", checkpoint.read_bytes())},
        data={"recipes": "fp32", "data_dataset": "pennfudan_seg", "max_drop": "0.5"},
    )
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    execute_job(client.data_dir, job_id)
    record = client.get(f"/jobs/{job_id}", headers=AUTH).json()
    assert record["state"] == "succeeded", record
    rows = {row["recipe"]: row for row in client.get(f"/jobs/{job_id}/report", headers=AUTH).json()["rows"]}
    assert (rows["float"]["map50_95"], rows["float"]["mask_map50_95"]) == pytest.approx((0.3919, 0.3140), abs=2e-3)
    assert rows["fp32"]["mask_map50_95"] == pytest.approx(rows["float"]["mask_map50_95"], abs=1e-3)
    markdown = client.get(f"/jobs/{job_id}/report.md", headers=AUTH).text
    assert "mask mAP50-95" in markdown
