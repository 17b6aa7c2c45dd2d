"""What a job returns: its rows, calibration summary, artifacts (with sha256), the interleaved latency table and
the verdict against its gate; rendered as JSON and Markdown."""

import dataclasses
from pathlib import Path
from typing import Optional

from tfyolo.markdown import markdown_table

# What `run_job` writes into its folder: the job's report, as JSON and Markdown.
JOB_REPORT_JSON = "job_report.json"
JOB_REPORT_MD = "job_report.md"
INT16_NOTE = "int16x8 runs on reference kernels only (no XNNPACK): about 30x slower than int8 on CPUs"


@dataclasses.dataclass(frozen=True)
class Artifact:
    """A file the job produced, addressed by content."""

    name: str
    path: str
    sha256: str
    size_bytes: int
    kind: str


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The job against its gate: passed is None when the job has no gate (max_drop None)."""

    max_drop: Optional[float]
    passed: Optional[bool]
    failing: tuple = ()
    reason: str = ""


@dataclasses.dataclass(frozen=True)
class JobReport:
    """model/data/num_images describe the run; rows are one dict per model evaluated or timed (the float
    reference first when there is one); latency holds the interleaved timing's conditions; auto the search's
    candidates when the job searched."""

    kind: str
    model: str
    data: Optional[str]
    num_images: int
    calibration: Optional[dict]
    rows: tuple
    artifacts: tuple
    latency: Optional[dict]
    verdict: Verdict
    auto: Optional[dict] = None
    bundle: Optional[str] = None
    recommended: Optional[dict] = None

    def to_dict(self):
        return {
            "kind": self.kind,
            "model": self.model,
            "data": self.data,
            "num_images": self.num_images,
            "calibration": self.calibration,
            "rows": list(self.rows),
            "artifacts": [dataclasses.asdict(artifact) for artifact in self.artifacts],
            "latency": self.latency,
            "verdict": dataclasses.asdict(self.verdict) | {"failing": list(self.verdict.failing)},
            "auto": self.auto,
            "bundle": self.bundle,
            "recommended": self.recommended,
        }

    @classmethod
    def from_dict(cls, values):
        values = dict(values)
        values["rows"] = tuple(values["rows"])
        values["artifacts"] = tuple(Artifact(**artifact) for artifact in values["artifacts"])
        verdict = dict(values["verdict"])
        values["verdict"] = Verdict(**(verdict | {"failing": tuple(verdict.get("failing", ()))}))
        return cls(**values)

    def to_markdown(self):
        return markdown_report(self.to_dict())


ROW_COLUMNS = [
    ("recipe", "recipe", None),
    ("size_bytes", "size (bytes)", "{:,}"),
    ("map50_95", "mAP50-95", "{:.4f}"),
    ("map50", "mAP50", "{:.4f}"),
    ("delta_map50_95", "delta mAP50-95 (points)", "{:+.2f}"),
    ("full_integer_text", "full integer", None),
    ("latency_ms_p50", "latency p50 ms", "{:.2f}"),
    ("latency_ratio_vs_fp32", "latency / fp32", "{:.2f}"),
    ("note_text", "note", None),
]


# A task's own scores (segmentation: masks), shown after the boxes' where a row has them.
TASK_COLUMNS = [
    ("mask_map50_95", "mask mAP50-95", "{:.4f}"),
    ("delta_mask_map50_95", "delta mask mAP50-95 (points)", "{:+.2f}"),
]


def row_columns(rows, columns=None):
    """`columns` (default ROW_COLUMNS) with the task columns any of `rows` fills after the box delta."""
    columns = list(columns or ROW_COLUMNS)
    extra = [column for column in TASK_COLUMNS if any(row.get(column[0]) is not None for row in rows)]
    at = next(index for index, column in enumerate(columns) if column[0] == "delta_map50_95") + 1
    return columns[:at] + extra + columns[at:]


def task_delta_text(row):
    """ ", mask -0.11 pt" for each task's own delta a row holds (nothing for a detector's row)."""
    return "".join(
        f", {key.removeprefix('delta_').removesuffix('_map50_95')} {value:+.2f} pt"
        for key, value in row.items()
        if key.startswith("delta_") and key != "delta_map50_95" and key.endswith("_map50_95") and value is not None
    )


def _display_row(row):
    note = (row.get("error") or row.get("note") or "") + (
        " (from an earlier run into this folder)" if row.get("earlier_run") else ""
    )
    integer = row.get("full_integer")
    return dict(row, full_integer_text=None if integer is None else ("yes" if integer else "no"), note_text=note)


def format_row(row):
    """One Markdown row, as the terminal prints it while the job runs."""
    return markdown_table([_display_row(row)], row_columns([row])).splitlines()[-1]


def markdown_report(report):
    """The Markdown report of a `JobReport.to_dict()`."""
    latency = report.get("latency") or {}
    load = latency.get("load_average") or [None, None]
    load_text = "n/a" if load[0] is None else f"{load[0]:.2f} before, {load[1]:.2f} after"
    calibration = report.get("calibration")
    lines = [
        f"# {'Conversion' if report.get('kind', 'convert') == 'convert' else report['kind'].title()} report: "
        f"`{report['model']}`",
        "",
        f"Evaluation: {report['data']} ({report['num_images']} images); calibration: "
        f"{calibration['source'] if calibration else 'none'} ({calibration['images_used'] if calibration else 0} "
        "images).",
        "",
        f"Latency: LiteRT interpreter, XNNPACK, {latency.get('threads', '-')} threads, p50 of invoke(), every "
        f"artifact timed in one run, interleaved ({latency.get('rounds', '-')} rounds); load average {load_text}.",
        "",
        markdown_table([_display_row(row) for row in report["rows"]], row_columns(report["rows"])),
    ]
    verdict = report.get("verdict") or {}
    if verdict.get("max_drop") is not None:
        lines += ["", f"Gate (max drop {verdict['max_drop']} points): {'PASS' if verdict['passed'] else 'FAIL'}"]
        if verdict.get("reason"):
            lines[-1] += f": {verdict['reason']}"
    if report.get("auto"):
        chosen = report["auto"].get("chosen")
        lines += ["", f"Auto search: chose {chosen['recipe'] if chosen else 'nothing within the budget'}."]
    if report.get("recommended"):
        shipping = _shipping_rows(report["recommended"])
        lines += ["", "## What to ship", "", markdown_table(shipping, row_columns(shipping, SHIP_COLUMNS))]
    if report.get("bundle"):
        lines += ["", f"Edge bundle: `{Path(report['bundle']).name}`"]
    return "\n".join(lines) + "\n"


SHIP_COLUMNS = [
    ("deployment", "deployment", None),
    ("artifact", "artifact", None),
    ("delta_map50_95", "delta mAP50-95 (points)", "{:+.2f}"),
    ("latency_ms_p50", "latency p50 ms", "{:.2f}"),
    ("size_bytes", "size (bytes)", "{:,}"),
    ("arena_bytes", "TFLite Micro arena (bytes)", "{:,}"),
    ("why", "why", None),
]


def _shipping_rows(recommended):
    from tfyolo.jobs.recommendation import DEPLOYMENTS

    rows = []
    for kind, title in DEPLOYMENTS.items():
        entry = recommended.get(kind)
        if entry is None:
            rows.append({"deployment": title, "artifact": "none", "why": "no artifact of this job suits it"})
        else:
            rows.append(dict(entry, deployment=title, artifact=f"`{Path(entry['path']).name}`"))
    return rows
