"""Writes benchmarks/RESULTS.md: the headline figures of every benchmarks/results/*.json, then each report."""

from benchmarks.common import RESULTS, ROOT, load_json
from tfyolo.io_utils import atomic_write_text


def headline():
    lines = ["| benchmark | figure | value |", "|---|---|---|"]
    train = RESULTS / "train_pennfudan_accuracy.json"
    if train.is_file():
        accuracy = load_json(train)["accuracy"]
        lines.append(
            f"| train (PennFudan, n@320, from scratch, {accuracy['epochs']} epochs) | val mAP50 / mAP50-95 | "
            f"{accuracy['map50']:.3f} / {accuracy['map50_95']:.3f} |"
        )
    ptq = RESULTS / "ptq_pennfudan.json"
    if ptq.is_file():
        for check in load_json(ptq)["checks"]:
            lines.append(f"| PTQ | {check['check']} | {check['value']:.4f} ({'met' if check['pass'] else 'MISSED'}) |")
    latency = RESULTS / "latency_pennfudan.json"
    if latency.is_file():
        rows = {row["recipe"]: row for row in load_json(latency)["per_recipe"]}
        if "int8" in rows:
            lines.append(f"| latency | int8 / fp32 p50, 2 threads | {rows['int8']['ratio_t2']:.2f} |")
            lines.append(f"| latency | int8 / fp32 p50, 1 thread | {rows['int8']['ratio_t1']:.2f} |")
    qat = RESULTS / "qat_pennfudan.json"
    if qat.is_file():
        for row in load_json(qat)["table"]:
            if row["model"] in ("int8", "qat_int8") and row["delta"] is not None:
                lines.append(
                    f"| QAT ({row['activation']}) | {row['model']} delta mAP50-95 vs float | {row['delta']:+.2f} pt |"
                )
    for imported in sorted(RESULTS.glob("import_pennfudan_*.json")):
        family = load_json(imported).get("family", imported.stem.rsplit("_", 1)[-1])
        for goal, value in load_json(imported)["goals"].items():
            lines.append(f"| import {family} (same Ultralytics weights) | {goal} | {value} |")
    coco = RESULTS / "coco_val150.json"
    if coco.is_file():
        for family, result in load_json(coco)["results"].items():
            deltas = [entry["int8"]["delta"] for entry in result["seeds"].values()]
            lines.append(
                f"| coco_val150 {family} (80 classes, unseen images) | `int8` vs float, worst / best seed | "
                f"{min(deltas):+.2f} / {max(deltas):+.2f} pt |"
            )
    seg = RESULTS / "seg_pennfudan.json"
    if seg.is_file():
        for model, result in load_json(seg)["results"].items():
            # The *_int8io rows are the same integer graphs behind int8 I/O: the same scores.
            for recipe in ("int8", "qat_int8"):
                if f"{recipe} seed{result['seeds'][0]}" not in result["rows"]:
                    continue
                rows = [result["rows"][f"{recipe} seed{seed}"] for seed in result["seeds"]]
                box, mask = (sum(row[key] for row in rows) / len(rows) for key in ("delta_box", "delta_mask"))
                lines.append(
                    f"| seg pennfudan {model} | `{recipe}` box / mask mAP50-95 vs float, mean of {len(rows)} seeds | "
                    f"{box:+.2f} / {mask:+.2f} pt |"
                )
    service = RESULTS / "service_load.json"
    if service.is_file():
        load = load_json(service)
        lines.append(
            f"| service ({load['jobs']} jobs, {load['workers']} workers) | ran once / jobs per minute / API p95 | "
            f"{load['ran_exactly_once']} / {load['jobs_per_minute']:.1f} / {load['api_ms_p95_busy']:.1f} ms |"
        )
    for name in ("compress_pennfudan", "compress_default"):
        path = RESULTS / f"{name}.json"
        if path.is_file():
            for row in load_json(path)["rows"]:
                if row["recipe"] in ("cluster_int8", "prune_int8", "int8_aeq", "int8_aeq_int8io"):
                    ratio = f" ({row['gzip_vs_int8']:.2f}x int8's)" if "gzip_vs_int8" in row else ""
                    lines.append(
                        f"| {name} | {row['recipe']} mAP50-95 vs float / gzip bytes | {row['delta']:+.2f} pt / "
                        f"{row['gzip']:,}{ratio} |"
                    )
    return "\n".join(lines)


def main():
    parts = [
        "# Benchmark results",
        "",
        "Written by `make bench` from `benchmarks/results/`. All figures come from "
        "this repository's own commands on a 2-core CPU; ratios are measured within one run.",
        "",
        headline(),
        "",
    ]
    for path in sorted(RESULTS.glob("*.md")):
        parts += ["---", "", f"<!-- {path.name} -->", path.read_text().replace("# ", "## ", 1), ""]
    atomic_write_text(ROOT / "benchmarks" / "RESULTS.md", "\n".join(parts))


if __name__ == "__main__":
    main()
