"""The offline agent, table-driven: each phrasing must produce the right tool call and DB state."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import insert

from todo_api import tools
from todo_api.agents.offline import OfflineAgent
from todo_api.db import Database
from todo_api.models import users, utcnow

SEED = ["Buy milk", "Call mom", "Pay rent", "Write report", "Book dentist appointment"]


@pytest.fixture
def engine(sqlite_url: str) -> str:
    return sqlite_url


async def _with_db(url: str, work: Any) -> Any:
    db = Database(url, pool_size=2)
    try:
        async with db.write() as conn:
            return await work(conn)
    finally:
        await db.dispose()


def add_user(url: str, name: str) -> int:
    async def work(conn: Any) -> int:
        return int((await conn.execute(insert(users).values(username=name, password_hash="x", created_at=utcnow())
                                       .returning(users.c.id))).scalar_one())
    return asyncio.run(_with_db(url, work))


def seed(url: str, name: str = "agent_user") -> tuple[int, dict[str, int]]:
    user_id = add_user(url, name)

    async def work(conn: Any) -> dict[str, int]:
        return {title: (await tools.add_task(conn, user_id, title))["task"]["id"] for title in SEED}
    return user_id, asyncio.run(_with_db(url, work))


async def _with_database(url: str, work: Any) -> Any:
    db = Database(url, pool_size=2)
    try:
        return await work(db)
    finally:
        await db.dispose()


def ask(url: str, user_id: int, message: str, history: list[tuple[str, str]] | None = None) -> Any:
    return asyncio.run(_with_database(url, lambda db: OfflineAgent().respond(db, user_id, history or [], message)))


def add_titles(url: str, user_id: int, titles: list[str]) -> None:
    async def work(conn: Any) -> None:
        for title in titles:
            await tools.add_task(conn, user_id, title)
    asyncio.run(_with_db(url, work))


def tasks(url: str, user_id: int) -> dict[str, dict[str, Any]]:
    async def work(conn: Any) -> list[dict[str, Any]]:
        page, _ = await tools.query_tasks(conn, user_id, newest_first=False)
        return page
    return {t["title"]: t for t in asyncio.run(_with_db(url, work))}


ADD_CASES = [
    ("add a task to buy bread", "Buy bread", ""),
    ("Add buy eggs", "Buy eggs", ""),
    ("remind me to call grandma", "Call grandma", ""),
    ("create task: pay rent — due Friday", "Pay rent", "due Friday"),
    ("please add a task to water the plants", "Water the plants", ""),
    ("I need to renew my passport", "Renew my passport", ""),
    ("new task: clean the garage", "Clean the garage", ""),
    ("add 'fix the bike' to my list", "Fix the bike", ""),
    ("remember to send the invoice", "Send the invoice", ""),
    ("can you add a task to book flights - for the summer trip", "Book flights", "for the summer trip"),
    ("create a task called Plan party with description invite 10 friends", "Plan party", "invite 10 friends"),
    ("add submit taxes by Friday", "Submit taxes", "by Friday"),
    ("don't let me forget to buy a gift", "Buy a gift", ""),
    ("I have to walk the dog tonight", "Walk the dog", "tonight"),
    ("put take out the trash on my list", "Take out the trash", ""),
]


@pytest.mark.parametrize(("message", "title", "description"), ADD_CASES)
def test_add(engine: str, message: str, title: str, description: str) -> None:
    user_id, _ = seed(engine)
    result = ask(engine, user_id, message)
    assert [c["name"] for c in result.tool_calls] == ["add_task"], result.response
    after = tasks(engine, user_id)
    assert title in after, (result.response, list(after))
    assert after[title]["description"] == description
    assert title in result.response


LIST_CASES = [
    ("show my tasks", "all"),
    ("list my todos", "all"),
    ("what's on my list?", "all"),
    ("show all tasks", "all"),
    ("what's pending?", "pending"),
    ("what do I still need to do?", "pending"),
    ("show pending tasks", "pending"),
    ("which tasks are left?", "pending"),
    ("what have I finished?", "completed"),
    ("show completed tasks", "completed"),
    ("list the tasks I've done", "completed"),
    ("what tasks are open", "pending"),
]


@pytest.mark.parametrize(("message", "status"), LIST_CASES)
def test_list(engine: str, message: str, status: str) -> None:
    user_id, ids = seed(engine)
    ask(engine, user_id, f"mark task {ids['Pay rent']} as done")
    result = ask(engine, user_id, message)
    assert [c["name"] for c in result.tool_calls] == ["list_tasks"], result.response
    assert result.tool_calls[0]["arguments"] == {"status": status}
    if status == "completed":
        assert "Pay rent" in result.response and "Buy milk" not in result.response
    elif status == "pending":
        assert "Buy milk" in result.response and "Pay rent" not in result.response
    else:
        assert all(t in result.response for t in SEED)


COMPLETE_CASES = [
    ("mark task {Call mom} as done", "Call mom"),
    ("complete task {Pay rent}", "Pay rent"),
    ("I finished buying milk", "Buy milk"),
    ("task {Write report} is done", "Write report"),
    ("check off the dentist appointment", "Book dentist appointment"),
    ("mark the rent task as complete", "Pay rent"),
    ("done with the report", "Write report"),
    ("I've called mom", None),
    ("finish #{Buy milk}", "Buy milk"),
    ("mark call mom as finished", "Call mom"),
    ("I just completed the report", "Write report"),
    ("tick off buy milk", "Buy milk"),
]


@pytest.mark.parametrize(("template", "title"), COMPLETE_CASES)
def test_complete(engine: str, template: str, title: str | None) -> None:
    user_id, ids = seed(engine)
    message = template.format_map({k: v for k, v in ids.items()})
    result = ask(engine, user_id, message)
    after = tasks(engine, user_id)
    if title is None:  # not understood: nothing may change
        assert not any(t["completed"] for t in after.values())
        return
    assert [c["name"] for c in result.tool_calls] == ["complete_task"], result.response
    assert after[title]["completed"] is True
    assert sum(t["completed"] for t in after.values()) == 1


DELETE_CASES = [
    ("delete task {Call mom}", "Call mom"),
    ("remove the milk task", "Buy milk"),
    ("delete the rent task", "Pay rent"),
    ("get rid of write report", "Write report"),
    ("please remove task #{Pay rent}", "Pay rent"),
    ("cancel the dentist appointment", "Book dentist appointment"),
    ("remove buy milk from my list", "Buy milk"),
    ("trash task {Write report}", "Write report"),
    ("delete the last task", "Book dentist appointment"),
]


@pytest.mark.parametrize(("template", "title"), DELETE_CASES)
def test_delete(engine: str, template: str, title: str) -> None:
    user_id, ids = seed(engine)
    result = ask(engine, user_id, template.format_map(ids))
    assert [c["name"] for c in result.tool_calls] == ["delete_task"], result.response
    after = tasks(engine, user_id)
    assert title not in after and len(after) == len(SEED) - 1


UPDATE_CASES = [
    ("rename task {Buy milk} to Buy oat milk", "Buy milk", {"title": "Buy oat milk"}),
    ("change the title of task {Call mom} to Call mum", "Call mom", {"title": "Call mum"}),
    ("rename the rent task to Pay rent and bills", "Pay rent", {"title": "Pay rent and bills"}),
    ("change the description of task {Write report} to quarterly numbers", "Write report",
     {"description": "quarterly numbers"}),
    ("update task {Call mom} to Call mom on Sunday", "Call mom", {"title": "Call mom on Sunday"}),
    ("set the description of the milk task to 2 litres", "Buy milk", {"description": "2 litres"}),
    ("rename buy milk to \"Buy soy milk\"", "Buy milk", {"title": "Buy soy milk"}),
    ("edit task {Pay rent} description: before the 5th", "Pay rent", {"description": "before the 5th"}),
]


@pytest.mark.parametrize(("template", "old", "changes"), UPDATE_CASES)
def test_update(engine: str, template: str, old: str, changes: dict[str, str]) -> None:
    user_id, ids = seed(engine)
    result = ask(engine, user_id, template.format_map(ids))
    assert [c["name"] for c in result.tool_calls] == ["update_task"], result.response
    after = {t["id"]: t for t in tasks(engine, user_id).values()}
    task = after[ids[old]]
    for key, value in changes.items():
        assert task[key] == value


NONSENSE = ["asdfghjkl", "what is the weather like?", "tell me a joke", "42", "🙂", "banana"]


@pytest.mark.parametrize("message", NONSENSE)
def test_not_understood(engine: str, message: str) -> None:
    user_id, _ = seed(engine)
    result = ask(engine, user_id, message)
    assert result.tool_calls == []
    assert "didn't understand" in result.response and "add a task" in result.response
    assert len(tasks(engine, user_id)) == len(SEED)


def test_unknown_id_and_no_match(engine: str) -> None:
    user_id, _ = seed(engine)
    r = ask(engine, user_id, "delete task 999")
    assert "Task 999 not found" in r.response and len(tasks(engine, user_id)) == len(SEED)
    r = ask(engine, user_id, "complete the spaceship task")
    assert r.tool_calls == [] and "couldn't find" in r.response


def test_ambiguous_then_followup(engine: str) -> None:
    user_id, ids = seed(engine)
    ask(engine, user_id, "add buy milk for the cat")
    first = ask(engine, user_id, "I finished the milk")
    assert first.tool_calls == [] and "Which task" in first.response
    assert f"#{ids['Buy milk']}" in first.response
    assert not any(t["completed"] for t in tasks(engine, user_id).values())
    history = [("user", "I finished the milk"), ("assistant", first.response)]
    second = ask(engine, user_id, "the first one", history)
    assert [c["name"] for c in second.tool_calls] == ["complete_task"]
    assert tasks(engine, user_id)["Buy milk"]["completed"] is True
    assert tasks(engine, user_id)["Buy milk for the cat"]["completed"] is False


def test_agent_cannot_touch_other_users(engine: str) -> None:
    user_id, ids = seed(engine)
    other_id = add_user(engine, "other")
    r = ask(engine, other_id, f"delete task {ids['Buy milk']}")
    assert "not found" in r.response
    r = ask(engine, other_id, "show my tasks")
    assert "Buy milk" not in r.response
    assert len(tasks(engine, user_id)) == len(SEED)


# ---- phrasings users said and the agent used to miss --------------------------------


def test_mark_the_first_one_done_and_complete_the_last_one(engine: str) -> None:
    user_id, ids = seed(engine)
    first = ask(engine, user_id, "mark the first one done")
    assert [c["name"] for c in first.tool_calls] == ["complete_task"], first.response
    assert first.tool_calls[0]["arguments"] == {"task_id": ids["Buy milk"]}
    last = ask(engine, user_id, "complete the last one")
    assert last.tool_calls[0]["arguments"] == {"task_id": ids["Book dentist appointment"]}
    after = tasks(engine, user_id)
    assert after["Buy milk"]["completed"] and after["Book dentist appointment"]["completed"]
    assert sum(t["completed"] for t in after.values()) == 2


def test_ordinals_follow_the_list_the_user_was_shown(engine: str) -> None:
    user_id, ids = seed(engine)
    ask(engine, user_id, f"complete task {ids['Buy milk']}")
    shown = ask(engine, user_id, "show my pending tasks")
    second = ask(engine, user_id, "mark the second one done", [("user", "show my pending tasks"),
                                                               ("assistant", shown.response)])
    # pending, #1 first: Call mom, Pay rent, ... -> the second shown is Pay rent
    assert second.tool_calls[0]["arguments"] == {"task_id": ids["Pay rent"]}, second.response


def test_clear_completed_tasks(engine: str) -> None:
    user_id, ids = seed(engine)
    for title in ("Call mom", "Pay rent"):
        ask(engine, user_id, f"mark task {ids[title]} as done")
    result = ask(engine, user_id, "clear completed tasks")
    assert [c["name"] for c in result.tool_calls] == ["clear_tasks"]
    assert "Cleared 2 completed tasks" in result.response
    assert set(tasks(engine, user_id)) == set(SEED) - {"Call mom", "Pay rent"}
    again = ask(engine, user_id, "clear completed")
    assert "no completed tasks" in again.response


def test_delete_everything_asks_then_deletes_on_yes(engine: str) -> None:
    user_id, _ = seed(engine)
    question = ask(engine, user_id, "delete everything")
    assert question.tool_calls == [] and "all 5 of your tasks" in question.response
    assert len(tasks(engine, user_id)) == len(SEED)
    declined = ask(engine, user_id, "no, keep them", [("user", "delete everything"),
                                                      ("assistant", question.response)])
    assert declined.tool_calls == [] and len(tasks(engine, user_id)) == len(SEED)
    confirmed = ask(engine, user_id, "yes", [("user", "delete everything"), ("assistant", question.response)])
    assert [c["name"] for c in confirmed.tool_calls] == ["clear_tasks"]
    assert "Deleted all 5 tasks" in confirmed.response and tasks(engine, user_id) == {}
    assert "(#1–#5)" in question.response
    # "yes" out of the blue deletes nothing
    user2, _ = seed(engine, "agent_user2")
    assert ask(engine, user2, "yes").tool_calls == [] and len(tasks(engine, user2)) == len(SEED)


@pytest.mark.parametrize(("template", "old", "changes"), [
    ("edit task {Buy milk}: title should be Buy oat milk", "Buy milk", {"title": "Buy oat milk"}),
    ("edit task {Pay rent}: title should be Go to the bank to pay rent", "Pay rent",
     {"title": "Go to the bank to pay rent"}),
    ("task {Call mom}: description should be after 6pm", "Call mom", {"description": "after 6pm"}),
    ("edit the milk task: title should be Buy soy milk", "Buy milk", {"title": "Buy soy milk"}),
])
def test_edit_task_field_should_be(engine: str, template: str, old: str, changes: dict[str, str]) -> None:
    user_id, ids = seed(engine)
    result = ask(engine, user_id, template.format_map(ids))
    assert [c["name"] for c in result.tool_calls] == ["update_task"], result.response
    task = {t["id"]: t for t in tasks(engine, user_id).values()}[ids[old]]
    for key, value in changes.items():
        assert task[key] == value


def test_task_numbers_start_at_one_for_every_user(engine: str) -> None:
    first_user, ids = seed(engine)
    assert sorted(ids.values()) == [1, 2, 3, 4, 5]
    other = add_user(engine, "newcomer")
    added = ask(engine, other, "add a task to water the plants")
    assert added.tool_calls[0]["result"]["task"]["id"] == 1 and "task #1" in added.response
    # "complete task 1" means each user's own #1
    ask(engine, other, "complete task 1")
    assert tasks(engine, other)["Water the plants"]["completed"] is True
    assert tasks(engine, first_user)["Buy milk"]["completed"] is False


def test_delete_all_spares_tasks_added_after_the_question(engine: str) -> None:
    user_id, _ = seed(engine)
    question = ask(engine, user_id, "delete everything")
    assert "all 5 of your tasks, done or not (#1–#5)" in question.response
    add_titles(engine, user_id, ["Added after the question"])
    confirmed = ask(engine, user_id, "yes", [("user", "delete everything"), ("assistant", question.response)])
    assert confirmed.tool_calls[0]["arguments"] == {"status": "all", "up_to": 5}
    assert "Deleted 5 tasks" in confirmed.response and "kept 1 task" in confirmed.response
    assert set(tasks(engine, user_id)) == {"Added after the question"}
    # a question without the numbers (asked before they were shown) is asked again, nothing deleted
    old_question = "That would delete all 1 of your tasks, done or not. Reply \"yes\" to delete them all"
    again = ask(engine, user_id, "yes", [("assistant", old_question)])
    assert again.tool_calls == [] and "(#6)" in again.response and len(tasks(engine, user_id)) == 1


def test_list_shows_a_page_and_the_total(engine: str) -> None:
    user_id = add_user(engine, "many_tasks")
    add_titles(engine, user_id, [f"Task number {i}" for i in range(1, 61)])
    shown = ask(engine, user_id, "show my tasks")
    result = shown.tool_calls[0]["result"]
    assert result["count"] == 60 and len(result["tasks"]) == tools.LIST_LIMIT and result["next_offset"] == 50
    assert "offset=50" in result["more"]
    assert shown.response.startswith("You have 60 tasks (showing the newest 50 of 60):")
    assert "#60 Task number 60" in shown.response and "#10 Task number 10" not in shown.response
    # "the last one" reads one task, not the list: the newest
    last = ask(engine, user_id, "complete the last one")
    assert last.tool_calls[0]["arguments"] == {"task_id": 60}


def test_add_task_refused_past_the_quota(sqlite_url: str) -> None:
    async def work(db: Database) -> list[Any]:
        async with db.write() as conn:
            user_id = int((await conn.execute(insert(users).values(
                username="quota", password_hash="x", created_at=utcnow()).returning(users.c.id))).scalar_one())
            await tools.add_task(conn, user_id, "one")
            await tools.add_task(conn, user_id, "two")
            await tools.delete_task(conn, user_id, 1)
            await tools.add_task(conn, user_id, "three")  # two tasks again, though #3 was handed out
        refused = await OfflineAgent().respond(db, user_id, [], "add a task to four")
        return [refused]

    async def run() -> list[Any]:
        db = Database(sqlite_url, pool_size=2, max_tasks_per_user=2)
        try:
            return await work(db)
        finally:
            await db.dispose()

    [refused] = asyncio.run(run())
    limit = "You have reached the limit of 2 tasks; delete some to add more"
    assert refused.tool_calls[0]["result"] == {"error": limit}
    assert "limit of 2 tasks" in refused.response
