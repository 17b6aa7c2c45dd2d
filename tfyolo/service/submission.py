"""Turning an upload into a queued job: the model saved under a name the server chooses after reading its bytes,
a calibration zip unpacked safely, datasets only by their registered names, and the spec validated as the worker
will build it. A refusal leaves nothing behind."""

import dataclasses
import errno
import shutil
from typing import Optional

from tfyolo.config import PLAIN_NAME
from tfyolo.errors import ConfigError, ModelError, TfyoloError, one_line
from tfyolo.jobs.spec import KINDS, JobSpec
from tfyolo.metadata import read_model_file_metadata, replace_model_file_metadata
from tfyolo.models.model_file_check import check_model_config
from tfyolo.quantization.recipes_dir import builtin_recipe_names
from tfyolo.service.redaction import Redactor
from tfyolo.service.security import extract_images, sniff
from tfyolo.service.store import registered_datasets
from tfyolo.tflite_runtime import missing_required_input

# sniffed kind: the name the upload is stored under
MODEL_UPLOADS = {
    "keras": "model.keras",
    "h5": "model.h5",
    "pt": "model.pt",
    "onnx": "model.onnx",
    "tflite": "model.tflite",
}
# job kind: the sniffed model kinds it accepts (a convert job imports a .pt or .onnx first, as the CLI's does)
ACCEPTED = {
    "convert": ("keras", "h5", "pt", "onnx"),
    "evaluate": ("tflite",),
    "bench": ("tflite",),
    "bundle": ("tflite",),
}


@dataclasses.dataclass(frozen=True)
class Submission:
    """What a request asks for, besides its files."""

    kind: str = "convert"
    recipes: tuple = ()
    auto: bool = False
    max_drop: Optional[float] = None
    calibration_dataset: Optional[str] = None
    data_dataset: Optional[str] = None
    threads: int = 2
    bundle: bool = True
    target: Optional[str] = None


# Keys of a model's own metadata that name files: on the machine that saved it, its dataset and its float model;
# in an upload, whatever paths its sender chose. The worker names every image source a job reads itself
# (`tfyolo.service.worker.IMAGE_SOURCES`), but loading a Keras model may still follow these: a cluster-preserving QAT
# model loads its `qat_from`, and a training recipe fine-tunes on its `data`. So they are dropped from Keras uploads.
PATH_KEYS = ("data", "qat_from")


def _drop_paths_from_metadata(stored):
    metadata = read_model_file_metadata(stored)
    if metadata and any(metadata.get(key) for key in PATH_KEYS):
        replace_model_file_metadata(stored, {key: value for key, value in metadata.items() if key not in PATH_KEYS})


def _shown(value):
    """A name the client sent, repeated in a refusal only when it is a plain name: anything else (a path it may be
    probing with) is not echoed."""
    return repr(value) if PLAIN_NAME.fullmatch(value) else "a value that is not a name"


class UploadRefused(Exception):
    """A request the service will not queue; `status` is the HTTP status that says why."""

    def __init__(self, status, detail):
        super().__init__(detail)
        self.status, self.detail = status, detail


def save_upload(upload, target, limit):
    """Streams `upload` to `target`, refusing (413) once it passes `limit` bytes: the size is counted, never
    taken from a header."""
    written = 0
    with open(target, "xb") as handle:
        while chunk := upload.file.read(1 << 20):
            written += len(chunk)
            if written > limit:
                shown = _shown(upload.filename or "")
                raise UploadRefused(413, f"{shown}: larger than the {limit:,}-byte upload limit.")
            handle.write(chunk)
    return written


def submit(store, config, submission, model, calibration=None):
    """Saves the uploads into a new job folder and writes the queued record; returns the job id. Raises
    UploadRefused (and removes the folder) for anything it will not run."""
    pending = store.pending_count()
    if pending >= config.max_pending_jobs:
        raise UploadRefused(
            429, f"{pending} jobs are queued or running, this server's limit; submit again when one has ended."
        )
    job_id, folder = store.new_job_dir()
    try:
        values, uploaded = _prepare(config, submission, model, calibration, folder / "uploads")
        store.create(values, uploaded, job_id=job_id)
    except BaseException as error:
        shutil.rmtree(folder, ignore_errors=True)
        if isinstance(error, TfyoloError):
            # Said in the upload's terms: its file names, never the folder the server keeps it in.
            redactor = Redactor(config.data_dir, registered_datasets(config.data_dir), folder)
            raise UploadRefused(422, redactor.text(one_line(error)))
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise UploadRefused(507, "the server has no space left for this job's files; nothing was kept.") from None
        raise
    return job_id


def _npu_target(name):
    from tfyolo.targets.npu_target import ACCELERATORS, require_vela

    if name not in ACCELERATORS:
        raise UploadRefused(422, f"target: {_shown(name)} is not an Ethos-U this server knows; one of {ACCELERATORS}.")
    try:
        require_vela()
    except ConfigError as error:
        raise UploadRefused(422, f"target: this server cannot compile for an NPU ({error})") from None
    return name


def _prepare(config, submission, model, calibration, uploads):
    uploads.mkdir()
    kind = submission.kind
    if kind not in KINDS:
        raise UploadRefused(422, f"kind: expected one of {sorted(KINDS)}, received {_shown(kind)}.")
    temporary = uploads / "model.upload"
    save_upload(model, temporary, config.max_upload_bytes)
    found = sniff(temporary)
    if found not in ACCEPTED[kind]:
        raise UploadRefused(
            415,
            f"model {_shown(model.filename or '')}: its content is {found or 'not a model format'}; a {kind} job takes "
            f"{' or '.join(ACCEPTED[kind])} (the type is read from the bytes, not the file name).",
        )
    stored = uploads / MODEL_UPLOADS[found]
    temporary.rename(stored)
    if found in ("keras", "h5"):
        # Read as JSON, never deserialized: a Lambda (or any object tfyolo does not build) is refused here, before
        # the job is queued, and again by the worker's loader.
        check_model_config(stored)
        _drop_paths_from_metadata(stored)
    if found == "tflite":
        # Evaluate, bench and bundle jobs hand the file to LiteRT in the job process, and a required operator input
        # of -1 is dereferenced there (a crash or not, by what the heap holds): refused from the flatbuffer itself, as
        # the CLI's commands do before their child check.
        missing = missing_required_input(stored.read_bytes())
        if missing:
            raise ModelError(f"{stored}: {missing}; the file is malformed.")
    values = {"model": MODEL_UPLOADS[found], "kind": kind, "threads": submission.threads}
    recipes = tuple(name.strip() for value in submission.recipes for name in value.split(",") if name.strip())
    if recipes and (kind != "convert" or submission.auto):
        what = "auto=true" if submission.auto else f"kind={kind}"
        raise UploadRefused(
            422, f"recipes and {what}: give one or the other ({what} takes no recipes; it would ignore them)."
        )
    unknown = [name for name in recipes if name not in builtin_recipe_names()]
    if unknown:
        # Names only: a path would make the worker open a file of the server's (and echo what is in it). A value
        # that is not a plain name is not repeated either.
        shown = _shown(unknown[0])
        raise UploadRefused(
            422, f"recipes: {shown} is not a built-in recipe; this server runs {builtin_recipe_names()}."
        )
    if kind == "convert":
        values["bundle"] = submission.bundle
        if submission.auto:
            if submission.max_drop is None:
                raise UploadRefused(422, "max_drop: auto needs a budget in mAP50-95 points.")
            values["auto_max_drop"] = submission.max_drop
            if submission.target:
                values["target"] = _npu_target(submission.target)
        else:
            values["recipes"], values["max_drop"] = recipes, submission.max_drop
    if submission.target and not (kind == "convert" and submission.auto):
        raise UploadRefused(422, "target: chooses among the auto search's candidates; send auto=true and max_drop.")
    uploaded = {"model": MODEL_UPLOADS[found]}
    if calibration is not None and calibration.filename:
        archive = uploads / "calibration.upload"
        save_upload(calibration, archive, config.max_upload_bytes)
        if sniff(archive) != "zip":
            raise UploadRefused(415, f"calibration {_shown(calibration.filename or '')}: expected a zip of images.")
        extract_images(archive, uploads / "calibration")
        archive.unlink()
        uploaded["calibration"] = "calibration"
    datasets = registered_datasets(config.data_dir)
    for field in ("calibration", "data"):
        name = getattr(submission, f"{field}_dataset")
        if name:
            if name not in datasets:
                raise UploadRefused(
                    422, f"{field}_dataset: {_shown(name)} is not registered here; registered: {sorted(datasets)}."
                )
            values[f"{field}_dataset"] = name
    if kind in ("convert", "evaluate") and not submission.data_dataset:
        raise UploadRefused(
            422,
            f"data_dataset: a {kind} job evaluates on a dataset registered on this server; registered: "
            f"{sorted(datasets)}.",
        )
    # Validated now, as the worker will build it: a bad spec is refused here, not after the queue.
    check = {key: value for key, value in values.items() if not key.endswith("_dataset")}
    JobSpec.from_dict(check, source="job")
    return values, uploaded
