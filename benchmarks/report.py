"""Markdown tables and PNG plots of a benchmark run (benchmarks/results/latest.json)."""

import json
import sys
from pathlib import Path

BASELINE_TRAINING = "keras-hub, float32, XLA"
ENGINES = ("ours", "ctranslate2", "keras_hub", "uncached")
ENGINE_NAMES = {
    "ours": "ours (SavedModel)",
    "ctranslate2": "CTranslate2",
    "keras_hub": "keras-hub sampler",
    "uncached": "uncached loop",
}


def _fmt(value, digits=0):
    return "-" if value is None else f"{value:,.{digits}f}"


def training_tables(results):
    machine = results.get("training_machine", results["machine"])
    peaks = machine["matmul_gflops"]
    lines = []
    if "training_machine" in results and results["training"]:
        lines.append(
            f"\nTraining tables: from the run of {machine.get('date', 'an earlier run')} on {machine['cpu']} "
            f"({machine['cores']} cores; matmul peak then "
            f"{peaks['float32']:.0f} GFLOP/s float32, {peaks['bfloat16']:.0f} bfloat16); decoding: this run."
        )
    fixed = [row for row in results["training"] if row["data"] == "fixed"]
    for preset in dict.fromkeys(row["preset"] for row in fixed):
        rows = [row for row in fixed if row["preset"] == preset]
        base = next((r["target_tokens_per_s"] for r in rows if r["label"] == BASELINE_TRAINING), None)
        lines += [
            f"\n**Training, `{preset}` dimensions, fixed batches of 64 x 16 tokens** "
            f"({rows[0]['model_tflop_per_step'] * 1000:.1f} model GFLOP per step)\n",
            "| model, precision | ms/step | target tokens/s | vs keras-hub XLA | model GFLOP/s | MFU | peak RSS |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in rows:
            peak = peaks["bfloat16" if row["precision"] == "mixed_bfloat16" else "float32"]
            ratio = f"{row['target_tokens_per_s'] / base:.2f}x" if base else "-"
            lines.append(
                f"| {row['label']} | {row['median_step_ms']:.0f} | {row['target_tokens_per_s']:,.0f} | {ratio} | "
                f"{row['model_gflop_per_s']:.0f} | {row['model_gflop_per_s'] / peak:.0%} | "
                f"{row['peak_rss_mb'] / 1024:.1f} GiB |"
            )
    real = [row for row in results["training"] if row["data"] == "real"]
    if real:
        base = real[0]["target_tokens_per_s"]
        lines += [
            "\n**Training on real Tatoeba batches, `small`, each side's own pipeline** "
            "(non-padding target tokens only)\n",
            "| pipeline | real target tokens/s | vs keras.io pipeline | peak RSS |",
            "|---|---|---|---|",
        ]
        for row in real:
            lines.append(
                f"| {row['label']} | {row['target_tokens_per_s']:,.0f} | "
                f"{row['target_tokens_per_s'] / base:.2f}x | {row['peak_rss_mb'] / 1024:.1f} GiB |"
            )
    return lines


def _decoding_index(results):
    return {(r["engine"], r["search"], r["batch"], r["length"]): r for r in results["decoding"]}


def decoding_tables(results):
    index = _decoding_index(results)
    lengths = sorted({r["length"] for r in results["decoding"]})
    lines = []
    if "decoding_machine" in results and results["decoding"]:
        lines.append(f"\nDecoding tables: from the run of {results['decoding_machine'].get('date', 'an earlier run')}.")
    lines += [
        "\n**Decoding, forced output lengths, target tokens/s** (the shipped `small` model; "
        "keras-hub: same dimensions)\n",
        "| search | batch | length | ours | CTranslate2 | keras-hub | uncached | ours / CT2 | ours / keras-hub "
        "| ours / uncached |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for search in ("greedy", "beam4"):
        for batch in (1, 64):
            for length in lengths:
                speed = {e: index.get((e, search, batch, length), {}).get("tokens_per_s") for e in ENGINES}
                if speed["ours"] is None:
                    continue
                ratios = [
                    f"{speed['ours'] / speed[e]:.2f}x" if speed[e] else "-"
                    for e in ("ctranslate2", "keras_hub", "uncached")
                ]
                lines.append(
                    f"| {search} | {batch} | {length} | " + " | ".join(_fmt(speed[e]) for e in ENGINES) + " | "
                    + " | ".join(ratios) + " |"
                )
    lines += [
        "\n**Cost per generated token as outputs grow** (ms per decoding step, greedy; "
        "growth = step time at the longest length / at 16)\n",
        "| engine | batch | " + " | ".join(str(n) for n in lengths) + " | growth |",
        "|---|---|" + "---|" * len(lengths) + "---|",
    ]
    for engine in ENGINES:
        for batch in (1, 64):
            steps = [index.get((engine, "greedy", batch, n), {}).get("ms_per_token_step") for n in lengths]
            known = [s for s in steps if s is not None]
            if not known:
                continue
            growth = f"{known[-1] / known[0]:.2f}x" if len(known) > 1 else "-"
            cells = " | ".join(_fmt(step, 2) for step in steps)
            lines.append(f"| {ENGINE_NAMES[engine]} | {batch} | {cells} | {growth} |")
    return lines


def memory_lines(results):
    serving = results.get("serving") or []
    if not serving:
        return []
    return [
        f"\nServing memory: the shipped SavedModel loaded alone and translating batches of "
        f"{serving[0]['batch']} dev sentences peaks at {max(r['peak_rss_mb'] for r in serving) / 1024:.2f} GiB "
        "resident (greedy and beam 4); training peaks are in the tables above."
    ]


def plots(results, directory):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    index = _decoding_index(results)
    lengths = sorted({r["length"] for r in results["decoding"]})
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for axis, batch in zip(axes, (1, 64)):
        for engine in ENGINES:
            points = [(n, index[(engine, "greedy", batch, n)]["ms_per_token_step"]) for n in lengths
                      if (engine, "greedy", batch, n) in index]
            if points:
                axis.plot(*zip(*points), marker="o", label=ENGINE_NAMES[engine])
        axis.set_xscale("log", base=2)
        axis.set_xticks(lengths, [str(n) for n in lengths])
        axis.set_xlabel("output length (tokens)")
        axis.set_ylabel("ms per decoding step")
        axis.set_title(f"greedy, batch {batch}")
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
    axes[0].legend()
    figure.suptitle("Cost per generated token as the output grows (flat is cached and sized right)")
    figure.tight_layout()
    figure.savefig(directory / "decoding_per_token.png", dpi=110)
    plt.close(figure)

    fixed = [row for row in results["training"] if row["data"] == "fixed" and row["preset"] == "small"]
    if fixed:
        figure, axis = plt.subplots(figsize=(9, 4))
        labels = [row["label"] for row in fixed]
        values = [row["target_tokens_per_s"] for row in fixed]
        colors = ["tab:blue" if label.startswith("ours") else "tab:gray" for label in labels]
        axis.barh(labels, values, color=colors)
        axis.invert_yaxis()
        axis.set_xlabel("target tokens per second (small, 64 x 16 batches)")
        axis.grid(axis="x", alpha=0.3)
        figure.tight_layout()
        figure.savefig(directory / "training_throughput.png", dpi=110)
        plt.close(figure)


def write_report(results, directory):
    info = results["machine"]
    peaks = info["matmul_gflops"]
    lines = [
        f"Machine: {info['cpu']}, {info['cores']} cores, AVX512-BF16 {'yes' if info['avx512_bf16'] else 'no'}; "
        f"TensorFlow {info['tensorflow']}; run of {info.get('date', '?')}; matmul peak measured in the same run: "
        f"{peaks['float32']:.0f} GFLOP/s float32, {peaks['bfloat16']:.0f} bfloat16. "
        "Medians after warm-up; ratios against peers measured in the same run.",
        *training_tables(results),
        *decoding_tables(results),
        *memory_lines(results),
    ]
    markdown = "\n".join(lines) + "\n"
    (directory / "latest.md").write_text(markdown)
    if results["decoding"]:
        plots(results, directory)
    return markdown


if __name__ == "__main__":  # re-render from the JSON: python benchmarks/report.py
    directory = Path(__file__).resolve().parent / "results"
    print(write_report(json.loads((directory / "latest.json").read_text()), directory))
    sys.exit(0)
