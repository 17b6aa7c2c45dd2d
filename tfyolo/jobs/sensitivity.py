"""Layer sensitivity: rank layers by int8 error (QuantizationDebugger), then measure the mAP effect of keeping
each of the worst in float."""

from pathlib import Path

from tfyolo.io_utils import atomic_write_json, atomic_write_text
from tfyolo.markdown import markdown_table
from tfyolo.plots import plot_sensitivity
from tfyolo.quantization.recipe import Recipe
from tfyolo.quantization.sensitivity import layer_sensitivity


def run_sensitivity(session, top, out):
    """Ranks the layers of `session`'s model (an `AutoSession`); measures the `top` worst kept in float; writes
    sensitivity.json, .md and .png into `out`; returns the result dict."""
    progress = session.progress
    ranking = layer_sensitivity(session.model, session.images[:32], session.images[:8], session.family)
    baseline = session.measure(Recipe(name="int8", mode="int8"))
    progress.message(f"plain int8: mAP50-95 {baseline.map50_95:.4f} ({baseline.delta_map50_95:+.2f} pt)")
    for entry in ranking[:top]:
        candidate = session.measure(
            Recipe(name=f"int8_float_{entry['layer']}", mode="int8", keep_float=(entry["layer"],))
        )
        entry["map50_95_kept_float"] = candidate.map50_95
        entry["map_gain_points"] = (
            None if candidate.map50_95 is None else 100 * (candidate.map50_95 - baseline.map50_95)
        )
        progress.message(
            f"  {entry['layer']:<24} rmse/scale {entry['rmse_over_scale']:.3f}  kept in float: "
            f"{'-' if candidate.map50_95 is None else f'{candidate.map50_95:.4f}'}"
        )
    out = Path(out)
    result = {
        "model": str(session.model_path),
        "int8_map50_95": baseline.map50_95,
        "int8_delta": baseline.delta_map50_95,
        "float_map50_95": session.reference_metrics["map50_95"],
        "layers": ranking,
    }
    atomic_write_json(out / "sensitivity.json", result)
    columns = [
        ("layer", "layer", None),
        ("section", "section", None),
        ("op", "op", None),
        ("rmse_over_scale", "RMSE/scale", "{:.3f}"),
        ("map50_95_kept_float", "mAP50-95 if float", "{:.4f}"),
        ("map_gain_points", "gain (pt)", "{:+.2f}"),
    ]
    atomic_write_text(
        out / "sensitivity.md",
        "\n".join(
            [
                f"# Layer sensitivity of `{session.model_path}`",
                "",
                f"float mAP50-95 {result['float_map50_95']:.4f}; int8 {baseline.map50_95:.4f} "
                f"({baseline.delta_map50_95:+.2f} pt).",
                "",
                markdown_table(ranking[:40], columns),
                "",
            ]
        ),
    )
    plot_sensitivity(ranking, out / "sensitivity.png")
    return result
