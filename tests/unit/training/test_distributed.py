"""The torchrun contract, the dealing of an epoch and the evaluation shards (no processes)."""

from __future__ import annotations

import pytest
import torch

from trainlib.data import epoch_batches, shard_batches, steps_per_epoch
from trainlib.distributed import Distributed, revert_sync_batchnorm, shard_bounds, unwrap
from trainlib.errors import InputError

TORCHRUN = {
    "WORLD_SIZE": "4",
    "RANK": "3",
    "LOCAL_RANK": "1",
    "LOCAL_WORLD_SIZE": "2",
    "MASTER_ADDR": "algo-1",
    "MASTER_PORT": "29500",
}


def test_one_process_without_torchrun_or_with_a_world_of_one():
    for env in ({}, {"WORLD_SIZE": "1", "RANK": "0"}):
        dist = Distributed.from_env(env)
        assert (dist.rank, dist.world_size, dist.enabled, dist.is_main) == (0, 1, False, True)
        dist.start()  # no process group for one process
        assert dist.backend is None
        assert not torch.distributed.is_initialized()
        assert dist.all_reduce_sums([1.5, 2]) == [1.5, 2]
        flags = torch.tensor([True, False])
        assert dist.gather_shards(flags, 2) is flags
        assert dist.broadcast_object({"a": 1}) == {"a": 1}
        assert dist.all_gather_object(7) == [7]
        dist.barrier()
        dist.stop()


def test_torchruns_variables_are_read():
    dist = Distributed.from_env(TORCHRUN)
    assert (dist.rank, dist.world_size, dist.local_rank, dist.local_world_size) == (3, 4, 1, 2)
    assert dist.enabled
    assert not dist.is_main


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"MASTER_ADDR": ""}, "MASTER_ADDR is not set"),
        ({"RANK": ""}, "RANK"),
        ({"RANK": "4"}, "outside WORLD_SIZE 4"),
        ({"WORLD_SIZE": "two"}, "WORLD_SIZE must be an integer"),
        ({"WORLD_SIZE": "0"}, "at least 1"),
    ],
)
def test_a_broken_torchrun_environment_is_one_line(change, needle):
    with pytest.raises(InputError, match=needle) as info:
        Distributed.from_env({**TORCHRUN, **change})
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("n", "world"), [(10, 3), (2, 4), (0, 2), (7, 1)])
def test_evaluation_shards_are_contiguous_and_cover_the_set(n, world):
    bounds = [shard_bounds(n, r, world) for r in range(world)]
    assert [i for start, stop in bounds for i in range(start, stop)] == list(range(n))
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) - min(sizes) <= 1
    batches = [shard_batches(n, 2, r, world) for r in range(world)]
    assert torch.cat([b for rank in batches for b in rank] or [torch.arange(0)]).tolist() == list(
        range(n)
    )


def test_one_process_draws_the_batches_it_always_did():
    """The old iterate_batches: one randperm, consecutive slices, a lone last image dropped."""
    order = torch.randperm(21, generator=torch.Generator().manual_seed(5))
    batches = epoch_batches(21, 4, torch.Generator().manual_seed(5))
    assert [b.tolist() for b in batches] == [order[i : i + 4].tolist() for i in range(0, 20, 4)]
    assert len(epoch_batches(22, 4, torch.Generator().manual_seed(5))[-1]) == 2  # kept
    assert len(batches) == steps_per_epoch(21, 4)


@pytest.mark.parametrize(("n", "batch", "world"), [(44, 4, 2), (45, 4, 2), (50, 3, 4), (9, 4, 1)])
def test_an_epoch_is_dealt_out_so_every_rank_takes_as_many_steps(n, batch, world):
    def deal(seed=11):
        return [
            epoch_batches(n, batch, torch.Generator().manual_seed(seed), r, world)
            for r in range(world)
        ]

    ranks = deal()
    assert len({len(r) for r in ranks}) == 1  # same number of steps on every rank
    assert len(ranks[0]) == steps_per_epoch(n, batch, world)
    seen = torch.cat([b for r in ranks for b in r]).tolist()
    assert len(seen) == len(set(seen))  # each image at most once per epoch
    assert len(seen) >= n - n % world - world  # only the tail (and a lone last image) sits out
    # Global step s is the batch one process with batch * world draws at step s (of the
    # same permutation, less its tail).
    order = torch.randperm(n, generator=torch.Generator().manual_seed(11))[: n - n % world]
    big = batch * world
    for step, together in enumerate(zip(*ranks, strict=True)):
        want = order[step * big : (step + 1) * big]
        assert sorted(torch.cat(together).tolist()) == sorted(want.tolist())
    assert [b.tolist() for b in deal()[0]] == [b.tolist() for b in ranks[0]]  # seeded


def test_sync_batchnorm_refuses_cpu_tensors_in_this_torch():
    """Why gloo (CPU) runs keep per-rank BatchNorm: the check comes before any world size."""
    import torch.distributed as dist

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        with pytest.raises(ValueError, match="SyncBatchNorm expected input tensor to be on GPU"):
            torch.nn.SyncBatchNorm(3).train()(torch.randn(4, 3, 2, 2))
    finally:
        dist.destroy_process_group()


def test_sync_batchnorm_is_reverted_for_the_exported_model():
    from trainlib.model import ResNet34Classifier

    model = ResNet34Classifier(3, hidden_units=8).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    synced = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in synced.modules())
    plain = revert_sync_batchnorm(synced)
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in plain.modules())
    assert all(torch.equal(v, before[k]) for k, v in plain.state_dict().items())
    assert not plain.layer4[0].bn1.training
    assert unwrap(plain) is plain
