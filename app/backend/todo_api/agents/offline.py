"""A deterministic, rule-based agent that understands everyday task requests. No network.

`parse.py` turns the message into an Intent (pure, linear-time); `Turn` carries it out
with the task tools, each call on a pooled connection of its own, and writes the answer.
"""

from __future__ import annotations

import asyncio
import difflib
import re
from collections.abc import Awaitable, Callable
from typing import Any

from todo_api import tools
from todo_api.agents import AgentResult
from todo_api.agents.parse import ASK_DELETE_ALL, Intent, Ref, choice, parse, shown_numbers
from todo_api.db import Database

HELP = (
    "I can add, list, complete, delete and rename your tasks. Try for example "
    '"add a task to buy milk", "show my pending tasks", "mark task 3 as done", '
    '"delete task 2", "rename task 1 to Buy oat milk" or "clear completed tasks".'
)
MATCH_LIMIT = 1000  # tasks a name is matched against (the newest)
QUERY_WORDS = 12  # words of a reference that count
WORD_MAX = 32  # characters of a word that count
PHRASE_TASKS, PHRASE_MAX = 200, 100  # whole-phrase similarity: newest tasks, characters compared
NOT_UNDERSTOOD = "Sorry, I didn't understand that. " + HELP
# The delete-all question names the tasks it counted, "(#1–#57)" or "(#5)"; "yes" deletes
# those numbers only, never a task added after the question.
ASKED_RANGE = re.compile(r"\((?:#\d+–)?#(\d+)\)")

_FILLER = {
    "the", "a", "an", "my", "task", "tasks", "todo", "item", "one", "about", "that", "this", "called",
    "named", "to", "from", "list", "please", "thing", "entry", "for", "of", "on", "it", "which", "says",
}


def _stem(word: str) -> str:
    for suffix in ("ing", "es", "s", "ed"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _similar(a: str, b: str) -> bool:
    if a == b:
        return True
    if 2 * min(len(a), len(b)) / (len(a) + len(b)) < 0.85:  # ratio() can't reach 0.85: skip it
        return False
    return difflib.SequenceMatcher(None, a, b).ratio() >= 0.85


def _tokens(text: str) -> list[str]:
    return [_stem(w) for w in re.findall(r"[a-z0-9']+", text.lower()) if w not in _FILLER]


class OfflineAgent:
    provider = "offline"
    model: str | None = None

    async def respond(
        self, db: Database, user_id: int, history: list[tuple[str, str]], message: str
    ) -> AgentResult:
        return await Turn(db, user_id, history).handle(message)


Action = Callable[[int], Awaitable[AgentResult]]


class Turn:
    """One request: parses the message, calls the tools, writes the answer."""

    def __init__(self, db: Database, user_id: int, history: list[tuple[str, str]]) -> None:
        self.db = db
        self.user_id = user_id
        self.last_assistant = next((c for r, c in reversed(history) if r == "assistant"), None)
        self.calls: list[dict[str, Any]] = []

    # -- tool plumbing ----------------------------------------------------------------
    async def call(self, name: str, **arguments: Any) -> dict[str, Any]:
        fn: Callable[..., Awaitable[dict[str, Any]]] = getattr(tools, name)
        try:
            async with self.db.atomic() as conn:
                result = await fn(conn, self.user_id, **arguments)
        except tools.ToolError as exc:
            result = {"error": str(exc)}
        except tools.LimitReached as exc:
            result = {"error": str(exc.detail)}
        self.calls.append({"name": name, "arguments": arguments, "result": result})
        return result

    async def query(self, status: str = "all", limit: int | None = None, offset: int = 0,
                    newest_first: bool = True) -> tuple[list[dict[str, Any]], int]:
        async with self.db.read() as conn:
            return await tools.query_tasks(conn, self.user_id, status, limit, offset, newest_first)

    def done(self, text: str) -> AgentResult:
        return AgentResult(response=text, tool_calls=self.calls)

    # -- routing ----------------------------------------------------------------------
    async def handle(self, message: str) -> AgentResult:
        picked = choice(message, self.last_assistant)
        if picked is not None:
            verb, number = picked
            if verb == "complete":
                return await self.do_complete(number)
            if verb == "delete":
                return await self.do_delete(number)
        intent = parse(message, self.last_assistant)
        handler = getattr(self, f"on_{intent.kind}", None)
        if handler is None:
            return self.done(NOT_UNDERSTOOD)
        result: AgentResult = await handler(intent)
        return result

    async def on_unknown(self, intent: Intent) -> AgentResult:
        return self.done(NOT_UNDERSTOOD)

    async def on_greet(self, intent: Intent) -> AgentResult:
        return self.done("Hi! " + HELP)

    async def on_add(self, intent: Intent) -> AgentResult:
        if not intent.title:
            return self.done('What should the task say? For example: "add a task to buy milk".')
        args: dict[str, Any] = {"title": intent.title}
        if intent.description:
            args["description"] = intent.description
        result = await self.call("add_task", **args)
        if "error" in result:
            return self.done(f"I couldn't add that task: {result['error']}.")
        task = result["task"]
        extra = f" ({task['description']})" if task["description"] else ""
        return self.done(f"Done! I added \"{task['title']}\"{extra} to your list as task #{task['id']}.")

    async def on_list(self, intent: Intent) -> AgentResult:
        status = intent.status
        result = await self.call("list_tasks", status=status)
        tasks = sorted(result["tasks"], key=lambda t: t["id"])  # #1 first: "the first one" is the top line
        total = result["count"]
        label = {"all": "", "pending": "pending ", "completed": "completed "}[status]
        if not tasks:
            empty = {
                "all": "You have no tasks yet. Say \"add a task to ...\" to create one.",
                "pending": "Nothing pending, you're all caught up!",
                "completed": "You haven't completed any tasks yet.",
            }[status]
            return self.done(empty)
        lines = [f"#{t['id']} {t['title']}" + (" (done)" if t["completed"] and status == "all" else "") for t in tasks]
        noun = "task" if total == 1 else "tasks"
        showing = f" (showing the newest {len(tasks)} of {total})" if len(tasks) < total else ""
        return self.done(f"You have {total} {label}{noun}{showing}:\n" + "\n".join(lines))

    async def on_complete(self, intent: Intent) -> AgentResult:
        assert intent.ref is not None
        return await self.resolve(intent.ref, "complete", self.do_complete, prefer_pending=True)

    async def on_delete(self, intent: Intent) -> AgentResult:
        assert intent.ref is not None
        return await self.resolve(intent.ref, "delete", self.do_delete)

    async def on_update(self, intent: Intent) -> AgentResult:
        assert intent.ref is not None
        return await self.resolve(intent.ref, "update", lambda n: self.do_update(n, **intent.changes))

    async def on_clear_completed(self, intent: Intent) -> AgentResult:
        result = await self.call("clear_tasks", status="completed")
        count = result.get("count", 0)
        if not count:
            return self.done("There are no completed tasks to clear.")
        noun = "task" if count == 1 else "tasks"
        return self.done(f"Cleared {count} completed {noun} from your list.")

    async def on_delete_all(self, intent: Intent) -> AgentResult:
        newest, total = await self.query(limit=1)
        if not total:
            return self.done("Your list is already empty.")
        oldest, _ = await self.query(limit=1, newest_first=False)
        first, last = oldest[0]["id"], newest[0]["id"]
        if total == 1:
            what = f"your only task (#{last})"
        else:
            what = f"all {total} of your tasks, done or not (#{first}–#{last})"
        return self.done(f"That would delete {what}. {ASK_DELETE_ALL}, or say anything else to keep them.")

    async def on_confirm_delete_all(self, intent: Intent) -> AgentResult:
        asked = ASKED_RANGE.search(self.last_assistant or "")
        if asked is None:  # a question from before the range was shown: ask again
            return await self.on_delete_all(intent)
        result = await self.call("clear_tasks", status="all", up_to=int(asked.group(1)))
        count = result.get("count", 0)
        noun = "task" if count == 1 else "tasks"
        _, left = await self.query(limit=1)
        if left:
            kept = "task" if left == 1 else "tasks"
            return self.done(f"Deleted {count} {noun}. I kept {left} {kept} added since I asked.")
        return self.done(f"Deleted all {count} {noun}. Your list is empty now.")

    # -- resolving a task reference ---------------------------------------------------
    async def resolve(self, ref: Ref, verb: str, action: Action, prefer_pending: bool = False) -> AgentResult:
        if ref.number is not None:
            return await action(ref.number)
        if ref.ordinal is not None:
            return await self.by_position(ref.ordinal, verb, action, prefer_pending)
        # The 1000 newest are plenty to match a name against, and bound the work per message.
        tasks, _ = await self.query(limit=MATCH_LIMIT)
        query = list(dict.fromkeys(t[:WORD_MAX] for t in _tokens(ref.text)))[:QUERY_WORDS]
        if not query:
            return self.done(f"Which task should I {verb}? Tell me its number, e.g. \"{verb} task 3\".")
        scored: list[tuple[float, dict[str, Any]]] = []
        joined = " ".join(query)[:PHRASE_MAX]
        for index, task in enumerate(tasks):
            if index % 100 == 99:
                await asyncio.sleep(0)  # let other requests (and the probes) in between
            title_tokens = [t[:WORD_MAX] for t in _tokens(task["title"])]
            overlap = sum(1 for q in query if any(_similar(q, t) for t in title_tokens)) / len(query)
            score = overlap
            if overlap < 0.6 and index < PHRASE_TASKS:  # the whole phrase, if it can still reach the bar
                matcher = difflib.SequenceMatcher(None, joined, " ".join(title_tokens)[:PHRASE_MAX])
                if matcher.quick_ratio() >= 0.6:
                    score = max(overlap, matcher.ratio())
            if score >= 0.6:
                if prefer_pending and task["completed"]:
                    score -= 0.05
                scored.append((score, task))
        if not scored:
            return self.done(f"I couldn't find a task matching \"{ref.text}\". Say \"show my tasks\" to see them.")
        scored.sort(key=lambda st: (-st[0], st[1]["id"]))
        best = scored[0][0]
        top = [t for s, t in scored if s >= best - 0.1]
        exact = [t for t in top if " ".join(_tokens(t["title"])) == joined]
        if len(exact) == 1:
            top = exact
        if len(top) == 1:
            return await action(top[0]["id"])
        options = ", ".join(f"#{t['id']} {t['title']}" for t in top[:8])
        return self.done(
            f"Which task should I {verb}? Several match \"{ref.text}\": {options}. Reply with the task number."
        )

    async def by_position(self, ordinal: int, verb: str, action: Action, prefer_pending: bool) -> AgentResult:
        """"the first one" / "the last one": in the list the user was just shown, else in the
        whole list (#1 first; only pending tasks when completing)."""
        numbers = shown_numbers(self.last_assistant)
        if not numbers:  # read just the one task: #1 first for "first", newest first for "last"
            status = "pending" if prefer_pending else "all"
            from_end = ordinal < 0
            page, _ = await self.query(status, limit=1, offset=-ordinal - 1 if from_end else ordinal,
                                       newest_first=from_end)
            numbers, ordinal = [t["id"] for t in page], 0
        if not -len(numbers) <= ordinal < len(numbers):
            which = "pending tasks" if prefer_pending else "tasks"
            return self.done(f"You don't have that many {which}. Say \"show my tasks\" to see them.")
        return await action(numbers[ordinal])

    # -- actions ----------------------------------------------------------------------
    async def do_complete(self, task_id: int) -> AgentResult:
        result = await self.call("complete_task", task_id=task_id)
        if "error" in result:
            return self.done(f"{result['error']}. Say \"show my tasks\" to see your task numbers.")
        return self.done(f"Nice work! I marked \"{result['task']['title']}\" (task #{task_id}) as done.")

    async def do_delete(self, task_id: int) -> AgentResult:
        result = await self.call("delete_task", task_id=task_id)
        if "error" in result:
            return self.done(f"{result['error']}. Say \"show my tasks\" to see your task numbers.")
        return self.done(f"Deleted \"{result['task']['title']}\" (task #{task_id}) from your list.")

    async def do_update(self, task_id: int, **changes: str) -> AgentResult:
        result = await self.call("update_task", task_id=task_id, **changes)
        if "error" in result:
            return self.done(f"I couldn't update it: {result['error']}.")
        task = result["task"]
        if "title" in changes:
            return self.done(f"Renamed task #{task_id} to \"{task['title']}\".")
        return self.done(f"Updated the description of \"{task['title']}\" (task #{task_id}) to \"{task['description']}\".")
