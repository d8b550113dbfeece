"""Data-parallel runs: which process this is, and the few collectives the loop needs.

``presrm run`` started by a launcher that sets ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK``
(``torchrun``, or ``accelerate launch`` in a mode that runs torchrun underneath) runs the
same loop in every process (README, "Multi-process / multi-GPU"):

* rank 0 alone opens the run file (DuckDB allows one writing process); the other ranks
  hold a ``ReplicaStore`` (presrm.store.writer), which never touches it;
* search and eval: every rank searches its share of the problems, rank 0 gathers the
  trees, numbers them and writes them;
* training: rank 0 reads the data from the run file and broadcasts it; every rank
  trains on its share with gradients all-reduced (TRL's trainers and the PPO trainer's
  ``Accelerator`` wrap the model in DDP); the replicas' weights are compared after each
  training stage and rank 0 saves the checkpoint.

The process group is created here through accelerate's ``PartialState`` (the object TRL's
trainers use too, so both agree on it): gloo for a CPU run, NCCL for CUDA. A process started
without a launcher (``WORLD_SIZE`` unset or 1) gets :data:`SINGLE`, on which every
collective is the identity. ZeRO-2 (DeepSpeed) keeps whole parameters on every rank and
fits this design; FSDP shards them and is refused.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from presrm.errors import PresrmError

T = TypeVar("T")

# Ranks wait in a collective while rank 0 alone works (judging the held-out pairs,
# computing the metrics, writing); the default 10-minute NCCL timeout is too short for that.
GROUP_TIMEOUT = dt.timedelta(hours=2)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value.strip() else default
    except ValueError:
        raise PresrmError(f"environment variable {name}={value!r} is not an integer") from None


def env_ranks() -> tuple[int, int, int]:
    """(rank, world size, local rank) as the launcher set them; (0, 1, 0) without one."""
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", rank)
    if world < 1 or not 0 <= rank < world:
        raise PresrmError(f"launcher environment: RANK={rank} does not fit WORLD_SIZE={world}")
    return rank, world, local


@dataclass(frozen=True)
class Dist:
    """This process's place in a data-parallel run (``world == 1``: a plain run)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, spec: str) -> str:
        """The device a rank uses for ``spec``: ``auto`` / ``cuda`` become ``cuda:<local rank>``
        when CUDA is there; an explicit ``cuda:N`` or ``cpu`` is kept."""
        if self.enabled and spec in ("auto", "cuda") and torch.cuda.is_available():
            return f"cuda:{self.local_rank % torch.cuda.device_count()}"
        return spec

    # ---- collectives (all ranks must call them, in the same order) ---------------------------
    def from_main(self, fn: Callable[[], T]) -> T:
        """``fn()`` computed on rank 0 and sent to every rank (``fn`` runs only on rank 0)."""
        if not self.enabled:
            return fn()
        box: list[Any] = [fn() if self.is_main else None]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def on_main(self, fn: Callable[[], T]) -> T | None:
        """``fn()`` on rank 0 alone (``None`` on the other ranks), kept where it was made: a run
        file, a lock. A PresrmError it raises is raised on every rank, so that no rank waits at
        the next collective for a rank 0 that has stopped."""
        made: T | None = None
        failure: PresrmError | None = None
        if self.is_main:
            try:
                made = fn()
            except PresrmError as err:
                failure = err
        failure = self.from_main(lambda: failure)
        if failure is not None:
            raise failure
        return made

    def gather(self, obj: T) -> list[T] | None:
        """Every rank's ``obj`` on rank 0, in rank order; ``None`` on the other ranks."""
        if not self.enabled:
            return [obj]
        out: list[Any] | None = [None] * self.world if self.is_main else None
        torch.distributed.gather_object(obj, out, dst=0)
        return out

    def all_gather(self, obj: T) -> list[T]:
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any rank (e.g. Ctrl-C reached one of them)."""
        return any(self.all_gather(bool(flag))) if self.enabled else flag

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (e.g. fills a model cache), the others after it."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()

    def accelerator(self, device: torch.device) -> Any:
        """An ``accelerate.Accelerator`` on this process group (for the PPO trainer)."""
        from accelerate import Accelerator

        return Accelerator(cpu=device.type == "cpu")

    def finish(self) -> None:
        """Leave the group together: a rank that exits while another still uses it aborts that one."""
        if self.enabled and torch.distributed.is_initialized():
            torch.distributed.barrier()
            # The stages' DDP wrappers (in reference cycles) still own the process group; collect
            # them so destroying it joins gloo's worker threads now. A group left for interpreter
            # exit aborts the process ~1 run in 4: a worker freeing a finished collective needs
            # the GIL during finalization ("terminate called without an active exception").
            gc.collect()
            torch.distributed.destroy_process_group()


SINGLE = Dist()


def setup(device_spec: str) -> Dist:
    """Join the launcher's process group (once per process); :data:`SINGLE` without a launcher.

    ``device_spec`` (the run's ``device``) picks the backend: gloo for a CPU run, NCCL for CUDA.
    """
    rank, world, local = env_ranks()
    if world == 1:
        return SINGLE
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true":
        # Refused before any work: a sharded model can only run forward passes in lockstep on
        # every rank, while each rank searches its own problems with the whole model.
        raise PresrmError(
            "FSDP is not supported yet: it shards the parameters, and each rank's search needs the whole"
            ' model (README, "Multi-process / multi-GPU"); use ds_zero2.yaml or plain --multi_gpu (DDP)'
        )
    dist = Dist(rank, world, local)
    from presrm.model.policy import resolve_device

    on_cpu = resolve_device(dist.device(device_spec)).type == "cpu"
    if not torch.distributed.is_initialized():
        from accelerate import PartialState

        # cpu=True: a MULTI_CPU group (gloo); otherwise NCCL on cuda:<local rank> (and DeepSpeed's
        # or FSDP's own initialisation when `accelerate launch` asked for them).
        PartialState(cpu=on_cpu, backend="gloo" if on_cpu else None, timeout=GROUP_TIMEOUT)
    if torch.distributed.get_world_size() != world or torch.distributed.get_rank() != rank:
        raise PresrmError(
            f"process group (rank {torch.distributed.get_rank()} of {torch.distributed.get_world_size()})"
            f" does not match the launcher's RANK={rank} WORLD_SIZE={world}"
        )
    return dist


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 of the trainable parameters (names and bytes, in order): equal on every rank
    after a data-parallel update, and equal to the digest of the saved checkpoint."""
    h = hashlib.sha256()
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        h.update(name.encode())
        h.update(str(param.dtype).encode())
        h.update(param.detach().to("cpu").contiguous().flatten().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
