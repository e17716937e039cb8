"""What a stage's work hands to its tracking: numbers, figures and files to log.

The work (`lstm_vs_rnn.pipeline`) never imports MLflow; the stage script logs a `StageResult`
to its run (`tracking.runs.StageRun.log_result`).
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class StageResult:
    """Everything a stage's run logs once its work is done.

    `metrics` are single numbers (step 0); `stepped` maps a step (an epoch, a lag, a forecast
    step) to metrics at that step; `figures` are PNGs logged under `figures/`; `artifacts`
    maps a file to the artifact folder it goes into; `params` are logged as run params.
    """

    metrics: dict[str, float] = field(default_factory=dict)
    stepped: dict[int, dict[str, float]] = field(default_factory=dict)
    figures: list[Path] = field(default_factory=list)
    artifacts: list[tuple[Path, str]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
