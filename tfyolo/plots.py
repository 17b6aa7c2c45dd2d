"""PNG plots for reports: latency per artifact, PR curves, and the latency of a `tfyolo bench` run."""

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_pr_curves(curves, path, title):
    """curves: {label: precision at recall 0, 0.01, ..., 1} (COCO's 101 points)."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 5))
    recall = np.linspace(0, 1, 101)
    for name, precision in list(curves.items())[:20]:
        axis.plot(recall, precision, label=name)
    axis.set(xlabel="recall", ylabel="precision", title=title, xlim=(0, 1), ylim=(0, 1.02))
    if curves:
        axis.legend(fontsize=7, loc="lower left")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_row_latency(rows, path):
    """p50 latency of each report row that was timed, as bars."""
    timed = [row for row in rows if row.get("latency_ms_p50") is not None]
    if not timed:
        return False
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 4))
    axis.bar(range(len(timed)), [row["latency_ms_p50"] for row in timed], color="tab:blue")
    axis.set_xticks(range(len(timed)))
    axis.set_xticklabels([row["recipe"] for row in timed], rotation=30, ha="right", fontsize=8)
    axis.set(ylabel="p50 latency (ms)", title="LiteRT latency (XNNPACK), interleaved")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def plot_job(report, folder):
    """latency.png and pr.png of a job report (a `JobReport.to_dict()`) into `folder`, where there is data."""
    folder = Path(folder)
    plot_row_latency(report["rows"], folder / "latency.png")
    curves = {
        f"{row['recipe']}: {label}": curve
        for row in report["rows"]
        for label, curve in (row.get("pr_curves") or {}).items()
    }
    if curves:
        plot_pr_curves(curves, folder / "pr.png", "precision-recall at IoU 0.5")


def plot_latency(results, path):
    """The latency of a `benchmark_models` result: one bar per model and thread count."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 4))
    width = 0.8 / max(len(results["threads"]), 1)
    labels = [Path(model["path"]).stem for model in results["models"]]
    for offset, count in enumerate(results["threads"]):
        values = [model["runs"][offset]["latency_ms_p50"] for model in results["models"]]
        axis.bar([i + offset * width for i in range(len(labels))], values, width, label=f"{count} thread(s)")
    axis.set_xticks([i + width * (len(results["threads"]) - 1) / 2 for i in range(len(labels))])
    axis.set_xticklabels(labels, rotation=30, ha="right", fontsize=7)
    axis.set(ylabel="p50 latency (ms)", title="LiteRT latency (XNNPACK)" if results["xnnpack"] else "LiteRT latency")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_sensitivity(ranking, path):
    """RMSE/scale of the 40 worst layers, coloured by section."""
    plt = _pyplot()
    colors = {"backbone": "tab:blue", "neck": "tab:orange", "head": "tab:green"}
    shown = ranking[:40]
    figure, axis = plt.subplots(figsize=(10, 4))
    axis.bar(range(len(shown)), [e["rmse_over_scale"] for e in shown], color=[colors[e["section"]] for e in shown])
    axis.set_xticks(range(len(shown)))
    axis.set_xticklabels([e["layer"] for e in shown], rotation=90, fontsize=6)
    axis.set(ylabel="RMSE / scale", title="int8 error by layer (worst 40)")
    for section, color in colors.items():
        axis.bar([], [], color=color, label=section)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
