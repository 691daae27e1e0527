"""The LightningModule every network shares: loss, optimiser, schedule, metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics.classification import BinaryAUROC

from ecg_mi.errors import ConfigError, EcgMiError

SCHEDULERS = ("onecycle", "cosine", "none")


class Augment(nn.Module):
    """Light training-time augmentation of standardised signals ``[B, 12, L]``.

    Args:
        crop: train on a random window of this fraction of L (0 = the whole strip); the
            networks pool globally over time, so validation and test still see all 10 s.
        shift: max circular shift as a fraction of L (a 10 s strip has no fixed phase).
        scale: max relative amplitude change, drawn per record and lead (gain variation).
        noise: std of added Gaussian noise, in standardised units.
    All zero (the default) leaves the batch untouched. Runs on the batch's device.
    """

    def __init__(
        self, crop: float = 0.0, shift: float = 0.0, scale: float = 0.0, noise: float = 0.0
    ) -> None:
        super().__init__()
        for name, value in (("crop", crop), ("shift", shift), ("scale", scale), ("noise", noise)):
            if not 0 <= value < 1:
                raise ConfigError(f"model.augment.{name}={value} must be in [0, 1)")
        self.crop, self.shift, self.scale, self.noise = crop, shift, scale, noise

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        if self.crop:
            window = max(1, int(self.crop * x.shape[-1]))
            start = int(torch.randint(0, x.shape[-1] - window + 1, (1,)))
            x = x[..., start : start + window]
        if self.shift:
            max_shift = int(self.shift * x.shape[-1])
            offsets = torch.randint(-max_shift, max_shift + 1, (x.shape[0],), device=x.device)
            steps = torch.arange(x.shape[-1], device=x.device)
            index = (steps[None, :] - offsets[:, None]) % x.shape[-1]
            x = torch.gather(x, 2, index[:, None, :].expand_as(x))
        if self.scale:
            gain = 2 * torch.rand(x.shape[0], x.shape[1], 1, device=x.device) - 1
            x = x * (1 + self.scale * gain)
        if self.noise:
            x = x + self.noise * torch.randn_like(x)
        return x


class ECGClassifier(pl.LightningModule):
    """Binary MI classifier on ``[B, 12, L]`` signals; subclasses build two modules.

    The interface every network implements (checked by :meth:`check_interface` when the
    registry builds it): ``self.features`` — the convolutional stage, ``[B, 12, L]`` →
    ``[B, C, T]`` (Grad-CAM's target layer) — and ``self.head``, ``[B, C, T]`` → ``[B, 1]``
    logits. Both are stored once in a checkpoint. Loss: BCE-with-logits (optional ``pos_weight``); optimiser
    AdamW; schedule per step: one-cycle, cosine or none; optional :class:`Augment` on
    training batches. Logged each epoch: ``train_loss``, ``val_loss``, ``val_auc``.
    Best-epoch selection and early stopping on ``val_auc`` are callbacks of the train
    route, shared by every network. ``n_clinical`` > 0 makes it a hybrid: it also reads that
    many scaled clinical features (the representation's second input) through a small MLP
    (``clinical_width`` units, dropout ``clinical_dropout`` on its input) whose output joins the
    pooled maps before one linear logit; an architecture supports it by calling
    :meth:`attach_clinical` last. ``aux_targets`` (e.g. the other PTB-XL diagnostic classes)
    add a multi-label head on the pooled features, trained with weight ``aux_weight`` beside
    the MI loss; it never changes P(MI) at prediction. ``max_epochs`` is this network's epoch
    budget (null: the trainer's), capped by the sweep's ``trainer.max_epochs``, so networks that
    need different budgets share one sweep. ``test_windows`` > 1 scores a record at validation
    and prediction as the mean P(MI) over that many evenly spaced windows of the training
    crop's length (multi-window test-time averaging) instead of the whole strip at once; a
    network trained without crops (``augment.crop`` 0) has one window, the whole input.
    """

    family = "network"
    #: Tiny settings of this network for fast tests (subclasses override).
    smoke_settings: dict[str, Any] = {}

    def __init__(
        self,
        lr: float = 1e-3,
        weight_decay: float = 1e-2,
        pos_weight: float | None = None,
        scheduler: str = "onecycle",
        augment: dict[str, float] | None = None,
        aux_targets: list[str] | tuple[str, ...] = (),
        aux_weight: float = 0.5,
        max_epochs: int | None = None,
        test_windows: int = 1,
        n_clinical: int = 0,
        clinical_width: int = 64,
        clinical_dropout: float = 0.3,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if scheduler not in SCHEDULERS:
            raise ConfigError(f"model.scheduler={scheduler!r}; choose one of {list(SCHEDULERS)}")
        if aux_weight < 0:
            raise ConfigError(f"model.aux_weight={aux_weight} must be >= 0")
        if max_epochs is not None and max_epochs < 1:
            raise ConfigError(f"model.max_epochs={max_epochs} must be >= 1 (or null: trainer.max_epochs)")
        if test_windows < 1:
            raise ConfigError(f"model.test_windows={test_windows} must be >= 1 (1 = the whole strip at once)")
        pos = torch.tensor(pos_weight) if pos_weight else None
        self.loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos)
        self.val_auc = BinaryAUROC()
        self.augment = Augment(**(augment or {}))
        # Auxiliary targets (other diagnostic classes) from the pooled convolutional features;
        # lazy because the channel count is the subclass's (materialised in setup()).
        self.aux_head = (
            nn.Sequential(nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.LazyLinear(len(aux_targets)))
            if aux_targets else None
        )  # fmt: skip
        self.clinical: nn.Module | None = None  # a hybrid's feature branch (attach_clinical)

    def attach_clinical(self, width: int) -> None:
        """Make a hybrid when ``n_clinical`` > 0: the feature MLP, and a head on the pooled maps
        (``width`` channels) joined with its output. Called last by an architecture's
        ``__init__``, after its own head, so the parameters are created in a fixed order."""
        hp = self.hparams
        if not hp.n_clinical:
            return
        # Dropout on the input features first: 408 correlated inputs on ≈1,300 training records.
        self.clinical = nn.Sequential(nn.Dropout(hp.clinical_dropout), nn.Linear(hp.n_clinical, hp.clinical_width),
                                      nn.ReLU(inplace=True), nn.Dropout(0.2))  # fmt: skip
        self.head = nn.Linear(width + hp.clinical_width, 1)

    def setup(self, stage: str) -> None:
        """Lightning's hook before the optimiser is built: size the auxiliary head."""
        self.materialize()

    def materialize(self) -> None:
        """Size the lazy auxiliary head (before an optimiser or a count sees its parameters)
        with a no-grad pass in eval mode, so no BatchNorm statistics move."""
        if self.aux_head is not None and any(isinstance(p, nn.UninitializedParameter) for p in self.aux_head.parameters()):
            was_training = self.training
            self.eval()
            with torch.no_grad():
                self.aux_head(self.features(torch.zeros(1, 12, 1000, device=self.device)))
            self.train(was_training)

    def check_interface(self) -> None:
        """Refuse a network without its ``features`` stage and ``head``, or asked for clinical
        features it does not attach (ConfigError)."""
        name = getattr(self, "model_name", type(self).__name__)
        for part in ("features", "head"):
            if not isinstance(getattr(self, part, None), nn.Module):
                raise ConfigError(
                    f"model {name!r}: a network must set "
                    f"self.{part} (an nn.Module): features [B, 12, L] -> [B, C, T], head -> [B, 1] logits"
                )
        if self.hparams.n_clinical and self.clinical is None:
            raise ConfigError(f"model {name!r} cannot read clinical features beside the signal; "
                              "choose a representation without them")  # fmt: skip

    def forward(self, x: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        """Logits ``[B]`` for signals ``[B, 12, L]`` (and a hybrid's features ``[B, F]``)."""
        if self.hparams.test_windows > 1 and self.augment.crop and not self.training and not rest:
            return self.window_logits(x)
        return self.logits_and_maps(x, *rest)[0]

    def window_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B]``: the logit of the mean P(MI) over ``test_windows`` evenly spaced
        windows of the training crop's length (first at the start, last at the end of ``x``).
        Probabilities, not logits, are averaged, as an ensemble's are."""
        length = x.shape[-1]
        window = max(1, int(self.augment.crop * length))
        starts = torch.linspace(0, length - window, self.hparams.test_windows).round().long().tolist()
        probs = torch.stack([torch.sigmoid(self.logits_and_maps(x[..., s : s + window])[0].float()) for s in starts])
        return torch.logit(probs.mean(0), eps=1e-7)

    def logits_and_maps(self, signal: torch.Tensor, *rest: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``[B]`` and the convolutional maps ``[B, C, T]`` (the auxiliary head's input)
        of a training batch; ``rest`` holds a hybrid's scaled features."""
        maps = self.features(signal)
        if self.clinical is None:
            return self.head(maps).squeeze(-1), maps
        if not rest:
            raise ValueError(f"{type(self).__name__} reads {self.hparams.n_clinical} clinical features beside the signal: none given")
        both = torch.cat([maps.mean(dim=-1), self.clinical(rest[0])], dim=1)
        return self.head(both).squeeze(-1), maps

    @staticmethod
    def batch_inputs(x: torch.Tensor | tuple | list) -> tuple[torch.Tensor, ...]:
        """A batch's network inputs as a tuple: ``(signal,)`` or a hybrid's ``(signal, features)``."""
        return tuple(x) if isinstance(x, tuple | list) else (x,)

    def training_step(self, batch: tuple, batch_idx: int) -> torch.Tensor:
        x, y, _ = batch
        signal, *rest = self.batch_inputs(x)
        logits, features = self.logits_and_maps(self.augment(signal), *rest)
        if y.ndim == 2:  # [B, 1 + K]: MI first, then the auxiliary targets
            aux = nn.functional.binary_cross_entropy_with_logits(self.aux_head(features), y[:, 1:])
            y = y[:, 0]
            loss = self.loss_fn(logits, y) + self.hparams.aux_weight * aux
        else:
            loss = self.loss_fn(logits, y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(y), sync_dist=True)
        return loss

    def validation_step(self, batch: tuple, batch_idx: int) -> None:
        x, y, _ = batch
        logits = self(*self.batch_inputs(x))
        loss = self.loss_fn(logits, y)
        self.log("val_loss", loss, on_step=False, on_epoch=True, batch_size=len(y), sync_dist=True)
        self.val_auc.update(torch.sigmoid(logits.float()), y.long())
        self.log("val_auc", self.val_auc, on_step=False, on_epoch=True, batch_size=len(y))

    def predict_step(self, batch: tuple, batch_idx: int) -> torch.Tensor:
        x, _, _ = batch
        return torch.sigmoid(self(*self.batch_inputs(x)).float())

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        optimizer = torch.optim.AdamW(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        total = int(self.trainer.estimated_stepping_batches)
        if hp.scheduler == "none" or total < 4:  # a schedule needs a few steps to ramp
            return optimizer
        if hp.scheduler == "cosine":
            schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
        else:
            pct_start = min(0.5, max(0.25, 2 / total))  # at least 2 warm-up steps
            schedule = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=hp.lr, total_steps=total, pct_start=pct_start
            )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    @property
    def n_params(self) -> int:
        self.materialize()
        return sum(p.numel() for p in self.parameters())

    def predict_proba(self, *inputs: np.ndarray) -> np.ndarray:
        """``[n, 2]`` class probabilities (column 1 = P(MI), float64) of model inputs as numpy
        arrays (the representation's: ``(signal,)`` or ``(signal, features)``), scored
        :data:`BATCH` records at a time on the CPU: the scikit-learn interface the packaged
        model calls on every member."""
        self.eval()
        chunks = []
        with torch.inference_mode():
            for i in range(0, len(inputs[0]), BATCH):
                batch = [torch.from_numpy(np.ascontiguousarray(a[i : i + BATCH])) for a in inputs]
                chunks.append(torch.sigmoid(self(*batch).float()))
        p = torch.cat(chunks).numpy().astype(np.float64)
        return np.stack([1 - p, p], axis=1)

    def save_weights(self, path: Path) -> None:
        """Registry name, constructor arguments and CPU state dict: plain data that
        :func:`load_weights` reads with ``weights_only=True`` (no pickled code runs)."""
        state = {k: v.detach().cpu() for k, v in self.state_dict().items()}
        torch.save({"model": self.model_name, "hparams": dict(self.hparams), "state_dict": state}, path)


#: Records per forward pass when scoring (bounds memory for large N).
BATCH = 64
#: Networks registered as classes of their own before the representation, by name: (architecture,
#: representation). Their saved hyperparameters hold the settings the old class defaulted (e.g.
#: resnet_beat's kernel_size=5), so their weights load into the architecture.
LEGACY_MODELS = {"resnet_beat": ("resnet", "median_beat"), "resnet_hybrid": ("resnet", "median_beat+features"),
                 "xresnet1d_beat": ("xresnet1d", "median_beat"), "resnet1d_wang_beat": ("resnet1d_wang", "median_beat")}  # fmt: skip


def load_weights(path: Path) -> ECGClassifier:
    """The network saved by :meth:`ECGClassifier.save_weights`, in eval mode on the CPU."""
    from ecg_mi.models.registry import get_model_class

    saved = torch.load(path, map_location="cpu", weights_only=True)
    name = LEGACY_MODELS.get(saved["model"], (saved["model"],))[0]
    network = get_model_class(name)(**saved["hparams"])
    try:
        network.load_state_dict(saved["state_dict"])
    except RuntimeError as exc:  # the installed architecture differs from the packaged one
        first = str(exc).splitlines()[0]
        raise EcgMiError(f"{path}: weights do not fit the installed {name!r} ({first})") from None
    return network.eval()
