"""`train(cfg)`: the one training loop, for every task, and its run folder.

out/ config.toml  metrics.csv  metrics.json  summary.json  curves.png  tensorboard/
     checkpoint-last.pt  checkpoint-best.pt  model.safetensors
The task (chosen by the model, see task.py) supplies data, model, loss and evaluation; the loop owns the rest.
Only rank 0 writes. Checkpoints (end of every epoch, every `checkpoint_every` steps, and at an interrupt) hold
everything needed to continue bitwise: a deterministic run killed at any moment and resumed ends with the same
weights. The run folder's rules (lock, --overwrite, resume config) are in run_folder.py.
"""

import contextlib
import dataclasses
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm import tqdm

from mobilenetv2.allocator import reusing_freed_memory
from mobilenetv2.atomic import write_text_atomic
from mobilenetv2.data.loader import Collate, TransformedDataset, eval_loader, train_loader
from mobilenetv2.errors import UserError
from mobilenetv2.meta import meta_of
from mobilenetv2.train import run_folder
from mobilenetv2.train import setup as build
from mobilenetv2.train.checkpoint import load_checkpoint, plain, rng_state, save_atomic, set_rng_state
from mobilenetv2.train.config import TrainConfig, resolve, to_toml
from mobilenetv2.train.ema import ModelEMA
from mobilenetv2.train.epoch_sums import EpochSums
from mobilenetv2.train.optim import build_optimizer, lr_at, set_lr
from mobilenetv2.train.records import TensorBoard, plot_curves, write_json, write_metrics
from mobilenetv2.train.runtime import Runtime, make_deterministic, resolve_precision, setup, teardown, wrap_distributed
from mobilenetv2.train.step import TrainStep
from mobilenetv2.train.task import Evaluation
from mobilenetv2.train.tasks import task_for_model

log = logging.getLogger(__name__)
WARMUP_STEPS = 3  # first steps of each session, excluded from train_images_per_second
RESUME_KEYS = ("model", "dataset", "batch_size", "seed", "resolution", "optimizer")


class NonFiniteLoss(UserError):
    """The loss became NaN or Inf: the run stops, keeping its last good checkpoint."""


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train as `cfg` says (recipe + overrides), write the run folder, return the summary (= summary.json)."""
    if cfg.resume:
        cfg = run_folder.resume_config(cfg)
    cfg = resolve(cfg)
    out = Path(cfg.out)
    run_folder.check_out(out)
    rt = setup(cfg.device)
    # Process-wide switches the run may change; put them back for the caller.
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        with run_folder.locked(out) if rt.is_main else contextlib.nullcontext():
            if rt.is_main:
                run_folder.remove_stale_temp_files(out)
                if not cfg.resume:
                    run_folder.refuse_fresh_over_run(out, overwrite=cfg.overwrite)
            # CPU steps free and re-allocate 40-150 MB tensors; glibc would page them in afresh every step.
            with reusing_freed_memory(cfg.reuse_memory and rt.device.type == "cpu"):
                return Trainer(cfg, rt).run()
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        teardown(rt)


class Trainer:
    def __init__(self, cfg: TrainConfig, rt: Runtime) -> None:
        self.cfg, self.rt, self.out = cfg, rt, Path(cfg.out)
        make_deterministic(cfg.deterministic)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.task = task_for_model(cfg.model)(cfg)
        self.train_src, self.val_src = self.task.sources()
        self.pre = self.task.preprocessing()
        self.class_names = self.train_src.class_names
        self.num_classes = cfg.model_options.get("num_classes") or self.task.num_classes(self.train_src)
        self.model = self.task.build_model(self.num_classes).to(rt.device)
        if cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.world_batch = cfg.batch_size
        if cfg.batch_size % rt.world_size:
            raise ValueError(f"--batch-size {cfg.batch_size} must be divisible by the {rt.world_size} processes")
        self.batch = cfg.batch_size // rt.world_size
        self.steps_per_epoch = len(self.train_src) // rt.world_size // self.batch
        if self.steps_per_epoch < 1:
            raise ValueError(f"--batch-size {cfg.batch_size} is larger than the {len(self.train_src)} training images")
        self.total_steps = self.steps_per_epoch * cfg.epochs
        if cfg.max_steps:
            self.total_steps = min(self.total_steps, cfg.max_steps)
        self.precision = resolve_precision(cfg.precision, rt.device)
        self.model, self.wrapped = wrap_distributed(self.model, rt, sync_bn=cfg.sync_bn)
        # Different dropout streams per process; rank 0 keeps the single-process stream.
        torch.manual_seed(cfg.seed + 1_000_003 * rt.rank)
        self.optimizer = build_optimizer(self.model, cfg)
        self.ema = ModelEMA(self.model, cfg.ema_decay) if cfg.ema_decay > 0 else None
        self.step_fn = TrainStep(
            self.wrapped,
            self.optimizer,
            device=rt.device,
            precision=self.precision,
            loss_fn=self.task.loss,
            grad_clip=cfg.grad_clip,
            ema=self.ema,
            ema_target=self.model,
            compile=cfg.compile,
        )
        self.train_set = TransformedDataset(self.train_src, self.task.train_transform(self.pre), random=True)
        self.val_set = TransformedDataset(self.val_src, self.task.eval_transform(self.pre), random=False)
        self.collate = Collate(self.task.collate_targets)
        self.workers = build.default_workers(cfg)
        self.step, self.history, self.best, self.resumed_from = 0, [], -math.inf, 0
        self.epoch = EpochSums(rt.device)
        self.session_start = time.perf_counter()
        self.timing = {"train_seconds": 0.0, "train_images": 0, "wall_seconds": 0.0, "epoch_seconds": 0.0}
        self.skipped = set(self.train_src.skipped) | set(self.val_src.skipped)
        self.interrupts = run_folder.Interrupts()

    def run(self) -> dict[str, Any]:
        start = time.perf_counter()
        if self.cfg.resume:
            self._resume()
        wall_before = self.timing["wall_seconds"]
        if self.rt.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.out / "config.toml", to_toml(self.cfg))
            self.tb = TensorBoard(self.out, purge_step=self.step if self.resumed_from else None)
        log.info(
            "training %s on %s (%d train / %d val images), %d steps of %d images, %s on %s, %d process(es)",
            meta_of(self.model).architecture,
            self.cfg.dataset,
            len(self.train_src),
            len(self.val_src),
            self.total_steps,
            self.world_batch,
            self.precision,
            self.rt.device,
            self.rt.world_size,
        )
        self.session_start, self.session_steps = start, 0
        with self.interrupts:
            while self.step < self.total_steps:
                epoch = self.step // self.steps_per_epoch
                self._train_epoch(epoch)
                if self.interrupts.caught is not None:
                    self._stop_interrupted()
                self._end_epoch(epoch)
        self.timing["wall_seconds"] = wall_before + time.perf_counter() - start
        return self._finish()

    def _train_epoch(self, epoch: int) -> None:
        skip = self.step - epoch * self.steps_per_epoch
        loader = train_loader(
            self.train_set,
            batch_size=self.batch,
            epoch=epoch,
            seed=self.cfg.seed,
            rank=self.rt.rank,
            world_size=self.rt.world_size,
            skip_batches=skip,
            workers=self.workers,
            pin_memory=self.rt.device.type == "cuda",
            collate=self.collate,
        )
        end = min(self.total_steps, (epoch + 1) * self.steps_per_epoch)
        bar = tqdm(
            total=end - epoch * self.steps_per_epoch,
            initial=skip,
            desc=f"epoch {epoch + 1}/{self.cfg.epochs}",
            disable=not (self.rt.is_main and self.cfg.progress),
            leave=False,
            dynamic_ncols=True,
        )
        self.model.train()
        if self.cfg.freeze_bn:
            build.freeze_batchnorm(self.model)
        memory_format = torch.channels_last if self.cfg.channels_last else torch.contiguous_format
        tick = time.perf_counter()
        for batch in loader:
            self.skipped.update(batch.skipped)
            if len(batch) == 0:
                continue
            lr = lr_at(self.cfg, self.step, self.steps_per_epoch)
            set_lr(self.optimizer, lr)
            x = batch.images.to(self.rt.device, memory_format=memory_format, non_blocking=True)
            y = self.task.targets_to(batch.targets, self.rt.device)
            loss, stats = self.step_fn(x, y)
            self.epoch.add(loss, stats, len(batch))
            self.step += 1
            self.session_steps += 1
            now = time.perf_counter()
            if self.session_steps > WARMUP_STEPS:
                self.timing["train_seconds"] += now - tick
                self.timing["train_images"] += len(batch) * self.rt.world_size
            self.timing["epoch_seconds"] += now - tick
            bar.update(1)
            if self.step % 10 == 0 or self.step == end:
                self._check_finite(lr)
                if self.rt.is_main:
                    self._progress(bar, loss.item(), lr)
            if self.cfg.checkpoint_every and self.step % self.cfg.checkpoint_every == 0 and self.step < end:
                self._save_checkpoint(best=False)
            tick = time.perf_counter()
            if self.step >= end or self.interrupts.caught is not None:
                break
        bar.close()

    def _check_finite(self, lr: float) -> None:
        if not self.epoch.all_finite():
            raise NonFiniteLoss(
                f"the loss became NaN or Inf by step {self.step} (lr {lr:.3g}); stopped, the last good checkpoint "
                f"in {self.out} is kept (lower --lr, or check the data and --weights)"
            )

    def _progress(self, bar: tqdm, loss: float, lr: float) -> None:
        postfix = {"loss": f"{loss:.3f}", "lr": f"{lr:.3g}"}
        postfix |= {name: f"{value:.3f}" for name, value in self.epoch.means().items() if name != "loss"}
        if self.timing["train_seconds"]:
            postfix["img_s"] = f"{self.timing['train_images'] / self.timing['train_seconds']:.0f}"
        bar.set_postfix(postfix)
        self.tb.scalars({"train/loss": loss, "train/lr": lr}, self.step)

    def _stop_interrupted(self) -> None:
        self._check_finite(lr_at(self.cfg, self.step, self.steps_per_epoch))
        self._save_checkpoint(best=False)
        log.warning("interrupted at step %d; checkpoint saved: continue with --resume --out %s", self.step, self.out)
        raise KeyboardInterrupt

    def _end_epoch(self, epoch: int) -> None:
        self._check_finite(lr_at(self.cfg, self.step - 1, self.steps_per_epoch))
        train = self.epoch.means(self.rt)
        result = self._validate()
        row: dict[str, Any] = {"epoch": epoch + 1, "step": self.step}
        row |= {f"train_{name}": value for name, value in train.items()}
        row |= {f"val_{name}": value for name, value in result.metrics.items()}
        row |= {
            "lr": lr_at(self.cfg, self.step - 1, self.steps_per_epoch),
            "epoch_seconds": self.timing["epoch_seconds"],
        }
        self.history.append(row)
        self.epoch.reset()
        self.timing["epoch_seconds"] = 0.0
        score = result.metrics[self.task.primary_metric]
        improved = score > self.best
        self.best = max(self.best, score)
        if self.rt.is_main:
            shown = " ".join(f"{k} {v:.4f}" for k, v in row.items() if k.startswith(("train_", "val_")))
            log.info("epoch %d: %s", epoch + 1, shown)
            self.tb.scalars({f"epoch/{k}": v for k, v in row.items() if k not in ("epoch", "step")}, self.step)
            write_metrics(self.out, self.history)
        self._save_checkpoint(best=improved)

    def _validate(self) -> Evaluation:
        model = self.ema.module if self.ema is not None else self.model
        loader = eval_loader(
            self.val_set,
            batch_size=self.batch,
            rank=self.rt.rank,
            world_size=self.rt.world_size,
            workers=self.workers,
            collate=self.collate,
        )
        result = self.task.evaluate(
            model, loader, rt=self.rt, precision=self.precision, channels_last=self.cfg.channels_last
        )
        self.skipped.update(result.skipped)
        return result

    def _state(self) -> dict[str, Any]:
        rng = [rng_state()]
        if self.rt.distributed:
            rng = [None] * self.rt.world_size
            dist.all_gather_object(rng, rng_state())
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else {},
            "scaler": self.step_fn.scaler.state_dict() if self.step_fn.scaler is not None else {},
            "rng": rng,
            "step": self.step,
            "epoch_sums": self.epoch.state_dict(),
            "history": self.history,
            "best": self.best,
            "timing": dict(self.timing, wall_seconds=self.timing["wall_seconds"] + self._session_wall()),
            "skipped": sorted(self.skipped),
            "config": plain(dataclasses.asdict(self.cfg))
            | {"model_options_resolved": plain(meta_of(self.model).options)},
        }

    def _session_wall(self) -> float:
        return time.perf_counter() - self.session_start

    def _save_checkpoint(self, *, best: bool) -> None:
        state = self._state()
        if not self.rt.is_main:
            return
        save_atomic(state, self.out / "checkpoint-last.pt")
        if best:
            save_atomic(state, self.out / "checkpoint-best.pt")

    def _resume(self) -> None:
        path = self.out / "checkpoint-last.pt"
        if not path.is_file():
            log.warning("--resume: no checkpoint in %s yet; starting from step 0", self.out)
            return
        state = load_checkpoint(path)
        saved = state["config"]
        for key in RESUME_KEYS:
            if plain(getattr(self.cfg, key)) != saved.get(key):
                raise UserError(f"--resume: {key} differs from the checkpoint's ({saved.get(key)!r})")
        if plain(self.model.meta.options) != plain(saved.get("model_options_resolved", self.model.meta.options)):
            raise UserError("--resume: the model's options differ from the checkpoint's")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None and state["ema"]:
            self.ema.load_state_dict(state["ema"])
        if self.step_fn.scaler is not None and state["scaler"]:
            self.step_fn.scaler.load_state_dict(state["scaler"])
        rngs = state["rng"]
        set_rng_state(rngs[self.rt.rank] if self.rt.rank < len(rngs) else rngs[0])
        self.step, self.history, self.best = state["step"], state["history"], state["best"]
        self.epoch.load_state_dict(state["epoch_sums"])
        self.timing = dict(state["timing"])
        self.skipped.update(state["skipped"])
        self.resumed_from = self.step
        log.info("resumed from step %d (%s)", self.step, path)

    def _finish(self) -> dict[str, Any]:
        from mobilenetv2.weights import save

        last = self.history[-1]
        key = f"val_{self.task.primary_metric}"
        best_row = max(self.history, key=lambda r: r[key])
        t = self.timing
        meta = meta_of(self.model)
        summary = {k: v for k, v in last.items() if k.startswith("val_")}
        summary |= {
            f"best_{key}": best_row[key],
            "best_epoch": best_row["epoch"],
            "epochs": round(self.step / self.steps_per_epoch, 4),
            "steps": self.step,
            "wall_seconds": t["wall_seconds"],
            "train_seconds": t["train_seconds"],
            "train_images_per_second": t["train_images"] / t["train_seconds"] if t["train_seconds"] else 0.0,
            "skipped_files": len(self.skipped),
            "world_size": self.rt.world_size,
            "resumed_from_step": self.resumed_from,
            "task": self.task.name,
            "model": meta.architecture,
            "model_options": plain(meta.options),
            "num_classes": self.num_classes,
            "recipe": self.cfg.recipe,
            "dataset": self.cfg.dataset,
            "precision": self.precision,
            "device": str(self.rt.device),
            "ema": self.ema is not None,
            "out": str(self.out),
        }
        summary |= self.task.summary_extras()
        if self.rt.is_main:
            final = self.ema.module if self.ema is not None else self.model
            provenance = {"source": "mobilenetv2 train", "recipe": self.cfg.recipe, "dataset": self.cfg.dataset}
            provenance[key] = summary[key]
            save(
                final,
                self.out / "model.safetensors",
                preprocessing=self.pre,
                class_names=self.class_names,
                provenance=provenance,
            )
            if self.skipped:
                write_text_atomic(self.out / "skipped_files.txt", "\n".join(sorted(self.skipped)) + "\n")
            write_json(self.out / "summary.json", summary)
            plot_curves(self.history, self.out / "curves.png", primary=self.task.primary_metric)
            self.tb.close()
        if self.rt.distributed:
            dist.barrier()
        return summary
