"""The figures, drawn with matplotlib's Agg backend so the PNGs are byte-stable."""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from lstm_vs_rnn.data.time_axis import time_text
from lstm_vs_rnn.files import write_with
from lstm_vs_rnn.reporting.fonts import glyphs_reported_once, use_fallback_fonts

if TYPE_CHECKING:  # comparison imports SciPy, which generate and scale never need
    from lstm_vs_rnn.data.sources import SeriesLabels
    from lstm_vs_rnn.reporting.claims import Verdict

DPI = 110
# A line plot shows no more detail than this many points across a figure; beyond it, drawing
# every point of a 10^6-point series only costs time.
MAX_LINE_POINTS = 20_000
# Line styles of the baselines in the horizon figure, in the order of BASELINE_LABELS.
BASELINE_STYLES = (
    {"color": "dimgray", "ls": ":"},
    {"color": "black", "ls": "--"},
    {"color": "darkgray", "ls": "-."},
)
# Fixed metadata: no version string that would change the bytes on a matplotlib upgrade.
PNG_METADATA = {"Software": None}

use_fallback_fonts()


def save_figure(figure: Figure, path: Path) -> None:
    """Write atomically, then free the figure (stages draw several). Text no installed font
    can draw is reported once (reporting.fonts), not per glyph."""

    def save(temporary: Path) -> None:
        with glyphs_reported_once(figure):
            figure.savefig(temporary, format="png", dpi=DPI, metadata=PNG_METADATA)

    try:
        write_with(path, save)
    finally:
        plt.close(figure)


def thin(length: int) -> slice:
    """Every k-th point, so that at most MAX_LINE_POINTS are drawn."""
    return slice(None, None, max(1, -(-length // MAX_LINE_POINTS)))


def series_figure(frame: pd.DataFrame, split_index: int, labels: "SeriesLabels") -> Figure:
    """The series, its clean signal where one is known, and where the test part starts."""
    figure, axes = plt.subplots(figsize=(11, 4), layout="constrained")
    split_t, last_t = frame["t"].iloc[split_index], frame["t"].iloc[-1]
    shown = frame.iloc[thin(len(frame))]
    axes.plot(shown["t"], shown["y"], lw=0.7, color="tab:blue", label=labels.description)
    if "y_clean" in shown:
        axes.plot(
            shown["t"],
            shown["y_clean"],
            lw=1.2,
            color="black",
            alpha=0.7,
            label="clean signal (the best forecast)",
        )
    axes.axvspan(split_t, last_t, color="tab:orange", alpha=0.12, label="test part")
    axes.axvline(split_t, color="tab:orange", lw=1.5)
    axes.set(
        title=f"Series: {len(frame)} values, test part from {labels.time} = {time_text(split_t)}",
        xlabel=labels.time,
        ylabel=labels.value,
    )
    axes.legend(loc="upper right", fontsize="small")
    return figure


def scaling_figure(
    train: np.ndarray, test: np.ndarray, scaled_train: np.ndarray, scaled_test: np.ndarray
) -> Figure:
    """Before and after min-max scaling; the test part may leave [0, 1] (fitted on train)."""
    figure, (before, after) = plt.subplots(2, 1, figsize=(11, 6), sharex=True, layout="constrained")
    step = thin(len(train) + len(test))
    index_train = np.arange(len(train))[step]
    index_test = np.arange(len(train), len(train) + len(test))[step]
    for axes, (fit, held_out), label in (
        (before, (train, test), "original units"),
        (after, (scaled_train, scaled_test), "scaled (min-max fitted on train)"),
    ):
        axes.plot(index_train, fit[step], lw=0.7, label="train")
        axes.plot(index_test, held_out[step], lw=0.7, label="test")
        axes.set(ylabel=label)
        axes.legend(loc="upper right", fontsize="small")
    for bound in (0.0, 1.0):
        after.axhline(bound, color="gray", ls="--", lw=0.8)
    before.set_title("Series before and after scaling")
    after.set_xlabel("time index")
    return figure


def loss_figure(histories: Mapping[str, pd.DataFrame]) -> Figure:
    """Median training (solid) and validation (dashed) loss per epoch over the repeats, with
    the band their 10th-90th percentiles span: ten tangled lines show less than that."""
    figure, axes = plt.subplots(figsize=(8, 4.5), layout="constrained")
    for index, (name, history) in enumerate(histories.items()):
        color = f"C{index}"
        n_repeats = history["repeat"].nunique()
        by_epoch = history.groupby("epoch")
        for column, style, label in (
            ("train_loss", "-", "train"),
            ("val_loss", "--", "validation"),
        ):
            quantiles = by_epoch[column].quantile([0.1, 0.5, 0.9]).unstack()
            axes.plot(
                quantiles.index,
                quantiles[0.5],
                color=color,
                ls=style,
                marker=".",
                label=f"{name} {label}, median of {n_repeats}",
            )
            if n_repeats > 1:
                axes.fill_between(
                    quantiles.index, quantiles[0.1], quantiles[0.9], color=color, alpha=0.15, lw=0
                )
    axes.set(
        title="Loss per epoch (MSE on scaled data); bands: 10-90% of repeats",
        xlabel="epoch",
        ylabel="MSE",
        yscale="log",
    )
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend(fontsize="small")
    return figure


def repeats_figure(
    rmse_per_repeat: Mapping[str, np.ndarray], baselines: Mapping[str, float], folds: int = 1
) -> Figure:
    """Every repeat's test RMSE per model (points over a box), the baselines as lines; with
    `folds` > 1 each value is a repeat's mean over that many folds, as the title says."""
    figure, axes = plt.subplots(figsize=(8, 4.5), layout="constrained")
    names = list(rmse_per_repeat)
    axes.boxplot(
        [rmse_per_repeat[name] for name in names],
        positions=range(len(names)),
        widths=0.5,
        showfliers=False,
        medianprops={"color": "black"},
    )
    for index, name in enumerate(names):
        values = rmse_per_repeat[name]
        # Evenly spread offsets rather than random jitter: the figure stays byte-stable.
        offsets = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else np.zeros(1)
        axes.scatter(index + offsets, values, color=f"C{index}", s=22, zorder=3, alpha=0.8)
    lowest = min(baselines.values(), default=None)
    for index, (label, value) in enumerate(baselines.items()):
        axes.axhline(value, color="gray", ls=(0, (1 + index, 2)), lw=1.2)
        axes.annotate(
            f"{label} {value:.3f}",
            (1.0, value),
            xycoords=("axes fraction", "data"),
            # Above its line, the lowest below it: two close baselines do not overprint.
            xytext=(-4, -3 if value == lowest else 3),
            textcoords="offset points",
            ha="right",
            va="top" if value == lowest else "bottom",
            fontsize="small",
            color="dimgray",
        )
    counts = {len(values) for values in rmse_per_repeat.values()}
    pooled = f", each the mean of its {folds} folds" if folds > 1 else ""
    axes.set_xticks(range(len(names)), names)
    axes.set(
        title=f"Test RMSE of each repeat ({', '.join(map(str, sorted(counts)))} per model{pooled})",
        ylabel="test RMSE (original units)",
    )
    return figure


def paired_differences_figure(verdicts: Sequence["Verdict"]) -> Figure:
    """Per pair, each repeat's RMSE difference, the mean's interval at its tier's level and the
    Hodges-Lehmann median difference against zero, and the verdict (labelled with its tier)
    with its adjusted p-value."""
    comparisons = [verdict.comparison for verdict in verdicts]
    figure, axes = plt.subplots(
        figsize=(8, 1.2 + 1.1 * max(1, len(comparisons))), layout="constrained"
    )
    if not comparisons:
        axes.text(0.5, 0.5, "one model entry: no pair to compare", ha="center", va="center")
        axes.set_axis_off()
        return figure
    for row, (verdict, comparison) in enumerate(zip(verdicts, comparisons, strict=True)):
        differences = comparison.differences
        axes.scatter(differences, np.full(len(differences), row), color="gray", s=18, alpha=0.7)
        mean = float(np.mean(differences))
        interval = verdict.interval
        if interval is not None:
            axes.errorbar(
                mean,
                row,
                xerr=[[mean - interval.low], [interval.high - mean]],
                fmt="o",
                color="C3",
                capsize=5,
                lw=2,
                zorder=3,
            )
        else:
            axes.plot(mean, row, "o", color="C3", zorder=3)
        axes.plot(comparison.hodges_lehmann, row, "D", color="C0", ms=6, zorder=4)
        p_adjusted = verdict.p_adjusted
        axes.annotate(
            f"{verdict.tier}: {verdict.reading}"
            + ("" if isinstance(p_adjusted, str) else f" (adjusted p {p_adjusted:.2g})"),
            (mean, row),
            xytext=(0, 9),
            textcoords="offset points",
            ha="center",
            fontsize="small",
        )
    axes.axvline(0, color="black", lw=0.8)
    axes.set_yticks(range(len(comparisons)), [f"{c.first} - {c.second}" for c in comparisons])
    axes.set_ylim(-0.6, len(comparisons) - 0.3)
    axes.set(
        title="Paired test-RMSE differences per repeat (each its mean over the folds)\nred: "
        "mean with its tier's bootstrap interval, blue: Hodges-Lehmann median difference",
        xlabel="test RMSE difference (original units); below 0: the first model is better",
    )
    return figure


def predictions_figure(
    t: np.ndarray,
    actual: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    labels: "SeriesLabels",
) -> Figure:
    figure, axes = plt.subplots(figsize=(11, 4.5), layout="constrained")
    step = thin(len(t))
    axes.plot(t[step], actual[step], color="black", lw=0.8, alpha=0.6, label="actual")
    for index, (name, predicted) in enumerate(predictions.items()):
        axes.plot(t[step], predicted[step], color=f"C{index}", lw=1.2, label=f"{name} prediction")
    axes.set(
        title="Test part: actual vs one-step-ahead predictions "
        "(each model's repeat with the lowest final validation loss)",
        xlabel=labels.time,
        ylabel=labels.value,
    )
    axes.legend(loc="upper right", fontsize="small")
    return figure


def error_histogram_figure(actual: np.ndarray, predictions: Mapping[str, np.ndarray]) -> Figure:
    figure, axes = plt.subplots(figsize=(8, 4.5), layout="constrained")
    errors = {name: predicted - actual for name, predicted in predictions.items()}
    bins = np.histogram_bin_edges(np.concatenate(list(errors.values())), bins=40)
    for index, (name, error) in enumerate(errors.items()):
        axes.hist(
            error,
            bins=bins,
            alpha=0.5,
            color=f"C{index}",
            label=f"{name} (mean {error.mean():+.3f}, std {error.std(ddof=1):.3f})",
        )
    axes.axvline(0, color="black", lw=0.8)
    axes.set(
        title="Test prediction errors (predicted - actual), best-validation repeat",
        xlabel="error",
        ylabel="count",
    )
    axes.legend(fontsize="small")
    return figure


def scatter_figure(actual: np.ndarray, predictions: Mapping[str, np.ndarray]) -> Figure:
    count = len(predictions)
    figure, panels = plt.subplots(
        1, count, figsize=(4.5 * count, 4.5), squeeze=False, layout="constrained"
    )
    low = min(actual.min(), *(p.min() for p in predictions.values()))
    high = max(actual.max(), *(p.max() for p in predictions.values()))
    pairs = zip(panels[0], predictions.items(), strict=True)
    for index, (axes, (name, predicted)) in enumerate(pairs):
        axes.scatter(
            actual[thin(len(actual))],
            predicted[thin(len(actual))],
            s=6,
            alpha=0.5,
            color=f"C{index}",
        )
        axes.plot([low, high], [low, high], color="black", lw=1, label="identity (perfect)")
        axes.set(
            title=f"{name} (best-validation repeat): predicted vs actual",
            xlabel="actual",
            ylabel="predicted",
            aspect="equal",
            xlim=(low, high),
            ylim=(low, high),
        )
        axes.legend(loc="upper left", fontsize="small")
    return figure


def lag_sweep_figure(table: pd.DataFrame) -> Figure:
    """Left: test RMSE against the lag, each model's mean over repeats with its 95% interval,
    and the baselines of each lag's own series (the noise floor is the best any model can do).
    Right, where the experiments measured it: how much of the forecast's sensitivity to the
    newest input each model keeps for the one input that matters, `lag` steps back."""
    gradients = "grad_ratio_trained" in table and table["grad_ratio_trained"].notna().any()
    figure, panels = plt.subplots(
        1, 2 if gradients else 1, figsize=(15 if gradients else 9, 5), layout="constrained"
    )
    rmse_axes = panels[0] if gradients else panels
    models = _lag_sweep_rmse(rmse_axes, table)
    if gradients:
        _lag_sweep_gradients(panels[1], table, models)
    figure.suptitle("Lagged series y(t) = phi·y(t-lag) + noise, one DVC experiment per lag")
    return figure


LAG_SWEEP_BASELINES = {
    "noise_floor": ("noise floor (the clean signal)", "black", ":"),
    "persistence": ("persistence (last value)", "gray", "--"),
    "ar": ("linear AR(window), least squares", "tab:brown", "-."),
}


def _lag_sweep_rmse(axes: Axes, table: pd.DataFrame) -> list[str]:
    forecasters = dict.fromkeys(table["forecaster"])
    models = [name for name in forecasters if name not in LAG_SWEEP_BASELINES]
    offsets = np.linspace(-0.025, 0.025, len(models)) if len(models) > 1 else [0.0]
    for index, name in enumerate(models):
        rows = table[table["forecaster"] == name].sort_values("lag")
        lags = rows["lag"].to_numpy() * 10 ** offsets[index]  # side by side on the log axis
        errors = [rows["mean"] - rows["ci95_low"], rows["ci95_high"] - rows["mean"]]
        axes.errorbar(
            lags,
            rows["mean"],
            yerr=errors,
            color=f"C{index}",
            marker="o",
            capsize=4,
            label=f"{name}: mean over repeats, 95% CI",
        )
    for name, (label, color, style) in LAG_SWEEP_BASELINES.items():
        rows = table[table["forecaster"] == name].sort_values("lag")
        if len(rows):
            axes.plot(rows["lag"], rows["mean"], color=color, ls=style, lw=1.2, label=label)
    _lag_axis(axes, table)
    axes.set(title="Test RMSE by lag", ylabel="test RMSE (series units)")
    axes.legend(loc="upper left", fontsize="small")
    return models


def _lag_sweep_gradients(axes: Axes, table: pd.DataFrame, models: list[str]) -> None:
    for index, name in enumerate(models):
        rows = table[table["forecaster"] == name].sort_values("lag")
        for state, style, label in (("trained", "-", "trained"), ("init", "--", "at init")):
            axes.plot(
                rows["lag"],
                rows[f"grad_ratio_{state}"],
                color=f"C{index}",
                ls=style,
                marker="o",
                label=f"{name}, {label}",
            )
    _lag_axis(axes, table)
    axes.set(
        title="Sensitivity to the input that matters, relative to the newest input",
        ylabel="median |dŷ/dx(t-k)| at k = lag-1 over k = 0\n(over test windows and repeats)",
        yscale="log",
    )
    axes.legend(loc="lower left", fontsize="small")


def _lag_axis(axes: Axes, table: pd.DataFrame) -> None:
    lags = sorted(table["lag"].unique())
    axes.set_xscale("log")
    axes.set_xticks(lags, [str(lag) for lag in lags])
    axes.minorticks_off()
    axes.set_xlabel("lag (steps back the next value depends on; window = lag + 1)")


def gradient_flow_figure(table: pd.DataFrame) -> Figure:
    """Per model, the forecast's sensitivity to the input k steps back, trained (solid) and at
    initialisation (dashed), on a log scale: a vanishing gradient is a straight falling line.
    `table` has the columns model, state, lag, median, p10, p90."""
    figure, axes = plt.subplots(figsize=(8, 4.5), layout="constrained")
    for index, (name, rows) in enumerate(table.groupby("model", sort=False)):
        for state, style, label in (("trained", "-", "trained"), ("init", "--", "at init")):
            curve = rows[rows["state"] == state].sort_values("lag")
            color = f"C{index}"
            axes.plot(
                curve["lag"], curve["median"], color=color, ls=style, label=f"{name}, {label}"
            )
            axes.fill_between(
                curve["lag"], curve["p10"], curve["p90"], color=color, alpha=0.12, lw=0
            )
    axes.set(
        title="Sensitivity of the forecast to the input k steps back\n"
        "median over test windows and repeats; bands: 10-90%",
        xlabel="k, steps back (0 = the most recent input)",
        ylabel="|dŷ/dx(t-k)|, scaled units\n(= original units: one min-max scale for x and ŷ)",
        yscale="log",
    )
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend(fontsize="small")
    return figure


def horizon_figure(
    models: Mapping[str, pd.DataFrame],
    baselines: Mapping[str, pd.Series],
    repeats: int,
    origins: int,
) -> Figure:
    """RMSE per step of the recursive forecast: each model's mean over repeats with its 95%
    interval as a band (columns step, mean, ci95_low, ci95_high), the baselines as lines."""
    figure, axes = plt.subplots(figsize=(9, 5), layout="constrained")
    for index, (name, curve) in enumerate(models.items()):
        color = f"C{index}"
        axes.plot(
            curve["step"],
            curve["mean"],
            color=color,
            marker="o",
            ms=3,
            lw=1.8,
            label=f"{name}, mean of {repeats} repeats",
        )
        if curve["ci95_low"].notna().all():
            axes.fill_between(
                curve["step"], curve["ci95_low"], curve["ci95_high"], color=color, alpha=0.2, lw=0
            )
    for (label, curve), style in zip(baselines.items(), BASELINE_STYLES, strict=False):
        axes.plot(curve.index, curve.to_numpy(), lw=1.5, label=label, **style)
    axes.set(
        title="Recursive multi-step forecast: RMSE per step on the test part\n"
        f"{origins} forecast origins, the same for every step; "
        "bands: 95% interval of the mean over repeats",
        xlabel="forecast step h (the h-th value ahead; each forecast is fed back as input)",
        ylabel="RMSE (original units of the series)",
    )
    axes.title.set_fontsize("medium")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend(fontsize="small", loc="upper left")
    return figure


def tuning_progress_figure(best_so_far: Mapping[str, Sequence[float]]) -> Figure:
    """Best validation MSE so far against the trial number, one line per tuned entry: every
    entry had the same number of trials (the equal budget), in the order of its trial list."""
    if not best_so_far:
        return _no_tuning_figure()
    figure, axes = plt.subplots(figsize=(7, 4), dpi=DPI)
    for name, values in best_so_far.items():
        axes.plot(np.arange(1, len(values) + 1), values, marker="o", label=name)
    axes.set_yscale("log")
    axes.set_xlabel("trial")
    axes.set_ylabel("best validation MSE so far (scaled, log)")
    axes.set_title("Tuning: the same budget for every entry")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend()
    figure.tight_layout()
    return figure


def tuning_space_figure(trials: pd.DataFrame, hyperparameters: Sequence[str]) -> Figure:
    """Validation MSE of every trial against each hyperparameter, one panel per hyperparameter,
    one colour per entry. `trials` has columns entry, value and one per hyperparameter (null is
    drawn as the text 'null' on a categorical axis)."""
    if trials.empty or not hyperparameters:
        return _no_tuning_figure()
    figure, panels = plt.subplots(
        1, len(hyperparameters), figsize=(3.2 * len(hyperparameters), 3.4), dpi=DPI, squeeze=False
    )
    for axes, key in zip(panels[0], hyperparameters, strict=True):
        column = trials[key]
        categorical = column.isna().any() or column.nunique() <= 4
        labels = sorted({_choice_label(v) for v in column}, key=_null_last)
        position = {label: index for index, label in enumerate(labels)}
        for name, rows in trials.groupby("entry", sort=False):
            values = rows[key]
            if categorical:
                values = values.map(_choice_label).map(position)
            axes.scatter(values, rows["value"], label=name, alpha=0.75, s=18)
        if categorical:
            axes.set_xticks(range(len(labels)), labels)
        elif key == "learning_rate":
            axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel(key)
    panels[0][0].set_ylabel("validation MSE (scaled, log)")
    panels[0][-1].legend(fontsize="small")
    figure.tight_layout()
    return figure


def _no_tuning_figure() -> Figure:
    """What the tuning figures show when no entry was tuned."""
    figure, axes = plt.subplots(figsize=(7, 2), dpi=DPI)
    axes.axis("off")
    axes.text(
        0.5,
        0.5,
        "No entry was tuned (tune.n_trials: 0, or tune: false on every entry)",
        ha="center",
        va="center",
    )
    return figure


def _choice_label(value: object) -> str:
    return "null" if pd.isna(value) else f"{value:g}"


def _null_last(label: str) -> tuple[bool, float]:
    return (label == "null", 0.0 if label == "null" else float(label))
