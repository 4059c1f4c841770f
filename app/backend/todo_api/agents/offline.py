"""A deterministic, rule-based agent that understands everyday task requests. No network."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from typing import Any

from sqlmodel import Session

from todo_api import tools
from todo_api.agents import AgentResult

HELP = (
    "I can add, list, complete, delete and rename your tasks. Try for example "
    '"add a task to buy milk", "show my pending tasks", "mark task 3 as done", '
    '"delete task 2" or "rename task 1 to Buy oat milk".'
)
NOT_UNDERSTOOD = "Sorry, I didn't understand that. " + HELP

_I = re.IGNORECASE
_POLITE = re.compile(r"^\s*(?:(?:hey|hi|ok(?:ay)?|so|and|now|also|please|pls|could you|can you|would you|will you)[,!]?\s+)+", _I)
_TRAIL = re.compile(r"[\s.!?]*(?:,?\s*(?:please|pls|thanks|thank you|thx))?[\s.!?]*$", _I)
_ID = re.compile(r"(?:\btask|\bitem|\bnumber|\bno\.?|#)\s*#?\s*(\d+)\b|^\s*#?(\d+)\s*$", _I)

_ADD = re.compile(
    r"^(?:add|create|make|new|insert|put|schedule|note|jot down|write down|remember(?: to)?|"
    r"remind me(?: to)?|i (?:need|have|must|should|want|gotta|got) to|i'?ve got to|"
    r"don'?t let me forget(?: to)?|don'?t forget(?: to)?|todo|to-?do)\b[:\s]*(.*)$",
    _I | re.DOTALL,
)
_DELETE = re.compile(
    r"^(?:delete|remove|erase|trash|drop|cancel|discard|get rid of|forget about|scrap|clear)\b\s*(.*)$", _I
)
_COMPLETE = re.compile(
    r"^(?:mark|check off|check|tick off|tick|complete|finish|close|cross off|cross out|set)\b\s*(.*)$"
    r"|^(?:i(?:'ve| have)? (?:just |already )?(?:finished|completed|did|done|accomplished)|i'?m done with|"
    r"done with|finished|completed|done:?)\s+(.*)$",
    _I,
)
_DONE_SUFFIX = re.compile(
    r"\s*(?:as|to)?\s*(?:done|complete|completed|finished|checked|closed)\s*$|\s+off\s*$", _I
)
_IS_DONE = re.compile(r"^(.*?)\s+(?:is|are)\s+(?:now\s+)?(?:done|complete|completed|finished)\s*$", _I)
_RENAME = re.compile(
    r"^(?:rename|retitle)\s+(.+?)\s+(?:to|as|into)\s+(.+)$"
    r"|^(?:change|update|edit|set|modify)\s+(?:the\s+)?(?:title|name)\s+(?:of\s+)?(.+?)\s+to\s+(.+)$"
    r"|^(?:change|update|edit|modify)\s+(.+?)(?:'s)?\s+(?:title\s+)?to\s+(?:say\s+)?(.+)$",
    _I | re.DOTALL,
)
_DESCRIBE = re.compile(
    r"^(?:change|update|edit|set|modify|add)\s+(?:the\s+|a\s+)?(?:description|notes?|details)\s+"
    r"(?:of|for|on|to)\s+(.+?)\s+(?:to|:|as)\s+(.+)$"
    r"|^(?:describe)\s+(.+?)\s+as\s+(.+)$"
    r"|^(?:change|update|edit|set)\s+(.+?)(?:'s)?\s+description\s*(?:to\b|:)\s*(.+)$",
    _I | re.DOTALL,
)
_PENDING = re.compile(
    r"\b(?:pending|outstanding|open|left|remaining|unfinished|incomplete|not (?:yet )?done|"
    r"not (?:yet )?finished|to ?do|still (?:need|have)|due|undone)\b",
    _I,
)
_COMPLETED = re.compile(r"\b(?:finished|completed|done|complete|accomplished|checked off|achieved)\b", _I)
_LIST = re.compile(
    r"\b(?:show|list|display|view|see|what|what's|whats|which|give me|tell me|anything|how many|my tasks|"
    r"my todos?|my list|all tasks|todo list|to-do list)\b",
    _I,
)
_GREETING = re.compile(r"^(?:hi|hello|hey|help|what can you do|how does this work|good (?:morning|evening))\b", _I)
_FILLER = {
    "the", "a", "an", "my", "task", "tasks", "todo", "item", "one", "about", "that", "this", "called",
    "named", "to", "from", "list", "please", "thing", "entry", "for", "of", "on", "it", "which", "says",
}
_ORDINALS = {
    "first": 0, "1st": 0, "second": 1, "2nd": 1, "third": 2, "3rd": 2, "fourth": 3, "4th": 3,
    "fifth": 4, "5th": 4, "last": -1,
}
_ASK = re.compile(r"Which task should I (complete|delete|update)\?", _I)
_ASK_IDS = re.compile(r"#(\d+)")


def _stem(word: str) -> str:
    for suffix in ("ing", "es", "s", "ed"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _tokens(text: str) -> list[str]:
    return [_stem(w) for w in re.findall(r"[a-z0-9']+", text.lower()) if w not in _FILLER]


def _clean(text: str) -> str:
    text = _POLITE.sub("", text.strip())
    return _TRAIL.sub("", text).strip()


def _capitalize(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def _strip_quotes(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] in "\"'“‘" and text[-1] in "\"'”’":
        return text[1:-1].strip()
    return text


class OfflineAgent:
    provider = "offline"
    model: str | None = None

    async def respond(
        self, session: Session, user_id: int, history: list[tuple[str, str]], message: str
    ) -> AgentResult:
        return Turn(session, user_id, history).handle(message)


class Turn:
    """One request: parses the message, calls the tools, writes the answer."""

    def __init__(self, session: Session, user_id: int, history: list[tuple[str, str]]) -> None:
        self.session = session
        self.user_id = user_id
        self.history = history
        self.calls: list[dict[str, Any]] = []

    # -- tool plumbing ----------------------------------------------------------------
    def call(self, name: str, **arguments: Any) -> dict[str, Any]:
        fn: Callable[..., dict[str, Any]] = getattr(tools, name)
        try:
            result = fn(self.session, self.user_id, **arguments)
        except tools.ToolError as exc:
            result = {"error": str(exc)}
        self.calls.append({"name": name, "arguments": arguments, "result": result})
        return result

    def done(self, text: str) -> AgentResult:
        return AgentResult(response=text, tool_calls=self.calls)

    # -- routing ----------------------------------------------------------------------
    def handle(self, message: str) -> AgentResult:
        text = _clean(message)
        if not text:
            return self.done(NOT_UNDERSTOOD)
        followup = self.followup(text)
        if followup is not None:
            return followup
        handlers: list[Callable[[str], AgentResult | None]] = [
            self.try_describe,
            self.try_rename,
            self.try_delete,
            self.try_complete,
            self.try_add,
            self.try_list,
        ]
        for handler in handlers:
            result = handler(text)
            if result is not None:
                return result
        if _GREETING.match(text):
            return self.done("Hi! " + HELP)
        return self.done(NOT_UNDERSTOOD)

    # -- follow-up to "which task?" -------------------------------------------------
    def followup(self, text: str) -> AgentResult | None:
        last = next((c for r, c in reversed(self.history) if r == "assistant"), None)
        if not last:
            return None
        asked = _ASK.search(last)
        if not asked:
            return None
        ids = [int(i) for i in _ASK_IDS.findall(last)]
        words = text.lower().split()
        chosen: int | None = None
        for word in words:
            if word.strip(".,!") in _ORDINALS:
                idx = _ORDINALS[word.strip(".,!")]
                if -len(ids) <= idx < len(ids):
                    chosen = ids[idx]
                break
        if chosen is None:
            match = re.fullmatch(r"(?:task\s*)?#?\s*(\d+)", text.strip(), _I)
            if match and int(match.group(1)) in ids:
                chosen = int(match.group(1))
        if chosen is None:
            return None
        verb = asked.group(1).lower()
        if verb == "complete":
            return self.do_complete(chosen)
        if verb == "delete":
            return self.do_delete(chosen)
        return None

    # -- intents ----------------------------------------------------------------------
    def try_add(self, text: str) -> AgentResult | None:
        match = _ADD.match(text)
        if not match:
            return None
        rest = match.group(1).strip()
        rest = re.sub(r"^(?:a\s+|an\s+|the\s+)?(?:new\s+)?(?:task|todo|to-do|item|reminder|note)\b\s*(?:to|for|:|-|called|named|that says)?\s*", "", rest, flags=_I)
        rest = re.sub(r"\s+(?:to|on|in)\s+(?:my\s+)?(?:task |todo |to-do )?list$", "", rest, flags=_I)
        title, description = self.split_title(rest)
        if not title:
            return self.done('What should the task say? For example: "add a task to buy milk".')
        args: dict[str, Any] = {"title": _capitalize(title)}
        if description:
            args["description"] = description
        result = self.call("add_task", **args)
        if "error" in result:
            return self.done(f"I couldn't add that task: {result['error']}.")
        task = result["task"]
        extra = f" ({task['description']})" if task["description"] else ""
        return self.done(f"Done! I added \"{task['title']}\"{extra} to your list as task #{task['id']}.")

    @staticmethod
    def split_title(rest: str) -> tuple[str, str]:
        rest = _strip_quotes(rest.strip())
        described = re.match(r"^(.*?)[,;]?\s+(?:with )?(?:description|details|notes?)\s*[:=]?\s*(.+)$", rest, _I | re.DOTALL)
        if described:
            return _strip_quotes(described.group(1)).strip(" ,;:-"), described.group(2).strip()
        for sep in (" — ", " – ", " -- ", " - ", ": ", "; ", "\n"):
            if sep in rest:
                head, tail = rest.split(sep, 1)
                if head.strip() and tail.strip():
                    return _strip_quotes(head).strip(" ,;:-"), tail.strip()
        paren = re.match(r"^(.*?)\s*\((.+)\)\s*$", rest, re.DOTALL)
        if paren and paren.group(1).strip():
            return paren.group(1).strip(), paren.group(2).strip()
        due = re.match(
            r"^(.*?),?\s+((?:due|by|before|until|on|at|this|next|tomorrow|tonight|today)\b.*)$", rest, _I | re.DOTALL
        )
        if due and due.group(1).strip() and re.search(
            r"\b(?:due|monday|tuesday|wednesday|thursday|friday|saturday|sunday|tomorrow|tonight|today|"
            r"week|weekend|month|noon|\d{1,2}(?::\d\d)?\s*(?:am|pm)|\d{1,2}:\d\d)\b",
            due.group(2),
            _I,
        ):
            return due.group(1).strip(" ,"), due.group(2).strip()
        return rest.strip(" ,;:-"), ""

    def try_list(self, text: str) -> AgentResult | None:
        if not (_LIST.search(text) or re.search(r"\b(?:tasks|todos|to-dos)\b", text, _I)):
            return None
        if not re.search(r"\b(?:tasks?|todos?|to-?dos?|list|pending|outstanding|left|finished|done|completed|"
                         r"remaining|open|need to do|have to do|on my plate|agenda)\b", text, _I):
            return None
        status = "all"
        if re.search(r"\ball\b", text, _I) and not _PENDING.search(text) and not re.search(
            r"\b(finished|completed|done)\b", text, _I
        ):
            status = "all"
        elif _PENDING.search(text):
            status = "pending"
        elif _COMPLETED.search(text):
            status = "completed"
        result = self.call("list_tasks", status=status)
        tasks = result["tasks"]
        label = {"all": "", "pending": "pending ", "completed": "completed "}[status]
        if not tasks:
            empty = {
                "all": "You have no tasks yet. Say \"add a task to ...\" to create one.",
                "pending": "Nothing pending, you're all caught up!",
                "completed": "You haven't completed any tasks yet.",
            }[status]
            return self.done(empty)
        lines = [
            f"#{t['id']} {t['title']}" + (" (done)" if t["completed"] and status == "all" else "") for t in tasks
        ]
        noun = "task" if len(tasks) == 1 else "tasks"
        return self.done(f"You have {len(tasks)} {label}{noun}:\n" + "\n".join(lines))

    def try_delete(self, text: str) -> AgentResult | None:
        match = _DELETE.match(text)
        if not match:
            return None
        ref = re.sub(r"\s+(?:from|off)\s+(?:my\s+)?(?:task\s*|todo\s*|to-do\s*)?list$", "", match.group(1), flags=_I)
        return self.resolve(ref, "delete", self.do_delete)

    def try_complete(self, text: str) -> AgentResult | None:
        ref: str | None = None
        match = _IS_DONE.match(text)
        if match and not _LIST.match(text):
            ref = match.group(1)
            ref = re.sub(r"^(?:i think\s+)?", "", ref, flags=_I)
        else:
            match = _COMPLETE.match(text)
            if not match:
                return None
            ref = match.group(1) if match.group(1) is not None else match.group(2)
            if match.group(1) is not None and re.match(r"^(?:set|check)\b(?!\s+off)", text, _I) and not _DONE_SUFFIX.search(ref):
                return None
        ref = _DONE_SUFFIX.sub("", ref or "").strip()
        if not ref:
            return None
        return self.resolve(ref, "complete", self.do_complete, prefer_pending=True)

    def try_rename(self, text: str) -> AgentResult | None:
        match = _RENAME.match(text)
        if not match:
            return None
        groups = [g for g in match.groups() if g is not None]
        ref, new_title = groups[0], _strip_quotes(groups[1]).rstrip(".")
        if re.search(r"\b(?:done|complete|completed|finished)\s*$", new_title, _I) and len(new_title.split()) <= 2:
            return None  # "change task 3 to done" is a completion
        return self.resolve(ref, "update", lambda tid: self.do_update(tid, title=_capitalize(new_title)))

    def try_describe(self, text: str) -> AgentResult | None:
        match = _DESCRIBE.match(text)
        if not match:
            return None
        groups = [g for g in match.groups() if g is not None]
        ref, description = groups[0], _strip_quotes(groups[1])
        return self.resolve(ref, "update", lambda tid: self.do_update(tid, description=description))

    # -- resolving a task reference ---------------------------------------------------
    def resolve(
        self, ref: str, verb: str, action: Callable[[int], AgentResult], prefer_pending: bool = False
    ) -> AgentResult:
        ref = ref.strip().strip("\"'“”")
        id_match = _ID.search(ref)
        if id_match:
            return action(int(id_match.group(1) or id_match.group(2)))
        tasks = tools.list_tasks(self.session, self.user_id, "all")["tasks"]
        if re.fullmatch(r"(?:the\s+)?(?:last|latest|newest|most recent)(?:\s+(?:one|task))?", ref, _I) and tasks:
            return action(tasks[0]["id"])
        query = _tokens(ref)
        if not query:
            return self.done(f"Which task should I {verb}? Tell me its number, e.g. \"{verb} task 3\".")
        scored: list[tuple[float, dict[str, Any]]] = []
        for task in tasks:
            title_tokens = _tokens(task["title"])
            overlap = sum(1 for q in query if any(q == t or difflib.SequenceMatcher(None, q, t).ratio() >= 0.85
                                                  for t in title_tokens)) / len(query)
            ratio = difflib.SequenceMatcher(None, " ".join(query), " ".join(title_tokens)).ratio()
            score = max(overlap, ratio)
            if score >= 0.6:
                if prefer_pending and task["completed"]:
                    score -= 0.05
                scored.append((score, task))
        if not scored:
            return self.done(f"I couldn't find a task matching \"{ref}\". Say \"show my tasks\" to see them.")
        scored.sort(key=lambda st: (-st[0], st[1]["id"]))
        best = scored[0][0]
        top = [t for s, t in scored if s >= best - 0.1]
        exact = [t for t in top if " ".join(_tokens(t["title"])) == " ".join(query)]
        if len(exact) == 1:
            top = exact
        if len(top) == 1:
            return action(top[0]["id"])
        options = ", ".join(f"#{t['id']} {t['title']}" for t in top[:8])
        return self.done(
            f"Which task should I {verb}? Several match \"{ref}\": {options}. Reply with the task number."
        )

    # -- actions ----------------------------------------------------------------------
    def do_complete(self, task_id: int) -> AgentResult:
        result = self.call("complete_task", task_id=task_id)
        if "error" in result:
            return self.done(f"{result['error']}. Say \"show my tasks\" to see your task numbers.")
        return self.done(f"Nice work! I marked \"{result['task']['title']}\" (task #{task_id}) as done.")

    def do_delete(self, task_id: int) -> AgentResult:
        result = self.call("delete_task", task_id=task_id)
        if "error" in result:
            return self.done(f"{result['error']}. Say \"show my tasks\" to see your task numbers.")
        return self.done(f"Deleted \"{result['task']['title']}\" (task #{task_id}) from your list.")

    def do_update(self, task_id: int, **changes: str) -> AgentResult:
        result = self.call("update_task", task_id=task_id, **changes)
        if "error" in result:
            return self.done(f"I couldn't update it: {result['error']}.")
        task = result["task"]
        if "title" in changes:
            return self.done(f"Renamed task #{task_id} to \"{task['title']}\".")
        return self.done(f"Updated the description of \"{task['title']}\" (task #{task_id}) to \"{task['description']}\".")
