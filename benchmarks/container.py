"""The memory limit a server of an export fits in: `serving.py`'s case run in a memory cgroup (issue 21).

    sudo .venv/bin/python benchmarks/container.py [--models saved_models/fr-en-small saved_models/fr-en-small-int8]
                                                  [--limits 1024 1280 1536] [--no-threads] [--envs DIR]

`serving.py` reports peak resident memory (`ru_maxrss`), which counts every page of
TensorFlow's libraries the process touched (0.45-0.5 GiB of file pages after `import
tensorflow`) beside what the process allocated itself (`RssAnon`). A container's memory limit
counts the file pages too, but the kernel drops clean ones under the limit and reads them again
when they are used: what decides whether a server fits is whether it runs under the limit at
its usual speed. This script runs `serving.py`'s `savedmodel` case (in its environment of
`tensorflow` and tensorflow-text only: load, one sentence, greedy and beam 4 on 64 dev sentences,
8 threads through batches of 1 to 64 unless `--no-threads`, then all of `dev.txt` greedy and
beam 4) in a cgroup whose memory limit is each of `--limits` (MiB) in turn, and once with no
limit, for each model. The page cache is dropped before each case (the libraries' pages are then
charged to the case, as in a new container) and swap is limited as memory.

A too-small limit does not always end in the OOM killer: the kernel keeps dropping and reading
back the libraries' code, and the process slows down by orders of magnitude. A step still running
after 3 times its duration with no limit, plus 30 s, stops the case, reported as thrashing.

Needs root (the cgroup, and `/proc/sys/vm/drop_caches`) and the cgroup v1 memory controller
(`/sys/fs/cgroup/memory`, as on this machine); it says so and stops otherwise.
"""

import argparse
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import serving

CGROUP = Path("/sys/fs/cgroup/memory/keras-seq2seq-benchmark")
UNLIMITED = None
AFTER_DEV = "then all of dev.txt"


def usable():
    """None when this process can run cases in a memory cgroup, else why not."""
    if os.geteuid() != 0:
        return "needs root (a memory cgroup, and dropping the page cache)"
    if not CGROUP.parent.is_dir() or not (CGROUP.parent / "memory.limit_in_bytes").exists():
        return "needs the cgroup v1 memory controller at /sys/fs/cgroup/memory"
    return None


def limit_cgroup(limit_mib):
    """The benchmark's cgroup (made if missing), emptied and limited to `limit_mib` MiB of memory and of
    memory plus swap (`UNLIMITED`: no limit)."""
    CGROUP.mkdir(exist_ok=True)
    (CGROUP / "memory.force_empty").write_text("0")  # uncharge the page cache the case before left in it
    memory, swap = CGROUP / "memory.limit_in_bytes", CGROUP / "memory.memsw.limit_in_bytes"
    value = limit_mib * 2**20 if limit_mib is not UNLIMITED else 2**63 - 1
    # The memory-plus-swap limit may never be below the memory limit: it moves second when the
    # limit goes down, first when it goes up.
    files = [memory] + ([swap] if swap.exists() else [])
    for path in (files if value < int(memory.read_text()) else reversed(files)):
        path.write_text("-1" if limit_mib is UNLIMITED else str(value))


def oom_kills():
    fields = dict(line.split() for line in (CGROUP / "memory.oom_control").read_text().splitlines())
    return int(fields.get("oom_kill", 0))


def run_limited(python, model, dev, limit_mib, threads, reference=None):
    """`serving.CASE`'s `savedmodel` case in the cgroup under `limit_mib`, the page cache dropped first.

    Returns `{"steps": [(step, seconds it took)], "marks": {step: (seconds from the start, peak GiB,
    RssAnon GiB)}, "ended": "completed" | "OOM-killed" | "thrashing (stopped in STEP)" | "failed
    (...)"}`, the steps in the order they ran (each mark, each throughput pass). With `reference`
    (the same case's result with no limit), a step still running after 3 times its duration there
    plus 30 s stops the case.
    """
    limit_cgroup(limit_mib)
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3")
    kills = oom_kills()
    command, started = serving.case_command("savedmodel", model, dev, True, python, threads)
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=serving.CASE_ENVIRONMENT,
        preexec_fn=lambda: (CGROUP / "cgroup.procs").write_text(str(os.getpid())),
    )
    lines = queue.Queue()  # the child's lines, then None; read by a thread so that waiting can time out

    def read():
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    expected = reference["steps"] if reference else []
    result = {"steps": [], "marks": {}, "ended": "completed"}
    last = 0.0
    while True:
        index = len(result["steps"])
        allowed = 3 * expected[index][1] + 30 if index < len(expected) else None
        try:
            line = lines.get(timeout=None if allowed is None else max(0.0, last + allowed - (time.time() - started)))
        except queue.Empty:
            process.kill()
            result["ended"] = f"thrashing (stopped in: {expected[index][0]})"
            break
        if line is None:
            break
        message, now = json.loads(line), time.time() - started
        if "mark" in message:
            step, *mark = message["mark"]
            result["marks"][step] = mark
            if step.startswith(AFTER_DEV):  # (right after the last throughput pass: no step of its own)
                continue
        elif "rate" in message:
            step = f"all of dev.txt, {message['rate'][0].replace('beam', 'beam 4')}"
        else:
            continue
        result["steps"].append((step, now - last))
        last = now
    process.wait()
    if result["ended"] == "completed" and process.returncode:
        killed = oom_kills() > kills
        result["ended"] = "OOM-killed" if killed else f"failed (exit status {process.returncode})"
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=[str(serving.ROOT / "saved_models" / name)
                                                         for name in serving.SHIPPED])
    parser.add_argument("--limits", nargs="+", type=int, default=[1024, 1280, 1536], metavar="MIB",
                        help="memory limits to run each model under, MiB (default: %(default)s)")
    parser.add_argument("--no-threads", action="store_true", help="skip the case's 8-thread step")
    parser.add_argument("--dev", help="dev.txt (default: the default corpus's)")
    parser.add_argument("--envs", metavar="DIR", default=serving.DEFAULT_ENVS,
                        help="the environments of tensorflow and tensorflow-text only (default: %(default)s)")
    args = parser.parse_args()
    reason = usable()
    if reason:
        sys.exit(f"container.py: {reason}")
    dev = args.dev or serving.default_dev()
    python = serving.environment(Path(args.envs) / "tensorflow", "tensorflow")
    threads = not args.no_threads
    print(f"Page cache dropped before each case; {'with' if threads else 'without'} the 8-thread step. "
          f"Seconds each step took, and against the same step with no limit:\n")
    try:
        for model in args.models:
            report(model, python, dev, args.limits, threads)
    finally:
        limit_cgroup(UNLIMITED)
        CGROUP.rmdir()


def report(model, python, dev, limits, threads):
    """Runs `model`'s case with no limit, then under each of `limits`, and prints the table."""
    reference = run_limited(python, model, dev, UNLIMITED, threads)
    if reference["ended"] != "completed":
        sys.exit(f"{model} with no limit: {reference['ended']}")
    results = [run_limited(python, model, dev, limit, threads, reference) for limit in limits]
    print(f"{Path(model).name}:\n")
    print("| step | no limit | " + " | ".join(f"{limit} MiB" for limit in limits) + " |")
    print("|---|---|" + "---|" * len(limits))
    for index, (step, seconds) in enumerate(reference["steps"]):
        mark = reference["marks"].get(step)
        memory = f" (peak {mark[1]:.2f} GiB, RssAnon {mark[2]:.2f})" if mark else ""
        cells = [f"{result['steps'][index][1]:.1f} s ({result['steps'][index][1] / seconds:.2f}x)"
                 if index < len(result["steps"]) else "" for result in results]
        print(f"| {step} | {seconds:.1f} s{memory} | " + " | ".join(cells) + " |")
    print("| ended | completed | " + " | ".join(result["ended"] for result in results) + " |\n")
    after = next(mark for step, mark in reference["marks"].items() if step.startswith(AFTER_DEV))
    print(f"After all of dev.txt, with no limit: peak {after[1]:.2f} GiB, RssAnon {after[2]:.2f}.\n")


if __name__ == "__main__":
    main()
