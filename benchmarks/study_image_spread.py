"""How much of each `make bench-coco` drop is the draw of coco_val150's 150 images: the int8 files that bench-coco
wrote (every calibration seed's `int8` and `int8_tflite`, and what `--auto` chose), scored again beside the float
model in one pass, each drop rescored on random halves of the images for its standard error
(`tfyolo.evaluation.image_resampling`). The calibration seeds give the spread of the calibration draw; this gives
the spread of the scoring draw, which every seed shares.

Usage: python -m benchmarks.study_image_spread [--family yolo26n] [--halves 200]
(after `python -m benchmarks.bench_coco`, whose files it reads)
Results: benchmarks/results/coco_val150_spread.{json,md}
"""

import click

from benchmarks.bench_coco import FAMILIES, SCORING, family_model
from benchmarks.common import load_json, machine, markdown_table, write_results


def family_files(family):
    """{row name: int8 file} bench-coco wrote for `family`, and the drops it recorded for them."""
    _, work = family_model(family)
    files, recorded = {}, {}
    for seed_folder in sorted(work.glob("seed*")):
        report = load_json(seed_folder / "report.json")
        for row in report["rows"]:
            if str(row.get("path")).endswith(".tflite") and row.get("delta_map50_95") is not None:
                name = f"{row['recipe']} {seed_folder.name}"
                files[name], recorded[name] = seed_folder / row["path"].split("/")[-1], row["delta_map50_95"]
    for path in sorted((work / "auto").glob("*.tflite")):
        files[f"auto: {path.stem.rsplit('_auto_', 1)[-1]}"] = path
    if not files:
        raise SystemExit(f"{work}: no bench-coco files; run python -m benchmarks.bench_coco --family {family} first.")
    return files, recorded


def score_beside_float(family, files):
    """`files` ({name: int8 file}) of `family` scored beside its float model on coco_val150, in one pass: (the
    dataset, {name: report against float}, {name: Evaluation}, the float model's Evaluation)."""
    from tfyolo.data.detection_dataset import DetectionDataset
    from tfyolo.evaluation.model_evaluation import evaluate_models
    from tfyolo.evaluation.runners import TFLiteRunner
    from tfyolo.jobs.model_runner import keras_runner

    model, _ = family_model(family)
    dataset = DetectionDataset.from_data_yaml(SCORING, "val")
    runners = {name: TFLiteRunner(str(path)) for name, path in files.items()}
    print(f"{family}: scoring float + {len(runners)} int8 files on {len(dataset)} images")
    return (dataset, *evaluate_models(runners, dataset, "val", keras_runner(str(model))))


def family_spreads(family, halves):
    """(one row per file: its drop against float and that drop's spread; one row per pair of files: their
    difference and its spread)."""
    from tfyolo.evaluation.image_resampling import evaluation_spreads

    files, recorded = family_files(family)
    dataset, reports, evaluations, reference = score_beside_float(family, files)
    print(f"{family}: {halves} halves of the images per file")
    spreads = evaluation_spreads(dataset, evaluations, reference, halves=halves)
    pairs = {}
    for seed_row in [name for name in files if name.startswith("int8 seed")]:
        pairs[f"{seed_row} - int8_tflite {seed_row.split()[-1]}"] = (seed_row, f"int8_tflite {seed_row.split()[-1]}")
    pairs.update({f"{name} - int8 seed0": (name, "int8 seed0") for name in files if name.startswith("auto:")})
    differences = [
        {
            "family": family,
            "pair": pair,
            **evaluation_spreads(dataset, {pair: evaluations[first]}, evaluations[second], halves=halves)[pair],
        }
        for pair, (first, second) in pairs.items()
        if first in evaluations and second in evaluations
    ]
    drops = [
        {
            "family": family,
            "file": name,
            "float_map50_95": reports[name]["reference"]["map50_95"],
            "delta_map50_95": reports[name]["delta_map50_95"],
            "bench_coco_delta": recorded.get(name),
            **{key: value for key, value in spreads[name].items() if key != "difference"},
        }
        for name in files
    ]
    return drops, differences


@click.command()
@click.option("--family", "families", multiple=True, type=click.Choice(sorted(FAMILIES)))
@click.option("--halves", default=200, show_default=True)
def main(families, halves):
    rows, pairs = [], []
    for family in families or sorted(FAMILIES):
        family_drops, differences = family_spreads(family, halves)
        rows += family_drops
        pairs += differences
    columns = [
        ("family", "family", None),
        ("file", "file", None),
        ("delta_map50_95", "drop vs float (pt)", "{:+.2f}"),
        ("bench_coco_delta", "bench-coco's figure", "{:+.2f}"),
        ("standard_error", "standard error from the images (pt)", "{:.2f}"),
        ("low", "90% interval from", "{:+.2f}"),
        ("high", "to", "{:+.2f}"),
    ]
    text = "\n".join(
        [
            "# coco_val150: how much of each int8 drop is the draw of the 150 images",
            "",
            f"Each file bench-coco wrote, scored again beside the float model, and its drop rescored on {halves} "
            "random halves of the 150 images, both models on every half (a delete-d jackknife, "
            "`tfyolo.evaluation.image_resampling`): the standard error the image sample puts on one drop, which "
            "every calibration seed shares. The interval is the drop -/+ 1.645 standard errors.",
            "",
            markdown_table(rows, columns),
            "",
            "Between two files of one family, on the same halves (the first minus the second): the difference's own "
            "standard error, which sharing the float model's images does not make smaller than a drop's.",
            "",
            markdown_table(
                pairs,
                [
                    ("family", "family", None),
                    ("pair", "files", None),
                    ("difference", "difference (pt)", "{:+.2f}"),
                    ("standard_error", "standard error (pt)", "{:.2f}"),
                    ("low", "90% interval from", "{:+.2f}"),
                    ("high", "to", "{:+.2f}"),
                ],
            ),
            "",
            "Command: `python -m benchmarks.study_image_spread` (after `python -m benchmarks.bench_coco`).",
        ]
    )
    data = {"machine": machine(), "halves": halves, "rows": rows, "pairs": pairs}
    write_results("coco_val150_spread", data, text)


if __name__ == "__main__":
    main()
