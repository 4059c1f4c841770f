"""The offline agent's understanding of a message: text in, an `Intent` out. Pure and linear-time.

Linear time on any input up to the message limit: whitespace is normalised first (every
run becomes one space, or one newline if it held one), so no pattern meets a long run it
could split in many ways; trailing politeness and "... as done" are stripped word by word,
not by regexes with adjacent optional parts; no pattern nests optional quantifiers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_I = re.IGNORECASE
REF_MAX = 200  # a reference to a task by its title never needs more than a title's length

_WS_RUN = re.compile(r"\s+")
_POLITE = re.compile(
    r"^(?:(?:hey|hi|ok|okay|so|and|now|also|please|pls|could you|can you|would you|will you)[,!]? )+", _I
)
_THANKS = ("thank you", "thanks", "please", "pls", "thx")
_TRAIL_CHARS = " \n.!?"

_ID = re.compile(r"(?:\btask|\bitem|\bnumber|\bno\.?|#) ?#? ?(\d+)\b|^#?(\d+)$", _I)
_ADD = re.compile(
    r"^(?:add|create|make|new|insert|put|schedule|note|jot down|write down|remember(?: to)?|"
    r"remind me(?: to)?|i (?:need|have|must|should|want|gotta|got) to|i'?ve got to|"
    r"don'?t let me forget(?: to)?|don'?t forget(?: to)?|todo|to-?do)\b:?\s?(.*)$",
    _I | re.DOTALL,
)
_ADD_NOUN = re.compile(
    r"^(?:(?:a|an|the) )?(?:new )?(?:task|todo|to-do|item|reminder|note)\b ?(?:to|for|:|-|called|named|that says)? ?",
    _I,
)
_ADD_LIST = re.compile(r" (?:to|on|in) (?:my )?(?:task |todo |to-do )?list$", _I)
_DELETE = re.compile(
    r"^(?:delete|remove|erase|trash|drop|cancel|discard|get rid of|forget about|scrap|clear)\b ?(.*)$", _I
)
_DELETE_LIST = re.compile(r" (?:from|off) (?:my )?(?:task ?|todo ?|to-do ?)?list$", _I)
_CLEAR_DONE = re.compile(
    r"^(?:clear|delete|remove|erase|purge|clean up|clean out|get rid of|tidy up)(?: out)?(?: all)?(?: of)?"
    r"(?: the| my)? (?:completed|finished|done|checked|ticked off|ticked)(?: ones| tasks?| todos?| items?)?"
    r"(?: from my list)?$",
    _I,
)
_DELETE_ALL = re.compile(
    r"^(?:delete|remove|clear|erase|wipe|purge|empty|trash)(?: out)? "
    r"(?:everything|it all|all(?: of)?(?: my| the)?(?: tasks?| todos?| items?)?|"
    r"(?:my|the)(?: whole| entire)? (?:list|tasks|todos|todo list|to-do list|task list))$",
    _I,
)
_COMPLETE = re.compile(
    r"^(?:mark|check off|check|tick off|tick|complete|finish|close|cross off|cross out|set)\b ?(.*)$"
    r"|^(?:i(?:'ve| have)? (?:just |already )?(?:finished|completed|did|done|accomplished)|i'?m done with|"
    r"done with|finished|completed|done:?) (.*)$",
    _I,
)
_DONE_WORDS = {"done", "complete", "completed", "finished", "checked", "closed"}
_IS_DONE = re.compile(r"^(.*?) (?:is|are) (?:now )?(?:done|complete|completed|finished)$", _I)
_EDIT = re.compile(
    r"^(?:(?:edit|change|update|modify|fix) (.+?)|((?:task|item|#) ?#?\d+)) ?[:,] ?(?:(?:its|the) )?"
    r"(title|name|description|details|notes?) "
    r"(?:should (?:be|say|read)|becomes?|is now|to|=|:) ?(.+)$",
    _I | re.DOTALL,
)
_RENAME = re.compile(
    r"^(?:rename|retitle) (.+?) (?:to|as|into) (.+)$"
    r"|^(?:change|update|edit|set|modify) (?:the )?(?:title|name) (?:of )?(.+?) to (.+)$"
    r"|^(?:change|update|edit|modify) (.+?)(?:'s)? (?:title )?to (?:say )?(.+)$",
    _I | re.DOTALL,
)
_DESCRIBE = re.compile(
    r"^(?:change|update|edit|set|modify|add) (?:the |a )?(?:description|notes?|details) "
    r"(?:of|for|on|to) (.+?) ?(?:to|:|as) (.+)$"
    r"|^(?:describe) (.+?) as (.+)$"
    r"|^(?:change|update|edit|set) (.+?)(?:'s)? description ?(?:to\b|:) ?(.+)$",
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
_LIST_NOUN = re.compile(
    r"\b(?:tasks?|todos?|to-?dos?|list|pending|outstanding|left|finished|done|completed|"
    r"remaining|open|need to do|have to do|on my plate|agenda)\b",
    _I,
)
_GREETING = re.compile(r"^(?:hi|hello|hey|help|what can you do|how does this work|good (?:morning|evening))\b", _I)
_YES = re.compile(r"^(?:yes|yeah|yep|yup|sure|ok|okay|confirm|confirmed|do it|go ahead|please do)\b", _I)

ORDINALS = {
    "first": 0, "1st": 0, "second": 1, "2nd": 1, "third": 2, "3rd": 2, "fourth": 3, "4th": 3,
    "fifth": 4, "5th": 4, "last": -1, "latest": -1, "newest": -1, "recent": -1,
}
_REF_FILLER = {"the", "one", "task", "item", "todo", "entry", "most", "on", "my", "list"}

# The assistant's own questions, recognised in the history (the server keeps no other state).
ASK_WHICH = re.compile(r"Which task should I (complete|delete|update)\?", _I)
ASK_DELETE_ALL = "Reply \"yes\" to delete them all"
SHOWN_ID = re.compile(r"#(\d+)")


@dataclass(frozen=True)
class Ref:
    """Which task: by number, by position in the list the user saw, or by (part of) its title."""

    number: int | None = None
    ordinal: int | None = None
    text: str = ""


@dataclass(frozen=True)
class Intent:
    kind: str  # add list complete delete update clear_completed delete_all confirm_delete_all greet unknown
    ref: Ref | None = None
    title: str = ""
    description: str = ""
    status: str = "all"
    changes: dict[str, str] = field(default_factory=dict)


def normalize(text: str) -> str:
    """Each whitespace run becomes one newline (if it held one) or one space."""
    return _WS_RUN.sub(lambda m: "\n" if "\n" in m.group() else " ", text).strip()


def _strip_trail(text: str) -> str:
    """Drop trailing punctuation and one trailing "please" / "thanks" (as a word)."""
    text = text.rstrip(_TRAIL_CHARS)
    lowered = text.lower()
    for word in _THANKS:
        if lowered.endswith(word) and (len(text) == len(word) or not text[-len(word) - 1].isalnum()):
            text = text[: -len(word)].rstrip(" \n").rstrip(",").rstrip(_TRAIL_CHARS)
            break
    return text


def clean(message: str) -> str:
    text = normalize(message)
    text = _POLITE.sub("", text)
    return _strip_trail(text).strip()


def strip_done_suffix(ref: str) -> tuple[str, bool]:
    """"the report as done" -> ("the report", True); "check off milk" style "x off" too."""
    words = ref.split(" ")
    if words and words[-1].lower().strip(".!") in _DONE_WORDS:
        words.pop()
        if words and words[-1].lower() in ("as", "to"):
            words.pop()
        return " ".join(words).strip(), True
    if len(words) > 1 and words[-1].lower() == "off":
        return " ".join(words[:-1]).strip(), True
    return ref, False


def strip_quotes(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] in "\"'“‘" and text[-1] in "\"'”’":
        return text[1:-1].strip()
    return text


def capitalize(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def parse_ref(text: str) -> Ref:
    text = text.strip().strip("\"'“”")
    found = _ID.search(text)
    if found:
        return Ref(number=int(found.group(1) or found.group(2)))
    words = [w for w in text.lower().split() if w not in _REF_FILLER]
    if len(words) == 1 and words[0] in ORDINALS:
        return Ref(ordinal=ORDINALS[words[0]])
    return Ref(text=text[:REF_MAX])


def split_title(rest: str) -> tuple[str, str]:
    """"Pay rent — due Friday" -> ("Pay rent", "due Friday"); also "x with description y", "x (y)"."""
    rest = strip_quotes(rest.strip())
    described = re.match(r"^(.*?)[,;]? (?:with )?(?:description|details|notes?) ?[:=]? ?(.+)$", rest, _I | re.DOTALL)
    if described:
        return strip_quotes(described.group(1)).strip(" ,;:-"), described.group(2).strip()
    for sep in (" — ", " – ", " -- ", " - ", ": ", "; ", "\n"):
        if sep in rest:
            head, tail = rest.split(sep, 1)
            if head.strip() and tail.strip():
                return strip_quotes(head).strip(" ,;:-"), tail.strip()
    if rest.endswith(")") and "(" in rest:
        head, _, tail = rest.partition("(")
        if head.strip() and tail[:-1].strip():
            return head.strip(), tail[:-1].strip()
    due = re.match(r"^(.*?),? ((?:due|by|before|until|on|at|this|next|tomorrow|tonight|today)\b.*)$", rest, _I | re.DOTALL)
    if due and due.group(1).strip() and re.search(
        r"\b(?:due|monday|tuesday|wednesday|thursday|friday|saturday|sunday|tomorrow|tonight|today|"
        r"week|weekend|month|noon|\d{1,2}(?::\d\d)? ?(?:am|pm)|\d{1,2}:\d\d)\b",
        due.group(2),
        _I,
    ):
        return due.group(1).strip(" ,"), due.group(2).strip()
    return rest.strip(" ,;:-"), ""


def _list_status(text: str) -> str | None:
    if not (_LIST.search(text) or re.search(r"\b(?:tasks|todos|to-dos)\b", text, _I)):
        return None
    if not _LIST_NOUN.search(text):
        return None
    if re.search(r"\ball\b", text, _I) and not _PENDING.search(text) and not re.search(
        r"\b(finished|completed|done)\b", text, _I
    ):
        return "all"
    if _PENDING.search(text):
        return "pending"
    if _COMPLETED.search(text):
        return "completed"
    return "all"


def _complete_ref(text: str) -> str | None:
    match = _IS_DONE.match(text)
    if match and not _LIST.match(text):
        return re.sub(r"^i think ", "", match.group(1), flags=_I)
    match = _COMPLETE.match(text)
    if not match:
        return None
    ref = match.group(1) if match.group(1) is not None else match.group(2)
    stripped, had_suffix = strip_done_suffix(ref or "")
    if match.group(1) is not None and re.match(r"^(?:set|check)\b(?! off)", text, _I) and not had_suffix:
        return None
    return stripped


def parse(message: str, last_assistant: str | None = None) -> Intent:
    text = clean(message)
    if not text:
        return Intent("unknown")
    if last_assistant and ASK_DELETE_ALL in last_assistant and _YES.match(text):
        return Intent("confirm_delete_all")
    if _CLEAR_DONE.match(text):
        return Intent("clear_completed")
    if _DELETE_ALL.match(text):
        return Intent("delete_all")

    edit = _EDIT.match(text)
    if edit:
        field_name = edit.group(3).lower()
        value = strip_quotes(edit.group(4))
        key = "title" if field_name in ("title", "name") else "description"
        if key == "title":
            value = capitalize(value.rstrip("."))
        return Intent("update", ref=parse_ref(edit.group(1) or edit.group(2)), changes={key: value})
    described = _DESCRIBE.match(text)
    if described:
        groups = [g for g in described.groups() if g is not None]
        return Intent("update", ref=parse_ref(groups[0]), changes={"description": strip_quotes(groups[1])})
    renamed = _RENAME.match(text)
    if renamed:
        groups = [g for g in renamed.groups() if g is not None]
        new_title = strip_quotes(groups[1]).rstrip(".")
        done_words = new_title.lower().split()
        if not (done_words and done_words[-1] in _DONE_WORDS and len(done_words) <= 2):  # "change task 3 to done"
            return Intent("update", ref=parse_ref(groups[0]), changes={"title": capitalize(new_title)})
    deleted = _DELETE.match(text)
    if deleted:
        return Intent("delete", ref=parse_ref(_DELETE_LIST.sub("", deleted.group(1))))
    ref = _complete_ref(text)
    if ref:
        return Intent("complete", ref=parse_ref(ref))
    added = _ADD.match(text)
    if added:
        rest = _ADD_LIST.sub("", _ADD_NOUN.sub("", added.group(1).strip()))
        title, description = split_title(rest)
        return Intent("add", title=capitalize(title), description=description)
    status = _list_status(text)
    if status is not None:
        return Intent("list", status=status)
    if _GREETING.match(text):
        return Intent("greet")
    return Intent("unknown")


def choice(message: str, last_assistant: str | None) -> tuple[str, int] | None:
    """The user's answer to "Which task should I ...? #3 ..., #5 ...": (verb, task number)."""
    if not last_assistant:
        return None
    asked = ASK_WHICH.search(last_assistant)
    if not asked:
        return None
    ids = [int(i) for i in SHOWN_ID.findall(last_assistant)]
    text = clean(message).lower()
    chosen: int | None = None
    for word in text.split():
        word = word.strip(".,!")
        if word in ORDINALS:
            idx = ORDINALS[word]
            if -len(ids) <= idx < len(ids):
                chosen = ids[idx]
            break
    if chosen is None:
        match = re.fullmatch(r"(?:task ?)?#? ?(\d+)", text)
        if match and int(match.group(1)) in ids:
            chosen = int(match.group(1))
    return (asked.group(1).lower(), chosen) if chosen is not None else None


def shown_numbers(last_assistant: str | None) -> list[int]:
    """Task numbers in the order the assistant's last listing showed them ("#3 Buy milk" lines)."""
    if not last_assistant or not last_assistant.startswith("You have "):
        return []
    return [int(m.group(1)) for m in re.finditer(r"^#(\d+) ", last_assistant, re.MULTILINE)]
