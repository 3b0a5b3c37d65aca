"""Two real ``llmrelay serve`` processes (two ports) sharing one real Redis (``[rate_limits] backend``) and one
real PostgreSQL (``[gateway] keys`` and ``[gateway] ledger``), in front of fake upstreams on 127.0.0.1:

- a key's ``--rpm 10`` holds across both replicas: exactly 10 accepted (not more, not fewer), the rest 429
  with ``Retry-After``;
- a bounded concurrent load against both, then ``SIGTERM`` to both while it runs: every request gets an
  answer or a typed refusal, and the ledger holds exactly one row per request the replicas took;
- a router deployment whose key is dead opens its breaker through replica A; replica B skips it without
  sending it a request (the fake upstream's request count proves it).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from redis.asyncio import Redis

from conftest_postgres import postgres_db, postgres_server
from conftest_redis import redis_server
from llmrelay.testing import FakeUpstream, Reply
from llmrelay.testing.openai_kit import KIT as OA
from test_gateway_sdk import free_port, wait_ready

__all__ = ["postgres_db", "postgres_server", "redis_server"]

pytestmark = pytest.mark.slow

CLI = "import sys; from llmrelay.cli import main; sys.exit(main())"
HI = [{"role": "user", "content": "hi"}]


@dataclass
class Replicas:
    urls: tuple[str, str]
    procs: tuple[asyncio.subprocess.Process, asyncio.subprocess.Process]
    secrets: dict[str, str]
    database: str
    terminated: bool = False

    def terminate(self) -> None:
        """SIGTERM to both: they drain (once: a second SIGTERM would end a draining process at once)."""
        if not self.terminated:
            self.terminated = True
            for proc in self.procs:
                proc.send_signal(signal.SIGTERM)

    async def stop(self) -> list[str]:
        """SIGTERM both (unless done already), and wait for a clean exit; their stderr."""
        self.terminate()
        logs = []
        for proc in self.procs:
            _, err = await asyncio.wait_for(proc.communicate(), 30)
            logs.append(err.decode())
            assert proc.returncode == 0, logs[-1]
        return logs


@pytest.fixture
async def dead() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as up:
        yield up


@pytest.fixture
async def replicas(
    tmp_path: Path, upstream: FakeUpstream, dead: FakeUpstream, redis_server: str, postgres_db: str
) -> AsyncIterator[Replicas]:
    redis = Redis.from_url(redis_server)
    await redis.flushdb()
    await redis.aclose()
    config = tmp_path / "llmrelay.toml"
    config.write_text(
        "[retry]\nmax_attempts = 1\n"
        f'[providers.oa]\ntype = "openai"\nbase_url = "{upstream.url("/v1")}"\napi_key_env = "GW_TEST_OA_KEY"\n'
        f'[providers.dead]\ntype = "openai"\nbase_url = "{dead.url("/v1")}"\napi_key_env = "GW_TEST_OA_KEY"\n'
        '[routers.pool]\ndeployments = ["dead/m", "oa/m"]\nbreaker = { cooldown = 600 }\n'
        f'[rate_limits]\nbackend = "{redis_server}"\n'
        f'[gateway]\nkeys = "{postgres_db}"\nledger = "{postgres_db}"\n'
    )
    env = {
        **os.environ,
        "GW_TEST_OA_KEY": "sk-upstream-openai-000000",
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
    }
    secrets = {}
    for name, extra in (("team", ["--rpm", "10"]), ("bulk", [])):
        made = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CLI, "keys", "create", name, *extra, "--store", postgres_db,
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(made.communicate(), 60)
        assert made.returncode == 0, err.decode()
        secrets[name] = out.decode().strip()
    procs, urls = [], []
    for _ in range(2):
        port = free_port()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CLI, "serve", "--config", str(config), "--port", str(port),
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        procs.append(proc)
        urls.append(f"http://127.0.0.1:{port}")
    running = Replicas((urls[0], urls[1]), (procs[0], procs[1]), secrets, postgres_db)
    try:
        for url, proc in zip(urls, procs, strict=True):
            await wait_ready(url, proc)
        yield running
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def chat(
    session: aiohttp.ClientSession, url: str, secret: str, model: str = "oa/gpt-4o-mini", *, stream: bool = False
) -> tuple[int, dict[str, str], str]:
    body = {"model": model, "messages": HI, "stream": stream}
    headers = {"authorization": f"Bearer {secret}"}
    async with session.post(f"{url}/v1/chat/completions", json=body, headers=headers) as r:
        return r.status, dict(r.headers), await r.text()


async def ledger_rows(database: str) -> list[Any]:
    conn = await asyncpg.connect(database)
    try:
        return list(await conn.fetch("SELECT key, outcome, route, status FROM ledger"))
    finally:
        await conn.close()


async def test_a_keys_rpm_holds_across_both_replicas(replicas: Replicas, upstream: FakeUpstream) -> None:
    upstream.always(lambda seen: OA.text("ok", stream=False))
    statuses: list[int] = []
    retry_after: list[str] = []
    async with aiohttp.ClientSession() as session:
        for i in range(24):  # alternating between the two replicas
            status, headers, _ = await chat(session, replicas.urls[i % 2], replicas.secrets["team"])
            statuses.append(status)
            if status == 429:
                retry_after.append(headers.get("Retry-After", ""))
    assert statuses.count(200) == 10, statuses  # not over the limit, and not throttled below it
    assert statuses.count(429) == 14, statuses
    assert {statuses[i] for i in range(0, 10, 2)} == {200} and {statuses[i] for i in range(1, 10, 2)} == {200}
    assert all(value.isdigit() and int(value) >= 1 for value in retry_after), retry_after
    assert len(upstream.requests) == 10
    await replicas.stop()
    rows = await ledger_rows(replicas.database)
    assert sum(1 for r in rows if r["outcome"] == "ok") == 10


async def test_no_ledger_row_is_lost_under_load_and_sigterm(replicas: Replicas, upstream: FakeUpstream) -> None:
    def reply(seen: Any) -> Reply:
        streamed = bool(seen.json.get("stream"))
        text = OA.text("a reply in a few chunks", stream=streamed)
        return Reply(status=text.status, chunks=text.chunks, content_type=text.content_type, chunk_delay=0.005)

    upstream.always(reply)
    total, concurrency = 200, 16
    rng = random.Random(9)
    plan = [(replicas.urls[i % 2], rng.random() < 0.5) for i in range(total)]
    outcomes: list[str] = []
    done = asyncio.Event()
    queue: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()
    for item in plan:
        queue.put_nowait(item)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            url, streamed = queue.get_nowait()
            try:
                status, _, text = await asyncio.wait_for(
                    chat(session, url, replicas.secrets["bulk"], stream=streamed), 20
                )
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
                outcomes.append(f"refused:{type(exc).__name__}")
            else:
                if status == 200:
                    finished = text.endswith("data: [DONE]\n\n") if streamed else "choices" in json.loads(text)
                    outcomes.append("ok" if finished else f"truncated:{text[-80:]!r}")
                else:
                    outcomes.append(f"status:{status}")
            if len(outcomes) >= total // 2:
                done.set()

    connector = aiohttp.TCPConnector(force_close=True, limit=0)  # a new connection per request
    async with aiohttp.ClientSession(connector=connector) as session:
        workers = [asyncio.create_task(worker(session)) for _ in range(concurrency)]
        await asyncio.wait_for(done.wait(), 30)
        replicas.terminate()  # half-way through: both replicas drain while requests are in flight
        await asyncio.wait_for(asyncio.gather(*workers), 60)
    logs = await replicas.stop()
    assert len(outcomes) == total
    kinds = {o.split(":")[0] for o in outcomes}
    assert kinds <= {"ok", "refused", "status"}, [o for o in outcomes if o.startswith("truncated")]
    assert all(o in ("status:503",) for o in outcomes if o.startswith("status")), outcomes
    answered = outcomes.count("ok")
    assert total // 2 <= answered < total or answered == total
    rows = await ledger_rows(replicas.database)
    assert len(rows) == answered, (len(rows), answered, logs)  # every accepted request has its row, no more
    assert all(r["outcome"] == "ok" and r["key"] == "bulk" and r["status"] == 200 for r in rows)


async def test_a_breaker_opened_through_one_replica_is_skipped_by_the_other(
    replicas: Replicas, upstream: FakeUpstream, dead: FakeUpstream
) -> None:
    dead.always(OA.error(401))
    upstream.always(lambda seen: OA.text("from the healthy deployment", stream=False))
    async with aiohttp.ClientSession() as session:
        a, b = replicas.urls
        status, _, text = await chat(session, a, replicas.secrets["bulk"], "pool")
        assert status == 200 and "from the healthy deployment" in text
        assert len(dead.requests) == 1  # the 401 opened the dead deployment's breaker, in Redis
        for streamed in (False, True, False):
            status, _, text = await chat(session, b, replicas.secrets["bulk"], "pool", stream=streamed)
            assert status == 200 and "healthy" in text
    assert len(dead.requests) == 1  # replica B never sent the dead deployment a request
    assert len(upstream.requests) == 4
    await replicas.stop()
