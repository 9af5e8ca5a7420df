"""TelegramNotifier against the fake Bot API on 127.0.0.1."""

from __future__ import annotations

import asyncio
import html
import logging
import socket
from itertools import pairwise
from pathlib import Path

import pytest

from sentrycoin.alerts import AlertManager, ConsoleNotifier, DeliveryError, RetryPolicy, TelegramNotifier
from sentrycoin.alerts.telegram import format_message
from sentrycoin.store import AlertRecord, AlertStore
from tests.service.alert_doubles import RecordingNotifier, make_event
from tests.service.fake_telegram import FakeTelegram, Hang, Status

CHAT = "-100987654"
FAST = RetryPolicy(base_s=0.02, max_s=0.05)


@pytest.fixture
async def tg():
    async with FakeTelegram() as fake:
        yield fake


@pytest.fixture
def store(tmp_path: Path):
    s = AlertStore(tmp_path / "alerts.db")
    yield s
    s.close()


def notifier(tg: FakeTelegram, token: str | None = None, **kw) -> TelegramNotifier:
    kw.setdefault("min_interval_s", 0.0)
    kw.setdefault("retry", FAST)
    return TelegramNotifier(token or tg.token, CHAT, api_url=tg.url, **kw)


def record(**overrides) -> AlertRecord:
    return AlertRecord.from_event(make_event(**overrides), id=7, created_ms=0)


async def test_message_fields_delivered(tg: FakeTelegram, store: AlertStore) -> None:
    n = notifier(tg, public_url="https://sentry.example:8080/")
    async with AlertManager(store, [n]) as manager:
        manager.submit(make_event())
        msgs = await tg.wait_for_messages(1)
        await manager.drain()
    req = tg.requests[0]
    assert req.method == "sendMessage"
    assert req.body["chat_id"] == CHAT and req.body["parse_mode"] == "HTML"
    text = msgs[0]["text"]
    for part in (
        "BTC-USDT", "binance", "CRITICAL",
        "Ask/bid ratio <b>5.25</b> (threshold 2.5)",
        "Top 50 levels: bid vol 12.5, ask vol 65.62",
        "2025-11-26 08:21:50.123 UTC",
        '<a href="https://sentry.example:8080/status">',
        "97123.4", "97123.5",
    ):
        assert part in text, part
    assert "SIMULATED" not in text and "REPLAY" not in text
    assert len(msgs) == 1
    assert store.recent()[0]["deliveries"]["telegram"]["state"] == "delivered"


@pytest.mark.parametrize("source,label", [("simulated", "SIMULATED"), ("replay", "REPLAY")])
def test_non_live_alerts_are_labelled(source: str, label: str) -> None:
    text = format_message(record(source=source))
    assert text.startswith(f"<b>[{label}]</b>")
    assert f"{label}: not a live alert" in text


def test_html_is_escaped() -> None:
    text = format_message(record(exchange="<b>x&y</b>", symbol="A<B-USDT"), public_url='http://h/?a=1&b="2"')
    assert "&lt;b&gt;x&amp;y&lt;/b&gt;" in text and "A&lt;B-USDT" in text
    assert 'href="http://h/?a=1&amp;b=&quot;2&quot;/status"' in text
    assert "<b>x&y</b>" not in text
    # Only our own tags remain.
    stripped = text
    for tag in ("<b>", "</b>", "<i>", "</i>", "</a>"):
        stripped = stripped.replace(tag, "")
    assert stripped.count("<") == 1  # the <a href=...> opener
    assert html.unescape("&lt;") == "<"


async def test_429_retry_after_is_honoured(tg: FakeTelegram, store: AlertStore) -> None:
    tg.push(Status(429, retry_after=1))
    async with AlertManager(store, [notifier(tg)]) as manager:
        manager.submit(make_event())
        await tg.wait_for_requests(1)
        manager.submit(make_event(symbol="ETH-USDT"))  # a different alert must also wait out the 429
        await tg.wait_for_messages(2, timeout_s=5)
        await manager.drain()
    first, *rest = tg.requests
    assert first.answer == "429"
    assert all(r.at - first.at >= 1.0 for r in rest), [r.at - first.at for r in rest]
    assert len(tg.messages) == 2 and len(tg.requests) == 3
    d = store.recent(symbol="BTC-USDT")[0]["deliveries"]["telegram"]
    assert d["state"] == "delivered" and d["attempts"] == 2


async def test_429_retry_after_header_fallback(tg: FakeTelegram) -> None:
    tg.push(Status(429, retry_after=0.4, retry_after_header=True))
    n = notifier(tg)
    await n.start()
    try:
        with pytest.raises(DeliveryError) as info:
            await n.send(record())
        assert info.value.retry_after_s == pytest.approx(0.4) and not info.value.permanent
        await n.send(record())
        assert tg.requests[1].at - tg.requests[0].at >= 0.4
    finally:
        await n.close()


async def test_5xx_then_success_delivered_exactly_once(tg: FakeTelegram, store: AlertStore) -> None:
    tg.push(Status(500), Status(502), Status(500))
    async with AlertManager(store, [notifier(tg)]) as manager:
        manager.submit(make_event())
        await tg.wait_for_messages(1)
        await manager.drain()
        await asyncio.sleep(0.1)
        assert manager.stats.retries["telegram"] == 3 and manager.stats.delivered["telegram"] == 1
    assert len(tg.messages) == 1 and len(tg.requests) == 4
    d = store.recent()[0]["deliveries"]["telegram"]
    assert d == {"state": "delivered", "attempts": 4, "error": None, "delivered_ms": d["delivered_ms"],
                 "delivered_by": manager.replica_id}


async def test_backoff_is_exponential_and_jittered(tg: FakeTelegram, store: AlertStore) -> None:
    tg.push(Status(500), Status(500), Status(500))
    n = notifier(tg, retry=RetryPolicy(base_s=0.1, max_s=1.0, jitter=0.0))
    async with AlertManager(store, [n]) as manager:
        manager.submit(make_event())
        await tg.wait_for_messages(1, timeout_s=5)
        await manager.drain()
    gaps = [b.at - a.at for a, b in pairwise(tg.requests)]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2 and gaps[2] >= 0.4
    policy = RetryPolicy(base_s=1.0, max_s=8.0, jitter=0.5)
    assert policy.delay_s(1, rng=lambda: 0.0) == 1.0 and policy.delay_s(1, rng=lambda: 1.0) == 0.5
    assert policy.delay_s(10, rng=lambda: 0.0) == 8.0


async def test_hang_times_out_and_retries(tg: FakeTelegram, store: AlertStore) -> None:
    tg.push(Hang(5.0))
    async with AlertManager(store, [notifier(tg, request_timeout_s=0.2)]) as manager:
        manager.submit(make_event())
        await tg.wait_for_messages(1, timeout_s=3)
        await manager.drain()
    assert [r.answer for r in tg.requests] == ["hang", "200"]
    assert len(tg.messages) == 1
    d = store.recent()[0]["deliveries"]["telegram"]
    assert d["state"] == "delivered" and d["attempts"] == 2


async def test_401_logged_once_marked_failed_and_others_deliver(
    tg: FakeTelegram, store: AlertStore, caplog: pytest.LogCaptureFixture
) -> None:
    bad_token = "987654321:AAWrongTokenWrongTokenWrongToken_xyz"
    other = RecordingNotifier("webhook")
    with caplog.at_level(logging.DEBUG):
        async with AlertManager(store, [notifier(tg, token=bad_token), other]) as manager:
            manager.submit(make_event())
            manager.submit(make_event(symbol="ETH-USDT"))
            await manager.drain()
            assert manager.stats.failed["telegram"] == 2
            # The manager keeps running: a later alert still reaches the other notifier.
            manager.submit(make_event(symbol="SOL-USDT"))
            await manager.drain()
            assert [r.symbol for r in other.sent] == ["BTC-USDT", "ETH-USDT", "SOL-USDT"]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    msg = errors[0].getMessage()
    assert "telegram" in msg and "unauthorized" in msg and "HTTP 401" in msg
    assert all(r["deliveries"]["telegram"]["state"] == "failed" for r in store.recent())
    assert all(r["deliveries"]["webhook"]["state"] == "delivered" for r in store.recent())
    assert tg.messages == []
    assert bad_token not in caplog.text and bad_token.split(":")[1] not in caplog.text


async def test_400_403_are_configuration_errors(tg: FakeTelegram) -> None:
    n = notifier(tg)
    tg.push(Status(400), Status(403))
    try:
        for status in (400, 403):
            with pytest.raises(DeliveryError) as info:
                await n.send(record())
            assert info.value.config_error and info.value.status == status
    finally:
        await n.close()


async def test_pacing_one_message_per_interval(tg: FakeTelegram, store: AlertStore) -> None:
    async with AlertManager(store, [notifier(tg, min_interval_s=0.25, max_batch=1)]) as manager:
        for i in range(3):
            manager.submit(make_event(event_ms=i))
        await tg.wait_for_messages(3, timeout_s=5)
        await manager.drain()
    times = [r.at for r in tg.requests]
    assert all(b - a >= 0.25 for a, b in pairwise(times))


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


async def test_token_never_in_logs_errors_repr_or_db(
    tg: FakeTelegram, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "secret-test.db"
    store = AlertStore(path)
    token = tg.token
    secret = token.split(":")[1]
    tg.push(Status(500, description=f"echo {token}"), Status(401))
    good = notifier(tg)
    dead = TelegramNotifier(token, CHAT, api_url=f"http://127.0.0.1:{_closed_port()}", name="dead",
                            min_interval_s=0.0, request_timeout_s=0.5,
                            retry=RetryPolicy(base_s=0.01, max_s=0.01, max_attempts=2))
    with caplog.at_level(logging.DEBUG):
        async with AlertManager(store, [good, dead]) as manager:
            manager.submit(make_event())
            await manager.drain()
            manager.submit(make_event())
            await manager.drain()
        for n in (good, dead):
            assert secret not in repr(n) and secret not in str(n)
    rows = store.recent()
    assert rows[0]["deliveries"]["dead"]["state"] == "failed"
    assert "network error" in rows[0]["deliveries"]["dead"]["error"]
    assert "echo <redacted>" in caplog.text  # the token echoed by the server was scrubbed
    store.close()
    assert secret not in caplog.text
    for f in tmp_path.iterdir():
        assert secret.encode() not in f.read_bytes(), f.name
    # direct exception path
    tg.push(Status(500))
    with pytest.raises(DeliveryError) as info:
        await dead.send(record())
    assert secret not in str(info.value) and info.value.__cause__ is None
    await dead.close()


def test_constructor_requires_token_and_chat() -> None:
    with pytest.raises(ValueError):
        TelegramNotifier("", CHAT)
    with pytest.raises(ValueError):
        TelegramNotifier("1:abc", "")


def test_api_url_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_API_URL", "http://127.0.0.1:1234/")
    assert TelegramNotifier("1:abc", CHAT).api_url == "http://127.0.0.1:1234"
    monkeypatch.delenv("TELEGRAM_API_URL")
    assert TelegramNotifier("1:abc", CHAT).api_url == "https://api.telegram.org"
    assert TelegramNotifier("1:abc", CHAT, api_url="http://x:1").api_url == "http://x:1"


async def test_console_still_works_with_telegram_down(tg: FakeTelegram, store: AlertStore, capsys) -> None:
    tg.default = Status(500)
    async with AlertManager(store, [ConsoleNotifier(), notifier(tg)]) as manager:
        manager.submit(make_event())
        for _ in range(100):
            if "BTC-USDT" in capsys.readouterr().out:
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("console line not printed while Telegram fails")
        await manager.stop(drain_timeout_s=0.05)
    assert store.pending_count("telegram") == 1


async def test_alerts_piling_up_behind_pacing_go_out_as_one_message(tg: FakeTelegram, store: AlertStore) -> None:
    async with AlertManager(store, [notifier(tg, min_interval_s=0.4, public_url="http://mon")]) as manager:
        manager.submit(make_event(symbol="BTC-USDT"))
        await tg.wait_for_messages(1)
        symbols = ["ETH-USDT", "SOL-USDT", "XRP-USDT", "ADA-USDT"]
        for sym in symbols:
            manager.submit(make_event(symbol=sym, source="simulated" if sym == "XRP-USDT" else "live"))
        await tg.wait_for_messages(2, timeout_s=3)
        await manager.drain()
        assert manager.stats.delivered["telegram"] == 5
    assert len(tg.messages) == 2
    assert tg.requests[1].at - tg.requests[0].at >= 0.4
    text = tg.messages[1]["text"]
    assert "4 sell-side imbalance alerts" in text and text.startswith("<b>[SIMULATED]</b>")
    assert "[SIMULATED] <b>XRP-USDT</b>" in text
    for sym in symbols:
        assert f"<b>{sym}</b> binance CRITICAL ratio <b>5.25</b> (threshold 2.5)" in text
    assert "bid vol 12.5 / ask vol 65.62 top 50" in text and "08:21:50 UTC" in text
    assert '<a href="http://mon/status">' in text
    assert all(r["deliveries"]["telegram"]["state"] == "delivered" for r in store.recent())


def test_batch_text_stays_under_telegram_limit() -> None:
    from sentrycoin.alerts.telegram import MAX_TEXT_CHARS, format_batch
    recs = [record(symbol=f"VERYLONGSYMBOL{i}-USDT", exchange="binance-futures", source="replay") for i in range(15)]
    assert len(format_batch(recs, public_url="https://example.org")) < MAX_TEXT_CHARS


async def test_market_hot_path_with_hanging_telegram(tg: FakeTelegram, store: AlertStore) -> None:
    """Market.on_alert -> submit: the book keeps updating while Telegram hangs;
    the console has the alert at once, Telegram gets it after the timeout."""
    import io

    from sentrycoin.market import DetectorSettings, Market

    tg.push(Hang(5.0))
    out = io.StringIO()
    async with AlertManager(store, [ConsoleNotifier(out), notifier(tg, request_timeout_s=0.3)]) as manager:
        market = Market("okx", "BTC-USDT", on_alert=manager.submit, settings=DetectorSettings(danger_ratio=2.5))
        market.book.load_snapshot([[100.0, 1.0]], [[100.5, 4.0]])
        market.mark_valid()
        market.after_message(1_764_145_310_123)
        assert market.last_alert is not None and manager.stats.submitted == 1
        for i in range(100):  # book updates proceed while the send hangs
            market.book.update_bid(99.0 - i * 0.01, 1.0)
            market.after_message(1_764_145_310_124 + i)
        assert market.messages == 101
        await tg.wait_for_requests(1)
        for _ in range(100):
            if "okx BTC-USDT" in out.getvalue():
                break
            await asyncio.sleep(0.01)
        assert "okx BTC-USDT" in out.getvalue() and tg.messages == []
        await tg.wait_for_messages(1, timeout_s=3)
        await manager.drain()
    assert "okx" in tg.messages[0]["text"] and len(tg.messages) == 1


def test_late_delivery_is_flagged() -> None:
    rec = AlertRecord.from_event(make_event(), id=1, created_ms=1_000_000)
    assert "Delivered late" not in format_message(rec, now_ms=1_000_000 + 59_000)
    assert "raised 90 s before" in format_message(rec, now_ms=1_000_000 + 90_000)
    assert "raised 12 min before" in format_message(rec, now_ms=1_000_000 + 720_000)
    assert "raised 3.0 h before" in format_message(rec, now_ms=1_000_000 + 3 * 3_600_000)
    assert "Delivered late" not in format_message(rec)


async def test_outbox_backlog_after_outage_is_labelled_late(tg: FakeTelegram, tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "a.db")
    store.insert_alert(make_event(), ["telegram"], created_ms=1_000_000)  # left pending by a run that died
    n = notifier(tg, wall_ms=lambda: 1_000_000 + 600_000)
    async with AlertManager(store, [n]) as manager:  # restart 10 min later
        await tg.wait_for_messages(1)
        await manager.drain()
    assert "Delivered late: raised 10 min before this message" in tg.messages[0]["text"]
    store.close()


def test_resend_after_unknown_outcome_says_possible_repeat() -> None:
    import msgspec as _msgspec

    from sentrycoin.alerts.telegram import REPEAT_NOTE, format_batch, format_message

    rec = record()
    assert REPEAT_NOTE not in format_message(rec)
    again = _msgspec.structs.replace(rec, possible_duplicate=True)
    assert REPEAT_NOTE in format_message(again)
    assert REPEAT_NOTE in format_batch([rec, again]) and REPEAT_NOTE not in format_batch([rec, rec])
