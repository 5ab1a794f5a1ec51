"""Smoke tests of the benchmark harness: the hobby reference, the FLOP counter, the results file."""

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import _common  # noqa: E402
from cifar_synth.classes import CIFAR10  # noqa: E402
from cifar_synth.executors.job import STATE_DIR, start_session  # noqa: E402
from conftest import ODD, TINY_GAN_CLI, write_odd_tree  # noqa: E402
import hobby_recipe  # noqa: E402
import kill_export  # noqa: E402
import kill_resume  # noqa: E402
import quality_curve  # noqa: E402
import quality_protocol  # noqa: E402
import throughput  # noqa: E402


def test_hobby_models_have_the_described_shapes():
    generator, discriminator, stacked = hobby_recipe.build_hobby_models()
    assert generator.input_shape == (None, 100)
    assert generator.output_shape == (None, 32, 32, 3)
    assert discriminator.input_shape == (None, 32, 32, 3)
    assert discriminator.output_shape == (None, 1)
    assert stacked.output_shape == (None, 1)
    transposed = [layer for layer in generator.layers if type(layer).__name__ == "Conv2DTranspose"]
    assert [(layer.filters, layer.strides) for layer in transposed] == [(128, (2, 2))] * 3
    convs = [layer.filters for layer in discriminator.layers if type(layer).__name__ == "Conv2D"]
    assert convs == [64, 128, 128, 256]


def test_train_hobby_writes_a_loadable_run(tmp_path):
    import keras

    images = np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    seen = []
    config = hobby_recipe.train_hobby(images, tmp_path / "cat", steps=2, seed=1,
                                      on_step=lambda step, logs: seen.append((step, sorted(logs))))
    assert seen == [(1, ["d_loss", "g_loss"]), (2, ["d_loss", "g_loss"])]

    run = tmp_path / "cat"
    saved = json.loads((run / "config.json").read_text())
    assert saved == config
    assert saved["recipe"] == "hobby" and saved["class_name"] == "cat" and saved["latent_dim"] == 100
    assert saved["steps"] == 2 and saved["images_seen"] == 128 and saved["epochs"] == 2

    with open(run / "history.csv") as f:
        history = list(csv.DictReader(f))
    assert [row["epoch"] for row in history] == ["1", "2"]
    assert {"d_loss", "g_loss", "seconds"} <= set(history[0])

    generator = keras.models.load_model(run / "generator.keras", compile=False)
    out = np.asarray(generator(np.random.default_rng(2).standard_normal((3, 100)).astype("float32")))
    assert out.shape == (3, 32, 32, 3)
    assert out.min() >= -1 and out.max() <= 1


def test_hobby_step_trains_d_alone_then_g_alone():
    trainer = hobby_recipe.HobbyTrainer(seed=0)
    real = np.zeros((hobby_recipe.BATCH_SIZE, 32, 32, 3), np.float32)
    trainer.step(real)  # traces all three functions
    d_before = [w.copy() for w in trainer.discriminator.get_weights()]
    g_before = [w.copy() for w in trainer.generator.get_weights()]
    trainer.step(real)
    assert not np.allclose(d_before[0], trainer.discriminator.get_weights()[0])
    assert not np.allclose(g_before[0], trainer.generator.get_weights()[0])


def test_flop_counter_matches_hand_count():
    import keras
    from keras import layers

    inner = keras.Sequential([
        keras.Input((8, 8, 2)),
        layers.Conv2D(4, 3, padding="same"),  # 8·8 outputs × 3·3·2 × 4 = 4608 MACs
        layers.Conv2DTranspose(2, 2, strides=2, padding="same"),  # 8·8 inputs × 2·2 × 4 × 2 = 2048
        layers.Flatten(),
        layers.Dense(5),  # 16·16·2 × 5 = 2560
    ])
    outer = keras.Sequential([keras.Input((8, 8, 2)), inner, layers.Dense(1)])  # + 5
    assert throughput.forward_flops(inner) == 2 * (4608 + 2048 + 2560)
    assert throughput.forward_flops(outer) == 2 * (4608 + 2048 + 2560 + 5)
    # per real image: 64 examples trained (3 passes) + 128 input-gradient passes (2) of a 10-FLOP model
    passes = [(100, 64, "train"), (10, 128, "input_grad")]
    assert throughput.flops_per_real_image(passes, 64) == 100 * 3 + 10 * 2 * 2


def test_publish_results_creates_then_appends(tmp_path):
    path = tmp_path / "docs" / "benchmarks-history.md"
    _common.publish_results("First", "body one", path=path)
    _common.publish_results("Second", "body two", path=path)
    text = path.read_text()
    assert text.startswith("# Benchmark history\n") and text.count("# Benchmark history") == 1
    assert text.index("## First") < text.index("body one") < text.index("## Second") < text.index("body two")
    assert re.search(r"- Commit: `([0-9a-f]+(\+dirty)?|unknown)`", text)
    assert "- Machine: " in text and "cores" in text
    _common.publish_results("Printed only", "body three", append=False, path=path)
    assert "body three" not in path.read_text()


def test_published_results_hold_no_machine_paths():
    text = (f"`/tmp/protocol-3/export`, --data /tmp/cifar/cifar10-jpeg, /root/.cache/x, /home/ann/w, "
            f"{_common.REPO_ROOT}/docs/images/quality-curve.png, WORK/a/b, docs/x")
    assert _common.without_machine_paths(text) == (
        "`WORK/protocol-3/export`, --data WORK/cifar/cifar10-jpeg, WORK/.cache/x, WORK/w, "
        "docs/images/quality-curve.png, WORK/a/b, docs/x")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_run_for_cpu_seconds_waits_for_the_victims_cpu_time_with_its_children():
    busy = "import subprocess, sys; subprocess.Popen([sys.executable, '-c', 'while True: pass']); input()"
    process = subprocess.Popen([sys.executable, "-c", busy], stdin=subprocess.PIPE)
    try:  # the child only waits: the CPU time is its grandchild's
        assert _common.run_for_cpu_seconds(process, 0.3)
        assert _common.cpu_seconds(process.pid) >= 0.3
    finally:
        grandchildren = [int(pid) for task in Path(f"/proc/{process.pid}/task").iterdir()
                         for pid in (task / "children").read_text().split()]
        for pid in grandchildren:
            os.kill(pid, 9)
        process.kill()
        process.wait()
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    assert not _common.run_for_cpu_seconds(done, 60)
    assert _common.cpu_seconds(done.pid) == 0.0


def test_kill_resume_reads_the_phase_from_what_the_kill_left(tmp_path):
    run = tmp_path / "dog"
    (run / "checkpoint").mkdir(parents=True)
    (run / "history.csv").write_text("epoch,images_seen\n1,256\n2,512\n")
    (run / "checkpoint" / "state.json").write_text(json.dumps({"epoch": 2, "images_seen": 512}))
    os.utime(run / "checkpoint" / "state.json", ns=(1, 1))
    (run / "losses.png").touch()
    assert kill_resume.phase_at_kill(run) == "training steps"
    (run / "checkpoint" / ".gan_epoch_0003.tmpk_9x.weights.h5").touch()
    assert kill_resume.phase_at_kill(run) == "saves: writing checkpoint/gan_epoch_0003.weights.h5"
    (run / "checkpoint" / ".gan_epoch_0003.tmpk_9x.weights.h5").unlink()
    with open(run / "history.csv", "a") as file:
        file.write("3,768\n")
    assert kill_resume.phase_at_kill(run) == "saves: between history.csv and the record"
    assert kill_resume.state(run) == {"recorded_epoch": 2, "unrecorded_rows": 1}
    (run / "history.csv").write_text("epoch,images_seen\n1,256\n2,512\n")
    os.utime(run / "losses.png", ns=(0, 0))
    assert kill_resume.phase_at_kill(run) == "saves: after the record"


@pytest.mark.parametrize("threads, expected", [(None, None), (3, "3")])
def test_thread_env(threads, expected, monkeypatch):
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)
    assert _common.thread_env(threads).get("TF_NUM_INTRAOP_THREADS") == expected


def test_protocol_refuses_to_resume_with_other_settings(tmp_path):
    settings = {"recipe": "hobby", "steps_per_class": 4000, "count": 5000, "seed": 0, "data": None}
    pinned = {"threads": 1, "cpus": "0", "parallel": 1}
    protocol = quality_protocol.Protocol(tmp_path, settings, pinned, training=True)
    protocol.record()
    assert quality_protocol.Protocol(tmp_path, settings, pinned, training=True).state["classes"] == {}
    with pytest.raises(quality_protocol.ProtocolError, match="steps_per_class 4000 → 3000"):
        quality_protocol.Protocol(tmp_path, {**settings, "steps_per_class": 3000}, pinned, training=True)
    unpinned = {"threads": None, "cpus": None, "parallel": 1}
    with pytest.raises(quality_protocol.ProtocolError, match="cpus '0' → None"):
        quality_protocol.Protocol(tmp_path, settings, unpinned, training=True)
    # Export and evaluation may use other cores than the training did.
    assert quality_protocol.Protocol(tmp_path, settings, unpinned, training=False).resources == unpinned


def test_protocol_trains_a_shared_start_then_classes_in_parallel_through_cifar_synth_train(real_tree, tmp_path):
    settings = {"recipe": "default", "steps_per_class": 2, "shared_steps": 3, "count": 10, "seed": 0,
                "data": str(real_tree), "train_options": " ".join(TINY_GAN_CLI)}
    protocol = quality_protocol.Protocol(tmp_path, settings, {"threads": 1, "cpus": None, "parallel": 2},
                                         training=True)
    protocol.record()
    protocol.train_all(["cat", "dog"])
    state = quality_protocol.read_state(tmp_path)
    assert state["shared"]["steps"] == 3 and sorted(state["classes"]) == ["cat", "dog"]
    assert state["machine"] == {"cpu_model": _common.cpu_model(), "flags": _common.cpu_flags(),
                                "cores": os.cpu_count()}
    for name in ("cat", "dog"):
        config = json.loads((tmp_path / "runs" / name / "config.json").read_text())
        assert config["sessions"][0]["started_from"]["run"] == "shared"  # relative to the runs folder
        assert state["classes"][name]["steps"] == 2
        assert state["classes"][name]["precision"] == config["gan"]["precision"]


def test_protocol_trains_the_classes_of_a_class_folder_tree(tmp_path, monkeypatch):
    tree = write_odd_tree(tmp_path / "critters")
    argv = ["quality_protocol.py", "--data", str(tree), "--work", str(tmp_path / "work"), "--steps-per-class", "2",
            "--shared-steps", "3", "--stage", "train", "--parallel", "2", "--threads", "1",
            f"--train-options={' '.join(TINY_GAN_CLI)}"]
    monkeypatch.setattr(sys, "argv", argv)
    quality_protocol.main()
    state = quality_protocol.read_state(tmp_path / "work")
    assert state["class_names"] == list(ODD) and sorted(state["classes"]) == sorted(ODD)
    assert state["shared"]["steps"] == 3 and {entry["steps"] for entry in state["classes"].values()} == {2}
    assert quality_protocol.data_argv(state) == ["--data", str(tree.resolve())]
    monkeypatch.setattr(sys, "argv", ["quality_protocol.py", "--recipe", "hobby", "--data", str(tree),
                                      "--work", str(tmp_path / "hobby")])
    with pytest.raises(SystemExit, match="the hobby recipe trains CIFAR-10's classes only; critters has others"):
        quality_protocol.main()


def test_protocol_records_the_classes_that_finished_when_another_failed(tmp_path, monkeypatch):
    settings = {"recipe": "default", "steps_per_class": 4000, "count": 5000, "seed": 0, "data": None}
    protocol = quality_protocol.Protocol(tmp_path, settings, {"threads": 1, "cpus": None, "parallel": 2},
                                         training=True)
    commands = []

    def run_child(argv, threads=None):
        commands.append(argv)
        state_dir = tmp_path / "runs" / STATE_DIR
        (state_dir / "status").mkdir(parents=True)
        session = start_session(state_dir)
        (state_dir / "status" / "cat.json").write_text(json.dumps({"session": session, "state": "done"}))
        # dog failed before it reported in this session: its "done" is an earlier session's
        (state_dir / "status" / "dog.json").write_text(json.dumps({"session": "earlier", "state": "done"}))
        raise quality_protocol.ProtocolError("command failed")

    monkeypatch.setattr(protocol, "run_child", run_child)
    monkeypatch.setattr(quality_protocol, "default_run_stats", lambda run_dir: {"steps": run_dir.name})
    with pytest.raises(quality_protocol.ProtocolError, match="command failed"):
        protocol.train_all(["cat", "dog"])
    (argv,) = commands
    assert argv[argv.index("--parallel") + 1] == "2" and argv[argv.index("--cpus-per-class") + 1] == "1"
    assert quality_protocol.read_state(tmp_path)["classes"] == {"cat": {"steps": "cat"}}


SHARED_START_SETTINGS = {"recipe": "default", "steps_per_class": 4000, "shared_steps": 8000, "count": 5000, "seed": 0,
                         "data": None, "train_options": "--guidance 0.3"}


def finished_protocol(work: Path, resources: dict, marker: str) -> quality_protocol.Protocol:
    """A protocol with the shared-start settings whose shared start and ten classes all trained: each run directory
    holds a file `weights` reading "<name> <marker>"."""
    protocol = quality_protocol.Protocol(work, SHARED_START_SETTINGS, resources, training=True)
    work.mkdir()
    protocol.record("shared", {"steps": 7})
    for name in [quality_protocol.SHARED_START, *CIFAR10.names]:
        (protocol.runs / name).mkdir(parents=True)
        (protocol.runs / name / "weights").write_text(f"{name} {marker}")
        if name != quality_protocol.SHARED_START:
            protocol.record(class_name=name, value={"steps": 1})
    return protocol


def test_protocol_extends_a_finished_protocol_to_more_steps(tmp_path, monkeypatch):
    settings = SHARED_START_SETTINGS
    resources = {"threads": 1, "cpus": None, "parallel": 1}
    source = finished_protocol(tmp_path / "short", resources, "short")
    longer = {**settings, "steps_per_class": 10000, "extends": str(tmp_path / "short")}
    with pytest.raises(quality_protocol.ProtocolError, match="--steps-per-class must exceed that protocol's 4000"):
        quality_protocol.check_extension(source.state, {**longer, "steps_per_class": 4000})
    with pytest.raises(quality_protocol.ProtocolError, match="other train_options"):
        quality_protocol.check_extension(source.state, {**longer, "train_options": ""})

    protocol = quality_protocol.Protocol(tmp_path / "long", longer, resources, training=True)
    commands = []

    def run_child(argv, threads=None):
        commands.append(argv)
        assert (protocol.runs / "cat" / "weights").read_text() == "cat short"  # resumes the copied run
        (protocol.runs / "cat" / "weights").write_text("cat long")

    monkeypatch.setattr(protocol, "run_child", run_child)
    monkeypatch.setattr(quality_protocol, "default_run_stats", lambda run_dir: {"steps": 2})
    protocol.train(["cat"])
    protocol.train(["cat"])  # a rerun starts again from the copy, not from the interrupted attempt
    # The copied run resumes up to the total.
    assert [argv[argv.index("--steps") + 1] for argv in commands] == ["10000", "10000"]
    assert (source.runs / "cat" / "weights").read_text() == "cat short"


def test_protocol_with_a_budget_in_minutes_extends_for_the_difference(tmp_path):
    source = {"recipe": "default", "minutes_per_class": 4.8, "shared_minutes": 12.0, "budget_clock": "cpu"}
    (tmp_path / "protocol.json").write_text(json.dumps(source))
    longer = {**source, "minutes_per_class": 13.8, "extends": str(tmp_path)}
    assert quality_protocol.budget_argv(longer, shared=False) == ["--minutes", "9", "--budget-clock", "cpu"]
    with pytest.raises(quality_protocol.ProtocolError, match="that protocol has no --steps-per-class budget"):
        quality_protocol.check_extension({**source, "classes": dict.fromkeys(CIFAR10.names)},
                                         {**SHARED_START_SETTINGS, "steps_per_class": 10000})


@pytest.mark.parametrize("options, message", [
    (["--steps-per-class", "2", "--minutes-per-class", "1"], "not both"),
    (["--budget-clock", "cpu"], "go with a budget in minutes"),
    (["--recipe", "hobby", "--shared-steps", "3"], "apply to the default recipe"),
])
def test_protocol_refuses_budgets_that_do_not_fit_together(tmp_path, monkeypatch, capsys, options, message):
    monkeypatch.setattr(sys, "argv", ["quality_protocol.py", "--work", str(tmp_path), *options])
    with pytest.raises(SystemExit, match=message):
        quality_protocol.main()
    assert not (tmp_path / "protocol.json").exists()


def test_protocol_replicates_a_finished_protocol_retraining_only_the_named_classes(tmp_path, monkeypatch):
    settings = SHARED_START_SETTINGS
    resources = {"threads": 1, "cpus": None, "parallel": 2}
    source = finished_protocol(tmp_path / "seed0", resources, "seed 0")
    replicate = {**settings, "seed": 1, "replicates": str(tmp_path / "seed0"), "retrained": ["cat", "dog"]}
    with pytest.raises(quality_protocol.ProtocolError, match="another --seed than that protocol's 0"):
        quality_protocol.check_replication(source.state, {**replicate, "seed": 0})
    with pytest.raises(quality_protocol.ProtocolError, match=r"not tiger"):
        quality_protocol.check_replication(source.state, {**replicate, "retrained": ["cat", "tiger"]})
    with pytest.raises(quality_protocol.ProtocolError, match="other steps_per_class"):
        quality_protocol.check_replication(source.state, {**replicate, "steps_per_class": 5000})

    protocol = quality_protocol.Protocol(tmp_path / "seed1", replicate, resources, training=True)
    protocol.record()
    protocol.reuse_source_runs(tmp_path / "seed0", ["cat", "dog"])
    commands = []
    monkeypatch.setattr(protocol, "run_child", lambda argv, threads=None: commands.append(argv))
    monkeypatch.setattr(quality_protocol, "default_run_stats", lambda run_dir: {"steps": 2})
    protocol.train_all([name for name in CIFAR10.names if name not in protocol.state["classes"]])
    (argv,) = commands  # the shared start is reused, not trained again
    assert [argv[i + 1] for i, option in enumerate(argv) if option == "--class"] == ["cat", "dog"]
    assert argv[argv.index("--seed") + 1] == "1" and argv[argv.index("--init-from") + 1] == "shared"
    assert argv[argv.index("--steps") + 1] == "4000" and argv[argv.index("--shared-steps") + 1] == "8000"
    assert (protocol.runs / "shared" / "weights").read_text() == "shared seed 0"
    assert (protocol.runs / "horse" / "weights").read_text() == "horse seed 0"
    state = quality_protocol.read_state(tmp_path / "seed1")
    assert state["classes"]["horse"] == {"steps": 1, "reused": True} and state["classes"]["cat"] == {"steps": 2}


def test_protocol_stages_run_at_once_keep_each_others_records(tmp_path):
    settings = {"recipe": "default", "steps_per_class": 4000, "count": 5000, "seed": 0, "data": None}
    resources = {"threads": None, "cpus": None, "parallel": 1}
    evaluating = quality_protocol.Protocol(tmp_path, settings, resources, training=False)
    evaluating.record()
    exporting = quality_protocol.Protocol(tmp_path, settings, resources, training=False)
    exporting.record("export_filtered", {"path": "export-filtered"})
    evaluating.record("evaluate", {"report": "report.json"})
    evaluating.record(class_name="cat", value={"steps": 1})
    state = quality_protocol.read_state(tmp_path)
    assert state["export_filtered"] == {"path": "export-filtered"} and state["evaluate"] == {"report": "report.json"}
    assert state["classes"] == {"cat": {"steps": 1}}


def test_default_run_stats_counts_the_partial_last_epoch(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"gan": {"batch_size": 64, "precision": "mixed_bfloat16"},
                                                      "train_images": 5000}))
    (tmp_path / "history.csv").write_text("epoch,seconds,images_seen\n1,10.0,4992\n2,3.5,6400\n")
    assert quality_protocol.default_run_stats(tmp_path) == {
        "steps": 100, "images_seen": 6400, "epochs": round(6400 / 4992, 3), "loop_seconds": 13.5,
        "precision": "mixed_bfloat16"}


def recorded_protocol(tmp_path: Path, name: str, filtered: bool = False) -> Path:
    """A copy of a protocol recorded in benchmarks/results, its report paths pointing into the copy."""
    work = tmp_path / name
    work.mkdir()
    recorded = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / name
    state = json.loads((recorded / "protocol.json").read_text())
    report = json.loads((recorded / "report.json").read_text())
    (work / "report.json").write_text(json.dumps(report))
    state["evaluate"]["report"] = str(work / "report.json")
    if filtered:  # the same figures, as though a filtered export had kept half of twice the candidates
        for entry in report["synthetic"]["manifest"]["classes"]:
            entry["filter"] = {"candidates": 2 * entry["count"], "accepted": entry["count"]}
        (work / "report-filtered.json").write_text(json.dumps(report))
        state["evaluate_filtered"] = {"report": str(work / "report-filtered.json")}
    (work / "protocol.json").write_text(json.dumps(state))
    return work


def test_protocol_results_show_the_filtered_evaluation_as_its_own_column(tmp_path):
    title, body = quality_protocol.results_section(recorded_protocol(tmp_path, "protocol-default", filtered=True))
    assert title == "Quality protocol: default recipe, 6 min per class"
    assert "| figure | default | default, classifier-filtered |" in body
    assert "| CAS: synthetic-trained accuracy on real test | 32.8% | 32.8% |" in body
    assert "| classifier filter: candidates accepted | – | 50.0% |" in body
    assert "| machine (CPU, kernel flags, cores) | not recorded | not recorded |" in body  # before it was recorded

    title, body = quality_protocol.comparison_section(tmp_path / "protocol-default",
                                                      recorded_protocol(tmp_path, "protocol-hobby"))
    assert title == "Quality protocol comparison: default vs hobby"
    assert "| figure | default | default, classifier-filtered | hobby |" in body
    assert "| CAS: synthetic-trained accuracy on real test | 32.8% | 32.8% | 19.1% |" in body
    assert "real-trained acc." not in body


def test_quality_curve_gives_a_replicate_as_its_sources_range_over_training_seeds(tmp_path, monkeypatch, capsys):
    source = recorded_protocol(tmp_path, "protocol-default")
    replicate = recorded_protocol(tmp_path, "protocol-hobby")  # another CAS, standing in for a seed-1 replicate
    state = json.loads((replicate / "protocol.json").read_text())
    (replicate / "protocol.json").write_text(json.dumps({**state, "replicates": str(source)}))
    plot = tmp_path / "curve.png"
    monkeypatch.setattr(sys, "argv", ["quality_curve.py", "--work", str(source), str(replicate), "--plot", str(plot),
                                      "--no-append"])
    quality_curve.main()
    rows = [line for line in capsys.readouterr().out.splitlines() if "| 6 min |" in line]
    assert len(rows) == 1 and "| 32.8%, 19.1% (13.7 points) |" in rows[0]  # one point, both training seeds
    assert plot.stat().st_size > 0

    (replicate / "protocol.json").write_text(json.dumps({**state, "replicates": str(tmp_path / "elsewhere")}))
    with pytest.raises(SystemExit, match="which is not a --work"):
        quality_curve.main()


@pytest.mark.slow
def test_kill_resume_proof_loses_no_finished_epoch(real_tree, tmp_path):
    proof = kill_resume.prove(real_tree, tmp_path / "runs", images=16, kills=1, epochs=10, max_delay=1.5, seed=0)
    assert proof.problems == [] and len(proof.kills) == 1
    assert "is in use by process" in proof.refusal


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_kill_export_proof_always_leaves_a_whole_export(runs, tmp_path):
    proof = kill_export.prove(runs, tmp_path, kills=1, count=20, seed=0)
    assert proof.passed, proof
    assert len(proof.rows) == 1
