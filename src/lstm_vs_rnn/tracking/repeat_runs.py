"""One nested MLflow run per training repeat, opened when the repeat starts, fed its losses per
epoch and ended in its state: the train stage's listener (`pipeline.train.RepeatListener`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lstm_vs_rnn.tracking.identity import file_sha256
from lstm_vs_rnn.tracking.tags import MODEL_HASH_TAG
from lstm_vs_rnn.workers import failed_job

if TYPE_CHECKING:
    from lstm_vs_rnn.modeling.repeats import FittedRepeat
    from lstm_vs_rnn.modeling.training import EpochLosses
    from lstm_vs_rnn.tracking.runs import StageRun


class RepeatRuns:
    """The repeat runs of entry `name` under the stage's run `run`."""

    def __init__(self, run: StageRun, name: str) -> None:
        self.run = run
        self.name = name
        self.open: dict[int, StageRun] = {}

    def repeat_started(self, repeat: int, seed: int) -> None:
        self.open[repeat] = self.run.start_repeat_run(self.name, repeat, seed)

    def epoch_done(self, repeat: int, losses: EpochLosses) -> None:
        self.open[repeat].log_metrics(
            {"train_loss": losses.train_loss, "val_loss": losses.val_loss}, step=losses.epoch
        )

    def repeat_done(self, fitted: FittedRepeat) -> None:
        history = fitted.history
        repeat_run = self.open.pop(fitted.repeat)
        repeat_run.set_tags({MODEL_HASH_TAG: file_sha256(fitted.weights)})
        repeat_run.log_metrics(
            {
                "final_train_loss": history[-1].train_loss,
                "final_val_loss": history[-1].val_loss,
                "best_val_loss": min(epoch.val_loss for epoch in history),
            }
        )
        self.run.end_repeat_run(repeat_run, "FINISHED")

    def end_unfinished(self, error: BaseException) -> None:
        """End the runs still open after `error`: FAILED for the repeat that failed (or whose
        worker died), KILLED for those stopped because of it or by an interrupt."""
        failed = failed_job(error)
        for repeat, repeat_run in sorted(self.open.items()):
            self.run.end_repeat_run(repeat_run, "FAILED" if repeat == failed else "KILLED")
        self.open.clear()
