"""Two-phase recipes and shipped weights: the second phase continues the first one's cached model,
``ship`` writes a build with its recipe and hash, and loading prefers the shipped copy."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import presrm.model.default as default_record
import presrm.train.default_recipe as dm
from presrm.model.checkpoints import CHECKPOINT_FILE
from presrm.model.loading import load_checkpoint, load_policy
from presrm.train.ship_default import REBUILD_COMMAND, WEIGHTS_FILE, file_sha256, ship

TINY = replace(
    dm.DEFAULT_RECIPE.first_phase(),
    hidden_size=32,
    num_layers=2,
    num_heads=2,
    intermediate_size=64,
    steps=12,
    batch_size=8,
    max_pool=100,
    lr=3e-3,
)
TWO_PHASE = replace(TINY, converge_steps=4, converge_batch_size=4, converge_problems=30, harder_fraction=0.25)
MAX_SHIPPED_BYTES = 50 * 1024 * 1024


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PRESRM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "shipped"
    monkeypatch.setattr(default_record, "SHIPPED_ROOT", root)
    return root


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_a_one_phase_recipe_keeps_its_key_and_phase_two_fields_change_it() -> None:
    assert TINY.first_phase() == TINY and TWO_PHASE.first_phase() == TINY
    assert TWO_PHASE.key() != TINY.key()
    # Unset phase-two fields do not enter the hash; set ones do.
    assert replace(TINY, harder_fraction=0.5).key() == TINY.key()
    assert replace(TWO_PHASE, harder_fraction=0.5).key() != TWO_PHASE.key()
    assert replace(TWO_PHASE, converge_lr=1e-4).key() != TWO_PHASE.key()
    assert TWO_PHASE.harder()["n_ops"] == 3 and TWO_PHASE.options()["n_ops"] == 2


def test_phase_two_mixes_harder_solutions_in_the_stated_share() -> None:
    policy = load_policy("tiny", device="cpu")
    examples = dm.converge_examples(policy, TWO_PHASE)
    steps = [e.completion.count("Step ") for e in examples]
    assert len(examples) == 30 + 10  # 30 of the base kind, 25 % of the pool harder
    assert sum(s >= 4 for s in steps) == 10  # 3 operations + the answer line
    assert all(e.eos and e.completion.startswith("Step 1: ") for e in examples)
    with pytest.raises(ValueError, match="harder_fraction"):
        dm.converge_examples(policy, replace(TWO_PHASE, harder_fraction=1.0))


def test_mixes_add_their_kinds_in_their_shares_and_enter_the_key() -> None:
    wide = ((0.125, (("n_ops", 1), ("max_start", 100))), (0.125, (("max_start", 100),)))
    mixed = replace(TWO_PHASE, converge_problems=40, mixes=wide)
    assert mixed.key() != replace(mixed, mixes=()).key()
    assert replace(TWO_PHASE, mixes=()).key() == TWO_PHASE.key()
    assert replace(TINY, mixes=mixed.mixes).key() == TINY.key()  # a phase-two field
    policy = load_policy("tiny", device="cpu")
    examples = dm.converge_examples(policy, mixed)
    steps = [e.completion.count("Step ") for e in examples]
    # 40 base-kind problems are half the pool: 25 % harder, 12.5 % of each mix.
    assert len(examples) == 80 and sum(s >= 4 for s in steps) == 20 and sum(s == 2 for s in steps) == 10
    starts = [int(e.prompt.split(" has ")[-1].split()[0]) for e in examples if " has " in e.prompt]
    assert max(starts) > 20  # the wide start amounts
    with pytest.raises(ValueError, match="shares"):
        dm.converge_examples(policy, replace(mixed, mixes=((0.8, (("n_ops", 1),)),)))


def test_a_two_phase_recipe_continues_the_cached_first_phase(cache: Path, shipped: Path) -> None:
    path = dm.ensure_default(TWO_PHASE, progress=None)
    first = cache / f"default-{TINY.key()}"
    assert path == cache / f"default-{TWO_PHASE.key()}" and (first / CHECKPOINT_FILE).is_file()
    before = _weights(load_checkpoint(first, device="cpu").model)
    after = _weights(load_checkpoint(path, device="cpu").model)
    assert before.keys() == after.keys() and not all(torch.equal(before[k], after[k]) for k in before)


def test_shipped_weights_carry_their_recipe_and_hash_and_load_without_a_build(
    cache: Path, shipped: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = ship(TINY, root=shipped, progress=None)
    assert path == shipped / f"default-{TINY.key()}"
    record = json.loads((path / "recipe.json").read_text())
    assert record["key"] == TINY.key() and record["rebuild"] == REBUILD_COMMAND
    assert record["weights_sha256"] == file_sha256(path / WEIGHTS_FILE)
    assert record["steps"] == TINY.steps and "bf16_autocast" in record["built_on"]
    assert json.loads((path / CHECKPOINT_FILE).read_text())["base_spec"] == "default"

    messages: list[str] = []
    monkeypatch.setattr(default_record, "DEFAULT_RECIPE", TINY)  # what load_policy("default") loads
    policy = dm.load_default(device="cpu", recipe=TINY, progress=messages.append)
    assert messages == [] and not cache.exists()  # nothing trained, nothing cached
    assert policy.spec == "default"
    shipped_weights = _weights(load_checkpoint(path, device="cpu").model)
    assert all(torch.equal(v, shipped_weights[k]) for k, v in _weights(policy.model).items())
    assert _weights(load_policy("default", device="cpu").model).keys() == shipped_weights.keys()

    # Shipping another recipe replaces the old copy: only the current recipe's weights ship.
    other = ship(replace(TINY, seed=1), root=shipped, progress=None)
    assert [p.name for p in shipped.iterdir()] == [other.name]


def test_the_package_ships_the_default_recipe_and_nothing_stale() -> None:
    root = default_record.SHIPPED_ROOT
    target = default_record.shipped_dir(dm.DEFAULT_RECIPE)
    assert [p.name for p in root.iterdir() if p.is_dir()] == [target.name], "rebuild: " + REBUILD_COMMAND
    record = json.loads((target / "recipe.json").read_text())
    assert record["key"] == dm.DEFAULT_RECIPE.key()
    assert record["weights_sha256"] == file_sha256(target / WEIGHTS_FILE)
    assert sum(f.stat().st_size for f in target.iterdir()) <= MAX_SHIPPED_BYTES
    assert (target / CHECKPOINT_FILE).is_file()


def test_a_broken_copy_names_its_remedy(cache: Path, shipped: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from presrm.errors import ModelError

    monkeypatch.setattr(default_record, "DEFAULT_RECIPE", TINY)
    path = ship(TINY, root=shipped, progress=None)
    (path / WEIGHTS_FILE).write_bytes(b"not safetensors")
    with pytest.raises(ModelError, match="shipped default model is unreadable; reinstall presrm or rebuild"):
        load_policy("default", device="cpu")
    with pytest.raises(ModelError, match="ship_default"):
        dm.load_default(device="cpu", recipe=TINY, progress=None)

    cached = dm.ensure_default(replace(TINY, seed=2), progress=None)
    (cached / WEIGHTS_FILE).write_bytes(b"not safetensors")
    with pytest.raises(ModelError, match="cached default model is unreadable; delete the directory"):
        dm.load_default(device="cpu", recipe=replace(TINY, seed=2), progress=None)
