"""Training-loop benchmark: Lightning vs a plain PyTorch loop, and memory of a 500 Hz epoch.

(1) Overhead: one epoch of the default ResNet over the *same* pre-built batches (PTB-XL
    fold 0 at 100 Hz, or the synthetic data when PTB-XL is absent), once through
    ``pl.Trainer.fit`` with the project's LightningModule (AdamW + one-cycle, metrics
    logging) and once through a hand-written loop doing the same optimisation. The two are
    alternated ``--repeats`` times; best times are compared. Target ratio ≤ 1.15.
(2) Memory: one training epoch at 500 Hz through the project's DataModule with 2 loader
    workers, in a child process; a sampler thread reads ``/proc/<pid>/smaps_rollup`` of the
    process and its workers every 20 ms. Reported: peak RSS of the trainer, peak private
    memory (USS) of each worker and peak total PSS, beside the size of the memory-mapped
    signal array. Workers that copied the array would each hold ≥ its size privately.

Usage: ``python benchmarks/train_overhead.py [--repeats 3] [--skip-memory]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

from ecg_mi.data.sources import PtbxlSource, SyntheticSource
from ecg_mi.datamodule import FoldDataModule
from ecg_mi.errors import InputError
from ecg_mi.models import create_model

TARGET_RATIO = 1.15


def source_for_benchmark():
    try:
        return PtbxlSource()
    except InputError:
        return SyntheticSource()


def fixed_batches(rate: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    data = FoldDataModule(source_for_benchmark(), sample_rate=rate, fold=0, batch_size=64)
    data.setup()
    torch.manual_seed(0)
    return list(data.train_dataloader())


class _Prebuilt(torch.utils.data.Dataset):
    """Serves already-collated batches (``DataLoader(..., batch_size=None)``)."""

    def __init__(self, batches: list) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int):
        return self.batches[i]


def lightning_epoch(model: pl.LightningModule, batches: list) -> float:
    trainer = pl.Trainer(
        accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        limit_val_batches=0, deterministic=True,
    )  # fmt: skip
    start = time.perf_counter()
    trainer.fit(
        model, train_dataloaders=torch.utils.data.DataLoader(_Prebuilt(batches), batch_size=None)
    )
    return time.perf_counter() - start


def plain_epoch(model: pl.LightningModule, batches: list) -> float:
    """The same optimisation by hand: AdamW, one-cycle per step, BCE-with-logits."""
    start = time.perf_counter()
    model.train()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=model.hparams.lr, weight_decay=model.hparams.weight_decay
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=model.hparams.lr, total_steps=len(batches), pct_start=0.25
    )
    for x, y, _ in batches:
        optimizer.zero_grad(set_to_none=True)
        loss = model.loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        schedule.step()
    return time.perf_counter() - start


def overhead(repeats: int) -> dict:
    batches = fixed_batches(100)
    torch.manual_seed(0)
    template = create_model("resnet")
    lightning_times, plain_times = [], []
    plain_epoch(copy.deepcopy(template), batches)  # warm-up (allocator, kernels)
    for _ in range(repeats):
        lightning_times.append(lightning_epoch(copy.deepcopy(template), batches))
        plain_times.append(plain_epoch(copy.deepcopy(template), batches))
    best_l, best_p = min(lightning_times), min(plain_times)
    return {
        "batches": len(batches),
        "batch_shape": list(batches[0][0].shape),
        "lightning_s": best_l,
        "plain_s": best_p,
        "ratio": best_l / best_p,
        "all_lightning_s": lightning_times,
        "all_plain_s": plain_times,
    }


def _memory(pid: int) -> tuple[int, int, int]:
    """(rss, pss, uss) in bytes from /proc/<pid>/smaps_rollup."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                fields[parts[0].rstrip(":")] = int(parts[1]) * 1024
    uss = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return fields.get("Rss", 0), fields.get("Pss", 0), uss


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(c) for c in fh.read().split()]
    except OSError:
        return []


def memory_child() -> None:
    """Runs in a child process: one 500 Hz epoch with 2 workers, sampling memory."""
    data = FoldDataModule(
        source_for_benchmark(), sample_rate=500, fold=0, batch_size=32, num_workers=2
    )
    data.setup()
    peaks = {"trainer_rss": 0, "total_pss": 0, "worker_uss": {}}
    stop = threading.Event()

    def sample() -> None:
        me = os.getpid()
        while not stop.is_set():
            try:
                rss, pss, _ = _memory(me)
                total = pss
                peaks["trainer_rss"] = max(peaks["trainer_rss"], rss)
                for child in _children(me):
                    _, c_pss, c_uss = _memory(child)
                    total += c_pss
                    peaks["worker_uss"][child] = max(peaks["worker_uss"].get(child, 0), c_uss)
                peaks["total_pss"] = max(peaks["total_pss"], total)
            except (OSError, ValueError):
                pass
            time.sleep(0.02)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    model = create_model("resnet")
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)  # fmt: skip
    start = time.perf_counter()
    trainer.fit(model, datamodule=data)
    elapsed = time.perf_counter() - start
    stop.set()
    thread.join()
    array_bytes = int(np.prod(data.store.signals.shape)) * 4
    print(json.dumps({
        "records_in_cache": int(data.store.signals.shape[0]), "train_records": len(data.split.train),
        "array_mib": array_bytes / 2**20, "epoch_s": elapsed,
        "trainer_peak_rss_mib": peaks["trainer_rss"] / 2**20, "total_peak_pss_mib": peaks["total_pss"] / 2**20,
        "worker_peak_uss_mib": sorted(v / 2**20 for v in peaks["worker_uss"].values()),
        "n_missing_skipped": data.split.n_missing,
    }))  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--json", type=Path, default=Path(__file__).parent / "results" / "train_overhead.json"
    )
    args = parser.parse_args()
    os.environ.setdefault("ECG_MI_NO_PROGRESS", "1")
    # Lightning's info lines and warnings (accelerator found, no val loop) are not results.
    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    if args.memory_child:
        memory_child()
        return 0
    results = {"overhead": overhead(args.repeats)}
    o = results["overhead"]
    print(f"one ResNet epoch, {o['batches']} batches of {o['batch_shape']}: Lightning {o['lightning_s']:.2f} s, "
          f"plain loop {o['plain_s']:.2f} s, ratio {o['ratio']:.3f} (target <= {TARGET_RATIO})")  # fmt: skip
    if not args.skip_memory:
        child = subprocess.run(
            [sys.executable, __file__, "--memory-child"], capture_output=True, text=True
        )
        if child.returncode != 0:
            print(child.stderr[-3000:], file=sys.stderr)
            return 1
        m = json.loads(child.stdout.strip().splitlines()[-1])
        results["memory_500hz"] = m
        print(f"500 Hz epoch ({m['train_records']} training records, 2 workers, {m['epoch_s']:.1f} s): "
              f"memmapped array {m['array_mib']:.0f} MiB; trainer peak RSS {m['trainer_peak_rss_mib']:.0f} MiB; "
              f"worker peak private (USS) {', '.join(f'{u:.0f}' for u in m['worker_peak_uss_mib'])} MiB; "
              f"peak total PSS {m['total_peak_pss_mib']:.0f} MiB")  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    return 0 if o["ratio"] <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
