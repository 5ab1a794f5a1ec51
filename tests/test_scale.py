"""`train --executor local|ray|slurm`: real engines on this machine (local processes, a local Ray cluster,
submitit's local job arrays), tiny networks, the run directories they leave, and what a user sees."""

import contextlib
import csv
import importlib.util
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from conftest import TINY_GAN, TINY_GAN_CLI, assert_user_error, cli_process, write_real_tree

LOUD_TINY_GAN_CLI = [option for option in TINY_GAN_CLI if option != "--quiet"]  # the summary table is not quiet
from cifar_synth.cli import app
from cifar_synth.config import TrainOptions
from cifar_synth.data import open_real_data
from cifar_synth.errors import UserError
from cifar_synth.executors import ExecutorOptions, train_with_executor
from cifar_synth.executors.board import drive
from cifar_synth.executors.job import ClassJob, run_job
from cifar_synth.executors.slurm_array import _left_running
from cifar_synth.locks import hold
from cifar_synth.reporter import Reporter

QUIET = Reporter(quiet=True)


def epochs_in_history(run_dir: Path) -> list[int]:
    with (run_dir / "history.csv").open() as file:
        return [int(row["epoch"]) for row in csv.DictReader(file)]


def status(runs: Path, class_name: str) -> dict:
    return json.loads((runs / ".cifar-synth" / "status" / f"{class_name}.json").read_text())


def log(runs: Path, class_name: str) -> str:
    return (runs / ".cifar-synth" / "logs" / f"{class_name}.log").read_text()


def resumed_at(runs: Path, class_name: str) -> list[int]:
    """The epochs the class's attempts resumed after, as their logs say."""
    return [int(epoch) for epoch in re.findall(r"resuming after epoch (\d+)", log(runs, class_name))]


def train(real_tree, runs, class_names, epochs, **executor):
    options = TrainOptions(epochs=epochs)
    train_with_executor(class_names, TINY_GAN, options, real_tree, runs, ExecutorOptions(**executor), QUIET)


def checkpoint_epoch(run_dir: Path) -> int:
    try:
        return json.loads((run_dir / "checkpoint" / "state.json").read_text())["epoch"]
    except (OSError, ValueError):
        return 0


def kill_when(runs: Path, class_name: str, epochs_done: int, sig: int) -> dict:
    """Watch, in a thread, until `class_name` has checkpointed `epochs_done` epochs, then send its worker `sig`.

    The returned dict gets `pid` (the worker signalled) and `epoch` (its last checkpoint once the signal had been
    handled); call its `join` after training."""
    record: dict = {}
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            if checkpoint_epoch(runs / class_name) >= epochs_done:
                record["pid"] = status(runs, class_name)["pid"]
                os.kill(record["pid"], sig)
                time.sleep(2)  # the worker has stopped (or handled the signal); its checkpoint no longer moves
                record["epoch"] = checkpoint_epoch(runs / class_name)
                return
            time.sleep(0.2)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()

    def join():
        stop.set()
        thread.join()
        assert "epoch" in record, f"{class_name} finished before it could be signalled"

    record["join"] = join
    return record


def assert_complete(run_dir: Path, epochs: int) -> None:
    assert epochs_in_history(run_dir) == list(range(1, epochs + 1))
    assert checkpoint_epoch(run_dir) == epochs
    assert (run_dir / "generator.keras").is_file() and (run_dir / "config.json").is_file()


# Local processes

@pytest.mark.slow
def test_parallel_two_trains_both_classes_each_in_its_own_process_and_threads(real_tree, tmp_path):
    runs = tmp_path / "runs"
    result = CliRunner().invoke(app, ["train", "--class", "dog", "--class", "cat", "--epochs", "2", "--data",
                                      str(real_tree), "--runs", str(runs), *LOUD_TINY_GAN_CLI,
                                      "--parallel", "2", "--cpus-per-class", "1"])

    assert result.exit_code == 0, result.output
    assert "Training summary" in result.output
    for name in ("dog", "cat"):
        assert_complete(runs / name, 2)
        assert status(runs, name)["state"] == "done"
        assert "TensorFlow threads: 1 intra-op, 1 inter-op" in log(runs, name)
    assert len({status(runs, name)["pid"] for name in ("dog", "cat")} | {os.getpid()}) == 3


@pytest.mark.slow
def test_the_shared_start_trains_alone_first_then_the_classes_start_from_it(real_tree, tmp_path):
    runs = tmp_path / "runs"
    with hold(runs / "shared", "run directory"):  # a shared start that cannot be trained: no class may start
        result = CliRunner().invoke(app, ["train", "--class", "all", "--class", "shared", "--init-from", "shared",
                                          "--epochs", "1", "--data", str(real_tree), "--runs", str(runs),
                                          *TINY_GAN_CLI, "--parallel", "2"])
    assert_user_error(result, "1 of 11 classes failed (shared); not started: airplane")
    assert not (runs / "dog").exists()

    result = CliRunner().invoke(app, ["train", "--class", "dog", "--class", "shared", "--init-from", "shared",
                                      "--epochs", "1", "--data", str(real_tree), "--runs", str(runs),
                                      *TINY_GAN_CLI, "--parallel", "2"])
    assert result.exit_code == 0, result.output
    shared_done = status(runs, "shared")["pid"]
    assert status(runs, "dog")["pid"] != shared_done
    config = json.loads((runs / "dog" / "config.json").read_text())
    assert config["sessions"][0]["started_from"]["run"] == "shared"  # relative to the runs folder


@pytest.mark.slow
def test_a_class_another_process_trains_fails_named_with_its_error_and_log_and_the_others_go_on(real_tree, tmp_path):
    runs = tmp_path / "runs"
    with hold(runs / "cat", "run directory"):  # as another `cifar-synth train` training cat would
        result = CliRunner().invoke(app, ["train", "--class", "dog", "--class", "cat", "--epochs", "2", "--data",
                                          str(real_tree), "--runs", str(runs), *TINY_GAN_CLI, "--parallel", "2",
                                          "--init-from", "none"])

    assert_user_error(result, "1 of 2 classes failed (cat)")
    output = "".join(result.output.split())
    assert f"isinusebyprocess{os.getpid()}" in output and "cat.log" in output
    assert_complete(runs / "dog", 2)
    assert status(runs, "cat")["state"] == "failed" and not (runs / "cat" / "history.csv").exists()


def running(pid: int) -> bool:
    """Whether process `pid` is alive (a zombie, dead but not yet reaped by whoever adopted it, is not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
@pytest.mark.parametrize("executor", ["local", "ray"])
def test_workers_end_with_a_killed_driver_and_the_same_command_resumes_them(executor, monkeypatch, tmp_path):
    if executor == "ray":  # a local Ray of the driver's own, as `ray_cluster` sets it up
        if importlib.util.find_spec("ray") is None:  # not imported here: `ray_cluster` sets it up before the import
            pytest.skip("the Ray tests need the ray extra")
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
        for name in ("RAY_USAGE_STATS_ENABLED", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_worker_niceness"):
            monkeypatch.setenv(name, "0")
    # Ray ends a dead driver's workers within seconds, not at once: epochs long enough (18 steps) and many enough
    # that they are still training when it does, on a loaded machine too.
    tree, runs, epochs = write_real_tree(tmp_path / "real", per_class=160), tmp_path / "runs", 40
    command = ["train", "--class", "dog", "--class", "cat", "--epochs", str(epochs), "--data", str(tree),
               "--runs", str(runs), *TINY_GAN_CLI, "--executor", executor, "--parallel", "2", "--cpus-per-class", "1",
               "--init-from", "none"]
    driver = cli_process(*command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not all(checkpoint_epoch(runs / name) for name in ("dog", "cat")):
            assert driver.poll() is None and time.monotonic() < deadline, "no checkpoint of both classes"
            time.sleep(0.2)
        workers = [status(runs, name)["pid"] for name in ("dog", "cat")]
    finally:
        driver.kill()
        driver.wait()
    deadline = time.monotonic() + 10
    while any(map(running, workers)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(map(running, workers)), "a worker outlived its driver"
    killed_at = {name: checkpoint_epoch(runs / name) for name in ("dog", "cat")}
    assert max(killed_at.values()) < epochs, f"killed too late to resume both: {killed_at}"

    assert cli_process(*command).wait() == 0
    for name in ("dog", "cat"):
        assert_complete(runs / name, epochs)
        assert resumed_at(runs, name) == [killed_at[name]]


def test_a_worker_that_cannot_see_the_run_directory_says_so(real_tree, tmp_path):
    job = ClassJob("dog", open_real_data(real_tree), TINY_GAN, TrainOptions(epochs=1), tmp_path / "runs",
                   session="elsewhere", cpus=1, cwd=str(tmp_path))
    with pytest.raises(UserError, match="must be on storage every node shares"):
        run_job(job)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("options, message", [
    ({"parallel": 0}, "--parallel must be at least 1"),
    ({"executor": "dask"}, "unknown executor 'dask'"),
    ({"gpus_per_class": 2, "executor": "ray"}, "MirroredStrategy"),
    ({"slurm_time": "soon", "executor": "slurm"}, "is not a Slurm time"),
    ({"slurm_options": ("account",), "executor": "slurm"}, "must be KEY=VALUE"),
    ({"slurm_partition": "gpu"}, "are for --executor slurm"),
    ({"address": "auto"}, "--address is for --executor ray"),
])
def test_executor_options_are_checked_before_any_work(options, message):
    with pytest.raises(UserError, match=re.escape(message)):
        ExecutorOptions(**options).validate()


def test_slurm_time_reads_sbatch_formats():
    minutes = {text: ExecutorOptions(executor="slurm", slurm_time=text).slurm_minutes()
               for text in ("90", "1:30", "2:00:00", "1-0", "1-02:03", "0:0:30")}
    assert minutes == {"90": 90, "1:30": 2, "2:00:00": 120, "1-0": 1440, "1-02:03": 1563, "0:0:30": 1}


def test_a_missing_extra_is_named(monkeypatch, real_tree, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    result = CliRunner().invoke(app, ["train", "--class", "dog", "--data", str(real_tree), "--runs",
                                      str(tmp_path / "runs"), *TINY_GAN_CLI, "--executor", "ray"])
    assert_user_error(result, "pip install 'cifar-synth[ray]'")


# Ray: the local cluster of conftest's `ray_cluster` fixture.

@pytest.mark.slow
def test_ray_trains_two_classes_into_one_runs_directory_resumably(ray_cluster, real_tree, tmp_path):
    runs = tmp_path / "runs"
    train(real_tree, runs, ["dog", "cat"], 2, executor="ray", cpus_per_class=1)
    for name in ("dog", "cat"):
        assert_complete(runs / name, 2)
        assert status(runs, name)["attempt"] == 1

    train(real_tree, runs, ["dog", "cat"], 3, executor="ray", cpus_per_class=1)
    for name in ("dog", "cat"):
        assert_complete(runs / name, 3)
        assert resumed_at(runs, name) == [2]
    assert ray_cluster.is_initialized(), "a cluster the caller started is left running"


@pytest.mark.slow
def test_ray_retries_a_killed_worker_which_resumes_from_its_checkpoint(ray_cluster, real_tree, tmp_path):
    runs = tmp_path / "runs"
    killed = kill_when(runs, "dog", epochs_done=2, sig=signal.SIGKILL)
    train(real_tree, runs, ["dog"], 6, executor="ray", cpus_per_class=1)
    killed["join"]()

    assert killed["epoch"] >= 2
    assert resumed_at(runs, "dog") == [killed["epoch"]]
    assert status(runs, "dog")["attempt"] == 2 and status(runs, "dog")["pid"] != killed["pid"]
    assert_complete(runs / "dog", 6)


# Slurm through submitit: its local executor runs the same job array as real subprocesses.

@pytest.mark.slow
def test_slurm_array_trains_classes_and_requeues_a_preempted_one_which_resumes(real_tree, tmp_path):
    pytest.importorskip("submitit", reason="the Slurm tests need the slurm extra")
    runs = tmp_path / "runs"
    # SIGUSR2 is what Slurm sends a job before its time limit or on preemption (submitit asks for it).
    preempted = kill_when(runs, "dog", epochs_done=2, sig=signal.SIGUSR2)
    train(real_tree, runs, ["dog", "cat"], 5, executor="slurm", slurm_cluster="local", slurm_time="10")
    preempted["join"]()

    for name in ("dog", "cat"):
        assert_complete(runs / name, 5)
    assert resumed_at(runs, "dog") == [preempted["epoch"]]
    assert status(runs, "dog")["attempt"] == 2 and status(runs, "cat")["attempt"] == 1


def test_slurm_where_there_is_none_names_what_is_missing_and_the_other_executors(monkeypatch, real_tree, tmp_path):
    pytest.importorskip("submitit", reason="the Slurm tests need the slurm extra")
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, no srun
    result = CliRunner().invoke(app, ["train", "--class", "dog", "--data", str(real_tree), "--runs",
                                      str(tmp_path / "runs"), *TINY_GAN_CLI, "--executor", "slurm"])
    assert_user_error(result, "--executor slurm needs Slurm's sbatch and srun, not found on PATH")
    assert_user_error(result, "use --executor local (this machine) or --executor ray")
    assert not (tmp_path / "runs").exists()


def test_an_interrupted_driver_names_the_slurm_jobs_that_keep_running(tmp_path):
    class Interrupted:  # an engine whose jobs outlive the driver, as SlurmArray's do
        def submit(self, jobs):
            pass

        def poll(self):
            raise KeyboardInterrupt

        def close(self):
            return _left_running(["1234_0", "1234_1", "1234_2", "1234_5"])

    job = ClassJob("dog", None, TINY_GAN, TrainOptions(epochs=1), tmp_path, "s", 1, str(tmp_path))
    warnings = io.StringIO()
    with pytest.raises(KeyboardInterrupt):
        drive(Interrupted(), [[job]], Reporter(quiet=True, err_console=Console(file=warnings, width=200)))
    assert "Slurm jobs 1234_[0-2,5] keep running; rerun to follow them or scancel 1234" in warnings.getvalue()
    assert _left_running(["1234"]) == "Slurm job 1234 keeps running; rerun to follow it or scancel 1234"


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A real one-node Slurm of this machine (munged, slurmctld, slurmd), every file of it in a temporary folder,
    on free loopback ports, without accounting (no slurmdbd); `SLURM_CONF` points the Slurm commands at it."""
    missing = [name for name in ("munged", "slurmctld", "slurmd", "sbatch", "sinfo") if shutil.which(name) is None]
    if missing:
        pytest.skip(f"no Slurm on this machine ({', '.join(missing)} not found; apt-get install slurm-wlm munge)")
    if os.geteuid() != 0:
        pytest.skip("a test Slurm needs root: slurmd starts jobs as their users")
    root = tmp_path_factory.mktemp("slurm")
    for name in ("state", "spool", "munge"):
        (root / name).mkdir(mode=0o700)
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    socket_path = root / "munge" / "munge.socket"
    ports = [free_port(), free_port()]
    conf = root / "slurm.conf"
    conf.write_text("\n".join([
        "ClusterName=cifarsynthtest", "SlurmctldHost=localhost", "SlurmUser=root",
        f"SlurmctldPort={ports[0]}", f"SlurmdPort={ports[1]}",
        "AuthType=auth/munge", f"AuthInfo=socket={socket_path}",
        f"StateSaveLocation={root / 'state'}", f"SlurmdSpoolDir={root / 'spool'}",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}", f"SlurmdPidFile={root / 'slurmd.pid'}",
        f"SlurmctldLogFile={root / 'slurmctld.log'}", f"SlurmdLogFile={root / 'slurmd.log'}",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "MpiDefault=none",
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core", "ReturnToService=2",
        "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
        f"NodeName=localhost CPUs={os.cpu_count()} State=UNKNOWN",
        "PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP", "",
    ]))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    subprocess.run(["munged", "--force", f"--key-file={key}", f"--socket={socket_path}",
                    f"--pid-file={root / 'munge' / 'munged.pid'}", f"--log-file={root / 'munge' / 'munged.log'}",
                    f"--seed-file={root / 'munge' / 'munged.seed'}"], check=True)
    subprocess.run(["slurmctld"], env=env, check=True)
    subprocess.run(["slurmd"], env=env, check=True)
    os.environ["SLURM_CONF"] = str(conf)
    try:
        deadline = time.monotonic() + 60
        while "idle" not in subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True).stdout:
            if time.monotonic() > deadline:
                pytest.skip(f"the test Slurm did not come up in 60 s (logs in {root})")
            time.sleep(1)
        yield root
    finally:
        # Jobs whose result is in may still be closing their step: cancel, then wait until none is left.
        subprocess.run(["scancel", "--user", str(os.getuid())], env=env)
        deadline = time.monotonic() + 60
        while subprocess.run(["squeue", "-h"], capture_output=True, text=True, env=env).stdout.strip():
            if time.monotonic() > deadline:
                break
            time.sleep(1)
        del os.environ["SLURM_CONF"]
        for pid_file in ("slurmd.pid", "slurmctld.pid", "munge/munged.pid"):
            with contextlib.suppress(OSError, ValueError):
                os.kill(int((root / pid_file).read_text()), signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_real_slurm_array_trains_and_requeues_a_preempted_class(slurm_cluster, real_tree, tmp_path):
    pytest.importorskip("submitit", reason="the Slurm tests need the slurm extra")
    runs = tmp_path / "runs"
    preempted = kill_when(runs, "dog", epochs_done=2, sig=signal.SIGUSR2)
    train(real_tree, runs, ["dog", "cat"], 4, executor="slurm", slurm_time="10", cpus_per_class=1)
    preempted["join"]()

    for name in ("dog", "cat"):
        assert_complete(runs / name, 4)
    assert resumed_at(runs, "dog") == [preempted["epoch"]]
    assert status(runs, "dog")["attempt"] == 2
    assert list((runs / ".cifar-synth" / "slurm").glob("*_submission.sh")), "submitted through sbatch"
