"""host-tune: search the compact CNN's family (stages, widths, convs, kernel sizes, dropout, learning rate,
label smoothing, epochs) with Keras Tuner for the best validation accuracy that fits a size and speed budget.

Candidates over ``--max-params``, ``--max-macs`` or ``--max-kb`` (the estimated int8 .tflite size) are
rejected before they are built or trained. Trials are scored on the validation split only, never on the test
set. Every trial goes to ``results.csv`` and ``results.md`` in ``--project``, with a scatter plot of accuracy
against size and ``best.json`` for ``host-train --config``; all are rewritten after each trial. Running the
same command again resumes an interrupted search.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import logging
import math
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.errors import DigitReaderError
from device.safeio import save_atomically
from host.cli import run_command, summary
from host.model import Cost, ModelSpec, cost
from host.report import machine, write_section
from host.train import TrainSettings, device_digits_for, load_training_data

log = logging.getLogger(__name__)

# The search space. The defaults are model v2 (16-32-64, convs 2-2-1, 3x3, dropout 0.2, rate 3e-3,
# smoothing 0.1), and the first candidate of every search is that default, so the table always shows the
# shipped architecture trained the same way as the others.
BLOCKS = (2, 3, 4)
FIRST_WIDTHS = (8, 12, 16, 24, 32)
GROWTHS = (1.5, 2.0)
KERNELS = (3, 5)
SMOOTHING = (0.0, 0.05, 0.1)
TUNERS = ("hyperband", "bayesian", "random")
MAX_DRAWS = 500  # random candidates drawn per trial before giving up on finding one under the budget


def declare(hp) -> dict:
    """Register the search space on a Keras Tuner ``HyperParameters`` and return this trial's values
    (stages beyond ``blocks`` are conditional, so they are absent rather than ignored)."""
    values = {
        "blocks": hp.Choice("blocks", BLOCKS, default=3),
        "width1": hp.Choice("width1", FIRST_WIDTHS, default=16),
        "growth": hp.Choice("growth", GROWTHS, default=2.0),
        "convs1": hp.Choice("convs1", (1, 2), default=2),
        "convs2": hp.Choice("convs2", (1, 2), default=2),
    }
    for stage in (3, 4):
        with hp.conditional_scope("blocks", [b for b in BLOCKS if b >= stage]):
            values[f"convs{stage}"] = hp.Choice(f"convs{stage}", (1, 2), default=1)
    values["kernel1"] = hp.Choice("kernel1", KERNELS, default=3)  # the first stage sees raw strokes
    values["kernel"] = hp.Choice("kernel", KERNELS, default=3)  # every later stage
    values["dropout"] = hp.Float("dropout", 0.0, 0.4, step=0.1, default=0.2)
    values["learning_rate"] = hp.Float("learning_rate", 1e-3, 1e-2, sampling="log", default=3e-3)
    values["label_smoothing"] = hp.Choice("label_smoothing", SMOOTHING, default=0.1)
    return values


def widths_of(width1: int, growth: float, blocks: int) -> tuple[int, ...]:
    """Stage widths growing by ``growth``, rounded to multiples of 4 (whole SIMD lanes for int8 kernels)."""
    return tuple(max(4, 4 * round(width1 * growth**i / 4)) for i in range(blocks))


def spec_of(values: dict, classes: int) -> ModelSpec:
    """The ModelSpec a set of search values describes."""
    blocks = int(values["blocks"])
    return ModelSpec(
        stage_widths=widths_of(int(values["width1"]), float(values["growth"]), blocks),
        convs_per_stage=tuple(int(values[f"convs{i + 1}"]) for i in range(blocks)),
        dropout=round(float(values["dropout"]), 3),
        classes=classes,
        kernel_sizes=(int(values["kernel1"]),) + (int(values["kernel"]),) * (blocks - 1),
    )


def every_architecture(classes: int):
    """Every distinct architecture in the space (dropout does not change the cost)."""
    for blocks in BLOCKS:
        for width1 in FIRST_WIDTHS:
            for growth in GROWTHS:
                for convs in np.ndindex(*(2,) * blocks):
                    for kernel1 in KERNELS:
                        for kernel in KERNELS:
                            values = {"blocks": blocks, "width1": width1, "growth": growth, "dropout": 0.0}
                            values.update({f"convs{i + 1}": c + 1 for i, c in enumerate(convs)})
                            values.update({"kernel1": kernel1, "kernel": kernel})
                            yield spec_of(values, classes)


@dataclass(frozen=True)
class Budget:
    """Upper limits on a candidate's cost; None is no limit."""

    max_params: int | None = None
    max_macs: int | None = None
    max_kb: float | None = None

    def violations(self, c: Cost) -> list[str]:
        """What ``c`` breaks, one phrase per limit, e.g. "7.21 M MACs > --max-macs 6.00 M"."""
        out = []
        if self.max_params is not None and c.params > self.max_params:
            out.append(f"{c.params:,} params > --max-params {self.max_params:,}")
        if self.max_macs is not None and c.macs > self.max_macs:
            out.append(f"{c.macs / 1e6:.2f} M MACs > --max-macs {self.max_macs / 1e6:.2f} M")
        if self.max_kb is not None and c.int8_kb > self.max_kb:
            out.append(f"{c.int8_kb:.1f} kB int8 > --max-kb {self.max_kb:g}")
        return out

    def describe(self) -> str:
        parts = []
        if self.max_params is not None:
            parts.append(f"≤ {self.max_params:,} params")
        if self.max_macs is not None:
            parts.append(f"≤ {self.max_macs / 1e6:g} M MACs")
        if self.max_kb is not None:
            parts.append(f"≤ {self.max_kb:g} kB int8 (estimated)")
        return ", ".join(parts) or "no budget"


def check_feasible(budget: Budget, classes: int) -> int:
    """How many architectures of the space fit the budget; DigitReaderError naming the budget and the
    cheapest architecture when none does (checked before any data is loaded)."""
    specs = list(every_architecture(classes))
    costs = [cost(s) for s in specs]
    fitting = sum(not budget.violations(c) for c in costs)
    if not fitting:
        cheapest = min(range(len(specs)), key=lambda i: (costs[i].params, costs[i].macs))
        c = costs[cheapest]
        raise DigitReaderError(
            f"budget {budget.describe()}: no architecture of the search space fits; the smallest, widths "
            f"{dash(specs[cheapest].stage_widths)}, has {c.params:,} params, {c.macs / 1e6:.2f} M MACs and "
            f"{c.int8_kb:.1f} kB int8 ({'; '.join(budget.violations(c))})"
        )
    log.info("budget %s: %d of %d architectures in the space fit", budget.describe(), fitting, len(specs))
    return fitting


def dash(values) -> str:
    return "-".join(str(v) for v in values)


def describe(spec: ModelSpec, values: dict) -> str:
    return (
        f"widths {dash(spec.stage_widths)}, convs {dash(spec.convs_per_stage)}, "
        f"kernels {dash(spec.kernels)}, dropout {spec.dropout:g}, rate {float(values['learning_rate']):.4f}, "
        f"smoothing {float(values['label_smoothing']):g}"
    )


class Ledger:
    """What Keras Tuner does not keep: seconds and status per trial, and the candidates rejected before
    training. A JSON file in the project folder, rewritten after each trial, so a resumed search keeps it."""

    def __init__(self, path: Path):
        self.path = path
        self.trials: dict[str, dict] = {}
        self.rejected: list[dict] = []
        self.runs: list[dict] = []  # wall seconds and trials trained, per run of the command
        if path.is_file():
            state = json.loads(path.read_text())
            self.trials, self.rejected, self.runs = state["trials"], state["rejected"], state.get("runs", [])

    def save(self) -> None:
        state = {"trials": self.trials, "rejected": self.rejected, "runs": self.runs}
        text = json.dumps(state, indent=1)
        save_atomically(self.path, lambda p: p.write_text(text))


def budgeted_oracle(base, budget: Budget, classes: int, ledger: Ledger):
    """An instance of oracle class ``base`` that draws only candidates under the budget: each random draw
    over it is recorded in the ledger (and marked as tried, so it is not drawn again) and drawn again."""

    class BudgetedOracle(base):
        def _reject(self, values: dict, how: str = "") -> bool:
            """Record ``values`` as rejected (True) when they are over the budget."""
            spec = spec_of(values, classes)
            problems = budget.violations(cost(spec))
            if problems:
                self._tried_so_far.add(self._compute_values_hash(values))
                ledger.rejected.append({"values": values, "reason": "; ".join(problems) + how})
                ledger.save()  # the oracle saves its record of them now too, at the trial's creation
                log.info(
                    "over budget, not trained: %s (%s%s)", describe(spec, values), "; ".join(problems), how
                )
            return bool(problems)

        def _random_values(self):
            for _ in range(MAX_DRAWS):
                values = self._v2_first() or super()._random_values()
                if values is None:  # the space is exhausted
                    return None
                if not self._reject(values):
                    return values
            raise DigitReaderError(
                f"budget {budget.describe()}: none of {MAX_DRAWS} candidates drawn in a row fits; "
                "raise the budget"
            )

        def populate_space(self, trial_id):
            response = super().populate_space(trial_id)
            values = response.get("values") or {}
            # The Bayesian oracle's Gaussian process proposes without drawing and knows nothing of the budget:
            # a proposal over it is recorded and replaced by a random candidate under it. (Hyperband's
            # continued trials, with tuner/ keys, were under the budget when first drawn.)
            proposed = response["status"] == "RUNNING" and "tuner/epochs" not in values
            if proposed and self._reject(values, " (proposed by the Gaussian process)"):
                values = self._random_values()
                response = {"status": "RUNNING", "values": values} if values else {"status": "STOPPED"}
            return response

        def _v2_first(self):
            """Model v2's values (the space's defaults) as the very first candidate."""
            if self.trials or ledger.rejected or getattr(self, "_v2_offered", False):
                return None
            self._v2_offered = True
            return {hp.name: hp.default for hp in self.hyperparameters.space if hp.name in _V2_NAMES}

    return BudgetedOracle


_V2_NAMES = ("blocks", "width1", "growth", "convs1", "convs2", "convs3", "kernel1", "kernel")
_V2_NAMES += ("dropout", "learning_rate", "label_smoothing")


def make_tuner(
    args: argparse.Namespace, budget: Budget, classes: int, ledger: Ledger, steps: int, verbose: int | None
):
    """A Keras Tuner tuner of kind ``args.tuner`` over the CNN family, its oracle budget-aware."""
    import keras_tuner as kt
    from keras_tuner.src.tuners.bayesian import BayesianOptimizationOracle
    from keras_tuner.src.tuners.hyperband import HyperbandOracle
    from keras_tuner.src.tuners.randomsearch import RandomSearchOracle

    from host.model import build_model
    from host.train import compile_model, set_seeds

    objective = kt.Objective("val_accuracy", "max")
    if verbose is None:  # a progress bar on a terminal, one line per epoch in a log file
        verbose = 1 if sys.stderr.isatty() else 2
    base_settings = TrainSettings(batch_size=args.batch_size, seed=args.seed)

    class CnnFamily(kt.HyperModel):
        def build(self, hp):
            set_seeds(args.seed)  # the same initial weights for the same architecture, trial after trial
            return build_model(spec_of(declare(hp), classes))

        def fit(self, hp, model, *fit_args, epochs=1, initial_epoch=0, **kwargs):
            kwargs.pop("verbose", None)
            settings = dataclasses.replace(
                base_settings,
                learning_rate=float(hp.get("learning_rate")),
                label_smoothing=float(hp.get("label_smoothing")),
            )
            # A Hyperband trial that continues an earlier one restarts the cosine schedule over its own
            # epochs (a warm restart), as compile_model's schedule cannot be resumed half-way.
            compile_model(model, settings, steps * (epochs - initial_epoch))
            return model.fit(*fit_args, epochs=epochs, initial_epoch=initial_epoch, verbose=verbose, **kwargs)

    if args.tuner == "hyperband":
        oracle_class, tuner_class = HyperbandOracle, kt.Hyperband
        # No fixed number of iterations: --max-trials ends the search.
        oracle_kwargs = {"max_epochs": args.epochs_per_trial, "factor": 3, "hyperband_iterations": None}
    elif args.tuner == "bayesian":
        try:
            import sklearn  # noqa: F401  (Keras Tuner's Gaussian process)
        except ImportError:
            raise DigitReaderError(
                "--tuner bayesian: needs scikit-learn (pip install scikit-learn, or the host extra)"
            ) from None
        oracle_class, tuner_class = BayesianOptimizationOracle, kt.Tuner
        # A third of the trials random (at least 2, at most 10) before the Gaussian process proposes.
        oracle_kwargs = {
            "max_trials": args.max_trials,
            "num_initial_points": max(2, min(10, args.max_trials // 3)),
        }
    else:
        oracle_class, tuner_class = RandomSearchOracle, kt.Tuner
        oracle_kwargs = {"max_trials": args.max_trials}
    oracle = budgeted_oracle(oracle_class, budget, classes, ledger)(
        objective=objective,
        seed=args.seed,
        # Any error inside a trial is a bug to show, not a trial to skip (see run_trial).
        max_consecutive_failed_trials=1,
        **oracle_kwargs,
    )
    oracle.max_trials = args.max_trials  # Hyperband's oracle takes no max_trials, but create_trial obeys it

    class BudgetedTuner(tuner_class):
        def __init__(self):
            # kt.Tuner's own __init__ takes the oracle as given (Hyperband's would build a plain one).
            kt.Tuner.__init__(
                self,
                oracle=oracle,
                hypermodel=CnnFamily(),
                directory=str(Path(args.project).parent),
                project_name=Path(args.project).name,
                overwrite=False,
            )

        def _configure_tensorboard_dir(self, callbacks, trial, execution=0):
            # Keras Tuner imports tensorboard here even without a TensorBoard callback; none is passed.
            pass

        def run_trial(self, trial, *fit_args, **fit_kwargs):
            values = trial.hyperparameters.values
            spec = spec_of(values, classes)
            problems = budget.violations(cost(spec))
            epochs = int(values.get("tuner/epochs", args.epochs_per_trial))
            entry = {"epochs": epochs, "continues": values.get("tuner/trial_id")}
            log.info(
                "trial %s (%d of at most %d): %s, %d epoch(s)%s",
                trial.trial_id,
                len(self.oracle.trials),
                args.max_trials,
                describe(spec, values),
                epochs,
                f" (continues trial {entry['continues']})" if entry["continues"] else "",
            )
            if problems:
                # Only the Bayesian oracle proposes without drawing; its worst score steers it away.
                ledger.trials[trial.trial_id] = {
                    **entry,
                    "status": "over budget",
                    "reason": "; ".join(problems),
                    "seconds": 0.0,
                }
                ledger.save()
                log.info("trial %s: over budget, not trained (%s)", trial.trial_id, "; ".join(problems))
                return {"val_accuracy": 0.0}
            started = time.monotonic()
            try:
                result = super().run_trial(trial, *fit_args, **fit_kwargs)
            except Exception as exc:
                raise kt.errors.FatalError(f"trial {trial.trial_id} failed: {exc!r}") from exc
            ledger.trials[trial.trial_id] = {
                **entry,
                "status": "trained",
                "seconds": round(time.monotonic() - started, 1),
            }
            ledger.save()
            return result

        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            entry = ledger.trials.get(trial.trial_id, {})
            if entry.get("status") == "trained":
                best = self.oracle.get_best_trials(1)[0]
                log.info(
                    "trial %s: val accuracy %.4f in %.0f s; best so far %.4f (trial %s)",
                    trial.trial_id,
                    trial.score,
                    entry["seconds"],
                    best.score,
                    best.trial_id,
                )
            write_outputs(Path(args.project), self.oracle, ledger, budget, classes, args)

    return BudgetedTuner()


# --- results: table, plot, best configuration -------------------------------------------------------------

COLUMNS = (
    "trial",
    "status",
    "widths",
    "convs",
    "kernels",
    "dropout",
    "learning_rate",
    "label_smoothing",
    "epochs",
    "continues",
    "params",
    "macs",
    "int8_kb",
    "val_accuracy",
    "seconds",
)


def rows_of(oracle, ledger: Ledger, classes: int) -> list[dict]:
    """One row per trial in start order, then one per candidate rejected before training."""
    rows = []
    for trial_id in oracle.start_order:
        trial = oracle.trials[trial_id]
        values = trial.hyperparameters.values
        entry = ledger.trials.get(trial_id, {})
        status = entry.get("status") or ("running" if trial.status == "RUNNING" else trial.status.lower())
        if status == "trained" and trial.score is None:
            status = "interrupted"
        score = trial.score if status == "trained" else None
        rows.append(row(trial_id, status, values, classes, entry, score, entry.get("reason")))
    for rejected in ledger.rejected:
        rows.append(row("-", "over budget", rejected["values"], classes, {}, None, rejected["reason"]))
    return rows


def row(trial_id, status, values, classes, entry, score, reason=None) -> dict:
    spec = spec_of(values, classes)
    c = cost(spec)
    return {
        "trial": trial_id,
        "status": status if reason is None else f"{status}: {reason}",
        "widths": dash(spec.stage_widths),
        "convs": dash(spec.convs_per_stage),
        "kernels": dash(spec.kernels),
        "dropout": f"{spec.dropout:g}",
        "learning_rate": f"{float(values['learning_rate']):.5f}",
        "label_smoothing": f"{float(values['label_smoothing']):g}",
        "epochs": entry.get("epochs", ""),
        "continues": entry.get("continues") or "",
        "params": c.params,
        "macs": c.macs,
        "int8_kb": f"{c.int8_kb:.1f}",
        "val_accuracy": "" if score is None else f"{score:.4f}",
        "seconds": entry.get("seconds", ""),
    }


def best_row(rows: list[dict]) -> dict | None:
    """The trained trial with the best validation accuracy; a tie goes to the smaller model."""
    trained = [r for r in rows if r["status"] == "trained" and r["val_accuracy"]]
    return max(trained, key=lambda r: (float(r["val_accuracy"]), -float(r["int8_kb"])), default=None)


def markdown_table(rows: list[dict]) -> str:
    trained = [r for r in rows if r["trial"] != "-"]
    lines = [
        "| trial | status | widths | convs | kernels | dropout | rate | smoothing | epochs | params | M MACs "
        "| int8 kB | val accuracy | s |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in trained:
        epochs = f"{r['epochs']}" + (f" (from {r['continues']})" if r["continues"] else "")
        lines.append(
            f"| {r['trial']} | {r['status']} | {r['widths']} | {r['convs']} | {r['kernels']} "
            f"| {r['dropout']} | {r['learning_rate']} | {r['label_smoothing']} | {epochs} | {r['params']:,} "
            f"| {r['macs'] / 1e6:.2f} | {r['int8_kb']} | {r['val_accuracy']} | {r['seconds']} |"
        )
    rejected = [r for r in rows if r["trial"] == "-"]
    if rejected:
        lines += [
            "",
            f"Drawn but over the budget, never built or trained ({len(rejected)}):",
            "",
            "| widths | convs | kernels | params | M MACs | int8 kB | over |",
            "|---|---|---|---:|---:|---:|---|",
        ]
        for r in rejected:
            lines.append(
                f"| {r['widths']} | {r['convs']} | {r['kernels']} | {r['params']:,} | {r['macs'] / 1e6:.2f} "
                f"| {r['int8_kb']} | {r['status'].split(': ', 1)[1]} |"
            )
    return "\n".join(lines)


def plot(rows: list[dict], budget: Budget, path: Path) -> None:
    """Validation error (1 - accuracy) against estimated int8 size, both on log scales (the good trials
    differ by tenths of a percent, the sizes by 100x): trained trials by epochs, the best one, the budget
    line, and the rejected candidates as crosses along the top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trained = [r for r in rows if r["status"] == "trained" and r["val_accuracy"]]
    rejected = [r for r in rows if r["status"].startswith("over budget")]
    fig, ax = plt.subplots(figsize=(7.5, 4.8))

    def error(r) -> float:
        return max(100 * (1 - float(r["val_accuracy"])), 0.01)  # a perfect score still has a place

    worst = 100.0
    for epochs in sorted({int(r["epochs"]) for r in trained}):
        group = [r for r in trained if int(r["epochs"]) == epochs]
        ax.scatter([float(r["int8_kb"]) for r in group], [error(r) for r in group],
                   s=[20 + 10 * r["macs"] / 1e6 for r in group], alpha=0.75,
                   label=f"trained {epochs} epoch{'s' if epochs > 1 else ''}")  # fmt: skip
    if trained:
        best = best_row(rows)
        ax.scatter([float(best["int8_kb"])], [error(best)], marker="*", s=250, c="red", zorder=3,
                   label=f"best: trial {best['trial']}, {float(best['val_accuracy']):.2%}")  # fmt: skip
        worst = max(error(r) for r in trained) * 1.5
    if rejected:
        ax.scatter([float(r["int8_kb"]) for r in rejected], [worst] * len(rejected), marker="x", c="grey",
                   label="over budget (not trained)")  # fmt: skip
    if budget.max_kb is not None:
        ax.axvline(
            budget.max_kb, color="red", linestyle="--", linewidth=1, label=f"--max-kb {budget.max_kb:g}"
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain = matplotlib.ticker.FormatStrFormatter("%g")  # 0.5, 1, 2, 5 rather than 10^0
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(plain)
        axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("estimated int8 size (kB); dot area ~ MACs")
    ax.set_ylabel("validation error (%, 1 - accuracy)")
    ax.set_title("host-tune: validation error vs int8 size (lower is better)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def best_config(best: dict, args: argparse.Namespace) -> dict:
    """best.json: host-train's flags for the best trial (its "train" object) and where it came from."""
    return {
        "about": f"host-tune's best trial under {args.budget.describe()}: retrain with "
        "host-train --config best.json (add --epochs N for a longer final fit)",
        "train": {
            "arch": "cnn",
            "widths": best["widths"].replace("-", ","),
            "convs": best["convs"].replace("-", ","),
            "kernels": best["kernels"].replace("-", ","),
            "dropout": float(best["dropout"]),
            "learning_rate": float(best["learning_rate"]),
            "label_smoothing": float(best["label_smoothing"]),
            "epochs": int(best["epochs"]),
        },
        "search": {
            "trial": best["trial"],
            "val_accuracy": float(best["val_accuracy"]),
            "params": best["params"],
            "macs": best["macs"],
            "int8_kb_estimated": float(best["int8_kb"]),
            "project": str(Path(args.project)),
        },
    }


def write_outputs(project: Path, oracle, ledger: Ledger, budget: Budget, classes: int, args) -> dict | None:
    """Rewrite results.csv, results.md, accuracy_vs_size.png and best.json from the search so far."""
    rows = rows_of(oracle, ledger, classes)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    save_atomically(project / "results.csv", lambda p: p.write_text(buffer.getvalue()))
    table = markdown_table(rows)
    save_atomically(project / "results.md", lambda p: p.write_text(table + "\n"))
    save_atomically(project / "accuracy_vs_size.png", lambda p: plot(rows, budget, p))
    best = best_row(rows)
    if best is not None:
        config = best_config(best, args)
        save_atomically(project / "best.json", lambda p: p.write_text(json.dumps(config, indent=2) + "\n"))
        return config
    return None


# --- the command -----------------------------------------------------------------------------------------


def count(text: str) -> int:
    """``6M``, ``48k`` or ``6000000`` as an integer; 0 means no limit."""
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:].lower(), 1)
    try:
        return round(float(text[:-1] if scale > 1 else text) * scale)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count like 6000000, 6M or 40k") from None


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="host-tune", description=summary(__doc__), formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--tuner", choices=TUNERS, default="hyperband", help="Keras Tuner's search algorithm")
    parser.add_argument(
        "--max-trials", type=int, default=30, help="trials in all (resuming counts the done ones)"
    )
    parser.add_argument(
        "--epochs-per-trial",
        type=int,
        default=3,
        help="epochs per trial; Hyperband's maximum, it trains most trials for fewer and continues the best",
    )
    parser.add_argument("--max-params", type=count, default=0, help="parameter limit, e.g. 40k (0: none)")
    parser.add_argument(
        "--max-macs",
        type=count,
        default=6_000_000,
        help="multiply-accumulates per digit, e.g. 6M (0: none; the default is model v2's budget)",
    )
    parser.add_argument(
        "--max-kb",
        type=float,
        default=48,
        help="estimated int8 .tflite size in kB of 1000 bytes (0: none; the default is model v2's budget)",
    )
    parser.add_argument(
        "--project",
        default="runs/tune",
        help="Keras Tuner's folder and the results; the same command with the same folder resumes",
    )
    parser.add_argument("--fresh", action="store_true", help="delete --project's earlier search first")
    parser.add_argument("--seed", type=int, default=TrainSettings.seed)
    parser.add_argument(
        "--data-dir", help="folder with the four MNIST IDX files (default: $MNIST_DIR, else download)"
    )
    parser.add_argument("--limit", type=int, help="search on only the first N training digits")
    parser.add_argument(
        "--validation-fraction",
        type=float,
        default=0.1,
        help="share held out to score the trials (more than host-train's 0.05: trials differ by tenths of a "
        "percent, and a few hundred digits cannot tell them apart)",
    )
    parser.add_argument("--no-augment", action="store_true", help="train the trials on the plain digits")
    parser.add_argument(
        "--digits-only", action="store_true", help="10 classes, no 'none' class and no generated negatives"
    )
    parser.add_argument(
        "--negatives",
        type=int,
        default=TrainSettings.negatives,
        help="generated 'not a digit' crops, split like the digits",
    )
    parser.add_argument(
        "--device-digits",
        type=int,
        default=TrainSettings.device_digits,
        help="training digits also seen through the device's camera and crop path, as host-train (a third "
        "of --limit when it is given)",
    )
    parser.add_argument("--batch-size", type=int, default=TrainSettings.batch_size)
    parser.add_argument(
        "--write", metavar="MARKDOWN", help="also put the results into this file's host-tune section"
    )
    args = parser.parse_args(argv)
    for name in ("max_trials", "epochs_per_trial", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if not args.digits_only:
        args.device_digits = device_digits_for(args.device_digits, args.limit)
    for name in ("max_params", "max_macs", "max_kb", "negatives", "device_digits"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be 0 or more, got {getattr(args, name)}")
    if args.limit is not None and args.limit < 10:
        parser.error(f"--limit must be at least 10, got {args.limit}")
    if not 0 < args.validation_fraction < 0.5:
        parser.error(f"--validation-fraction must be in (0, 0.5): the trials are scored on it, got "
                     f"{args.validation_fraction}")  # fmt: skip
    args.budget = Budget(args.max_params or None, args.max_macs or None, args.max_kb or None)
    return args


# The options that decide what a trial scores: a resumed search must use the same ones.
FIXED_OPTIONS = (
    "tuner",
    "epochs_per_trial",
    "max_params",
    "max_macs",
    "max_kb",
    "seed",
    "data_dir",
    "limit",
    "validation_fraction",
    "no_augment",
    "digits_only",
    "negatives",
    "device_digits",
    "batch_size",
)


def check_resume(project: Path, args: argparse.Namespace) -> None:
    """Refuse to resume a search that was started with other options (its trials would not compare)."""
    import os

    data_dir = args.data_dir or os.environ.get("MNIST_DIR")
    options = {name: getattr(args, name) for name in FIXED_OPTIONS}
    options["data_dir"] = str(Path(data_dir).resolve()) if data_dir else None
    path = project / "host_tune_options.json"
    if path.is_file():
        before = json.loads(path.read_text())
        changed = [
            f"--{k.replace('_', '-')} {before.get(k)} -> {v}"
            for k, v in options.items()
            if before.get(k) != v
        ]
        if changed:
            raise DigitReaderError(
                f"--project {project}: holds a search started with other options ({', '.join(changed)}); "
                "use the same options to resume, another --project, or --fresh to start over"
            )
    else:
        project.mkdir(parents=True, exist_ok=True)
        save_atomically(path, lambda p: p.write_text(json.dumps(options, indent=2)))


def run(args: argparse.Namespace, verbose: int | None = None) -> dict:
    """host-tune's work; returns {"rows": every row, "best": best.json's content or None}."""
    import shutil

    project = Path(args.project)
    classes = 10 if args.digits_only else 11
    budget = args.budget
    check_feasible(budget, classes)
    if args.fresh and project.exists():
        if not (project / "host_tune_options.json").is_file():
            raise DigitReaderError(f"--project {project}: not a host-tune folder; --fresh deletes only those")
        shutil.rmtree(project)
    check_resume(project, args)

    from host.train import make_dataset

    if args.no_augment or (not args.digits_only and not args.device_digits):
        # Measured: plain-trained CNNs scoring 99.4 % on MNIST read 3-5 % of camera-cut digits (README).
        log.warning(
            "trials train without %s: the ranking is for plain MNIST digits, not for the camera; retrain the "
            "winner with them (host-train --config best.json) and check it with tools.bench_scenes",
            "augmentation" if args.no_augment else "device digits",
        )
    started = time.monotonic()
    train_data, val_data, _, _, _ = load_training_data(
        args.data_dir,
        args.limit,
        args.validation_fraction,
        args.seed,
        0 if args.digits_only else args.negatives,
        TrainSettings.negatives_seed,
        device_digits=0 if args.digits_only else args.device_digits,
    )
    log.info(
        "search data: %d for training, %d for validation (no test digits)", len(train_data), len(val_data)
    )
    augment = None
    if not args.no_augment:
        from host.augment import AugmentSettings, build_augmenter

        augment = build_augmenter(AugmentSettings(), args.seed)
    train_ds = make_dataset(train_data, args.batch_size, augment, args.seed, classes=classes)
    val_ds = make_dataset(val_data, 512, None, None, classes=classes)
    steps = math.ceil(len(train_data) / args.batch_size)

    ledger = Ledger(project / "host_tune_ledger.json")
    tuner = make_tuner(args, budget, classes, ledger, steps, verbose)
    done = len(tuner.oracle.trials)
    trained_before = sum(entry.get("status") == "trained" for entry in ledger.trials.values())
    if done:
        log.info("resuming %s: %d trial(s) done", project, done)
    # verbose=0 silences Keras Tuner's own tables; the trials log one line each, and Keras its epochs.
    tuner.search(train_ds, validation_data=val_ds, epochs=args.epochs_per_trial, verbose=0)
    config = write_outputs(project, tuner.oracle, ledger, budget, classes, args)
    rows = rows_of(tuner.oracle, ledger, classes)
    seconds = time.monotonic() - started
    trained = sum(r["status"] == "trained" for r in rows)
    ledger.runs.append(
        {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "seconds": round(seconds),
            "trained": trained - trained_before,
        }
    )
    ledger.save()
    log.info(
        "search done: %d trial(s) trained, %d candidate(s) over budget, %.0f s this run; wrote %s",
        trained,
        sum(r["status"].startswith("over budget") for r in rows),
        seconds,
        ", ".join(
            str(project / n) for n in ("results.csv", "results.md", "accuracy_vs_size.png", "best.json")
        ),
    )
    if config:
        log.info(
            "best: trial %s, val accuracy %.4f; retrain with: host-train --config %s --epochs N",
            config["search"]["trial"],
            config["search"]["val_accuracy"],
            project / "best.json",
        )
    if args.write:
        # The plot goes beside the Markdown file, so the section can show it.
        plot_copy = Path(args.write).parent / "host-tune.png"
        save_atomically(plot_copy, lambda p: p.write_bytes((project / "accuracy_vs_size.png").read_bytes()))
        write_section(Path(args.write), "host-tune", report(rows, config, args, ledger.runs))
    return {"rows": rows, "best": config}


def report(rows: list[dict], config: dict | None, args: argparse.Namespace, runs: list[dict]) -> str:
    """The docs/benchmarks.md section: command, data, budget, every trial, the best configuration."""
    import keras_tuner
    import tensorflow as tf

    ours = sys.argv and Path(sys.argv[0]).name in (
        "host-tune",
        "tune.py",
    )  # the script, or python -m host.tune
    command = shlex.join(["host-tune", *(sys.argv[1:] if ours else [])])
    trained = [r for r in rows if r["status"] == "trained"]
    training_seconds = sum(float(r["seconds"] or 0) for r in trained)
    lines = [
        "## Hyper-parameter search (`host-tune`)",
        "",
        f"`{command}`: Keras Tuner {keras_tuner.__version__} ({args.tuner}), TensorFlow {tf.__version__}, "
        f"budget {args.budget.describe()}, scored on validation accuracy "
        f"({args.validation_fraction:g} of the training digits and of the generated negatives; never the "
        f"test set). {len(trained)} trials trained in {training_seconds:.0f} s; "
        f"{sum(r['seconds'] for r in runs)} s wall in {len(runs)} run(s) of the command (data and negatives "
        "included). Sizes are host.model's int8 estimate.",
        "",
        "![validation error against int8 size, every trial](host-tune.png)",
        "",
        markdown_table(rows),
        "",
    ]
    if config:
        lines.append(f"Best: trial {config['search']['trial']}, `{json.dumps(config['train'])}`.")
        lines.append("")
    lines.append(f"Machine: {machine()}.")
    return "\n".join(lines)


def main(argv=None) -> int:
    """Console entry point."""
    args = parse_args(argv)
    return run_command("host-tune", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
