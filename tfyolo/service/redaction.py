"""What a client may read of the server: job texts (errors, history, reports) without the server's paths.

A job's messages name files as the worker sees them (`/srv/tfyolo/jobs/<id>/uploads/model.keras: cannot load`,
`calibration: the train split of /data/penn/data.yaml`). Returned as they are, they would tell a client where the
server keeps its data and which paths exist. Every text a client gets passes through `Redactor`: a job's own files
become their names inside the job, a registered dataset becomes `dataset:NAME`, and any other absolute path
becomes `<server path>`.
"""

import re
from pathlib import Path

ABSOLUTE_PATH = re.compile(r"(?<![\w.~-])/(?:[^\s'\"`,;:()\[\]{}<>|]+)")
SERVER_PATH = "<server path>"


class Redactor:
    """Rewrites the server paths of one job's texts (`text`, or every string in a JSON value with `value`)."""

    def __init__(self, data_dir, datasets, job_folder=None):
        replacements = {}
        if job_folder is not None:
            for folder in {Path(job_folder), Path(job_folder).resolve()}:
                for inner in ("work", "uploads"):
                    replacements[f"{folder / inner}/"] = ""
                replacements[f"{folder}/"] = ""
                replacements[str(folder)] = "<job>"
        for name, location in datasets.items():
            location = Path(location)
            folder = location.parent if location.suffix in (".yaml", ".yml") else location
            replacements[str(location)] = f"dataset:{name}"
            replacements[f"{folder}/"] = f"dataset:{name}/"
        replacements[str(Path(data_dir).resolve())] = "<server>"
        replacements[str(Path(data_dir))] = "<server>"
        # The longest first: a job folder sits inside the data dir.
        self.replacements = sorted(replacements.items(), key=lambda item: -len(item[0]))

    def text(self, value):
        if not isinstance(value, str):
            return value
        for old, new in self.replacements:
            value = value.replace(old, new)
        return ABSOLUTE_PATH.sub(SERVER_PATH, value)

    def value(self, value):
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {key: self.value(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.value(item) for item in value]
        return value
