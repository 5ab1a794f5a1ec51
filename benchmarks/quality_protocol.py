"""The headline quality protocol: every class of a dataset, a fixed training budget in steps per class, export, evaluate.

    python benchmarks/quality_protocol.py --recipe default --data DATA --work WORK/protocol-default
    python benchmarks/quality_protocol.py --recipe hobby --data DATA --work WORK/protocol-hobby
    python benchmarks/quality_protocol.py --compare WORK/protocol-default WORK/protocol-hobby
    python benchmarks/quality_protocol.py ... --work WORK/protocol-seed1 --seed 1 --replicate WORK/protocol-default \
        --retrain cat dog deer          # the same protocol with another training seed for three classes
    python benchmarks/quality_protocol.py --dataset cifar100 --data DATA/cifar-100-python.tar.gz --work WORK/c100

The classes are those of the data (`--data`, `--dataset` as for cifar-synth; CIFAR-10 by default), recorded in
protocol.json. The default recipe first trains the shared start (all the classes) for `--shared-steps`, then every class from it
for `--steps-per-class`, through `cifar-synth train --steps --shared-steps`; the hobby reference trains each class
for `--steps-per-class` through benchmarks/hobby_recipe.py. Then `cifar-synth export` writes `--count` images per
class and `cifar-synth evaluate` scores them against the real test split. Steps give the same runs on every
machine; `--minutes-per-class` (with `--shared-minutes` and `--budget-clock`) still budgets in training-loop time,
as the protocols before step budgets did. Progress is kept in WORK/protocol.json after every class, with the
machine the runs trained on (CPU model, kernel flags, cores), the precision and the steps they trained, so an
interrupted protocol resumes where it stopped (an interrupted class restarts from scratch). `--threads` and `--cpus` let two
protocols share a machine fairly, e.g. `--threads 1 --cpus 0` beside `--threads 1 --cpus 1`. `--parallel 2
--threads 1 --cpus 0,1` trains two classes at a time (`cifar-synth train --parallel 2 --cpus-per-class 1`), each in
a process of its own with one thread per pool: the same resources per class as that side-by-side setup, in half
the wall time.
"""

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock
from _common import cpu_flags, cpu_model, publish_results, markdown_table, thread_env

from cifar_synth.baseline_cache import CLASSIFIER_FILE
from cifar_synth.classes import CIFAR10, SHARED_START
from cifar_synth.config import DEFAULT_STEPS, NO_INIT, SHARED_STEPS_PER_CLASS_STEP
from cifar_synth.data import DATASETS, open_real_data
from cifar_synth.executors.job import STATE_DIR, Job, read_status, session_file
from cifar_synth.files import write_json_atomic
from cifar_synth.errors import UserError
from cifar_synth.report import JudgeReport, Report, kid_cell, number, percent
from cifar_synth.runs import read_config, run_summary

BENCHMARKS = Path(__file__).resolve().parent
STAGES = ("train", "export", "evaluate")
EXPORT_DIRS = {False: "export", True: "export-filtered"}
REPORT_DIRS = {False: "report", True: "report-filtered"}
PROTOCOL_FILE = "protocol.json"
# Settings that change the results: a protocol resumed with other values would mix two experiments.
SETTINGS = ("recipe", "train_options", "steps_per_class", "shared_steps", "minutes_per_class", "shared_minutes",
            "budget_clock", "count", "seed", "data", "dataset")
# The cores the training ran on change its results too, but export and evaluation may use others (e.g. all
# cores once two side-by-side trainings are done).
TRAINING_RESOURCES = ("threads", "cpus", "parallel")


def machine_facts() -> dict:
    """The CPU the training runs on: its steps/s and precision (native bfloat16 or not) depend on it."""
    return {"cpu_model": cpu_model(), "flags": cpu_flags(), "cores": os.cpu_count()}


class ProtocolError(Exception):
    """A problem the user can fix (shown as one line, exit status 1)."""


class Protocol:
    """One protocol's work directory: runs/, export/, report/ and protocol.json (settings and progress)."""

    def __init__(self, work: Path, settings: dict, resources: dict, training: bool):
        self.resources = resources
        self.work = work
        self.runs = work / "runs"
        self.path = work / PROTOCOL_FILE
        machine = {"machine": machine_facts()}
        self.state = read_state(work) if self.path.exists() else {**settings, **resources, **machine, "classes": {}}
        checked = {**settings, **({**resources, **machine} if training else {})}
        changed = [f"{key} {self.state.get(key)!r} → {value!r}"
                   for key, value in checked.items() if self.state.get(key) != value]
        if changed:
            raise ProtocolError(f"{self.path} was started with other settings ({'; '.join(changed)}); "
                                "use the same options to resume, or another --work directory.")

    def record(self, key: str | None = None, value=None, class_name: str | None = None) -> None:
        """Set `key` (a class's entry with `class_name`) in protocol.json as it is on disk now: another protocol
        process may be running another stage at the same time (e.g. the filtered export beside the unfiltered
        evaluation) and adding keys of its own. Without arguments: write the settings."""
        with FileLock(f"{self.path}.lock"):
            if self.path.exists():
                self.state = read_state(self.work)
            if class_name is not None:
                self.state["classes"][class_name] = value
            elif key is not None:
                self.state[key] = value
            write_json_atomic(self.path, self.state)

    def run_child(self, argv: list[str], threads: int | None = None) -> float:
        """Run a child process with `threads` (default: this invocation's), pinned to this invocation's CPUs;
        return its wall-clock seconds."""
        cpus = self.resources["cpus"]
        command = (["taskset", "-c", cpus] if cpus else []) + argv
        print("$", " ".join(command), flush=True)
        started = time.perf_counter()
        try:
            result = subprocess.run(command, env=thread_env(threads or self.resources["threads"]))
        except OSError as error:  # e.g. no taskset on this system
            raise ProtocolError(f"cannot run {command[0]}: {error}") from None
        if result.returncode != 0:
            raise ProtocolError(f"command failed with exit status {result.returncode}: {' '.join(command)}")
        return time.perf_counter() - started

    def train_all(self, class_names: list[str]) -> None:
        """Train the shared start if the protocol has one (alone, on all CPUs), then the classes: with --parallel N,
        one `cifar-synth train --parallel N` (each class in a process of its own with --threads threads); else one
        child process per class."""
        if has_shared_start(self.state) and "shared" not in self.state:
            self.train([SHARED_START], threads=len(_cpu_list(self.resources["cpus"])))
        if self.resources["parallel"] > 1 and class_names:
            self.train(class_names)
        else:
            for class_name in class_names:
                self.train([class_name])

    def reuse_source_runs(self, source_work: Path, retrained: list[str]) -> None:
        """For a replicate: copy the source protocol's shared start and every class not retrained, runs and records
        alike, so that only the retrained classes train again (with this protocol's seed)."""
        source = read_state(source_work)
        if "shared" in source and "shared" not in self.state:
            shutil.rmtree(self.runs / SHARED_START, ignore_errors=True)
            shutil.copytree(source_work / "runs" / SHARED_START, self.runs / SHARED_START)
            self.record("shared", source["shared"])
        for class_name in class_names(self.state):
            if class_name not in retrained and class_name not in self.state["classes"]:
                shutil.rmtree(self.runs / class_name, ignore_errors=True)
                shutil.copytree(source_work / "runs" / class_name, self.runs / class_name)
                self.record(class_name=class_name, value={**source["classes"][class_name], "reused": True})

    def reset_run(self, class_name: str) -> None:
        """Remove a class's run directory; when extending another protocol, copy that protocol's run in its place."""
        shutil.rmtree(self.runs / class_name, ignore_errors=True)
        if self.state.get("extends"):
            shutil.copytree(Path(self.state["extends"]) / "runs" / class_name, self.runs / class_name)

    def train(self, class_names: list[str], threads: int | None = None) -> None:
        """Train classes (or the shared start, which the classes then start from) in one child process; record
        every class that finished, also when another one failed."""
        for class_name in class_names:  # left by an interrupted attempt: the budget must be spent in one go
            self.reset_run(class_name)
        shared = class_names == [SHARED_START]
        seed = str(self.state["seed"])
        data = data_argv(self.state)
        budget = budget_argv(self.state, shared)
        if self.state["recipe"] == "default":
            start = [] if shared else ["--init-from", SHARED_START if has_shared_start(self.state) else NO_INIT]
            parallel = ["--parallel", str(self.resources["parallel"])] + (
                ["--cpus-per-class", str(self.resources["threads"])] if self.resources["threads"] else [])
            argv = [sys.executable, "-m", "cifar_synth", "train",
                    *[option for name in class_names for option in ("--class", name)], *data,
                    "--runs", str(self.runs), *budget, "--quiet", "--seed", seed, *start,
                    *(parallel if len(class_names) > 1 else []), *shlex.split(self.state.get("train_options") or "")]
            run_stats = default_run_stats
        else:
            argv = [sys.executable, str(BENCHMARKS / "hobby_recipe.py"), "--class", class_names[0], *data,
                    "--run-dir", str(self.runs / class_names[0]), *budget, "--quiet", "--seed", seed]
            run_stats = hobby_run_stats
        failure, started = None, time.perf_counter()
        try:
            self.run_child(argv, threads=threads)
        except ProtocolError as error:
            failure = error
        seconds = {"process_seconds": round(time.perf_counter() - started, 1)} if len(class_names) == 1 else {}
        for class_name in class_names:
            if failure is None or _worker_done(self.runs, class_name):
                stats = {**run_stats(self.runs / class_name), **seconds}
                if shared:
                    self.record("shared", stats)
                else:
                    self.record(class_name=class_name, value=stats)
        if failure is not None:
            raise failure

    def export_all(self, filtered: bool) -> None:
        """Export `count` images per class; `filtered` keeps only those the real-trained CNN recognises (`cifar-synth
        export --filter classifier`: the unfiltered evaluation's, else the one the evaluator cached), into
        export-filtered/."""
        out = self.work / EXPORT_DIRS[filtered]
        filter_options = ["--filter", "classifier"] if filtered else []
        if filtered and "evaluate" in self.state:  # the unfiltered evaluation's CNN, named explicitly
            baseline = Report.load(self.state["evaluate"]["report"]).classifiers["real"]
            filter_options += ["--classifier", str(Path(baseline.cache_entry) / CLASSIFIER_FILE)]
        seconds = self.run_child([
            sys.executable, "-m", "cifar_synth", "export", "--runs", str(self.runs), "--count",
            str(self.state["count"]), "--format", "parquet", "--out", str(out), "--seed",
            str(self.state["seed"]), "--overwrite", *filter_options])
        self.record(stage_key("export", filtered), {"path": str(out), "seconds": round(seconds, 1), **self.resources})

    def evaluate(self, inception_fid: bool, filtered: bool, judges: str) -> None:
        export_key = stage_key("export", filtered)
        if export_key not in self.state:
            raise ProtocolError(f"nothing exported yet; run --stage export{' --filtered' if filtered else ''} first")
        data = data_argv(self.state)
        report_dir = self.work / REPORT_DIRS[filtered]
        # --quiet, not --json: the figures are read from the report.json it writes.
        seconds = self.run_child([
            sys.executable, "-m", "cifar_synth", "evaluate", "--synthetic", self.state[export_key]["path"], *data,
            "--out", str(report_dir), "--quiet", "--judges", judges,
            *([] if inception_fid else ["--no-inception-fid"])])
        self.record(stage_key("evaluate", filtered), {"report": str(report_dir / "report.json"), "judges": judges,
                                                  "seconds": round(seconds, 1), **self.resources})


def class_names(state: dict) -> list[str]:
    """The protocol's classes (protocols from before other datasets: CIFAR-10's)."""
    return state.get("class_names") or list(CIFAR10.names)


def data_argv(state: dict) -> list[str]:
    """The options of a cifar-synth child that name the protocol's real data."""
    return ([*(["--data", state["data"]] if state["data"] else []),
             *(["--dataset", state["dataset"]] if state.get("dataset") else [])])


def has_shared_start(state: dict) -> bool:
    return bool(state.get("shared_steps") or state.get("shared_minutes"))


def budget_key(state: dict) -> str:
    """The setting that holds a protocol's budget per class: steps, or minutes in protocols that counted time."""
    return "steps_per_class" if state.get("steps_per_class") is not None else "minutes_per_class"


def budget_argv(state: dict, shared: bool) -> list[str]:
    """The budget options of one training child. Steps are totals, which a run resumes up to (an extended run
    too); minutes are this invocation's, so an extended run trains for the difference."""
    if budget_key(state) == "steps_per_class":
        shared_steps = ["--shared-steps", str(state["shared_steps"])] if state.get("shared_steps") else []
        return ["--steps", str(state["steps_per_class"]), *shared_steps]
    minutes = state["shared_minutes" if shared else "minutes_per_class"]
    if state.get("extends"):  # the extended protocol's runs already spent its minutes
        minutes -= read_state(Path(state["extends"]))["minutes_per_class"]
    clock = ["--budget-clock", state.get("budget_clock") or "wall"] if state["recipe"] == "default" else []
    return ["--minutes", f"{minutes:g}", *clock]


def check_extension(source: dict, state: dict) -> None:
    """Refuse to extend a protocol that is unfinished, shorter than it will be, or trained with other settings."""
    if set(source["classes"]) != set(class_names(source)):
        raise ProtocolError("--extend: that protocol has not trained all its classes yet")
    budget = budget_key(state)
    if source.get(budget) is None:
        raise ProtocolError(f"--extend: that protocol has no --{budget.replace('_', '-')} budget")
    if source[budget] >= state[budget]:
        raise ProtocolError(f"--extend: --{budget.replace('_', '-')} must exceed that protocol's {source[budget]:g}")
    # The budget grows and the export's count may differ; every other setting must match.
    changed = [key for key in SETTINGS if key not in ("steps_per_class", "minutes_per_class", "count")
               and source.get(key) != state.get(key)]
    if changed:
        raise ProtocolError(f"--extend: that protocol was trained with other {', '.join(changed)}")


def check_replication(source: dict, state: dict) -> None:
    """Refuse to replicate a protocol that is unfinished, trained with other settings, or with the same seed."""
    if set(source["classes"]) != set(class_names(source)):
        raise ProtocolError("--replicate: that protocol has not trained all its classes yet")
    if source["seed"] == state["seed"]:
        raise ProtocolError(f"--replicate: give another --seed than that protocol's {source['seed']}")
    unknown = sorted(set(state["retrained"]) - set(class_names(source)))
    if unknown or not state["retrained"]:
        raise ProtocolError(f"--retrain: name classes of {', '.join(class_names(source))}"
                            + (f" (not {', '.join(unknown)})" if unknown else ""))
    changed = [key for key in SETTINGS if key != "seed" and source.get(key) != state.get(key)]
    if changed:
        raise ProtocolError(f"--replicate: that protocol was run with other {', '.join(changed)}")


def _worker_done(runs: Path, class_name: str) -> bool:
    """Whether the last `cifar-synth train --parallel` into `runs` reported the class done (its worker's status)."""
    state_dir = runs / STATE_DIR
    sessions = sorted(state_dir.glob(session_file(state_dir, "*").name), key=lambda path: path.stat().st_mtime_ns)
    if not sessions:
        return False
    session = sessions[-1].name.removeprefix(session_file(state_dir, "").name)
    return read_status(_ReportedClass(class_name, state_dir, session)).get("state") == "done"


@dataclass(frozen=True)
class _ReportedClass(Job):
    """A class trained by the last `train --parallel`: what `read_status` needs to find its worker's report."""

    name: str
    state_dir: Path
    session: str


def stage_key(stage: str, filtered: bool) -> str:
    """protocol.json's key of an export or evaluate stage, e.g. "evaluate_filtered"."""
    return f"{stage}_filtered" if filtered else stage


def _cpu_list(cpus: str | None) -> list[str]:
    """The single CPUs of a taskset list such as "0,1" or "0-3" (all of this process's CPUs when None)."""
    if not cpus:
        return [str(cpu) for cpu in sorted(os.sched_getaffinity(0))]
    single = []
    for part in cpus.split(","):
        first, _, last = part.partition("-")
        single += [str(cpu) for cpu in range(int(first), int(last or first) + 1)]
    return single


def read_state(work: Path) -> dict:
    path = work / PROTOCOL_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ProtocolError(f"cannot read {path}: {error}") from None


def default_run_stats(run_dir: Path) -> dict:
    """Steps, images, epochs (fractional: the last one may be partial) and precision of a `cifar-synth train`
    run."""
    summary = run_summary(run_dir)
    config = read_config(run_dir)
    batch = config["gan"]["batch_size"]
    return {
        "steps": summary.steps,
        "images_seen": summary.images_seen,
        "epochs": round(summary.images_seen / (config["train_images"] // batch * batch), 3),
        "loop_seconds": summary.loop_seconds,
        "precision": config["gan"]["precision"],
    }


def hobby_run_stats(run_dir: Path) -> dict:
    config = read_config(run_dir)
    # The hobby models are built in Keras's default policy, float32.
    return {"steps": config["steps"], "images_seen": config["images_seen"], "epochs": config["epochs"],
            "loop_seconds": config["seconds"], "precision": "float32"}


def _cores(state: dict) -> str:
    threads = f"{state['threads']} thread(s) per TensorFlow pool" if state["threads"] else "TensorFlow default threads"
    cores = f"{threads}, {'CPUs ' + state['cpus'] if state['cpus'] else 'all CPUs'}"
    parallel = state.get("parallel") or state.get("jobs", 1)  # "jobs": protocols before `train --parallel`
    return cores + (f", {parallel} classes at a time" if parallel > 1 else "")


def budget_text(state: dict) -> str:
    """A protocol's budget per class, e.g. "4,000 steps", or "6 min" in protocols that counted minutes."""
    if budget_key(state) == "steps_per_class":
        return f"{state['steps_per_class']:,} steps"
    return f"{state['minutes_per_class']:g} min"


def _budget(state: dict) -> str:
    if budget_key(state) == "steps_per_class":
        return budget_text(state)
    return f"{budget_text(state)} of training-loop {state.get('budget_clock') or 'wall'} time"


def _shared_start(state: dict) -> str:
    shared = state.get("shared")
    if not has_shared_start(state) or not shared:
        return "none"
    minutes = f"{state['shared_minutes']:g} min, " if state.get("shared_minutes") else ""
    return f"{minutes}{shared['steps']:,} steps ({shared['epochs']:.1f} epochs of its training images)"


def _machine(state: dict) -> str:
    machine = state.get("machine")
    if not machine:
        return "not recorded"
    return ", ".join([machine["cpu_model"], *([" ".join(machine["flags"])] if machine["flags"] else []),
                      f"{machine['cores']} cores"])


def _precision(state: dict) -> str:
    """The precisions the classes' runs computed in (protocols before it was recorded: "not recorded")."""
    return ", ".join(sorted({entry.get("precision") or "not recorded" for entry in state["classes"].values()}))


def _judge(report: Report) -> JudgeReport | None:
    """The second judge's figures (None in reports from before it existed, or evaluated with --judges cnn)."""
    return report.judges.get("resnet")


def _judge_figure(report: Report, figure) -> str:
    """percent(figure(judge)), or "–" without a second judge."""
    judge = _judge(report)
    return percent(figure(judge) if judge else None)


def _mean_diversity(report: Report) -> str:
    ratios = [entry["ratio"] for entry in report.diversity.per_class.values() if entry and entry["ratio"]]
    return number(sum(ratios) / len(ratios)) if ratios else "–"


def _acceptance(report: Report, class_names: list[str] | None) -> str:
    """Share of generated candidates a filtered export kept (all classes when `class_names` is None)."""
    entries = [entry["filter"] for entry in report.synthetic["manifest"]["classes"]
               if "filter" in entry and (class_names is None or entry["name"] in class_names)]
    if not entries:
        return "–"
    return percent(sum(e["accepted"] for e in entries) / sum(e["candidates"] for e in entries))


# (row label, value of one protocol from its protocol.json and its evaluation's Report)
HEADLINE = [
    ("training budget per class", lambda s, r: _budget(s)),
    ("shared start (all classes, before the classes)", lambda s, r: _shared_start(s)),
    ("machine (CPU, kernel flags, cores)", lambda s, r: _machine(s)),
    ("precision", lambda s, r: _precision(s)),
    ("threads / cores", lambda s, r: _cores(s)),
    ("real images seen, all classes", lambda s, r: f"{sum(c['images_seen'] for c in s['classes'].values()):,}"),
    ("synthetic images per class", lambda s, r: f"{s['count']:,}"),
    ("CAS: synthetic-trained accuracy on real test", lambda s, r: percent(r.headline.cas)),
    ("baseline: real-trained accuracy on real test", lambda s, r: percent(r.headline.baseline_accuracy)),
    ("CAS / baseline", lambda s, r: number(r.headline.cas_ratio, 3)),
    ("CAS top-5 / baseline top-5 (datasets of more than 10 classes)",
     lambda s, r: f"{percent(r.headline.cas_top5)} / {percent(r.headline.baseline_top5)}"),
    ("second judge (ResNet): synthetic-trained accuracy on real test", lambda s, r: _judge_figure(r, lambda judge: judge.cas)),
    ("second judge: real-trained accuracy on real test",
     lambda s, r: _judge_figure(r, lambda judge: judge.baseline_accuracy)),
    ("recognizability: real-trained accuracy on synthetic", lambda s, r: percent(r.recognizability.accuracy)),
    ("Fréchet distance in CNN features (not Inception FID)",
     lambda s, r: number(r.feature_metrics.frechet_distance["overall"])),
    ("KID in CNN features", lambda s, r: kid_cell(r.feature_metrics.kid["overall"])),
    ("Inception FID", lambda s, r: number(r.inception_fid.get("value"))),
    ("mean diversity ratio (synthetic / real)", lambda s, r: _mean_diversity(r)),
    ("classifier filter: candidates accepted", lambda s, r: _acceptance(r, None)),
    ("evaluator", lambda s, r: f"budget {r.config['budget_name']}, {r.config['epochs']} epochs, "
                               f"{r.train_images_per_class:,} training images per class per CNN, seed {r.seed}"),
]
# (column label, value of one protocol for one class)
PER_CLASS = [
    ("steps", lambda s, r, c: f"{s['classes'][c]['steps']:,}"),
    ("epochs", lambda s, r, c: number(s["classes"][c]["epochs"], 1)),
    ("synthetic-trained acc.", lambda s, r, c: percent(r.classifiers["synthetic"].per_class_accuracy[c])),
    ("real-trained acc.", lambda s, r, c: percent(r.classifiers["real"].per_class_accuracy[c])),
    ("judge synthetic-trained acc.",
     lambda s, r, c: _judge_figure(r, lambda judge: judge.classifiers["synthetic"].per_class_accuracy[c])),
    ("recognizability", lambda s, r, c: percent(r.recognizability.per_class_accuracy[c])),
    ("FD", lambda s, r, c: number(r.feature_metrics.frechet_distance["per_class"][c])),
    ("KID", lambda s, r, c: kid_cell(r.feature_metrics.kid["per_class"][c])),
    ("diversity ratio", lambda s, r, c: number((r.diversity.per_class[c] or {}).get("ratio"))),
    ("filter acceptance", lambda s, r, c: _acceptance(r, [c])),
]
# The real-trained CNN is the same for both protocols, so a comparison leaves its column out.
COMPARED_PER_CLASS = [column for column in PER_CLASS if column[0] != "real-trained acc."]


def load_variants(work: Path) -> list[tuple[str, dict, Report]]:
    """(name, protocol.json, Report) of a finished protocol's evaluations: unfiltered, then filtered if done."""
    state = read_state(work)
    if "evaluate" not in state:
        raise ProtocolError(f"{work} has not been evaluated yet; run its protocol to the end first")
    variants = []
    for filtered in (False, True):
        if stage_key("evaluate", filtered) in state:
            try:
                report = Report.load(state[stage_key("evaluate", filtered)]["report"])
            except UserError as error:
                raise ProtocolError(str(error)) from None
            variants.append((state["recipe"] + (", classifier-filtered" if filtered else ""), state, report))
    return variants


def variants_tables(variants: list[tuple[str, dict, Report]], per_class_columns: list) -> str:
    """The headline and per-class Markdown tables with one column (group) per evaluated variant."""

    headline = markdown_table(
        ["figure", *(name for name, _, _ in variants)],
        [[label, *(value(state, report) for _, state, report in variants)] for label, value in HEADLINE])
    single = len(variants) == 1
    per_class = markdown_table(
        ["class", *(label if single else f"{label} ({name})"
                    for label, _ in per_class_columns for name, _, _ in variants)],
        [[c, *(value(state, report, c) for _, value in per_class_columns for _, state, report in variants)]
         for c in class_names(variants[0][1])])
    return (f"{headline}\n\nPer class (accuracies on the real test images of that class; recognizability of a "
            f"classifier-filtered set is high by construction, as the same real-trained CNN chose it):\n\n{per_class}")


def results_section(work: Path) -> tuple[str, str]:
    """Title and Markdown body of one finished protocol."""
    variants = load_variants(work)
    state = variants[0][1]
    options = f" with `{state['train_options']}`" if state.get("train_options") else ""
    extends = f", continuing the runs of `{state['extends']}`" if state.get("extends") else ""
    if state.get("replicates"):
        start = " from its shared start" if has_shared_start(state) else ""
        extends += (f", replicating `{state['replicates']}` with another seed: {', '.join(state['retrained'])} "
                    f"trained again{start}, its other classes' runs reused")
    body = f"Recipe `{state['recipe']}`{options}{extends}, work directory `{work}`, seed {state['seed']}.\n\n" + variants_tables(
        variants, PER_CLASS)
    return f"Quality protocol: {state['recipe']} recipe, {budget_text(state)} per class", body


def comparison_section(work_a: Path, work_b: Path) -> tuple[str, str]:
    """Title and Markdown body setting two finished protocols (each with its evaluated variants) side by side."""
    variants_a, variants_b = load_variants(work_a), load_variants(work_b)
    name_a, name_b = variants_a[0][0], variants_b[0][0]
    if name_a == name_b:  # two protocols of one recipe: tell them apart by their work directories
        name_a, name_b = work_a.name, work_b.name
        variants_a = [(name.replace(variants_a[0][0], name_a, 1), *rest) for name, *rest in variants_a]
        variants_b = [(name.replace(variants_b[0][0], name_b, 1), *rest) for name, *rest in variants_b]
    body = (f"`{name_a}`: `{work_a}`; `{name_b}`: `{work_b}`. The real-trained accuracies are in each protocol's "
            f"own section.\n\n" + variants_tables(variants_a + variants_b, COMPARED_PER_CLASS))
    return f"Quality protocol comparison: {name_a} vs {name_b}", body


def budget_settings(args) -> dict:
    """The budget settings: steps (by default), or minutes when --minutes-per-class is given."""
    if args.minutes_per_class is None:
        if args.shared_minutes is not None or args.budget_clock is not None:
            raise ProtocolError("--shared-minutes and --budget-clock go with a budget in minutes (--minutes-per-class)")
        steps = DEFAULT_STEPS if args.steps_per_class is None else args.steps_per_class
        shared = args.shared_steps
        if shared is None and args.recipe == "default":
            shared = SHARED_STEPS_PER_CLASS_STEP * steps
        if steps < 1 or (shared or 0) < 0:
            raise ProtocolError("--steps-per-class must be at least 1 and --shared-steps at least 0")
        return {"steps_per_class": steps, "shared_steps": shared or None}
    if args.steps_per_class is not None or args.shared_steps is not None:
        raise ProtocolError("give a budget in steps (--steps-per-class, --shared-steps) or in minutes "
                            "(--minutes-per-class, --shared-minutes), not both")
    return {"minutes_per_class": args.minutes_per_class, "shared_minutes": args.shared_minutes,
            "budget_clock": args.budget_clock or "wall"}


def run_protocol(args) -> None:

    if args.train_options and args.recipe != "default":
        raise ProtocolError("--train-options applies to the default recipe (cifar-synth train) only")
    if args.parallel > 1 and args.recipe != "default":
        raise ProtocolError("--parallel applies to the default recipe (cifar-synth train) only")
    if (args.shared_minutes or args.shared_steps) and args.recipe != "default":
        raise ProtocolError("--shared-steps and --shared-minutes apply to the default recipe (cifar-synth train) only")
    if args.budget_clock not in (None, "wall") and args.recipe != "default":
        raise ProtocolError("the hobby recipe counts wall time only (--budget-clock wall)")
    budget = budget_settings(args)
    if bool(args.replicate) != bool(args.retrain) or (args.replicate and args.extend):
        raise ProtocolError("--replicate needs --retrain CLASS … (and no --extend), and --retrain needs --replicate")
    try:
        classes = open_real_data(args.data, dataset=args.dataset).classes
    except UserError as error:
        raise ProtocolError(str(error)) from None
    if args.recipe != "default" and not classes.same_as(CIFAR10):
        raise ProtocolError(f"the hobby recipe trains CIFAR-10's classes only; {classes.dataset} has others")
    settings = {"recipe": args.recipe, "train_options": args.train_options or None, **budget, "count": args.count,
                "seed": args.seed, "data": str(Path(args.data).resolve()) if args.data else None,
                "dataset": args.dataset,
                "extends": str(args.extend.resolve()) if args.extend else None,
                "replicates": str(args.replicate.resolve()) if args.replicate else None,
                "retrained": args.retrain}
    resources = {"threads": args.threads, "cpus": args.cpus, "parallel": args.parallel}
    protocol = Protocol(args.work, settings, resources, training=args.stage in ("all", "train"))
    protocol.work.mkdir(parents=True, exist_ok=True)
    protocol.state["class_names"] = list(classes.names)  # fixed by the data and --dataset, which resume checks
    protocol.record()
    if args.extend and "shared" not in protocol.state:
        extended = read_state(args.extend)
        check_extension(extended, protocol.state)
        protocol.record("shared", extended.get("shared"))
    if args.replicate:
        check_replication(read_state(args.replicate), protocol.state)
        if args.stage in ("all", "train"):
            protocol.reuse_source_runs(args.replicate, args.retrain)
    run_all = args.stage == "all"

    if run_all or args.stage == "train":
        names = class_names(protocol.state)
        for class_name in names:
            if class_name in protocol.state["classes"]:
                print(f"{class_name}: already trained, skipped")
        protocol.train_all([name for name in names if name not in protocol.state["classes"]])
    missing = [name for name in class_names(protocol.state) if name not in protocol.state["classes"]]
    if args.stage in ("export", "evaluate") and missing:
        raise ProtocolError(f"training of {', '.join(missing)} has not finished; run --stage train first")

    # Without --filtered the export and evaluate stages act on the plain export; with it, on the filtered one,
    # which "all" makes after the plain evaluation (whose real-trained CNN does the filtering).
    for filtered in (False, True) if run_all and args.filtered else (args.filtered,):
        if args.stage == "export" or (run_all and stage_key("export", filtered) not in protocol.state):
            protocol.export_all(filtered)
        if args.stage == "evaluate" or (run_all and stage_key("evaluate", filtered) not in protocol.state):
            protocol.evaluate(args.inception_fid, filtered, args.judges)
    if run_all or args.stage == "evaluate":
        publish_results(*results_section(protocol.work))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", choices=("default", "hobby"), default="default")
    parser.add_argument("--data", help="the real data (as for cifar-synth --data): CIFAR-10, CIFAR-100 or a "
                                       "class-folder tree")
    parser.add_argument("--dataset", choices=tuple(DATASETS),
                        help="the official dataset (as for cifar-synth --dataset); default: CIFAR-10, or what --data "
                             "holds")
    parser.add_argument("--work", type=Path, help="work directory (default: <tmp>/cifar-synth-protocol-<recipe>)")
    parser.add_argument("--train-options", default="",
                        help="extra options for `cifar-synth train`, e.g. \"--flip --guidance 0.3 --guide PATH\"")
    parser.add_argument("--steps-per-class", type=int,
                        help=f"training steps of each class (cifar-synth train --steps; default {DEFAULT_STEPS})")
    parser.add_argument("--shared-steps", type=int,
                        help="steps of the shared start on all classes, trained first, which every class starts "
                             "from (cifar-synth train --shared-steps; default "
                             f"{SHARED_STEPS_PER_CLASS_STEP}× --steps-per-class; 0: random starts); the default recipe "
                             "only")
    parser.add_argument("--minutes-per-class", type=float,
                        help="a budget in training-loop minutes instead of steps, as protocols before step budgets "
                             "counted (cifar-synth train --minutes)")
    parser.add_argument("--shared-minutes", type=float,
                        help="with --minutes-per-class: the shared start's minutes (none without it); it counts "
                             "against the total: 10 × 6 = 12 + 10 × 4.8")
    parser.add_argument("--budget-clock", choices=("wall", "cpu"),
                        help="with --minutes-per-class: what the minutes count (cifar-synth train --budget-clock; "
                             "default wall); cpu keeps the budget exact on a busy machine")
    parser.add_argument("--count", type=int, default=5000, help="images exported per class")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stage", choices=("all", *STAGES), default="all",
                        help="all skips finished classes and stages; a single stage reruns it")
    parser.add_argument("--filtered", action="store_true",
                        help="export and evaluate the classifier-filtered dataset (export --filter classifier) as "
                             "its own row; with --stage all, after the unfiltered one")
    parser.add_argument("--inception-fid", action="store_true",
                        help="also compute Inception FID (two InceptionV3 passes: slow on a CPU; needs its weights)")
    parser.add_argument("--judges", default="cnn,resnet",
                        help="cifar-synth evaluate --judges: cnn alone skips the second judge (half the evaluation)")
    parser.add_argument("--threads", type=int, help="TensorFlow threads per pool in the child processes")
    parser.add_argument("--cpus", help="pin the child processes to these CPUs (taskset -c LIST)")
    parser.add_argument("--parallel", type=int, default=1,
                        help="classes trained at a time (cifar-synth train --parallel; --threads threads each); "
                             "the default recipe only")
    parser.add_argument("--extend", type=Path, metavar="WORK",
                        help="continue a finished protocol's runs (copied, its shared start reused) to the larger "
                             "--steps-per-class (or --minutes-per-class), for a quality curve: each class trains for "
                             "the difference")
    parser.add_argument("--replicate", type=Path, metavar="WORK",
                        help="repeat a finished protocol with another --seed for the --retrain classes only (from its "
                             "shared start; its other classes' runs reused), to measure the spread over training seeds")
    parser.add_argument("--retrain", nargs="+", metavar="CLASS", help="with --replicate: the classes trained again")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("WORK_A", "WORK_B"),
                        help="print and append a side-by-side table of two finished protocols")
    args = parser.parse_args()
    if args.work is None:
        args.work = Path(tempfile.gettempdir()) / f"cifar-synth-protocol-{args.recipe}"
    try:
        if args.compare:
            publish_results(*comparison_section(*args.compare))
        else:
            run_protocol(args)
    except ProtocolError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
