"""RangeCache as users hold it: a context manager, an asyncio form, and over redis-py clients.

Every form runs against a real ``chronoid serve`` subprocess; the checks are the cache's
promise: values unique and increasing per cache, unique across caches, never reused.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio as aioredis

from chronoid.errors import InvalidArgument, SequencerReplyError
from chronoid.sequencer.client import (
    AsyncRangeCache,
    AsyncSequencerClient,
    RangeCache,
    SequencerClient,
)
from tests.sequencer.conftest import ServerProcess, launch_server
from tests.support import free_port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the module (each test uses sequences of its own): a start per test
    would cost more than the tests."""
    server = launch_server(port=free_port(), data_dir=tmp_path_factory.mktemp("range-cache"))
    yield server
    server.kill()


def _increasing(values: list[int]) -> bool:
    return all(a < b for a, b in itertools.pairwise(values))


def test_context_manager_closes_the_client(server: ServerProcess) -> None:
    with RangeCache(SequencerClient(port=server.port), block=7, name="ctx") as cache:
        values = [cache.next() for _ in range(50)]
        client = cache.client
    assert _increasing(values) and values[0] == 1
    assert isinstance(client, SequencerClient) and client._sock is None


def test_over_a_redis_py_client(server: ServerProcess) -> None:
    with (
        RangeCache(redis.Redis(port=server.port), block=10, name="rp") as a,
        RangeCache(SequencerClient(port=server.port), block=10, name="rp") as b,
    ):
        values = [a.next() for _ in range(35)] + [b.next() for _ in range(35)]
    assert _increasing(values[:35]) and _increasing(values[35:])
    assert len(set(values)) == 70  # two caches on one sequence never share a value


def test_redis_py_error_reply_reaches_the_caller(server: ServerProcess) -> None:
    cache = RangeCache(redis.Redis(port=server.port), block=10, name="bad name!")
    with cache, pytest.raises(redis.ResponseError):
        cache.next()


def test_refuses_what_is_not_a_client() -> None:
    with pytest.raises(InvalidArgument, match="SequencerClient or a redis-py"):
        RangeCache(object())  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="block must be"):
        RangeCache(SequencerClient(), block=True)


def test_async_cache_with_many_tasks(server: ServerProcess) -> None:
    async def main() -> tuple[list[int], list[list[int]]]:
        client = AsyncSequencerClient(port=server.port)
        async with AsyncRangeCache(client, block=16, name="many") as cache:
            first = [await cache.next() for _ in range(40)]

            async def take() -> list[int]:
                return [await cache.next() for _ in range(100)]

            spread = await asyncio.gather(*(take() for _ in range(8)))
        return first, list(spread)

    first, spread = asyncio.run(main())
    assert first == list(range(1, 41))
    flat = first + [v for chunk in spread for v in chunk]
    assert len(set(flat)) == len(flat) == 840
    assert all(_increasing(chunk) for chunk in spread)


def test_async_cache_over_redis_asyncio_and_cancellation(server: ServerProcess) -> None:
    async def main() -> list[int]:
        async with AsyncRangeCache(aioredis.Redis(port=server.port), block=5, name="ar") as cache:
            values = [v async for v in _take(cache, 12)]
            # A caller cancelled while the next block is on its way: nothing is lost twice and
            # the next caller still gets fresh, increasing values.
            cache._current = iter(())
            task = asyncio.ensure_future(cache.next())
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            values += [await cache.next() for _ in range(12)]
            return values

    values = asyncio.run(main())
    assert _increasing(values), values


async def _take(cache: AsyncRangeCache, count: int):  # type: ignore[no-untyped-def]
    for _ in range(count):
        yield await cache.next()


def test_async_fetch_error_is_raised_then_retried(server: ServerProcess) -> None:
    async def main() -> int:
        cache = AsyncRangeCache(AsyncSequencerClient(port=server.port), block=5, name="bad name!")
        with pytest.raises(SequencerReplyError):
            await cache.next()
        cache.name = "good"
        value = await cache.next()
        await cache.close()
        return value

    assert asyncio.run(main()) == 1
