"""Hostile trials: code in a model file, server paths in a request, sizes that lie in a binary file, bodies past the
limit, and the faults that used to leave a wrong state. Each trial asserts the refusal or the state (one line, never
a traceback); each class of hole also has one test that feeds inputs nobody listed by hand."""

import errno
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tests.test_service import AUTH, TOKEN, job_folders, tflite_bytes
from tests.test_ultralytics_checkpoint import Tensor, fake_torch_names
from tfyolo.errors import ConfigError, ModelError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def service(tmp_path):
    from fastapi.testclient import TestClient

    from tfyolo.service.app import ServiceConfig, create_app
    from tfyolo.service.queue import make_huey

    data_dir = tmp_path / "service"
    data_dir.mkdir()
    (data_dir / "datasets.json").write_text(json.dumps({"tiny": str(tmp_path / "dataset")}))
    config = ServiceConfig(data_dir=str(data_dir), token=TOKEN, max_upload_bytes=16 << 20)
    huey = make_huey(data_dir)
    client = TestClient(create_app(config, huey))
    client.data_dir, client.huey = data_dir, huey
    return client


# === Code in a model file ===


def lambda_model(marker):
    """A tiny Functional model whose Lambda layer runs `touch marker` whenever Keras rebuilds it."""
    from tfyolo.compat import keras

    marker = str(marker)  # a closure value the model file can hold

    def payload(tensor):
        import os as inner_os

        inner_os.system(f"touch {marker}")
        return tensor

    images = keras.Input((8, 8, 3), name="images")
    outputs = keras.layers.Lambda(payload, name="payload")(keras.layers.Conv2D(2, 1, name="conv")(images))
    return keras.Model(images, outputs)


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_a_model_file_with_a_lambda_is_refused_before_keras_reads_it(tmp_path, suffix):
    from tfyolo.compat import keras
    from tfyolo.models.model_io import load_keras_model

    marker = tmp_path / "pwned"
    path = tmp_path / f"evil{suffix}"
    lambda_model(marker).save(path)
    marker.unlink(missing_ok=True)  # building the model to save it ran the payload once
    with pytest.raises(ModelError, match="refused before loading: layer 'payload' is a Lambda layer"):
        load_keras_model(path)
    assert not marker.exists()
    if suffix == ".h5":
        # The oracle: the same file through Keras alone runs the payload (tf_keras' safe mode covers .keras only).
        keras.models.load_model(path, compile=False)
        assert marker.exists()


def test_an_h5_upload_with_a_lambda_is_refused_at_the_door(service, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.h5"
    lambda_model(marker).save(path)
    marker.unlink(missing_ok=True)
    response = service.post(
        "/jobs", headers=AUTH, files={"model": ("m.h5", path.read_bytes())}, data={"data_dataset": "tiny"}
    )
    assert response.status_code == 422 and "Lambda layer" in response.json()["detail"], response.text
    assert str(service.data_dir) not in response.text and "model.h5: refused before loading" in response.text
    assert job_folders(service) == [] and not marker.exists()


def _mutations(config, rng, count):
    """`count` copies of a real model config, each with one object somewhere in it turned into something tfyolo never
    builds: an unknown class, a module to import, a registered custom object, an activation naming a function, a
    serialized function."""
    nodes = []

    def collect(node, path):
        if isinstance(node, dict):
            nodes.append(path)
            for key, value in node.items():
                collect(value, path + [key])
        elif isinstance(node, list):
            for index, value in enumerate(node):
                collect(value, path + [index])

    collect(config, [])
    edits = [
        lambda node: node.update(class_name=f"Unknown{rng.integers(1 << 30)}"),
        lambda node: node.update(module="os", class_name="system"),
        lambda node: node.update(module="subprocess"),
        lambda node: node.update(registered_name="evil>Payload"),
        lambda node: node.update(activation="os.system"),
        lambda node: node.update(function=["4wEAAAAAAAAA", None, None]),
        lambda node: node.update(class_name="function", config="posix.system"),
    ]
    for _ in range(count):
        mutated = json.loads(json.dumps(config))
        target = mutated
        for step in nodes[rng.integers(len(nodes))]:
            target = target[step]
        edits[rng.integers(len(edits))](target)
        yield mutated


def test_any_object_tfyolo_does_not_build_anywhere_in_a_config_is_refused(tiny_model, tmp_path, monkeypatch):
    """The class of hole, for inputs nobody listed: 200 random places in a real detector's config, each given an
    object that is not one of tfyolo's. Every one is refused, and Keras is never reached."""
    from tfyolo.compat import keras
    from tfyolo.models.model_file_check import check_model_config, read_model_config
    from tfyolo.models.model_io import load_keras_model, save_model_atomic

    path = tmp_path / "real.keras"
    save_model_atomic(tiny_model, path)
    config = read_model_config(path)
    assert check_model_config(path) == config  # the real file passes
    monkeypatch.setattr(keras.models, "load_model", lambda *a, **k: pytest.fail("Keras read a refused file"))
    rng = np.random.default_rng(0)
    for index, mutated in enumerate(_mutations(config, rng, 200)):
        with pytest.raises(ModelError, match="refused before loading"):
            check_model_config(path, mutated)
        if index % 40 == 0:  # the whole path too: a file holding the mutated config
            evil = tmp_path / f"evil{index}.keras"
            with zipfile.ZipFile(path) as source, zipfile.ZipFile(evil, "w") as target:
                for name in source.namelist():
                    data = json.dumps(mutated).encode() if name == "config.json" else source.read(name)
                    target.writestr(name, data)
            with pytest.raises(ModelError, match="refused before loading"):
                load_keras_model(evil)


# === The .pt reader: sizes that lie ===


def checkpoint_with_tensor(path, storage, offset, size, stride):
    """A torch-layout checkpoint holding one tensor view (offset, size, stride) over `storage`."""
    import io
    import pickle

    with fake_torch_names() as modules:
        rebuild = modules["torch._utils"]._rebuild_tensor_v2
        model = modules["ultralytics.nn.tasks"].DetectionModel()
        model.__dict__.update(_parameters={"w": Tensor(rebuild, "0", offset, size, stride)}, _buffers={}, _modules={})
        buffer = io.BytesIO()

        class Writer(pickle.Pickler):
            def persistent_id(self, obj):
                if isinstance(obj, tuple) and obj[:1] == ("storage-marker",):
                    return ("storage", modules["torch"].FloatStorage, "0", "cpu", storage.size)
                return None

        Writer(buffer, protocol=2).dump({"model": model})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x/data.pkl", buffer.getvalue())
        archive.writestr("x/data/0", storage.astype("<f4").tobytes())
    return path


def read_in_child(path):
    """Reads the checkpoint in another process, so a reader that crashes fails this test instead of the suite."""
    code = (
        "import sys\nfrom tfyolo.importers.ultralytics_checkpoint import read_checkpoint\nfrom tfyolo.errors import "
        "ModelError\ntry:\n    read_checkpoint(sys.argv[1])\n    print('READ')\nexcept ModelError as error:\n"
        "    print('REFUSED', error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    return result.returncode, result.stdout.strip()


@pytest.mark.parametrize(
    "offset, size, stride, fragment",
    [
        (0, (4, 4), (1 << 40, 1), "reaching element"),  # the 510-byte checkpoint that segfaulted the importer
        (0, (2,), (-1,), "a tensor with offset"),
        (9, (2,), (1,), "reaching element 10"),
        (0, (1 << 20, 1 << 20), (0, 0), "elements (more than"),
    ],
)
def test_a_tensor_view_outside_its_storage_is_refused_not_read(tmp_path, offset, size, stride, fragment):
    path = checkpoint_with_tensor(tmp_path / "lying.pt", np.arange(10, dtype=np.float32), offset, size, stride)
    code, output = read_in_child(path)
    assert code == 0 and output.startswith("REFUSED") and fragment in output, (code, output)


def test_random_tensor_views_are_read_exactly_or_refused(tmp_path):
    """The class of hole, for inputs nobody listed: random offsets, sizes and strides over a 24-element storage. The
    oracle enumerates every index the view would touch: if all lie in the storage (and the view holds no more elements
    than the storage: only repeating strides make it larger) the tensor must come back equal to indexing the storage
    there, otherwise the reader must refuse."""
    import itertools

    from tfyolo.importers.ultralytics_checkpoint import read_checkpoint

    storage = np.arange(24, dtype=np.float32) * 1.5
    rng = random.Random(0)
    read = refused = 0
    for trial in range(150):
        rank = rng.randint(0, 3)
        size = tuple(rng.randint(0, 4) for _ in range(rank))
        stride = tuple(rng.randint(0, 9) for _ in range(rank))
        offset = rng.randint(0, 30)
        path = checkpoint_with_tensor(tmp_path / f"t{trial}.pt", storage, offset, size, stride)
        indices = [offset + sum(i * s for i, s in zip(index, stride)) for index in itertools.product(*map(range, size))]
        inside = all(index < storage.size for index in indices) and len(indices) <= storage.size
        if inside:
            tensor = read_checkpoint(path)["model"].state_dict()["w"]
            expected = np.array([storage[i] for i in indices], np.float32).reshape(size)
            np.testing.assert_array_equal(tensor, expected)
            read += 1
        else:
            with pytest.raises(ModelError, match="refused"):
                read_checkpoint(path)
            refused += 1
    assert read > 20 and refused > 20  # both branches are exercised


def test_a_deflate_bomb_checkpoint_is_refused_before_it_is_inflated(tmp_path):

    path = tmp_path / "bomb.pt"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bomb/data.pkl", b"\x80\x02}q\x00.")
        with archive.open("bomb/data/0", "w", force_zip64=True) as entry:
            for _ in range(256):
                entry.write(bytes(1 << 20))  # 256 MiB of zeros, a few hundred kB on disk
    assert path.stat().st_size < 2 << 20
    from tests.memory import peak_growth_kib
    from tfyolo.importers.ultralytics_checkpoint import read_checkpoint

    with peak_growth_kib() as growth:
        with pytest.raises(ModelError, match=r"unpacks to 268,435,456 bytes \(\d+x its stored size\)"):
            read_checkpoint(path)
    grown_mb = growth[0] / 1024
    assert grown_mb < 64, f"reading the refused checkpoint grew the process by {grown_mb:.0f} MB"


# === Server paths and contents in requests ===


def test_recipes_name_built_in_recipes_only_never_a_server_path(service, tmp_path):
    secret = tmp_path / "secret.yaml"
    secret.write_text("name: AKIA-SECRET-VALUE\nmode: int8\n")
    for value in (str(secret), "../../secret.yaml", "/etc/passwd", str(tmp_path / "missing.yaml")):
        response = service.post(
            "/jobs",
            headers=AUTH,
            files={"model": ("m.tflite", tflite_bytes())},
            data={"recipes": value, "data_dataset": "tiny", "kind": "convert"},
        )
        assert response.status_code in (415, 422), response.text
        assert "AKIA" not in response.text and str(tmp_path) not in response.text
    keras_upload = tmp_path / "m.keras"
    from tfyolo.models.model_config import ModelConfig
    from tfyolo.models.model_io import save_model_atomic
    from tfyolo.models.yolo_detector import build_yolo_detector

    save_model_atomic(build_yolo_detector(ModelConfig(num_classes=1, input_size=32)), keras_upload)
    response = service.post(
        "/jobs",
        headers=AUTH,
        files={"model": ("m.keras", keras_upload.read_bytes())},
        data={"recipes": str(secret), "data_dataset": "tiny"},
    )
    assert response.status_code == 422 and "is not a built-in recipe" in response.text
    assert "AKIA" not in response.text and str(tmp_path) not in response.text
    assert job_folders(service) == []


def test_no_request_field_carries_a_server_path_into_a_job(service, tmp_path):
    """The class of hole, for fields nobody listed: every form field of POST /jobs (read from the OpenAPI schema) is
    sent a server path. Each request is refused, or the job it queues holds no such path (the worker would open it);
    no answer names the path or echoes the file's contents."""
    secret = tmp_path / "secret.yaml"
    secret.write_text("nc: 1\nnames: ['AKIA-SECRET-VALUE']\ntrain: x\nval: x\n")
    schema = service.get("/openapi.json", headers=AUTH).json()
    body = schema["paths"]["/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    reference = body["$ref"].split("/")[-1]
    fields = [name for name in schema["components"]["schemas"][reference]["properties"] if name != "model"]
    assert {"recipes", "calibration_dataset", "data_dataset", "kind"} <= set(fields)
    for field in fields:
        for value in (str(secret), f"../../{secret.name}", str(tmp_path)):
            data = {"data_dataset": "tiny", field: value}
            files = {"model": ("m.tflite", tflite_bytes())}
            if field == "calibration":
                files["calibration"] = ("c.zip", value.encode())
                data.pop(field)
            response = service.post("/jobs", headers=AUTH, files=files, data=data | {"kind": "bench"})
            assert "AKIA" not in response.text and str(tmp_path) not in response.text, (field, response.text)
            if response.status_code == 201:
                record = service.get(f"/jobs/{response.json()['id']}", headers=AUTH).json()
                assert str(secret) not in json.dumps(record) and str(tmp_path) not in json.dumps(record), field


def test_error_texts_returned_to_a_client_carry_no_server_path(service, tmp_path):
    """A job fails on a damaged upload; its error, history and report name files as the upload knew them."""
    from tfyolo.service.store import JobStore
    from tfyolo.service.worker import execute_job

    store = JobStore(service.data_dir)
    job_id, folder = store.new_job_dir()
    (folder / "uploads").mkdir()
    (folder / "uploads" / "model.keras").write_bytes(b"PK\x03\x04 not really a zip")
    dataset = tmp_path / "dataset"
    store.create({"model": "model.keras", "kind": "convert", "data_dataset": "tiny"}, {"model": "model.keras"}, job_id)
    store.event(job_id, f"calibration: the train split of {dataset}/data.yaml and {tmp_path}/elsewhere.png")
    execute_job(service.data_dir, job_id, in_process=True)
    record = service.get(f"/jobs/{job_id}", headers=AUTH).json()
    assert record["state"] == "failed" and record["error"].startswith("model.keras:"), record["error"]
    text = json.dumps(record) + service.get(f"/ui/jobs/{job_id}", headers=AUTH).text
    assert str(service.data_dir) not in text and str(tmp_path) not in text and "/tmp/" not in text
    assert "dataset:tiny/data.yaml" in text and "<server path>" in text


@pytest.mark.parametrize("name", ["../../../../x", "/tmp/x", "a/b", "..", ".hidden", "x" * 101, ""])
def test_an_artifact_name_is_a_plain_file_name(name):
    from tfyolo.jobs.spec import JobSpec
    from tfyolo.quantization.recipe import Recipe

    with pytest.raises(ConfigError, match="recipe name: expected a plain file name"):
        Recipe(name=name, mode="fp32")
    with pytest.raises(ConfigError, match="name: expected a plain file name"):
        JobSpec(model="m.keras", name=name)


def test_a_recipe_named_to_climb_out_writes_nothing_outside_out(squares, tmp_path):
    from tfyolo.cli.main import cli

    recipe = tmp_path / "climb.yaml"
    recipe.write_text("name: ../../../../escaped\nmode: fp32\n")
    out = tmp_path / "a" / "b" / "c" / "d" / "out"
    result = CliRunner().invoke(
        cli, ["convert", "--model", str(squares[0]), "--recipe", str(recipe), "--out", str(out)]
    )
    assert result.exit_code == 1 and "expected a plain file name" in result.output and "Traceback" not in result.output
    assert not list(tmp_path.rglob("*escaped*"))


# === Upload limits ===


def test_the_body_limit_stops_reading_at_the_limit(tmp_path):
    """A 300 MB body (no Content-Length, as a chunked upload sends it) against a 2 MB limit: refused 413 after about
    the limit is read, never stored."""
    import asyncio

    from tfyolo.service.security import BodyLimit

    chunk, pulled, reached = bytes(64 << 10), [0], []

    async def app(scope, receive, send):
        while (await receive()).get("more_body"):
            pass
        reached.append(True)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"stored"})

    async def receive():
        pulled[0] += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": pulled[0] < 300 << 20}

    sent = []

    async def send(message):
        sent.append(message)

    asyncio.run(BodyLimit(app, 2 << 20)({"type": "http", "headers": []}, receive, send))
    assert sent[0]["status"] == 413 and not reached
    assert pulled[0] <= (2 << 20) + len(chunk)
    # A declared length past the limit is refused before one byte is read.
    pulled[0], sent = 0, []
    asyncio.run(
        BodyLimit(app, 2 << 20)({"type": "http", "headers": [(b"content-length", b"314572800")]}, receive, send)
    )
    assert sent[0]["status"] == 413 and pulled[0] == 0


def test_an_oversized_upload_is_answered_413_through_the_app(service):
    response = service.post(
        "/jobs", headers=AUTH, files={"model": ("m.tflite", tflite_bytes() + bytes(40 << 20))}, data={"kind": "bench"}
    )
    assert response.status_code == 413 and "limit" in response.json()["detail"]
    assert job_folders(service) == []


# === Requests that ask for two things ===


def test_a_bench_job_with_recipes_is_refused(service):
    response = service.post(
        "/jobs",
        headers=AUTH,
        files={"model": ("m.tflite", tflite_bytes())},
        data={"data_dataset": "tiny", "kind": "bench", "recipes": "int8"},
    )
    assert response.status_code == 422 and "recipes and kind=bench: give one or the other" in response.text


def test_auto_with_recipes_is_refused_for_a_convert_upload(service, tiny_model, tmp_path):
    from tfyolo.models.model_io import save_model_atomic

    save_model_atomic(tiny_model, tmp_path / "m.keras")
    response = service.post(
        "/jobs",
        headers=AUTH,
        files={"model": ("m.keras", (tmp_path / "m.keras").read_bytes())},
        data={"data_dataset": "tiny", "auto": "true", "max_drop": "0.5", "recipes": "int8"},
    )
    assert response.status_code == 422 and "recipes and auto=true: give one or the other" in response.text


def test_an_npu_target_reaches_the_auto_job_and_a_probing_one_is_not_echoed(service, tiny_model, tmp_path):
    from tfyolo.models.model_io import save_model_atomic

    save_model_atomic(tiny_model, tmp_path / "m.keras")
    upload = {"model": ("m.keras", (tmp_path / "m.keras").read_bytes())}
    auto = {"data_dataset": "tiny", "auto": "true", "max_drop": "0.5"}
    response = service.post("/jobs", headers=AUTH, files=upload, data=auto | {"target": "ethos-u55-128"})
    assert response.status_code == 201, response.text
    assert response.json()["spec"]["target"] == "ethos-u55-128"
    response = service.post("/jobs", headers=AUTH, files=upload, data=auto | {"target": "../../etc/passwd"})
    assert response.status_code == 422 and "not an Ethos-U" in response.text and "passwd" not in response.text
    response = service.post(
        "/jobs", headers=AUTH, files=upload, data={"data_dataset": "tiny", "target": "ethos-u55-128"}
    )
    assert response.status_code == 422 and "send auto=true and max_drop" in response.text


# === Zips from other tools ===


def test_zips_written_by_writestr_are_regular_files_and_a_corrupt_member_is_named(tmp_path):
    from tfyolo.errors import DataError
    from tfyolo.service.security import extract_images

    archive = tmp_path / "plain.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as writer:
        writer.writestr("a.png", b"png bytes")  # mode 0o600, no file-type bits
        info = zipfile.ZipInfo("b.png")
        info.external_attr = 0o644 << 16
        writer.writestr(info, b"more png bytes")
    assert extract_images(archive, tmp_path / "out") == 2
    corrupt = tmp_path / "corrupt.zip"
    data = bytearray(archive.read_bytes())
    data[data.index(b"png bytes") if b"png bytes" in data else 40] ^= 0xFF
    with zipfile.ZipFile(tmp_path / "stored.zip", "w", zipfile.ZIP_STORED) as writer:
        writer.writestr("c.png", b"0123456789" * 10)
    stored = bytearray((tmp_path / "stored.zip").read_bytes())
    stored[stored.index(b"0123456789") + 3] ^= 0xFF  # the bytes no longer match the CRC
    corrupt.write_bytes(bytes(stored))
    with pytest.raises(DataError, match="member 'c.png' cannot be read"):
        extract_images(corrupt, tmp_path / "out2")


# === Faults that used to leave a wrong state ===


def test_readyz_is_not_ready_while_no_worker_heartbeats(service):
    from tfyolo.service.store import JobStore

    answer = service.get("/readyz", headers=AUTH)
    assert answer.status_code == 503 and "no live worker" in answer.json()["problems"][0]
    store = JobStore(service.data_dir)
    store.worker_alive("host:1")
    answer = service.get("/readyz", headers=AUTH)
    assert answer.status_code == 200 and answer.json()["workers"] == 1
    store.worker_gone("host:1")
    assert service.get("/readyz", headers=AUTH).status_code == 503


def test_a_dead_worker_is_replaced_and_its_job_swept_at_once(tmp_path):
    """serve's supervisor: a worker process that dies is started again and its running job re-queued (once) without
    waiting for its heartbeat to go stale."""
    from tfyolo.cli.serve import WorkerSupervisor
    from tfyolo.service.store import JobStore, worker_name_of

    class Queue:
        queued = []

        def run_job_task(self, job_id):
            self.queued.append(job_id)

    command = [sys.executable, "-c", "import time; time.sleep(120)"]
    supervisor = WorkerSupervisor(command, 1, tmp_path, Queue())
    supervisor.start()
    try:
        store = JobStore(tmp_path)
        first = supervisor.processes[0]
        job_id = store.create({"model": "m.tflite", "kind": "bench"}, {"model": "m.tflite"})
        assert store.claim(job_id, worker_name_of(first.pid))
        first.kill()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and supervisor.processes[0] is first:
            time.sleep(0.2)
        assert supervisor.processes[0] is not first and supervisor.processes[0].poll() is None
        record = store.get(job_id)
        assert record["state"] == "queued" and Queue.queued == [job_id]
        assert any("died (killed by SIGKILL)" in event["text"] for event in store.events(job_id))
    finally:
        supervisor.stop()
    assert all(process.poll() is not None for process in supervisor.processes)


# A job process that records the signals it receives in the file argv[1] ("up" first), dying with its parent as the
# real one does.
SIGNAL_RECORDING_CHILD = """
import signal, sys, time
from tfyolo.processes import die_with_parent

die_with_parent(int(sys.argv[2]))


def record(signum, frame):
    with open(sys.argv[1], "a") as log:
        log.write(signal.Signals(signum).name + "\\n")
    sys.exit(0)


signal.signal(signal.SIGINT, record)
signal.signal(signal.SIGTERM, record)
with open(sys.argv[1], "a") as log:
    log.write("up\\n")
time.sleep(120)
"""


def test_ctrl_c_in_a_worker_s_terminal_re_queues_its_job_without_spending_the_attempt(tmp_path):
    """Issue 34, round two: a Ctrl-C where `tfyolo worker` runs sends SIGINT to the terminal's whole foreground group.
    The job's process is in a session of its own, so the worker alone takes it; the worker stops at once (not
    Huey's graceful stop, which waits for the job to end), stops the job (SIGTERM) and gives it back to the queue with
    its attempt. The job process is started as the worker starts it; only its command is a stand-in."""
    from tfyolo.service.queue import make_huey
    from tfyolo.service.store import JobStore

    store = JobStore(tmp_path)
    job_id = store.create({"model": "m.tflite", "kind": "bench"}, {"model": "m.tflite"})
    make_huey(tmp_path).run_job_task(job_id)
    log = tmp_path / "signals.log"
    worker_script = (
        "import sys\n"
        "from tfyolo.service import worker\n"
        f"worker.job_process_command = lambda data_dir, job: [sys.executable, '-c', {SIGNAL_RECORDING_CHILD!r}, "
        f"{str(log)!r}, str(__import__('os').getpid())]\n"
        "from tfyolo.cli.serve import worker_command\n"
        "worker_command.main(['--data-dir', sys.argv[1]])\n"
    )
    # A session of its own: the worker's process group stands for the terminal's foreground group.
    worker = subprocess.Popen(
        [sys.executable, "-c", worker_script, str(tmp_path)],
        start_new_session=True,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (log.is_file() and log.read_text()):
            time.sleep(0.1)
        assert log.read_text() == "up\n" and store.get(job_id)["state"] == "running"
        os.killpg(worker.pid, signal.SIGINT)
        try:
            _, stderr = worker.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("the worker did not stop within 30 s of the Ctrl-C: it waits for its job to end")
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    assert log.read_text().split() == ["up", "SIGTERM"], "the job process took the terminal's SIGINT itself"
    record = store.get(job_id)
    assert (record["state"], record["attempts"]) == ("queued", 0), record
    assert "1 job(s) back in the queue" in stderr and "Shutdown timeout" not in stderr, stderr


def test_serve_s_workers_take_no_terminal_signal_and_a_replacement_stops_in_order(tmp_path):
    """`serve` starts each worker in a session of its own (a Ctrl-C in its terminal reaches `serve` alone, which stops
    them in order), and a worker it started to replace a dead one is stopped in order too: it dies with the thread
    that started it (PR_SET_PDEATHSIG), which must outlast it, or it is killed before it gives its job back."""
    from tfyolo.cli.serve import WorkerSupervisor

    class Queue:
        def run_job_task(self, job_id):
            pass

    logs = iter(tmp_path / f"worker{index}.log" for index in range(3))
    # Each stand-in worker takes 2 s to stop after SIGTERM, as a worker stopping its job does, then records it.
    header = "def record(signum, frame):"
    stand_in = SIGNAL_RECORDING_CHILD.replace(header, header + "\n    time.sleep(2)")

    class Supervisor(WorkerSupervisor):
        def _spawn(self):
            self.command = [sys.executable, "-c", stand_in, str(next(logs)), str(os.getpid())]
            return super()._spawn()

    supervisor = Supervisor([], 1, tmp_path, Queue())
    supervisor.start()
    try:
        first = supervisor.processes[0]
        assert os.getpgid(first.pid) == first.pid != os.getpgid(0)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (tmp_path / "worker0.log").is_file():
            time.sleep(0.1)
        first.kill()
        while time.monotonic() < deadline and supervisor.processes[0] is first:
            time.sleep(0.1)
        replacement = supervisor.processes[0]
        assert replacement is not first and os.getpgid(replacement.pid) == replacement.pid
        while time.monotonic() < deadline and not (tmp_path / "worker1.log").is_file():
            time.sleep(0.1)
    finally:
        supervisor.stop()
    assert (tmp_path / "worker1.log").read_text().split() == ["up", "SIGTERM"]
    assert replacement.returncode == 0


def test_stale_seconds_must_be_positive():
    from tfyolo.cli.main import cli

    for command in ("serve", "worker"):
        for value in ("0", "-5"):
            result = CliRunner().invoke(cli, [command, "--data-dir", "/tmp/x", "--stale-seconds", value])
            assert result.exit_code == 2 and "expected a number of seconds above 0" in result.output


def test_a_data_dir_held_by_a_live_server_is_refused(tmp_path):
    from tfyolo.service.store import hold_data_dir

    held = hold_data_dir(tmp_path)
    with pytest.raises(ConfigError, match=r"held by a live tfyolo serve \(pid \d+"):
        hold_data_dir(tmp_path)
    held.close()
    hold_data_dir(tmp_path).close()  # released with its holder


def job_process_in_stages(stages, pid_file, child="import time; time.sleep(300)"):
    """A stand-in for `worker.start_job_process`: a job process (in a session of its own, as the real one) that
    reports each of `stages` ((name, seconds) pairs) and then, in its last stage, starts a child running the Python
    code `child` (by default it sleeps, as a conversion child would), writes that child's pid to `pid_file` and
    sleeps itself."""
    script = "import subprocess, sys, time\nfrom tfyolo.service.store import JobStore\nstore = JobStore(sys.argv[1])\n"
    for name, seconds in stages:
        script += f"store.report_progress(sys.argv[2], {name!r}, 0.0)\ntime.sleep({seconds})\n"
    script += (
        f"child = subprocess.Popen([sys.executable, '-c', {child!r}])\n"
        "open(sys.argv[3], 'w').write(str(child.pid))\ntime.sleep(300)\n"
    )

    def start(data_dir, job, temporary):
        return subprocess.Popen(
            [sys.executable, "-c", script, str(data_dir), job, str(pid_file)],
            start_new_session=True,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )

    return start


def test_a_cancelled_job_stops_its_process_group_and_says_where(tmp_path):
    """Cancel reaches a job mid-stage within a few seconds, whatever the stage is doing: the job process (here one
    that sleeps inside a stage, as a conversion does inside its child) is stopped with its whole group."""
    from tfyolo.service import worker
    from tfyolo.service.store import JobStore

    store = JobStore(tmp_path)
    job_id = store.create({"model": "m.tflite", "kind": "bench"}, {"model": "m.tflite"})
    pid_file = tmp_path / "grandchild.pid"
    original = worker.start_job_process
    worker.start_job_process = job_process_in_stages([("converting int8 (1/2)", 0)], pid_file)
    try:
        import threading

        runner = threading.Thread(target=worker.execute_job, args=(tmp_path, job_id))
        runner.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (pid_file.is_file() and store.stage_of(job_id).startswith("conv")):
            time.sleep(0.1)
        asked = time.monotonic()
        store.cancel(job_id)
        runner.join(timeout=30)
        took = time.monotonic() - asked
    finally:
        worker.start_job_process = original
    record = store.get(job_id)
    assert record["state"] == "cancelled" and record["error"] == "cancelled during 'converting int8 (1/2)'"
    assert took < 10, f"cancel took {took:.1f} s"
    assert process_gone(int(pid_file.read_text()))


def test_a_stage_past_the_server_s_time_limit_is_stopped_and_fails_the_job(tmp_path, monkeypatch):
    """Issue 34's trial: a .pt that sent the importer into 2^60 steps left the only worker on "importing" for ever.
    A stage that runs past $TFYOLO_STAGE_TIME_LIMIT is stopped with its process group and fails the job in one line
    naming the stage; the limit counts from when the stage began, not from the job's start."""
    from tfyolo.service import worker
    from tfyolo.service.store import JobStore

    monkeypatch.setenv(worker.STAGE_TIME_LIMIT_VARIABLE, "4")
    store = JobStore(tmp_path)
    job_id = store.create({"model": "m.pt", "kind": "convert"}, {"model": "m.pt"})
    # Two stages of 3 s each (each under the limit, together over it), then one that never ends.
    pid_file = tmp_path / "grandchild.pid"
    stages = [("reading model", 3), ("checking model", 3), ("importing", 0)]
    monkeypatch.setattr(worker, "start_job_process", job_process_in_stages(stages, pid_file))
    started = time.monotonic()
    worker.execute_job(tmp_path, job_id)
    took = time.monotonic() - started
    record = store.get(job_id)
    assert record["state"] == "failed", record
    assert record["error"] == (
        "stopped: 'importing' ran longer than this server's limit of 4 s per stage ($TFYOLO_STAGE_TIME_LIMIT)"
    )
    assert 6 + 4 <= took < 6 + 4 + 15, took
    assert process_gone(int(pid_file.read_text()))


def test_a_job_whose_processes_hold_more_memory_than_the_limit_is_stopped(tmp_path, monkeypatch):
    """Issue 34's memory bound: whatever reader a hostile file finds, a job whose processes together hold more than
    $TFYOLO_JOB_MEMORY_LIMIT is stopped with its process group and fails in one line. Here the job process's child
    (a conversion child's place) fills 400 MiB against a limit of 0.25 GiB."""
    from tfyolo.service import worker
    from tfyolo.service.store import JobStore

    monkeypatch.setenv(worker.JOB_MEMORY_LIMIT_VARIABLE, "0.25")
    store = JobStore(tmp_path)
    job_id = store.create({"model": "m.pt", "kind": "convert"}, {"model": "m.pt"})
    pid_file = tmp_path / "grandchild.pid"
    filling = job_process_in_stages(
        [("importing", 0)], pid_file, child='import time; x = b"y" * (400 << 20); time.sleep(300)'
    )
    monkeypatch.setattr(worker, "start_job_process", filling)
    started = time.monotonic()
    worker.execute_job(tmp_path, job_id)
    record = store.get(job_id)
    assert record["state"] == "failed", record
    assert re.fullmatch(
        r"stopped: the job's processes held 0\.[3-9] GiB during 'importing', over this server's limit of 0\.2 GiB "
        r"\(\$TFYOLO_JOB_MEMORY_LIMIT\)",
        record["error"],
    ), record["error"]
    assert time.monotonic() - started < 30
    assert process_gone(int(pid_file.read_text()))


@pytest.mark.parametrize("value", ["0", "-5", "a lot", "nan"])
def test_a_malformed_job_memory_limit_is_one_line(monkeypatch, value):
    from tfyolo.errors import ConfigError
    from tfyolo.service.worker import job_memory_limit

    monkeypatch.setenv("TFYOLO_JOB_MEMORY_LIMIT", value)
    with pytest.raises(ConfigError, match=r"^\$TFYOLO_JOB_MEMORY_LIMIT: expected a number of GiB above 0, received"):
        job_memory_limit()


@pytest.mark.parametrize("value", ["0", "-5", "an hour", "nan"])
def test_a_malformed_stage_time_limit_is_one_line(monkeypatch, value):
    from tfyolo.errors import ConfigError
    from tfyolo.service.worker import stage_time_limit

    monkeypatch.setenv("TFYOLO_STAGE_TIME_LIMIT", value)
    with pytest.raises(ConfigError, match=r"^\$TFYOLO_STAGE_TIME_LIMIT: expected a number of seconds above 0, rec"):
        stage_time_limit()


def process_gone(pid, timeout=5.0):
    """True once `pid` no longer runs (gone, or a zombie waiting for its reaper)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return True
        if state == "Z":
            return True
        time.sleep(0.1)
    return False


def test_the_page_cancel_button_returns_to_the_job_page(service):
    from tfyolo.service.store import JobStore

    store = JobStore(service.data_dir)
    job_id = store.create({"model": "m.tflite", "kind": "bench"}, {"model": "m.tflite"})
    page = service.get(f"/ui/jobs/{job_id}", headers=AUTH).text
    assert f'action="/ui/jobs/{job_id}/cancel"' in page
    secret = page.split('name="form_secret" value="', 1)[1].split('"', 1)[0]
    data = {"form_secret": secret}
    response = service.post(f"/ui/jobs/{job_id}/cancel", headers=AUTH, data=data, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == f"/ui/jobs/{job_id}"
    assert store.get(job_id)["state"] == "cancelled"


def blind_square_detector(folder, data):
    """The square detector with every class logit at -30: it detects nothing (mAP50-95 0)."""
    from tests.square_detector import save_square_detector
    from tfyolo.models.model_io import load_keras_model, save_model_atomic

    path = save_square_detector(folder, data)
    model = load_keras_model(path)
    for stride in (8, 16, 32):
        layer = model.get_layer(f"class{stride}")
        layer.set_weights([np.zeros_like(layer.get_weights()[0]), np.array([-30.0], np.float32)])
    save_model_atomic(model, path)
    return path


def test_a_gate_against_a_float_model_that_detects_nothing_does_not_pass(squares, tmp_path):
    from tfyolo.jobs.run import run_job
    from tfyolo.jobs.spec import JobSpec

    _, data = squares
    model = blind_square_detector(tmp_path / "blind", data)
    report = run_job(JobSpec(model=str(model), recipes=("fp32",), max_drop=0.5), tmp_path / "out")
    rows = {row["recipe"]: row for row in report.rows}
    assert rows["float"]["map50_95"] == 0.0 and rows["fp32"]["delta_map50_95"] == 0.0
    assert report.verdict.passed is False and "verifies nothing" in report.verdict.reason
    assert "PASS" not in report.to_markdown()


def test_the_service_calibrates_on_the_named_datasets_train_split(squares, tmp_path):
    from fastapi.testclient import TestClient

    from tfyolo.service.app import ServiceConfig, create_app
    from tfyolo.service.queue import make_huey
    from tfyolo.service.worker import execute_job

    model, data = squares
    data_dir = tmp_path / "service"
    data_dir.mkdir()
    (data_dir / "datasets.json").write_text(json.dumps({"squares": str(data)}))
    client = TestClient(create_app(ServiceConfig(data_dir=str(data_dir), token=TOKEN), make_huey(data_dir)))
    # An upload carries no metadata naming its data: the job's evaluation dataset is its calibration source.
    from tfyolo.models.model_io import load_keras_model, save_model_atomic

    bare = tmp_path / "bare.keras"
    save_model_atomic(load_keras_model(model), bare)
    response = client.post(
        "/jobs",
        headers=AUTH,
        files={"model": ("bare.keras", bare.read_bytes())},
        data={"recipes": "int8", "data_dataset": "squares", "bundle": "false"},
    )
    job_id = response.json()["id"]
    execute_job(data_dir, job_id, in_process=True)
    report = client.get(f"/jobs/{job_id}/report", headers=AUTH).json()
    assert report["calibration"]["source"] == "dataset:squares [train]", report["calibration"]
    page = client.get(f"/ui/jobs/{job_id}", headers=AUTH).text
    assert "calibration: dataset:squares [train]" in page
    # The artifact a client downloads names its model and calibration images without the server's paths.
    from tfyolo.metadata import read_embedded_metadata

    (artifact,) = report["artifacts"]
    content = client.get(f"/artifacts/{artifact['sha256']}", headers=AUTH).content
    metadata = read_embedded_metadata(content)
    assert metadata["calibration"]["source"] == f"{data.parent.name}/data.yaml [train]", metadata["calibration"]
    stored = data_dir / "jobs" / job_id / "uploads" / metadata["source_model"]
    assert metadata["source_model_sha256"] == sha256(stored), metadata["source_model"]
    assert no_path_in(metadata, tmp_path, data.parent)


def sha256(path):
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def no_path_in(value, *folders):
    """True when no string in the JSON value `value` names one of `folders` or holds an absolute path."""
    text = json.dumps(value)
    found = [str(folder) for folder in folders if str(folder) in text]
    found += re.findall(r'(?:^|[\s"(])(/[^\s"]+)', text)
    assert not found, found
    return True


def test_an_artifact_names_its_model_and_calibration_images_without_where_they_were(tmp_path):
    """Issue 34, round two: every .tflite embedded the absolute path of its float model (an upload's stored path on
    the server) and its calibration source (a registered dataset's location). It names the model by its file name and
    sha256, the calibration images by their folder's name (a data.yaml by its folder's and its own), wherever the
    artifact is made, a path with spaces included."""
    from tests.square_detector import write_squares_dataset
    from tfyolo.data.calibration_images import load_calibration_images
    from tfyolo.quantization.artifact import artifact_metadata
    from tfyolo.quantization.recipes_dir import resolve_recipe

    server = tmp_path / "srv" / "tfyolo data"
    data = write_squares_dataset(server / "datasets" / "penn fudan")
    model = server / "jobs" / "0123" / "uploads" / "model.keras"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"a model's bytes")
    expected = {data: "penn fudan/data.yaml [train]", data.parent / "images" / "train": "folder train"}
    for source, named in expected.items():
        _, summary = load_calibration_images(source, 32, 2)
        assert str(source) in summary["source"]  # the report, which stays on the machine, keeps the path
        metadata = artifact_metadata({"names": ["square"]}, resolve_recipe("int8"), summary, 64, 1, model)
        located = {key: value for key, value in summary.items() if key != "source_name"}
        assert metadata["calibration"] == {**located, "source": named}
        assert (metadata["source_model"], metadata["source_model_sha256"]) == ("model.keras", sha256(model))
        assert no_path_in(metadata, tmp_path)
    # A folder (a SavedModel) has no one file to hash; a relative name says no more than it did.
    assert artifact_metadata({}, resolve_recipe("fp32"), None, 64, 1, server)["source_model_sha256"] is None
    assert artifact_metadata({}, resolve_recipe("fp32"), None, 64, 1, "m.keras")["source_model"] == "m.keras"


# === One clear line ===


@pytest.mark.parametrize(
    "arguments, fragment",
    [
        (["import", "x.pt", "--out", "m.keras", "--imgsz", "0"], "expected a multiple of 32"),
        (["convert", "--model", "m.keras", "--out", "o", "--auto", "--max-drop", "-1"], "--max-drop"),
        (["data", "synth", "out", "--val-fraction", "1.5"], "--val-fraction"),
        (["data", "synth", "out", "--imgsz", "0"], "--imgsz"),
        (["bench", "m.tflite", "--threads", "0"], "thread counts from 1 to 64"),
        (["bench", "m.tflite", "--runs", "0"], "--runs"),
        (["train", "--data", "d.yaml", "--out", "o", "--imgsz", "100"], "nearest valid sizes are 96 and 128"),
        (["train", "--data", "d.yaml", "--out", "o", "--epochs", "0"], "--epochs"),
        (["compress", "--model", "m.keras", "--method", "prune", "--sparsity", "1.5", "--out", "o"], "--sparsity"),
    ],
)
def test_a_bad_command_line_exits_2_before_any_work(tmp_path, arguments, fragment):
    from tfyolo.cli.main import cli

    (tmp_path / "x.pt").write_bytes(b"x")
    (tmp_path / "m.keras").write_bytes(b"x")
    (tmp_path / "m.tflite").write_bytes(b"x")
    (tmp_path / "d.yaml").write_text("x")
    previous = os.getcwd()
    os.chdir(tmp_path)
    try:
        result = CliRunner().invoke(cli, arguments)
    finally:
        os.chdir(previous)
    assert result.exit_code == 2 and fragment in result.output, result.output
    assert "Traceback" not in result.output


def test_a_val_fraction_that_leaves_no_training_image_is_refused():
    from tfyolo.data.synthetic import write_synthetic_dataset

    with pytest.raises(ConfigError, match="leaves no training image"):
        write_synthetic_dataset("/tmp/never-written", images=2, val_fraction=0.9)


def test_a_full_disk_names_the_file(tmp_path, monkeypatch):
    from tfyolo.errors import one_line
    from tfyolo.io_utils import atomic_write_bytes

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    target = tmp_path / "report.json"
    with pytest.raises(OSError) as raised:
        atomic_write_bytes(target, b"{}")
    assert one_line(raised.value) == f"{target}: No space left on device."
    assert list(tmp_path.iterdir()) == []  # no temporary left behind


def test_docs_are_served_without_a_cdn(service):
    page = service.get("/docs", headers=AUTH)
    assert page.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower() and "https://" not in page.text
    script = service.get("/docs-assets/swagger-ui-bundle.js", headers=AUTH)
    assert script.status_code == 200 and len(script.content) > 100_000
    assert service.get("/docs-assets/swagger-ui-bundle.js").status_code == 401


# === Bundles checked against themselves ===


def test_a_bundle_whose_manifest_was_edited_with_its_digest_recomputed_fails_verify(squares, tmp_path):
    """names, pad_value and normalization changed in the manifest, its digest recomputed, labels.txt untouched: the
    hashes all match, and each edit is still found (labels.txt and the model disagree with the names, the stored
    golden inputs are not what the manifest's preprocessing gives, the input spec is not the model's)."""
    import hashlib

    from tfyolo.bundle import make_bundle, verify_bundle, write_bundle
    from tfyolo.models.model_io import load_keras_model
    from tfyolo.quantization.converter import convert
    from tfyolo.quantization.recipe import Recipe

    model, data = squares
    source = tmp_path / "squares_fp32.tflite"
    source.write_bytes(convert(load_keras_model(model), Recipe(name="fp32", mode="fp32")))
    import cv2

    image = tmp_path / "wide.png"  # 64 x 40: the letterbox pads 12 rows above and below with the pad value
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 255, (40, 64, 3), dtype=np.uint8))
    folder = tmp_path / "bundle"
    write_bundle(folder, make_bundle(source, [image]))
    assert verify_bundle(folder) == []
    original = json.loads((folder / "manifest.json").read_text())
    edits = {
        "names": lambda m: m.update(names=["pedestrian"]),
        "pad_value": lambda m: m["input"].update(pad_value=0),
        "normalization": lambda m: m["input"].update(normalization="(pixel - 127.5) / 127.5"),
    }
    expected = {
        "names": ["labels.txt: lists ['class0'], the manifest names ['pedestrian']"],
        "pad_value": ["'input' does not describe", "not what golden/source_00.png gives"],
        "normalization": ["'input' does not describe"],
    }
    for key, edit in edits.items():
        manifest = json.loads(json.dumps(original))
        edit(manifest)
        text = json.dumps(manifest, indent=2) + "\n"
        (folder / "manifest.json").write_text(text)
        (folder / "manifest.json.sha256").write_text(f"{hashlib.sha256(text.encode()).hexdigest()}  manifest.json\n")
        problems = verify_bundle(folder)
        for fragment in expected[key]:
            assert any(fragment in problem for problem in problems), (key, problems)


# === Every stage says what it is doing ===


def test_a_convert_job_reports_a_stage_for_all_of_its_work(squares, tmp_path):
    from tfyolo.jobs.progress import Progress
    from tfyolo.jobs.run import run_job
    from tfyolo.jobs.spec import JobSpec

    class Recorder(Progress):
        def __init__(self):
            self.stages, self.current = [], None

        def stage(self, name, total, unit="img"):
            self.current = [name, total, 0]
            self.stages.append(self.current)

        def advance(self, steps=1):
            assert self.current is not None, "work advanced outside any stage"
            self.current[2] += steps

        def end_stage(self):
            self.current = None

    model, data = squares
    recorder = Recorder()
    run_job(JobSpec(model=str(model), recipes=("fp32", "int8"), bundle=True), tmp_path / "out", progress=recorder)
    assert [name for name, _, _ in recorder.stages] == [
        "loading best.keras",
        "converting fp32 (1/2)",
        "converting int8 (2/2)",
        "evaluating float + 2 artifact(s)",
        "timing (interleaved)",
        "writing the edge bundle",
    ]
    assert all(done == total for _, total, done in recorder.stages), recorder.stages


# === The terminal: one clear line ===


def test_native_noise_is_dropped_from_stderr_and_everything_else_kept():
    from tfyolo.cli.quiet import _forward

    text = (
        b"W0000 00:00:1795000000.123456   31094 port.cc:153] oneDNN custom operations are on.\n"
        b"fully_quantize: 0, inference_type: 6, input_inference_type: INT8, output_inference_type: INT8\n"
        b"converting int8\r"
        b"50%INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n|####\r"
        b"Error: recipe 'int8': the calibration folder holds no image.\n"
    )
    source_read, source_write = os.pipe()
    sink_read, sink_write = os.pipe()
    os.write(source_write, text)
    os.close(source_write)
    _forward(source_read, sink_write)
    os.close(sink_write)
    forwarded = os.read(sink_read, 65536)
    os.close(source_read)
    os.close(sink_read)
    assert forwarded == (b"converting int8\r50%|####\rError: recipe 'int8': the calibration folder holds no image.\n")


def test_a_conversion_child_ignores_ctrl_c_so_only_the_parent_reports_it():
    import signal

    from tfyolo.processes import children_ignore_sigint

    before = signal.getsignal(signal.SIGINT)
    probe = [sys.executable, "-c", "import signal; print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)"]
    with children_ignore_sigint():
        inside = subprocess.run(probe, capture_output=True, text=True, check=True).stdout.strip()
    after = subprocess.run(probe, capture_output=True, text=True, check=True).stdout.strip()
    # Afterwards children inherit the parent's own disposition again: ignored already when the suite itself runs
    # with SIGINT ignored (started in the background by a non-interactive shell, or under nohup).
    assert (inside, after) == ("True", str(before is signal.SIG_IGN))
    assert signal.getsignal(signal.SIGINT) is before
