"""Speed benchmarks (not tests): training and decoding against the peers, side by side in one run.

    python3 dev.py bench              # everything (about 40 minutes on 2 cores)
    python3 dev.py bench --quick      # fewer steps and repeats, small preset only

Each measurement runs in a fresh process (benchmarks/training.py, benchmarks/decoding.py)
so no framework's threads, caches or memory affect another's; all of them run in this
one invocation, on this machine, and every figure is reported with its ratio to the
baseline measured in the same run. Times are medians of repeated steps after warm-up.

Writes benchmarks/results/latest.json, latest.md (the tables in the README) and PNG
plots in benchmarks/results/.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
LENGTHS = (16, 32, 64, 128)


def machine():
    cpu, flags = "unknown", set()
    if Path("/proc/cpuinfo").exists():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == "unknown":
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    import tensorflow as tf

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "avx512_bf16": "avx512_bf16" in flags,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
    }


def matmul_peak(dtype, size=2048, repeats=10):
    """GFLOP/s of a square matmul in TensorFlow (the peak model FLOPs are compared to)."""
    import tensorflow as tf

    a = tf.random.normal([size, size], dtype=tf.float32)
    a = tf.cast(a, dtype)
    matmul = tf.function(lambda x: tf.matmul(x, x))
    matmul(a).numpy()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        matmul(a).numpy()
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def run_worker(script, args, log):
    command = [sys.executable, str(HERE / script), *args]
    print("  $", " ".join(command[1:]), flush=True)
    result = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    log.write(f"$ {' '.join(command)}\n{result.stderr[-3000:]}\n")
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode or not rows:
        print(f"    failed (exit {result.returncode}); see {RESULTS / 'worker.log'}", flush=True)
    return rows


PAIRED_ENGINES = ("ours", "ctranslate2")
SWITCH_PAUSE = 0.3  # seconds between blocks: the engine that just ran lets its spinning threads sleep


def _reply(process):
    """The next JSON line a paired worker writes (other output skipped); ValueError if it exited."""
    for line in process.stdout:
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError(f"worker exited with {process.wait()}")


def run_paired(length, repeats, log):
    """Rows of ours and CTranslate2 at one output length, timed in alternating blocks of calls.

    Both workers are started together (`decoding.py --paired`) and stay alive; for each
    (search, batch), `repeats` blocks alternate between them (4 timed calls per block on
    one sentence, 1 on 64, after warm-up), the first engine changing from block to block.
    Both engines are so measured in the same stretch of time, which on this shared
    machine matters more than anything else in their ratio.
    """
    workers = {}
    for engine in PAIRED_ENGINES:
        command = [sys.executable, str(HERE / "decoding.py"), "--engine", engine, "--length", str(length), "--paired"]
        print("  $", " ".join(command[1:]), flush=True)
        stderr = tempfile.TemporaryFile(mode="w+")
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True)
        workers[engine] = (process, stderr)
    rows = {}
    try:
        offered = {engine: _reply(process)["ready"] for engine, (process, _) in workers.items()}
        keys = [tuple(key) for key in offered["ours"] if key in offered["ctranslate2"]]
        for search, batch in keys:
            for block in range(repeats):
                order = PAIRED_ENGINES if block % 2 == 0 else PAIRED_ENGINES[::-1]
                for engine in order:
                    process = workers[engine][0]
                    request = {"search": search, "batch": batch, "repeats": 4 if batch == 1 else 1}
                    process.stdin.write(json.dumps({**request, "warmup": 2 if block == 0 else 1}) + "\n")
                    process.stdin.flush()
                    reply = _reply(process)
                    row = rows.setdefault((engine, search, batch), {
                        "engine": engine, "search": search, "batch": batch, "length": length, "times": [],
                        "paired": True,
                    })
                    row["times"] += reply["times"]
                    row["peak_rss_mb"] = reply["peak_rss_mb"]
                    time.sleep(SWITCH_PAUSE)
    except (OSError, ValueError) as error:  # a worker died: keep what was measured, say so
        print(f"    paired measurement stopped: {error}; see {RESULTS / 'worker.log'}", flush=True)
    finally:
        for engine, (process, stderr) in workers.items():
            try:
                process.stdin.close()
                process.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                process.kill()
            stderr.seek(0)
            log.write(f"$ decoding.py --engine {engine} --length {length} --paired\n{stderr.read()[-3000:]}\n")
    return list(rows.values())  # medians and rates: merge_decoding_rounds


def training_runs(quick):
    steps = ["--steps", "6" if quick else "15", "--warmup", "4" if quick else "5"]
    presets = ("small",) if quick else ("small", "base")
    runs = []
    for preset in presets:
        p = ["--preset", preset]
        runs += [
            ("keras-hub, float32, XLA", ["--framework", "keras_hub", "--xla", *p]),
            ("keras-hub, float32", ["--framework", "keras_hub", *p]),
            ("PyTorch, float32", ["--framework", "torch", *p]),
            ("PyTorch, bfloat16 autocast", ["--framework", "torch", "--precision", "mixed_bfloat16", *p]),
            ("ours, float32", ["--framework", "ours", *p]),
            ("ours, float32, XLA", ["--framework", "ours", "--xla", *p]),
            ("ours, mixed bfloat16", ["--framework", "ours", "--precision", "mixed_bfloat16", *p]),
            ("ours, mixed bfloat16, XLA", ["--framework", "ours", "--precision", "mixed_bfloat16", "--xla", *p]),
        ]
    real_steps = ["--steps", "20" if quick else "60", "--warmup", "10" if quick else "20"]
    runs += [
        ("keras-hub, keras.io pipeline (64 x 40)", ["--framework", "keras_hub", "--data", "real", "--xla"]),
        ("ours, length buckets (3072 tokens)", ["--framework", "ours", "--data", "real"]),
        (
            "ours, length buckets, mixed bfloat16",
            ["--framework", "ours", "--data", "real", "--precision", "mixed_bfloat16"],
        ),
    ]
    return [(label, args + (real_steps if "real" in args else steps)) for label, args in runs]


def merge_rounds(runs):
    """One row per configuration: the median over the steps of all its rounds."""
    merged = {}
    for row in runs:
        key = (row["label"], row["preset"], row["data"])
        if key not in merged:
            merged[key] = {**row, "rounds": 0, "step_seconds": [], "step_tokens": []}
        target = merged[key]
        target["rounds"] += 1
        target["step_seconds"] += row["step_seconds"]
        target["step_tokens"] += row["step_tokens"]
        target["peak_rss_mb"] = max(target["peak_rss_mb"], row["peak_rss_mb"])
    for row in merged.values():
        median = statistics.median(row["step_seconds"])
        row["median_step_ms"] = 1000 * median
        if row["data"] == "fixed":
            row["target_tokens_per_s"] = row["step_tokens"][0] / median
            row["model_gflop_per_s"] = row["model_tflop_per_step"] * 1000 / median
        else:
            row["target_tokens_per_s"] = sum(row["step_tokens"]) / sum(row["step_seconds"])
    return list(merged.values())


def merge_decoding_rounds(rows):
    """One row per (engine, search, batch, length): the median over the repeats of all its rounds."""
    from decoding import rates

    merged = {}
    for row in rows:
        key = (row["engine"], row["search"], row["batch"], row["length"])
        if key not in merged:
            merged[key] = {**row, "rounds": 0, "times": []}
        merged[key]["rounds"] += 1
        merged[key]["times"] += row["times"]
        merged[key]["peak_rss_mb"] = max(merged[key]["peak_rss_mb"], row["peak_rss_mb"])
    for row in merged.values():
        row.update(rates(statistics.median(row["times"]), row["batch"], row["length"]))
    return list(merged.values())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=["training", "decoding"], default=None)
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    started = time.time()
    info = machine()
    info["matmul_gflops"] = {"float32": matmul_peak("float32"), "bfloat16": matmul_peak("bfloat16")}
    info["date"] = time.strftime("%Y-%m-%d %H:%M", time.gmtime(started))
    print(f"machine: {info}", flush=True)
    results = {"machine": info, "training": [], "decoding": []}
    previous = RESULTS / "latest.json"
    if args.only and previous.exists():  # keep the other half of the last full run
        old = json.loads(previous.read_text())
        results["training" if args.only == "decoding" else "decoding"] = old.get(
            "training" if args.only == "decoding" else "decoding", []
        )
        if args.only == "decoding":  # training MFU stays relative to the peak measured with it
            results["training_machine"] = old.get("training_machine", old["machine"])
        else:
            results["decoding_machine"] = old.get("decoding_machine", old["machine"])
    with (RESULTS / "worker.log").open("w") as log:
        if args.only in (None, "training"):
            rounds = 1 if args.quick else 2
            runs = []
            for round_index in range(rounds):  # interleaved rounds: slow drifts of the machine hit every config
                print(f"training throughput, round {round_index + 1} of {rounds}", flush=True)
                for label, worker_args in training_runs(args.quick):
                    runs += [{"label": label, **row} for row in run_worker("training.py", worker_args, log)]
            results["training"] = merge_rounds(runs)
        if args.only in (None, "decoding"):
            print("decoding throughput", flush=True)
            repeats = ["--repeats", "3" if args.quick else "5"]
            rows = []
            # Ours and CTranslate2, the ratio the targets are about: paired (run_paired), in three rounds
            # of fresh processes; the peaks far from the targets once, one process each.
            for round_index in range(1 if args.quick else 3):
                for length in LENGTHS:
                    rows += run_paired(length, int(repeats[1]), log)
                    for engine in ("keras_hub", "uncached") if round_index == 0 else ():
                        if engine == "uncached" and length > 64:
                            continue  # quadratic: minutes per point
                        rows += run_worker("decoding.py", ["--engine", engine, "--length", str(length), *repeats], log)
            results["decoding"] = merge_decoding_rounds(rows)
        if args.only in (None, "decoding"):
            print("serving memory", flush=True)
            results["serving"] = run_worker("decoding.py", ["--engine", "serving", "--length", "0"], log)
    results["minutes"] = (time.time() - started) / 60
    previous.write_text(json.dumps(results, indent=2))
    from report import write_report

    markdown = write_report(results, RESULTS)
    print(markdown)
    print(f"written: {RESULTS}/latest.json, latest.md and plots ({results['minutes']:.0f} minutes)")


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
