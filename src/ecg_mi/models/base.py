"""The LightningModule every network shares: loss, optimiser, schedule, metrics."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics.classification import BinaryAUROC


class ECGClassifier(pl.LightningModule):
    """Binary MI classifier on ``[B, 12, L]`` signals; subclasses build ``self.net``.

    ``self.net`` maps ``[B, 12, L]`` to one logit per record. Loss: BCE-with-logits
    (optional ``pos_weight``); optimiser AdamW; schedule: one-cycle over the run or none.
    Logged each epoch: ``train_loss``, ``val_loss``, ``val_auc``.
    """

    input_kind = "signal"

    def __init__(
        self,
        lr: float = 1e-3,
        weight_decay: float = 1e-2,
        pos_weight: float | None = None,
        scheduler: str = "onecycle",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.loss_fn = nn.BCEWithLogitsLoss(
            pos_weight=torch.tensor(pos_weight) if pos_weight else None
        )
        self.val_auc = BinaryAUROC()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B]`` for signals ``[B, 12, L]``."""
        return self.net(x).squeeze(-1)

    def training_step(self, batch: tuple, batch_idx: int) -> torch.Tensor:
        x, y, _ = batch
        loss = self.loss_fn(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def validation_step(self, batch: tuple, batch_idx: int) -> None:
        x, y, _ = batch
        logits = self(x)
        self.log(
            "val_loss", self.loss_fn(logits, y), on_step=False, on_epoch=True, batch_size=len(y)
        )
        self.val_auc.update(torch.sigmoid(logits.float()), y.long())
        self.log("val_auc", self.val_auc, on_step=False, on_epoch=True, batch_size=len(y))

    def predict_step(self, batch: tuple, batch_idx: int) -> torch.Tensor:
        x, _, _ = batch
        return torch.sigmoid(self(x).float())

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.AdamW(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        total = int(self.trainer.estimated_stepping_batches)
        if (
            self.hparams.scheduler == "none" or total < 4
        ):  # one-cycle needs a few steps to ramp up and down
            return optimizer
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=self.hparams.lr,
            total_steps=total,
            pct_start=min(0.5, max(0.25, 2 / total)),
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
