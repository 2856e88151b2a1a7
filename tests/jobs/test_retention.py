"""Retention: images leave the disk by age or by total size, a whole job at a time, and the
job says so. Default: everything is kept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.jobs.job import JobState, Output, Requester
from bot.jobs.retention import Retention
from bot.store import NewJob, Store

DAY = 86400.0
NOW = 1_800_000_000.0


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(tmp_path / "wirobot.db") as store:
        yield store


async def finished_job(store: Store, folder: Path, *, age_days: float, images: int = 2) -> int:
    """A succeeded job from `age_days` ago whose images (100 bytes each) are in `folder`."""
    job = await store.jobs.create(
        NewJob(
            model="wavymulder/portraitplus",
            prompt="a lighthouse",
            inputs={"prompt": "a lighthouse", "seed": 1},
            seed=1,
            requester=Requester(user_id=1, guild_id=10, channel_id=100),
            created_at=NOW - age_days * DAY,
        )
    )
    outputs = []
    for position in range(images):
        path = folder / f"{job.id}-{position:02d}-image.png"
        path.write_bytes(b"x" * 100)
        outputs.append(
            Output(position, path.name, "image/png", 100, f"https://cdn/{job.id}", str(path))
        )
    await store.jobs.finish(job.id, outputs, status=JobState.SUCCEEDED)
    return job.id


def retention(store: Store, folder: Path, **limits: float) -> Retention:
    return Retention(
        store,
        folder,
        keep_days=limits.get("keep_days", 0),
        max_bytes=int(limits.get("max_bytes", 0)),
        clock=lambda: NOW,
    )


async def test_by_default_every_image_is_kept(store: Store, tmp_path: Path) -> None:
    old = await finished_job(store, tmp_path, age_days=3000)

    pruned = await retention(store, tmp_path).prune()

    assert pruned.files == 0
    job = await store.jobs.get(old)
    assert job is not None and job.outputs_expired_at is None
    assert len(images(tmp_path)) == 2


async def test_images_older_than_keep_days_are_removed_and_the_job_marked(
    store: Store, tmp_path: Path
) -> None:
    old = await finished_job(store, tmp_path, age_days=40)
    recent = await finished_job(store, tmp_path, age_days=5)

    pruned = await retention(store, tmp_path, keep_days=30).prune()

    assert (pruned.files, pruned.bytes) == (2, 200)
    gone = await store.jobs.get(old)
    assert gone is not None
    assert gone.outputs_expired_at == NOW
    assert [o.path for o in gone.outputs] == [None, None]
    assert images(tmp_path) == [
        f"{recent}-00-image.png",
        f"{recent}-01-image.png",
    ]
    kept = await store.jobs.get(recent)
    assert kept is not None and kept.outputs_expired_at is None
    assert (await retention(store, tmp_path, keep_days=30).prune()).files == 0


async def test_the_oldest_go_until_the_total_fits_a_whole_job_at_a_time(
    store: Store, tmp_path: Path
) -> None:
    jobs = [await finished_job(store, tmp_path, age_days=10 - n, images=3) for n in range(4)]

    # 1,200 bytes on disk, 700 allowed: the two oldest jobs go (all three images each).
    pruned = await retention(store, tmp_path, max_bytes=700).prune()

    assert (pruned.files, pruned.bytes) == (6, 600)
    expired = [(await store.jobs.get(j)).outputs_expired_at for j in jobs]  # type: ignore[union-attr]
    assert expired == [NOW, NOW, None, None]
    assert await store.jobs.bytes_on_disk() == 600
    assert len(images(tmp_path)) == 6


async def test_many_jobs_are_pruned_in_batches(store: Store, tmp_path: Path) -> None:
    for _ in range(260):
        await finished_job(store, tmp_path, age_days=100, images=2)
    await finished_job(store, tmp_path, age_days=1, images=2)

    pruned = await retention(store, tmp_path, keep_days=30).prune()

    assert pruned.files == 520
    assert len(images(tmp_path)) == 2


async def test_files_outside_the_outputs_folder_are_not_deleted(
    store: Store, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    job_id = await finished_job(store, elsewhere, age_days=40)

    await retention(store, tmp_path / "outputs", keep_days=30).prune()

    job = await store.jobs.get(job_id)
    assert job is not None and job.outputs_expired_at == NOW  # history no longer offers them
    assert len(images(elsewhere)) == 2  # but they are not ours to delete


async def test_the_background_round_runs_at_start(store: Store, tmp_path: Path) -> None:
    await finished_job(store, tmp_path, age_days=40)
    keeper = retention(store, tmp_path, keep_days=30)

    keeper.start()
    try:
        await asyncio.wait_for(keeper.round_done.wait(), 5)
    finally:
        await keeper.close()
    assert images(tmp_path) == []


def images(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.png"))
