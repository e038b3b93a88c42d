"""host-tune on the shipped MNIST sample: a tiny real search under a budget, its table, plot and best
configuration, resuming after an interruption, a retrain from that configuration with host-train --config,
the cost estimate against Keras and the TFLite converter, and the MLP baseline against the CNN."""

import csv
import json
import shutil

import numpy as np
import pytest

from tests.conftest import MODEL, needs_tf

pytestmark = [needs_tf, pytest.mark.host]

# The tiny search: 3 trials of 1 epoch on the 4,000 sample digits and 300 negatives, batches of 32 so one
# epoch is enough steps to learn something. 30 kB excludes model v2 (45.6 kB), the first candidate of every
# search, so at least one candidate is always rejected.
TINY = [
    "--tuner", "random", "--max-trials", "3", "--epochs-per-trial", "1", "--no-augment",
    "--negatives", "300", "--device-digits", "300", "--batch-size", "32", "--max-kb", "30",
    "--max-macs", "3M", "--seed", "5",
]  # fmt: skip


@pytest.fixture
def sample_data(mnist_sample, monkeypatch):
    """The data seams of host-train, host-tune (host.train.load_mnist) and host-eval serve the sample."""
    import host.evaluate
    import host.train
    from host.data import Dataset

    sample = (
        Dataset(mnist_sample["train_images"], mnist_sample["train_labels"]),
        Dataset(mnist_sample["test_images"], mnist_sample["test_labels"]),
    )
    monkeypatch.setattr(host.train, "load_mnist", lambda _dir: sample)
    monkeypatch.setattr(host.evaluate, "load_mnist", lambda _dir: sample)
    return sample


@pytest.fixture(scope="module")
def search(tmp_path_factory, mnist_sample):
    """The tiny search, run once for the module: (project folder, run()'s result)."""
    import host.train
    from host.data import Dataset
    from host.tune import parse_args, run

    project = tmp_path_factory.mktemp("tune") / "search"
    original = host.train.load_mnist
    host.train.load_mnist = lambda _dir: (
        Dataset(mnist_sample["train_images"], mnist_sample["train_labels"]),
        Dataset(mnist_sample["test_images"], mnist_sample["test_labels"]),
    )
    try:
        result = run(parse_args([*TINY, "--project", str(project)]), verbose=0)
    finally:
        host.train.load_mnist = original
    return project, result


def read_rows(project):
    with open(project / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_search_trains_only_what_fits_and_writes_every_trial(search):
    project, result = search
    rows = read_rows(project)
    trained = [r for r in rows if r["status"] == "trained"]
    rejected = [r for r in rows if r["status"].startswith("over budget")]
    assert [r["trial"] for r in trained] == ["0", "1", "2"]
    for r in trained:
        assert float(r["int8_kb"]) <= 30 and int(r["macs"]) <= 3_000_000, r
        assert 0 <= float(r["val_accuracy"]) <= 1 and float(r["seconds"]) > 0 and r["epochs"] == "1"
    # Model v2 was drawn first and rejected for its size; whatever else was rejected broke a limit too.
    assert rejected[0]["widths"] == "16-32-64" and "> --max-kb 30" in rejected[0]["status"]
    for r in rejected:
        assert float(r["int8_kb"]) > 30 or int(r["macs"]) > 3_000_000, r
        assert r["val_accuracy"] == "" and r["trial"] == "-"
    assert [(r["trial"], r["status"]) for r in result["rows"]] == [(r["trial"], r["status"]) for r in rows]

    table = (project / "results.md").read_text()
    for r in trained:
        assert f"| {r['trial']} | trained | {r['widths']} |" in table
    assert f"Drawn but over the budget, never built or trained ({len(rejected)})" in table
    png = (project / "accuracy_vs_size.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_best_config_is_the_best_trial(search):
    project, result = search
    trained = [r for r in read_rows(project) if r["status"] == "trained"]
    best = max(trained, key=lambda r: float(r["val_accuracy"]))
    config = json.loads((project / "best.json").read_text())
    assert config == result["best"]
    assert config["search"]["trial"] == best["trial"]
    assert config["search"]["val_accuracy"] == float(best["val_accuracy"])
    assert config["train"]["widths"] == best["widths"].replace("-", ",")
    assert config["train"]["kernels"] == best["kernels"].replace("-", ",")
    assert config["train"]["learning_rate"] == float(best["learning_rate"])
    assert config["search"]["int8_kb_estimated"] <= 30


def test_retrain_from_best_config(search, sample_data, tmp_path):
    """host-train --config best.json builds and trains exactly the best trial's architecture."""
    import keras

    from host.train import parse_args, run

    project, result = search
    config = result["best"]
    out = tmp_path / "final" / "digits.keras"
    quick = ["--negatives", "200", "--device-digits", "200", "--no-augment"]
    args = parse_args(["--config", str(project / "best.json"), "--out", str(out), *quick])
    assert args.widths == tuple(int(w) for w in config["train"]["widths"].split(","))
    assert args.epochs == config["train"]["epochs"] and args.dropout == config["train"]["dropout"]
    record = run(args)
    assert record["params"] == config["search"]["params"] and record["macs"] == config["search"]["macs"]
    assert record["settings"]["learning_rate"] == config["train"]["learning_rate"]
    assert record["settings"]["notes"] == {"config": str(project / "best.json")}
    model = keras.models.load_model(out)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    per_stage = list(zip(args.widths, args.convs, args.kernels, strict=True))
    assert [(c.filters, c.kernel_size[0]) for c in convs] == [
        (w, k) for w, n, k in per_stage for _ in range(n)
    ]
    # A flag on the command line wins over the file.
    assert parse_args(["--config", str(project / "best.json"), "--epochs", "7"]).epochs == 7


def test_resume_after_an_interrupted_trial(search, sample_data, tmp_path, monkeypatch):
    """Ctrl-C during a trial, then the same command with more trials: the done trials are kept as they were,
    the interrupted one runs again, and other options are refused."""
    import host.train
    from device.errors import DigitReaderError
    from host.tune import parse_args, run

    project = tmp_path / "search"
    shutil.copytree(search[0], project)
    before = read_rows(project)
    args = parse_args([*TINY, "--project", str(project), "--max-trials", "4"])

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(host.train, "compile_model", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run(args, verbose=0)
    result = run(args, verbose=0)
    trained = [r for r in result["rows"] if r["status"] == "trained"]
    assert [r["trial"] for r in trained] == ["0", "1", "2", "3"]
    after = {r["trial"]: r for r in read_rows(project)}
    for r in before:
        if r["status"] == "trained":
            assert after[r["trial"]] == r  # not trained again

    with pytest.raises(DigitReaderError, match=r"--project .*other options \(--limit None -> 2000\)"):
        run(parse_args([*TINY, "--project", str(project), "--limit", "2000"]), verbose=0)


def test_bayesian_search_keeps_the_gaussian_process_under_the_budget(sample_data, tmp_path):
    """Two random trials, then the Gaussian process proposes the third; a proposal over the budget is
    recorded as such and replaced by a candidate under it."""
    from host.tune import parse_args, run

    argv = [*TINY, "--tuner", "bayesian", "--limit", "1500", "--project", str(tmp_path / "bayes")]
    result = run(parse_args(argv), verbose=0)
    trained = [r for r in result["rows"] if r["status"] == "trained"]
    assert len(trained) == 3
    assert all(float(r["int8_kb"]) <= 30 and r["macs"] <= 3_000_000 for r in trained)
    for r in result["rows"]:
        if r["status"].startswith("over budget"):
            assert float(r["int8_kb"]) > 30 or r["macs"] > 3_000_000, r
    assert result["best"]["search"]["trial"] in {r["trial"] for r in trained}


def test_impossible_budget_is_one_line_before_any_work(tmp_path, capsys):
    from host.tune import main

    code = main(["--max-kb", "1", "--project", str(tmp_path / "p"), "--data-dir", str(tmp_path / "none")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    assert err[0].startswith("host-tune: budget ≤ 6 M MACs, ≤ 1 kB int8 (estimated): no architecture")
    assert "> --max-kb 1" in err[0]
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max-macs", "lots"], "'lots' is not a count like 6000000, 6M or 40k"),
        (["--max-trials", "0"], "--max-trials must be at least 1"),
        (["--validation-fraction", "0"], "--validation-fraction must be in (0, 0.5)"),
    ],
)
def test_bad_tune_arguments(argv, message, capsys):
    from host.tune import parse_args

    with pytest.raises(SystemExit):
        parse_args(argv)
    assert message in capsys.readouterr().err


def test_budget_units_and_the_search_space():
    from host.model import ModelSpec, cost
    from host.tune import Budget, every_architecture, parse_args, spec_of

    args = parse_args(["--max-params", "40k", "--max-macs", "6M", "--max-kb", "0"])
    assert args.budget == Budget(40_000, 6_000_000, None)
    v2 = cost(ModelSpec())
    assert Budget(36_059, 5_532_608, 45.7).violations(v2) == []
    assert Budget(36_000, 5_000_000, 45).violations(v2) == [
        "36,059 params > --max-params 36,000",
        "5.53 M MACs > --max-macs 5.00 M",
        "45.6 kB int8 > --max-kb 45",
    ]
    defaults = {"blocks": 3, "width1": 16, "growth": 2.0, "convs1": 2, "convs2": 2, "convs3": 1}
    defaults.update(
        {"kernel1": 3, "kernel": 3, "dropout": 0.2, "learning_rate": 3e-3, "label_smoothing": 0.1}
    )
    assert spec_of(defaults, 11) == ModelSpec(kernel_sizes=(3, 3, 3))
    specs = list(every_architecture(11))
    assert len(specs) == len(set(specs)) and ModelSpec(dropout=0.0, kernel_sizes=(3, 3, 3)) in specs


@pytest.mark.parametrize(
    ("spec_kwargs", "convert"),
    [
        ({}, True),  # model v2
        ({"stage_widths": (12, 24), "convs_per_stage": (1, 2), "kernel_sizes": (5, 3)}, False),
        (
            {"stage_widths": (8, 16, 24, 40), "convs_per_stage": (2, 1, 1, 2), "kernel_sizes": (3, 5, 5, 5)},
            True,
        ),
        ({"arch": "mlp"}, True),
        ({"classes": 10, "dropout": 0.0}, False),
    ],
)
def test_cost_agrees_with_keras_and_the_converter(spec_kwargs, convert):
    """cost() counts what Keras counts, and its int8 size is within 3 % of what the converter writes for
    trained-like weights (random, non-zero: an untrained model's zero biases share one buffer)."""
    from host.export import export_tflite
    from host.model import ModelSpec, build_model, cost, count_macs

    spec = ModelSpec(**spec_kwargs)
    model = build_model(spec)
    estimate = cost(spec)
    assert estimate.params == model.count_params()
    assert estimate.macs == count_macs(model)
    if convert:
        rng = np.random.default_rng(0)
        for layer in model.layers:
            layer.set_weights([rng.uniform(0.1, 1.0, w.shape).astype(w.dtype) for w in layer.get_weights()])
        calibration = rng.random((10, 28, 28, 1)).astype(np.float32)
        real = len(export_tflite(model, "int8", calibration))
        assert abs(estimate.int8_bytes - real) / real < 0.03, (estimate.int8_bytes, real)


def test_mlp_baseline_learns_in_one_epoch_and_is_compared_with_the_cnn(
    mnist_sample, sample_data, tmp_path, capsys
):
    """The article's fully-connected baseline passes 90 % on held-apart digits after one epoch, and host-eval
    sets it beside the shipped CNN on the same digits."""
    import keras

    from host.data import Dataset
    from host.evaluate import parse_args, run
    from host.train import TrainSettings, history_path, train

    # The article's baseline: 10 digits, no dropout, one pass over the 4,000 sample digits in batches of 8
    # (500 steps; measured 0.913-0.922 on the 1,000 test digits over seeds 7-9, 0.86-0.89 in batches of 32).
    data = Dataset(mnist_sample["train_images"], mnist_sample["train_labels"])
    settings = TrainSettings(arch="mlp", epochs=1, batch_size=8, seed=7, classes=10, dropout=0.0, negatives=0)
    model, _ = train(data, Dataset(data.images[:0], data.labels[:0]), settings, verbose=0)
    layers = [type(layer).__name__ for layer in model.layers]
    assert layers == ["InputLayer", "Flatten", "Dense", "Dropout", "Dense"]
    assert model.count_params() == 784 * 128 + 128 + 128 * 10 + 10
    path = tmp_path / "mlp.keras"
    model.save(path)
    history_path(path).write_text(json.dumps({"params": model.count_params(), "macs": 101_632}))

    mlp, cnn = run(
        parse_args(
            ["--model", str(path), "--model", str(MODEL),
             "--report-dir", str(tmp_path / "rep")]
        )
    )  # fmt: skip
    assert len(mlp.labels) == len(cnn.labels) == 1000
    assert mlp.accuracy > 0.90, mlp.accuracy
    assert cnn.accuracy > mlp.accuracy
    out = capsys.readouterr().out
    assert "side by side on MNIST test (1000 digits)" in out
    assert "101,770" in out and "36,059" in out  # from the training record and from the model card
    right_mlp, right_cnn = mlp.labels == mlp.predictions, cnn.labels == cnn.predictions
    both, only_mlp = int(np.sum(right_mlp & right_cnn)), int(np.sum(right_mlp & ~right_cnn))
    assert f"both right {both}, only mlp.keras {only_mlp}, only digits_int8.tflite" in out
    assert isinstance(keras.models.load_model(path).layers[1], keras.layers.Flatten)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read (No such file or directory)"),
        ("nope", "not JSON"),
        ('{"widths": "16,32,64"}', 'must be a JSON object with a "train" object'),
        ('{"train": {"width": "16"}}', "unknown key 'width' in \"train\" (allowed: arch, widths,"),
        ('{"train": {"dropout": "x"}}', "dropout must be float, got 'x'"),
        ('{"train": {"epochs": 2.5}}', "epochs must be int, got 2.5"),
        ('{"train": {"widths": [16, "a"]}}', 'widths must be a list of integers or a string like "16,32,64"'),
        ('{"train": {"kernels": [3, 4, 3]}}', "--kernels (3, 4, 3) (from --config"),
    ],
)
def test_bad_config_file_is_one_error_line(content, message, tmp_path, capsys):
    from host.train import parse_args

    path = tmp_path / "best.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--config", str(path)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("host-train: error: ") and message in error, error
    assert str(path) in error
