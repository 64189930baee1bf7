"""What every training run shares: its result, the Trainer's arguments from a recipe, the efficiency
figures (parameter counts, peak memory, sizes), library versions, the atomic write of the finished
adapter folder, and the guards around a run: the base's positions bound ``train.max_length`` before
it starts, and a run whose loss or weights stop being finite stops and writes nothing.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import json
import math
import os
import resource
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import accelerate
import datasets
import peft
import safetensors
from safetensors.torch import load_file, save_file
import torch
import transformers
from transformers import AutoConfig, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices

from zoo._version import __version__
from zoo.artifact.card import render_card
from zoo.artifact.record import AdapterRecord, non_finite_tensors
from zoo.config.recipe import Recipe
from zoo.data.sources import ResolvedModel
from zoo.errors import RecipeError, TrainingDiverged, ZooError
from zoo.models.layers import max_positions


@dataclass
class TrainResult:
    adapter_dir: Path  # the finished folder: weights + zoo.json + README.md
    metrics: dict
    baseline: dict
    efficiency: dict
    model: Any = field(repr=False, default=None)  # the trained model, still in memory
    main_process: bool = True  # False on the other ranks of a multi-process launch
    rank: int = 0  # this process's index in a multi-process launch (accelerate launch, torchrun)
    processes: int = 1  # how many processes trained together


def versions() -> dict:


    return {
        "adapter-zoo": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
        "peft": peft.__version__, "datasets": datasets.__version__, "accelerate": accelerate.__version__,
        "safetensors": safetensors.__version__,
    }


_PEAK = {"kind": "process_max_rss"}


def start_peak_memory() -> None:
    """Start a run's peak-memory measure: CUDA's peak counter, else (Linux) the process's RSS high-water mark,
    reset by writing 5 to /proc/self/clear_refs. Without a reset, a build that trains several recipes in one
    process would give every recipe the largest peak of the recipes before it. The reset starts from the RSS of
    the moment, so what earlier runs freed is first handed back to the system (a collection, then glibc's
    malloc_trim): measured here, after a SmolLM2 run the process held 2,066 MB, 654 MB after both, and every
    later recipe of the build reported the difference as its own."""
    release_freed_memory()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        _PEAK["kind"] = "cuda_max_allocated"
        return
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        _PEAK["kind"] = "run_peak_rss"
    except OSError:  # not Linux, or not allowed: the process's peak since it started
        _PEAK["kind"] = "process_max_rss"


def release_freed_memory() -> None:
    """Collect unreachable objects and return the C heap's free pages to the system (glibc ``malloc_trim``; a
    no-op where there is no glibc). Python's allocator and glibc keep freed memory for reuse, so the RSS of a
    process that trained a recipe stays near that run's peak long after its objects are gone."""
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)  # the C library this interpreter runs on; once per run
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        pass


def peak_memory() -> tuple[int, str]:
    """Bytes at the peak since ``start_peak_memory`` (or since the process started), and what was measured."""
    if torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated()), "cuda_max_allocated"
    if _PEAK["kind"] == "run_peak_rss":
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024, "run_peak_rss"  # KiB
        except OSError:
            pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024, "process_max_rss"  # Linux reports KiB


def parameter_counts(model) -> tuple[int, int]:
    if hasattr(model, "get_nb_trainable_parameters"):  # PEFT's own count, as users know it
        return tuple(int(x) for x in model.get_nb_trainable_parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return int(trainable), int(sum(p.numel() for p in model.parameters()))


class _GroupedSampler(LengthGroupedSampler):
    """transformers' length-grouped sampler with the group size chosen (``train.length_group_batches``)."""

    def __init__(self, *args, groups: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.groups = groups

    def __iter__(self):
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, mega_batch_mult=self.groups,
                                               generator=self.generator))


TRANSFORMERS_GROUP_BATCHES = 50  # transformers' own length-group size (get_length_grouped_indices' mega_batch_mult)


PROMPT_ENCODER_FILE = "zoo_prompt_encoder.safetensors"


def reparametrized_encoder(model):
    """The active adapter's prompt encoder when it is more than the prompts themselves (P-tuning's MLP or LSTM,
    prefix tuning with ``prefix_projection``), else None."""
    encoders = getattr(model, "prompt_encoder", None)
    if not encoders or not getattr(model, "active_adapter", None) in encoders:
        return None
    encoder = encoders[model.active_adapter]
    return encoder if set(encoder.state_dict()) != {"embedding.weight"} else None


class ZooTrainer(Trainer):
    """transformers' Trainer, with the length grouping of ``train.length_group_batches`` (``group_size``), and
    checkpoints that restore a reparametrized prompt encoder exactly.

    PEFT saves P-tuning (and prefix tuning with a projection) as the encoder's output, ``prompt_embeddings``, which
    is what a published adapter must hold. Loaded back into a model that is training, those outputs become the
    encoder's input and go through its MLP again: the best epoch that ``early_stopping_patience`` restores, and a
    run resumed from a checkpoint, got other prompts (measured: TweetEval emotion P-tuning, evaluation loss 0.79 at
    its best epoch, 1.39 and macro-F1 0.27 once restored). Each checkpoint also keeps the whole encoder
    (``zoo_prompt_encoder.safetensors``), loaded after the Trainer's own loading."""

    def __init__(self, *args, group_size: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.group_size = group_size
        if isinstance(self.model, peft.PeftModel):  # checkpoints saved as published: no Hub lookup (peft_common.save)
            self.model.save_pretrained = functools.partial(type(self.model).save_pretrained, self.model,
                                                           save_embedding_layers=False)

    def _save(self, output_dir=None, state_dict=None):
        super()._save(output_dir, state_dict=state_dict)
        encoder = reparametrized_encoder(self.model)
        if encoder is not None and self.args.should_save:
            folder = Path(output_dir if output_dir is not None else self.args.output_dir)
            save_file({k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()},
                      str(folder / PROMPT_ENCODER_FILE))

    def _restore_encoder(self, checkpoint) -> None:
        encoder = reparametrized_encoder(self.model)
        if encoder is None or checkpoint is None:
            return
        path = Path(checkpoint) / PROMPT_ENCODER_FILE
        if not path.is_file():
            raise ZooError(f"{checkpoint} has no {PROMPT_ENCODER_FILE}: its prompt encoder cannot be restored "
                           "exactly (a checkpoint written before the zoo kept it); train again without --resume")
        encoder.load_state_dict(load_file(str(path), device=str(encoder.embedding.weight.device)), strict=True)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        self._restore_encoder(resume_from_checkpoint)

    def _load_best_model(self):
        super()._load_best_model()
        self._restore_encoder(self.state.best_model_checkpoint)

    def _get_train_sampler(self, train_dataset=None):
        sampler = super()._get_train_sampler(train_dataset)
        if type(sampler) is LengthGroupedSampler and self.group_size != TRANSFORMERS_GROUP_BATCHES:
            return _GroupedSampler(sampler.batch_size, lengths=sampler.lengths, generator=sampler.generator,
                                   groups=self.group_size)
        return sampler


def training_arguments(recipe: Recipe, checkpoints: Path, metric: str, progress: bool, greater_is_better: bool = True):

    t = recipe.train
    strategy = "steps" if t.eval_steps else "epoch"
    return TrainingArguments(
        output_dir=str(checkpoints),
        learning_rate=t.learning_rate,
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.eval_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        weight_decay=t.weight_decay,
        warmup_steps=float(t.warmup_ratio),  # a float in [0, 1) is a ratio of all steps
        max_grad_norm=t.max_grad_norm if t.max_grad_norm is not None else 0.0,
        eval_strategy=strategy,
        save_strategy=strategy,
        eval_steps=t.eval_steps,
        save_steps=t.eval_steps,
        save_total_limit=t.save_total_limit,
        load_best_model_at_end=t.early_stopping_patience is not None,
        metric_for_best_model=metric,
        greater_is_better=greater_is_better,
        train_sampling_strategy="group_by_length" if t.group_by_length else "random",
        logging_steps=t.logging_steps,
        logging_nan_inf_filter=False,  # a NaN loss must reach the log (and StopOnNonFinite), not be averaged away
        seed=recipe.seed,
        data_seed=recipe.seed,
        report_to="none",
        disable_tqdm=not progress,
        dataloader_pin_memory=torch.cuda.is_available(),
        bf16=t.bf16,
        use_cpu=cpu_only(t.bf16),
    )


def cpu_only(bf16: bool) -> bool:
    """Whether to tell transformers the run is on CPUs (``use_cpu``): bf16 without CUDA (transformers refuses it
    otherwise), and a multi-process launch on a machine without accelerators, which otherwise initializes its
    process group but trains each process alone (measured: two processes, two separate trainings, two pushes)."""
    if torch.cuda.is_available() or (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        return False
    return bf16 or launched_processes() > 1


def launched_processes() -> int:
    """How many processes torchrun or accelerate launch started for this run (their ``WORLD_SIZE``); 1 without a
    launcher or with a value that is not a positive whole number."""
    world = os.environ.get("WORLD_SIZE", "1")
    return int(world) if world.isdigit() and int(world) > 0 else 1


def write_atomically(build, final: Path) -> None:
    """Build a folder next to ``final`` and swap it in with renames: no half-written folder is ever visible."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        build(tmp)
        old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def folder_size(folder: Path, names=None) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file() and (names is None or p.name in names))




def provenance(recipe: Recipe, task, fingerprint: dict) -> dict:
    """What every record says of its run: the resolved recipe, where the data came from, library versions, when."""
    return {"recipe": recipe.to_dict(), "versions": versions(),
            "fingerprint": fingerprint, "sweep": recipe.sweep,
            "data_source": str(recipe.data_dir or os.environ.get("ZOO_DATA_DIR") or f"hub:{task.hub_dataset}"),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def write_record_and_card(folder: Path, record: AdapterRecord, method) -> None:
    """zoo.json and the model card (README.md) of a finished adapter folder."""
    record.write(folder)
    (folder / "README.md").write_text(render_card(record, method.text(causal=record.causal)))


# ------------------------------------------------------------------------------- guards
def check_positions(recipe: Recipe, base: ResolvedModel) -> None:
    """``train.max_length`` (+ the virtual tokens of prompt methods, + ``generation.max_new_tokens`` for causal LMs)
    fits the base's positions, else a RecipeError before any data or weights are loaded.

    An adapter trained past the table would publish fine and then fail on the first long input."""
    config = AutoConfig.from_pretrained(base.path, local_files_only=base.local_files_only)
    limit = max_positions(config)
    t = recipe.train
    virtual = int(getattr(recipe.method, "num_virtual_tokens", 0) or 0)  # prompt, P- and prefix tuning take positions
    new = recipe.generation.max_new_tokens if recipe.causal else 0  # generation continues after the prompt
    if limit is None or t.max_length + virtual + new <= limit:
        return
    parts = [f"train.max_length={t.max_length}"]
    parts += [f"method.num_virtual_tokens={virtual}"] if virtual else []
    parts += [f"generation.max_new_tokens={new}"] if new else []
    room = limit - virtual - new
    advice = (f"set train.max_length to at most {room}" if room >= 1
              else "lower " + " or ".join(p.split("=")[0] for p in parts[1:]))
    raise RecipeError(f"train.max_length={t.max_length} does not fit base {recipe.base_model!r}, which reads at most "
                      f"{limit} positions ({' + '.join(parts)} = {t.max_length + virtual + new}); {advice}")


def _diverged(step: int, what: str, args) -> TrainingDiverged:
    return TrainingDiverged(
        f"training diverged at step {step}: {what}; nothing was written. Lower train.learning_rate "
        f"(now {args.learning_rate:g}) and train again (keep train.max_grad_norm set; now {args.max_grad_norm or 'off'})")


class StopOnNonFinite(TrainerCallback):
    """Stops a run as soon as a trained weight (checked after every step), the logged loss or the validation loss
    is NaN or infinite.

    Raising here leaves Trainer.train before the step's checkpoint is saved, and train() before anything is written.
    The check after each step is one sum per trained tensor (``all_finite``: 0.2 ms for MiniLM's 76 LoRA tensors, where
    ``isfinite`` on each took 2.4 ms, 2 % of a step); only when a sum is not finite are the tensors named."""

    def __init__(self):
        self._model = None
        self._watched: list = []

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if model is None:
            return
        if model is not self._model:  # the trained tensors, listed once per model (walking the modules took 0.4 ms)
            self._model, self._watched = model, [p for p in model.parameters() if p.requires_grad and p.is_floating_point()]
        if all_finite(self._watched):
            return
        bad = non_finite_parameters(model)
        if bad:  # else finite weights whose sum overflows: huge, and left to the validation loss to judge
            raise _diverged(state.global_step, f"{len(bad)} trained tensor(s) hold NaN or infinity ({bad[0]}, ...)", args)

    def on_log(self, args, state, control, logs=None, **kwargs):
        loss = (logs or {}).get("loss")  # the mean over the logging window: one NaN step makes it NaN
        if isinstance(loss, (int, float)) and not math.isfinite(loss):
            raise _diverged(state.global_step, f"the training loss is {loss}", args)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        # Huge but finite weights (lr=1e30 for one step) still answer NaN: the validation loss says so.
        check_finite_metrics(metrics or {}, state.global_step, args)


CLOCK_FILE = "zoo_train_clock.json"


class TrainClock(TrainerCallback):
    """Training time across interruptions. Each checkpoint keeps the seconds trained up to it (``zoo_train_clock.json``
    beside the Trainer's state), and a run resumed from that checkpoint starts counting from them, so a resumed
    adapter's ``train_seconds`` is the whole training's, not its last piece's.

    ``before`` is the checkpoint's count (0.0 for a fresh run); ``unknown`` is True when the run resumed from a
    checkpoint that holds no count (written before the zoo kept one): its time before the interruption is lost."""

    def __init__(self):
        self.before = 0.0
        self.unknown = False
        self._started: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._started = time.perf_counter()
        self.before, self.unknown = 0.0, False
        if state.global_step:  # the state is the checkpoint's when resuming
            seconds = read_clock(Path(args.output_dir) / f"checkpoint-{state.global_step}")
            self.before, self.unknown = (seconds, False) if seconds is not None else (0.0, True)

    def seconds(self) -> float:
        return self.before + (time.perf_counter() - self._started if self._started is not None else 0.0)

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero and folder.is_dir():
            tmp = folder / f".{CLOCK_FILE}.{uuid.uuid4().hex}"
            tmp.write_text(json.dumps({"train_seconds": round(self.seconds(), 3)}))
            os.replace(tmp, folder / CLOCK_FILE)


def read_clock(checkpoint: Path) -> float | None:
    """The seconds a checkpoint says were trained up to it; None when it holds no readable, finite, non-negative count."""
    try:
        seconds = json.loads((checkpoint / CLOCK_FILE).read_text())["train_seconds"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds < 0:
        return None
    return float(seconds)


def resumed_time_note(clock: TrainClock, name: str) -> None:
    if clock.unknown:
        print(f"{name}: resumed from a checkpoint that does not record the time trained before it; "
              "train_seconds counts this run only (train again with --force for the whole figure)", flush=True)


def check_finite_metrics(metrics: dict, step: int, args) -> None:
    """A model whose validation loss (or perplexity) is NaN or infinite has diverged, even when its weights are finite."""
    for key, value in metrics.items():
        lossy = any(word in key for word in ("loss", "nll", "perplexity"))
        if lossy and isinstance(value, (int, float)) and not math.isfinite(value):
            raise _diverged(step, f"the validation {key.removeprefix('eval_').replace('_', ' ')} is {value}", args)


def all_finite(tensors: list) -> bool:
    """True when no tensor holds NaN or infinity, or (rarely) False for finite values so large their sum overflows:
    confirm with ``non_finite_parameters``. One sum per tensor: a NaN or an infinity makes its sum non-finite."""
    if not tensors:
        return True
    with torch.no_grad():
        return bool(torch.stack([t.detach().sum(dtype=torch.float32) for t in tensors]).isfinite().all())


def non_finite_parameters(model) -> list[str]:
    """Names of the trainable parameters holding NaN or infinity (cheap: only what the run trains)."""
    return [name for name, p in model.named_parameters()
            if p.requires_grad and p.is_floating_point() and not bool(torch.isfinite(p).all())]


def check_finite_weights(folder: Path, step: int, args) -> None:
    """The last line of defence before a folder is published: every tensor of its safetensors files is finite."""
    for path in sorted(folder.glob("*.safetensors")):
        bad = non_finite_tensors(path)
        if bad:
            raise _diverged(step, f"{path.name} holds NaN or infinity in {bad[0]}", args)