"""What every benchmark script shares: where results go, how the machine and commit are recorded, thread setup.

Scripts run as `python benchmarks/<name>.py` from the repo root, so this directory is on `sys.path` and they
import this module as `_common`.
"""

import datetime
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

# Benchmarks print figures; TensorFlow's C++ start-up notices would bury them. Set before TensorFlow loads.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parent.parent
# Every run's dated section goes to the history; docs/benchmarks.md is the page of current figures, edited by hand.
HISTORY_FILE = REPO_ROOT / "docs" / "benchmarks-history.md"
# Absolute paths of the machine a benchmark ran on (scratch and data folders), shown as WORK/… in what it publishes.
MACHINE_PATH = re.compile(r"(?<![\w./-])/(?:tmp|work|root|home/[^/\s`'\"]+)/")

# The environment variables TensorFlow 2.21 reads for its thread pools (tensorflow/core/common_runtime/
# process_util.cc), plus OpenMP's in case a build routes oneDNN through OpenMP.
THREAD_ENV_VARS = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")
# The CPU flags a figure depends on: oneDNN's kernels by vector width, and native bfloat16 (`--precision auto`).
KERNEL_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, else lscpu, else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    import platform

    return platform.processor() or "unknown CPU"


def cpu_flags() -> list[str]:
    """The flags of /proc/cpuinfo that decide TensorFlow's CPU kernels (vector width, bfloat16); [] elsewhere."""
    try:
        line = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return []
    return [flag for flag in line.split(":", 1)[1].split() if flag in KERNEL_FLAGS]


def machine_description() -> str:
    """E.g. '2 cores (2 usable by this process), Intel(R) Xeon(R) Processor, avx2 avx512f avx512_bf16 amx_bf16'."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return ", ".join([f"{os.cpu_count()} cores ({usable} usable by this process)", cpu_model(),
                      *([" ".join(cpu_flags())] if cpu_flags() else [])])


def git_commit() -> str:
    """Short hash of HEAD, with '+dirty' when tracked files differ from it (untracked files do not count)."""
    def git(*args):
        return subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, check=True).stdout

    try:
        commit = git("rev-parse", "--short", "HEAD").strip()
        dirty = git("status", "--porcelain", "--untracked-files=no").strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


# Taken when a benchmark starts (it imports this module first): a commit made by someone else during a long run
# must not be credited with figures measured on the code loaded before it.
COMMIT_AT_START = git_commit()


def command_line() -> str:
    """How this script was invoked, as a command a reader can paste."""
    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(REPO_ROOT)
    except ValueError:
        pass
    return shlex.join(["python", str(script), *sys.argv[1:]])


def without_machine_paths(text: str) -> str:
    """`text` with paths in this checkout made relative and other absolute scratch or data paths as WORK/…"""
    return MACHINE_PATH.sub("WORK/", text.replace(f"{REPO_ROOT}/", ""))


def publish_results(title: str, body: str, *, append: bool = True, path: Path = HISTORY_FILE) -> None:
    """Print `body`; with `append`, also add it as a dated section (machine, commit, command) to the history file,
    without this machine's paths."""
    print(body)
    if not append:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now().astimezone()
    section = (
        f"\n## {title} — {now:%Y-%m-%d %H:%M %Z}\n\n"
        f"- Machine: {machine_description()}\n"
        f"- Commit: `{COMMIT_AT_START}` (at the start of the run)\n"
        f"- Command: `{command_line()}`\n\n"
        f"{body.rstrip()}\n"
    )
    section = without_machine_paths(section)
    with open(path, "a", encoding="utf-8") as f:
        if f.tell() == 0:
            f.write("# Benchmark history\n\nEvery benchmark run, dated, as its script appended it; the current figures "
                    "are in [benchmarks.md](benchmarks.md).\n")
        f.write(section)
    print(f"appended to {path}")


def markdown_table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def thread_env(threads: int | None) -> dict:
    """A copy of the environment in which a child process's TensorFlow uses `threads` threads per pool."""
    env = dict(os.environ)
    if threads:
        env.update({name: str(threads) for name in THREAD_ENV_VARS})
    return env


def configure_threads(threads: int | None) -> None:
    """Limit this process's TensorFlow thread pools; None keeps TensorFlow's default (all cores).

    Must run before TensorFlow executes its first op.
    """
    if threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by a running process and its descendants, reaped or alive (Linux /proc); 0 when
    the process is gone."""
    try:
        # The fields after the command name's ")" start at field 3; utime, stime, cutime, cstime are 14-17.
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
                    for child in (task / "children").read_text().split()]
    except (OSError, ValueError):
        return 0.0
    return sum(int(ticks) for ticks in fields[11:15]) / os.sysconf("SC_CLK_TCK") + sum(map(cpu_seconds, children))


def run_for_cpu_seconds(process: subprocess.Popen, seconds: float) -> bool:
    """Wait until `process` (with its descendants) has used `seconds` more CPU time; False if it exited first.

    Kill moments are measured in the victim's CPU time, not wall time: a niced process on a busy machine gets a few
    percent of a core, and a wall-clock delay would land every kill in its start-up.
    """
    target = cpu_seconds(process.pid) + seconds
    while process.poll() is None:
        if cpu_seconds(process.pid) >= target:
            return True
        time.sleep(0.005)
    return False


def load_class_images(data: str | None, class_name: str):
    """The real training images (uint8) of one class."""
    from cifar_synth.classes import CIFAR10
    from cifar_synth.data import open_real_data

    (name,) = CIFAR10.parse([class_name])
    return open_real_data(data).load("train", [CIFAR10.label(name)]).images
