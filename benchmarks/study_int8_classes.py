"""Where an int8 drop goes, class by class: bench-coco's files (`int8` and `int8_tflite`, calibration seeds 0 / 1 /
2) scored beside the float model on coco_val150 in one pass, and each class's AP50-95 against float.

COCO's mAP50-95 is the mean of the classes' AP50-95 over the classes with ground truth, so a file's drop is the mean
of its classes' drops, and a class's share of it can be read directly. Whether a class's loss is the quantizer's or
the draw's is read from the seeds: three calibration draws that perturb the network differently agree on a class
only where the loss is systematic. Their agreement is the correlation of the per-class drops between two seeds
(near 0 for independent noise), over all classes and over the common ones alone: a rare class swings by 20 points
on one box, which can set a correlation over all classes by itself.

Usage: python -m benchmarks.study_int8_classes [--family yolo26n] (after `python -m benchmarks.bench_coco`)
Results: benchmarks/results/coco_int8_classes.{json,md}
"""

import itertools

import click
import numpy as np

from benchmarks.bench_coco import FAMILIES
from benchmarks.common import machine, markdown_table, write_results
from benchmarks.study_image_spread import family_files, score_beside_float

QUANTIZERS = ("int8", "int8_tflite")
# A class with this many instances or fewer in the 150 images is "rare": one box matched or missed moves its AP
# by a tenth or more.
RARE_INSTANCES = 5
WORST_SHOWN = 10


def class_account(float_report, reports):
    """The per-class account of one quantizer's files ({seed name: report against float}): one row per class with
    ground truth (instances, float AP, drop per seed, mean drop) and the summary figures (module docstring)."""
    names = [name for name, entry in float_report["per_class"].items() if entry["ap50_95"] is not None]
    drops = np.array([[report["delta_per_class"][name] for name in names] for report in reports.values()])
    instances = np.array([float_report["per_class"][name]["instances"] for name in names])
    mean_drop = drops.mean(axis=0)
    order = np.argsort(mean_drop)
    losses = -np.minimum(mean_drop, 0.0)
    rare = instances <= RARE_INSTANCES

    def agreement(columns):
        pairs = itertools.combinations(range(len(drops)), 2)
        return float(np.mean([np.corrcoef(drops[a, columns], drops[b, columns])[0, 1] for a, b in pairs]))

    rows = [
        {
            "class": names[index],
            "instances": int(instances[index]),
            "float_ap50_95": 100.0 * float_report["per_class"][names[index]]["ap50_95"],
            "drops": [float(value) for value in drops[:, index]],
            "mean_drop": float(mean_drop[index]),
        }
        for index in order
    ]
    return {
        "classes": len(names),
        "map_drops": [float(value) for value in drops.mean(axis=1)],
        "seed_correlation": agreement(np.ones(len(names), bool)),
        "common_seed_correlation": agreement(~rare),
        "worst_share": float(losses[order[:WORST_SHOWN]].sum() / max(losses.sum(), 1e-12)),
        "worst_mean_drop": float(mean_drop[order[:WORST_SHOWN]].sum() / len(names)),
        "rare_classes": int(rare.sum()),
        "rare_mean_abs_drop": float(np.abs(drops[:, rare]).mean()) if rare.any() else None,
        "common_mean_abs_drop": float(np.abs(drops[:, ~rare]).mean()),
        "rare_mean_drop": float(drops[:, rare].mean(axis=1).mean()) if rare.any() else None,
        "common_mean_drop": float(drops[:, ~rare].mean(axis=1).mean()),
        "lose_on_every_seed": int((drops < 0).all(axis=0).sum()),
        "gain_on_every_seed": int((drops > 0).all(axis=0).sum()),
        "rows": rows,
    }


def family_classes(family):
    files, _ = family_files(family)
    files = {name: path for name, path in files.items() if name.split()[0] in QUANTIZERS}
    _, reports, _, _ = score_beside_float(family, files)
    float_report = next(iter(reports.values()))["reference"]
    return {
        "family": family,
        "float_map50_95": float_report["map50_95"],
        "quantizers": {
            quantizer: class_account(
                float_report, {name: report for name, report in reports.items() if name.split()[0] == quantizer}
            )
            for quantizer in QUANTIZERS
        },
    }


def markdown(results):
    summary, worst = [], []
    for result in results:
        for quantizer, account in result["quantizers"].items():
            summary.append(
                {
                    "family": result["family"],
                    "file": quantizer,
                    "drops": " / ".join(f"{value:+.2f}" for value in account["map_drops"]),
                    "classes": account["classes"],
                    "seed_correlation": account["seed_correlation"],
                    "common_seed_correlation": account["common_seed_correlation"],
                    "worst_share": 100.0 * account["worst_share"],
                    "worst_mean_drop": account["worst_mean_drop"],
                    "every_seed": f"{account['lose_on_every_seed']} / {account['gain_on_every_seed']}",
                    "rare": f"{account['rare_classes']}: {account['rare_mean_drop']:+.2f} "
                    f"({account['rare_mean_abs_drop']:.1f})"
                    if account["rare_classes"]
                    else "none",
                    "common": f"{account['common_mean_drop']:+.2f} ({account['common_mean_abs_drop']:.1f})",
                }
            )
        int8 = result["quantizers"]["int8"]
        tflite = {row["class"]: row["mean_drop"] for row in result["quantizers"]["int8_tflite"]["rows"]}
        for row in int8["rows"][:WORST_SHOWN]:
            worst.append(
                {
                    "family": result["family"],
                    **row,
                    "seeds": " / ".join(f"{value:+.1f}" for value in row["drops"]),
                    "tflite": tflite[row["class"]],
                }
            )
    return "\n".join(
        [
            "# coco_val150: int8 drops class by class",
            "",
            "bench-coco's int8 files (calibration seeds 0 / 1 / 2) scored beside the float model on coco_val150; "
            "each class's AP50-95 against float, in points. mAP50-95 is the mean over the classes with ground "
            "truth, so a class's drop divided by their number is its share of the file's drop.",
            "",
            markdown_table(
                summary,
                [
                    ("family", "family", None),
                    ("file", "file", None),
                    ("drops", "mAP50-95 drop, seeds 0 / 1 / 2", None),
                    ("classes", "classes scored", None),
                    ("seed_correlation", "per-class drops, correlation between seeds", "{:.2f}"),
                    ("common_seed_correlation", f"the same, classes with > {RARE_INSTANCES} instances", "{:.2f}"),
                    ("worst_share", f"share of the class losses in the {WORST_SHOWN} worst (%)", "{:.0f}"),
                    ("worst_mean_drop", f"the {WORST_SHOWN} worst classes' part of the mean drop (pt)", "{:+.2f}"),
                    ("every_seed", "classes lower / higher on every seed", None),
                    ("rare", f"classes with <= {RARE_INSTANCES} instances: mean drop (mean size)", None),
                    ("common", "other classes: mean drop (mean size)", None),
                ],
            ),
            "",
            f"The {WORST_SHOWN} classes the built-in int8 loses most on, by the mean over the seeds:",
            "",
            markdown_table(
                worst,
                [
                    ("family", "family", None),
                    ("class", "class", None),
                    ("instances", "instances", None),
                    ("float_ap50_95", "float AP50-95", "{:.1f}"),
                    ("seeds", "int8 drop, seeds 0 / 1 / 2", None),
                    ("mean_drop", "mean", "{:+.1f}"),
                    ("tflite", "int8_tflite mean", "{:+.1f}"),
                ],
            ),
            "",
            "Command: `python -m benchmarks.study_int8_classes` (after `python -m benchmarks.bench_coco`).",
        ]
    )


@click.command()
@click.option("--family", "families", multiple=True, type=click.Choice(sorted(FAMILIES)))
def main(families):
    results = [family_classes(family) for family in families or sorted(FAMILIES)]
    write_results("coco_int8_classes", {"machine": machine(), "results": results}, markdown(results))


if __name__ == "__main__":
    main()
