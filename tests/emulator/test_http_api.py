"""Bot API semantics at the HTTP level, where PTB would hide details: envelopes, status codes, offsets."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest

from bot.emulator import TelegramEmulator


async def call(tg: TelegramEmulator, method: str, token: str | None = None, **params: Any) -> tuple[int, dict[str, Any]]:
    """POSTs the way PTB does: a form with non-string values JSON-encoded."""
    form = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{tg.base_url}{token or tg.token}/{method}", data=form) as response:
            return response.status, await response.json()


async def test_get_me_has_what_ptb_needs(tg: TelegramEmulator) -> None:
    status, body = await call(tg, "getme")
    assert status == 200 and body["ok"] is True
    me = body["result"]
    assert me["is_bot"] is True and me["username"] == "bsmart_test_bot" and me["id"] == 7000000001


async def test_method_names_are_case_insensitive_and_unknown_ones_are_404(tg: TelegramEmulator) -> None:
    assert (await call(tg, "GETME"))[0] == 200
    assert await call(tg, "sendTelepathy") == (404, {"ok": False, "error_code": 404, "description": "Not Found"})


async def test_wrong_token_is_401_and_malformed_token_404(tg: TelegramEmulator) -> None:
    wrong = "7000000001:AAWrongTokenWrongTokenWrongToken000"
    assert await call(tg, "getMe", token=wrong) == (401, {"ok": False, "error_code": 401,
                                                          "description": "Unauthorized"})
    assert (await call(tg, "getMe", token="nonsense"))[0] == 404


async def test_offset_confirms_and_negative_offset_keeps_the_tail(tg: TelegramEmulator) -> None:
    for text in ("one", "two", "three", "four"):
        tg.send_text(1001, text)
    _, body = await call(tg, "getUpdates")
    ids = [u["update_id"] for u in body["result"]]
    assert ids == [1, 2, 3, 4]
    # Unconfirmed updates are delivered again.
    _, again = await call(tg, "getUpdates", limit=2)
    assert [u["update_id"] for u in again["result"]] == [1, 2]
    _, after = await call(tg, "getUpdates", offset=3)
    assert [u["message"]["text"] for u in after["result"]] == ["three", "four"]
    assert tg.pending_updates() == 2
    _, tail = await call(tg, "getUpdates", offset=-1)
    assert [u["update_id"] for u in tail["result"]] == [4]
    _, empty = await call(tg, "getUpdates", offset=5)
    assert empty["result"] == [] and tg.pending_updates() == 0


async def test_allowed_updates_filters_and_persists(tg: TelegramEmulator) -> None:
    tg.send_text(1001, "hello")
    _, body = await call(tg, "getUpdates", allowed_updates=["callback_query"])
    assert body["result"] == []
    tg.send_text(1001, "again")
    _, later = await call(tg, "getUpdates")
    assert later["result"] == []
    _, reset = await call(tg, "getUpdates", allowed_updates=[])
    assert reset["result"] == []
    tg.send_text(1001, "now seen")
    _, seen = await call(tg, "getUpdates")
    assert [u["message"]["text"] for u in seen["result"]] == ["now seen"]


async def test_long_poll_waits_for_its_timeout_then_returns_empty(tg: TelegramEmulator) -> None:
    began = time.perf_counter()
    status, body = await call(tg, "getUpdates", timeout=1)
    elapsed = time.perf_counter() - began
    assert status == 200 and body["result"] == []
    assert 0.9 < elapsed < 2.0


async def test_a_second_poll_ends_the_first_with_conflict(tg: TelegramEmulator) -> None:
    first = asyncio.create_task(call(tg, "getUpdates", timeout=5))
    await tg.wait_for_poll()
    second = asyncio.create_task(call(tg, "getUpdates", timeout=0))
    status, body = await asyncio.wait_for(first, 2)
    assert status == 409 and body["description"].startswith("Conflict: terminated by other getUpdates request")
    assert (await second)[0] == 200


async def test_webhook_blocks_get_updates_until_deleted(tg: TelegramEmulator) -> None:
    tg.send_text(1001, "queued")
    assert (await call(tg, "setWebhook", url="https://example.invalid/hook"))[0] == 200
    status, body = await call(tg, "getUpdates")
    assert status == 409 and "webhook is active" in body["description"]
    await call(tg, "deleteWebhook", drop_pending_updates=True)
    _, after = await call(tg, "getUpdates")
    assert after["result"] == []


async def test_json_bodies_and_query_strings_are_accepted(tg: TelegramEmulator) -> None:
    tg.open_private_chat(1001)
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{tg.base_url}{tg.token}/sendMessage",
                                json={"chat_id": 1001, "text": "<i>json</i>", "parse_mode": "HTML"}) as response:
            body = await response.json()
        async with session.get(f"{tg.base_url}{tg.token}/sendMessage",
                               params={"chat_id": "1001", "text": "query"}) as response:
            query = await response.json()
    assert body["result"]["text"] == "json"
    assert body["result"]["entities"] == [{"type": "italic", "offset": 0, "length": 4}]
    assert query["result"]["text"] == "query"


async def test_whitespace_is_trimmed_and_empty_text_refused(tg: TelegramEmulator) -> None:
    tg.open_private_chat(1001)
    _, body = await call(tg, "sendMessage", chat_id=1001, text="  <b> padded </b>  ", parse_mode="HTML")
    assert body["result"]["text"] == "padded"
    assert body["result"]["entities"] == [{"type": "bold", "offset": 0, "length": 6}]
    assert await call(tg, "sendMessage", chat_id=1001, text="   ") == (
        400, {"ok": False, "error_code": 400, "description": "Bad Request: message text is empty"})


async def test_blocked_user_is_forbidden_until_they_write_again(tg: TelegramEmulator) -> None:
    tg.open_private_chat(1001)
    tg.block(1001)
    status, body = await call(tg, "sendMessage", chat_id=1001, text="hi")
    assert (status, body["description"]) == (403, "Forbidden: bot was blocked by the user")
    tg.send_text(1001, "/start")
    assert (await call(tg, "sendMessage", chat_id=1001, text="hi"))[0] == 200


async def test_flood_answer_carries_retry_after() -> None:
    from bot.emulator import FloodPolicy

    async with TelegramEmulator(flood=FloodPolicy(per_chat_per_second=0.5, per_chat_burst=1)) as tg:
        tg.open_private_chat(1001)
        assert (await call(tg, "sendMessage", chat_id=1001, text="a"))[0] == 200
        assert await call(tg, "sendMessage", chat_id=1001, text="b") == (429, {
            "ok": False, "error_code": 429, "description": "Too Many Requests: retry after 2",
            "parameters": {"retry_after": 2}})
        # Other chats have their own budget; reading methods are not limited.
        tg.open_private_chat(1002)
        assert (await call(tg, "sendMessage", chat_id=1002, text="c"))[0] == 200
        assert (await call(tg, "getChat", chat_id=1001))[0] == 200


async def test_group_privacy_mode_hides_chatter_but_not_commands(tg: TelegramEmulator) -> None:
    group = tg.group(title="desk").id
    tg.send_text(1001, "just chatting", chat_id=group, chat_type="supergroup")
    tg.send_text(1001, "/status@another_bot", chat_id=group, chat_type="supergroup")
    tg.send_text(1001, "/status", chat_id=group, chat_type="supergroup")
    tg.send_text(1001, f"hey @{tg.bot.username}", chat_id=group, chat_type="supergroup")
    _, body = await call(tg, "getUpdates")
    assert [u["message"]["text"] for u in body["result"]] == ["/status", f"hey @{tg.bot.username}"]
    assert len(tg.messages(group)) == 4


async def test_a_group_sees_everything_when_privacy_is_off() -> None:
    async with TelegramEmulator(read_all_group_messages=True) as tg:
        tg.send_text(1001, "chatter", chat_type="group")
        _, body = await call(tg, "getUpdates")
    assert body["result"][0]["message"]["chat"]["type"] == "group"


async def test_bad_photo_is_refused(tg: TelegramEmulator) -> None:
    tg.open_private_chat(1001)
    data = aiohttp.FormData()
    data.add_field("chat_id", "1001")
    data.add_field("photo", b"not an image", filename="x.png", content_type="image/png")
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{tg.base_url}{tg.token}/sendPhoto", data=data) as response:
            assert response.status == 400
            assert (await response.json())["description"] == "Bad Request: IMAGE_PROCESS_FAILED"


@pytest.mark.parametrize("markup, description", [
    ({"inline_keyboard": [[{"text": "no action"}]]},
     "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"),
    ({"inline_keyboard": [[{"text": "x", "callback_data": "é" * 33}]]}, "Bad Request: BUTTON_DATA_INVALID"),
    ({"inline_keyboard": [[{"text": "x", "url": "ftp://nope"}]]}, "Bad Request: BUTTON_URL_INVALID"),
    ("not json", "Bad Request: can't parse reply keyboard markup JSON object"),
])
async def test_invalid_keyboards_are_refused(tg: TelegramEmulator, markup: Any, description: str) -> None:
    tg.open_private_chat(1001)
    status, body = await call(tg, "sendMessage", chat_id=1001, text="pick", reply_markup=markup)
    assert (status, body["description"]) == (400, description)
    assert tg.sent(1001) == []


async def test_commands_by_chat_scope_and_their_deletion(tg: TelegramEmulator) -> None:
    from bot.emulator import CommandScope

    tg.open_private_chat(1001)
    scope = {"type": "chat", "chat_id": 1001}
    commands = [{"command": "flatten", "description": "Close everything"}]
    assert (await call(tg, "setMyCommands", commands=commands, scope=scope))[0] == 200
    assert (await call(tg, "getMyCommands", scope=scope))[1]["result"] == commands
    assert (await call(tg, "getMyCommands"))[1]["result"] == []
    assert tg.menu_for(1001) == commands and tg.commands(CommandScope("chat", 1001)) == commands
    assert (await call(tg, "deleteMyCommands", scope=scope))[0] == 200
    assert tg.menu_for(1001) == []
    status, body = await call(tg, "setMyCommands", commands=commands, scope={"type": "chat", "chat_id": 999})
    assert (status, body["description"]) == (400, "Bad Request: chat not found")


async def test_chat_action_must_be_a_known_action(tg: TelegramEmulator) -> None:
    tg.open_private_chat(1001)
    status, body = await call(tg, "sendChatAction", chat_id=1001, action="dancing")
    assert (status, body["description"]) == (400, "Bad Request: wrong parameter action in request")
    assert tg.chat_actions() == []
