"""Routine files (YAML) to validated Routine values, with every problem located at once.

The file is composed into YAML nodes (never constructed into Python objects, so no
tag can run code) and the node tree is checked against schema version 1 in
DESIGN.md. Every node keeps where it starts, so each problem reads
`PATH:LINE:COL: key.path: message`, with lines and columns counted as editors count them.
"""

from __future__ import annotations

import bisect
import difflib
import math
import os
import re
import stat
import unicodedata
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from coachtrack.durations import parse_range
from coachtrack.errors import Problem, UserError
from coachtrack.errors import cut as _cut
from coachtrack.model import (
    Action,
    Breathe,
    DurationRange,
    Hold,
    Pause,
    Place,
    Repeat,
    Routine,
    Say,
    Step,
    Where,
)
from coachtrack.phrases import PHRASEBOOKS
from coachtrack.profiles import PROFILES
from coachtrack.speech import plain_text

MAX_FILE_BYTES = 1_000_000
MAX_ID_CHARS = 100  # ids name files: "ID.mp3", and its temporary ".ID.mp3.PID-TOKEN.tmp"
# espeak-ng crashes on one text of about 16 700 bytes; a spoken line this long already
# runs two minutes and more, where a routine wants several shorter lines.
MAX_TEXT_CHARS = 2000
MAX_NODES = 10_000  # counted with aliases expanded: stops "billion laughs"
MAX_DEPTH = 50  # YAML nesting; also keeps the recursive composer far from RecursionError
MAX_REPEAT_NESTING = 20  # aliases can nest repeats deeper than the YAML text does
MAX_TRACK_MS = 4 * 3_600_000
MS_PER_WORD = 400  # a rough upper bound for the length of speech
HOLD_MIN_MS = 1_000
HOLD_MAX_MS = 30 * 60_000
ROUTINE_SUFFIXES = (".yaml", ".yml")

ROUTINE_KEYS = (
    "title",
    "id",
    "language",
    "body_part",
    "level",
    "equipment",
    "source",
    "safety",
    "intro",
    "outro",
    "steps",
)
STEP_KEYS = ("title", "sides", "do")
ACTION_KINDS = ("say", "hold", "pause", "repeat")
ACTION_EXTRAS = {"breathe": "hold", "remind": "hold", "countdown": "hold", "do": "repeat"}
BREATHE_VALUES: tuple[Breathe, ...] = ("intensify", "calm")

_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_TAG + name for name in ("str", "int", "float", "bool", "null"))
# A comment glued to the word after its `#` (`Press point #3.`), on a text's line: a slip.
_WORD_COMMENT = re.compile(r"[ \t]+(#[^\s\x00][^\n\x00]*)")
# The key paths of texts (`steps[0].do[2].say[1]`, `intro[0]`, `title`)
_TEXT_KEY = re.compile(r"(^|\.)(title|source|safety|intro|outro|say|remind|sides)(\[\d+\])?$")
_ALLOWED_TAGS = frozenset({_STR, _INT, _FLOAT, _BOOL, _NULL, _TAG + "seq", _TAG + "map", "!"})
_KINDS = {_STR: "text", _INT: "a number", _FLOAT: "a number", _BOOL: "a yes/no value"}
_TRUE, _FALSE = ("yes", "true", "on"), ("no", "false", "off")
_ID = re.compile(r"[a-z0-9-]+")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_WHOLE = re.compile(r"[-+]?[0-9]+")
_MAX_DIGITS = 100  # far past the track limit, far below int()'s digit limit
# A node whose problem was reported while composing gets this tag instead of its own:
# validation says nothing more about it (no "expected text, got a value" after a bad tag).
_REFUSED = "!coachtrack/refused"

# Lines end where editors and grep end them. YAML 1.1 (and so PyYAML) also ends a line at
# U+0085, U+2028 and U+2029, which editors show inside a line: the same file would have
# other lines, and other YAML, for the parser than for the person reading it. They are no
# use in a spoken text either, so they are refused wherever they are; the parser reads
# them as spaces, so that the rest of the file is checked as the editor shows it.
_LINE_END = re.compile(r"\r\n|\r|\n")
_ODD_BREAK = re.compile("[\x85\u2028\u2029]")
_ODD_BREAK_NAMES = {
    "\x85": "next line",
    "\u2028": "line separator",
    "\u2029": "paragraph separator",
}
# What a string may hold, however it is written (escapes such as "\0", "\a", "\e", "\x07"
# or "\u0007" included): what PyYAML's reader allows written raw, less the odd breaks.
_NOT_ALLOWED = re.compile(
    "[^\t\n\r\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
# Bidirectional embeddings, overrides and isolates: invisible, they change the order in
# which the transcript, the chapters and the page show a text (a right-to-left override
# shows "Pull the foot back." backwards), while the engine speaks it as written.
_REORDERING = re.compile("[\u202a-\u202e\u2066-\u2069]")
# JSON (which is YAML) writes a character past U+FFFF as two escapes, "\ud83e\uddb5";
# PyYAML reads them as two surrogates, which no UTF-8 file or speech engine takes.
_SURROGATE_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")


# --- Public API -------------------------------------------------------------------------


def discover(paths: Sequence[Path]) -> list[Path]:
    """The routine files named by `paths` (files, or folders of *.yaml / *.yml), in order."""
    files, problems = _discover(paths)
    if problems:
        raise UserError(problems)
    return files


def load_routine(path: Path, *, known_languages: Collection[str] = tuple(PHRASEBOOKS)) -> Routine:
    """Read and validate one routine file; raise UserError listing every problem in it."""
    loaded = _load(path, known_languages)
    if loaded.problems or loaded.routine is None:
        raise UserError(loaded.problems)
    return loaded.routine


def load_routines(
    paths: Sequence[Path], *, known_languages: Collection[str] = tuple(PHRASEBOOKS)
) -> list[Routine]:
    """Load every routine named by `paths`; raise one UserError listing all problems."""
    files, problems = _discover(paths)
    loaded = [_load(file, known_languages) for file in files]
    problems += [problem for result in loaded for problem in result.problems]
    problems += _duplicate_ids(loaded)
    if problems:
        raise UserError(problems)
    return [result.routine for result in loaded if result.routine is not None]


def rough_length_ms(routine: Routine) -> int:
    """The routine's own content at its longest: holds as long as a profile plays them,
    and 0.4 s per spoken word."""
    texts = [routine.title, *routine.intro, *routine.outro, *routine.equipment]
    texts += [text for text in (routine.safety,) if text]
    return _words_ms(texts) + sum(_step_ms(step) for step in routine.steps)


# --- Files ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Loaded:
    """One file's outcome: the routine, or the problems that kept it from loading."""

    path: Path
    routine: Routine | None
    problems: list[Problem]
    id_where: Where | None = None


def _discover(paths: Sequence[Path]) -> tuple[list[Path], list[Problem]]:
    """Routine files under `paths`, each once, and problems with the paths themselves."""
    files: list[Path] = []
    problems: list[Problem] = []
    for path in paths:
        found, problem = _files_at(path)
        files += found
        problems += [problem] if problem else []
    seen: set[str] = set()
    unique: list[Path] = []
    for file in files:
        real = os.path.realpath(file)
        if real not in seen:
            seen.add(real)
            unique.append(file)
    return unique, problems


def _files_at(path: Path) -> tuple[list[Path], Problem | None]:
    """The routine files a path names: itself, or those directly inside a folder."""
    try:
        if not path.is_dir():
            # A broken link or a loop of links is read, and says why it cannot be, as in a folder.
            exists = path.exists() or path.is_symlink()
            return ([path], None) if exists else ([], Problem(str(path), "no such file or folder"))
        entries = list(path.iterdir())
    except OSError as error:
        return [], Problem(str(path), f"cannot read it: {error.strerror or error}")
    found = sorted(
        entry
        for entry in entries
        if entry.suffix.lower() in ROUTINE_SUFFIXES
        and not entry.name.startswith(".")  # editors' and systems' hidden files
        and not entry.is_dir()  # a broken link or a pipe is reported, not skipped
    )
    if not found:
        return [], Problem(str(path), "no routine files (*.yaml, *.yml) in this folder")
    return found, None


def _load(path: Path, known_languages: Collection[str]) -> _Loaded:
    """Read, parse and validate one file, collecting problems instead of raising."""
    name = str(path)
    text, problem = _read_text(path)
    if text is None:
        return _Loaded(path, None, [problem] if problem else [])
    ctx = _Context(path=name, text=text, known_languages=tuple(known_languages))
    root = _compose(text, ctx)
    if root is None:
        return _Loaded(path, None, _in_file_order(ctx.problems))
    routine, id_where = _routine(root, ctx, default_id=_id_from_stem(path.stem))
    if ctx.problems:
        return _Loaded(path, None, _in_file_order(ctx.problems))
    return _Loaded(path, routine, [], id_where)


def _in_file_order(problems: list[Problem]) -> list[Problem]:
    """Problems sorted by where they are; whole-file problems first."""
    return sorted(problems, key=lambda problem: (problem.line or 0, problem.col or 0))


def _read_text(path: Path) -> tuple[str | None, Problem | None]:
    """The file's text, or a whole-file problem; the size is checked before reading."""
    name = str(path)
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            return None, Problem(name, "is a folder, not a routine file")
        if not stat.S_ISREG(info.st_mode):
            return None, Problem(name, "is not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            return None, _too_large(name, info.st_size)
        with path.open("rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        return None, Problem(name, f"cannot read the file: {error.strerror or error}")
    if len(data) > MAX_FILE_BYTES:  # it grew after stat()
        return None, _too_large(name, len(data))
    return _decode(name, data)


def _too_large(name: str, size: int) -> Problem:
    """The problem for a file over the size limit."""
    return Problem(name, f"the file is {size:,} bytes; a routine file is at most 1 MB")


def _decode(name: str, data: bytes) -> tuple[str | None, Problem | None]:
    """UTF-8 text without its byte order mark, or the problem saying where it is not UTF-8."""
    if wide := _utf16_or_32(data):  # "byte 0xFF at line 1" said nothing of what to do
        return None, Problem(name, f"the file is {wide} text, not UTF-8; save the file as UTF-8")
    bom = b"\xef\xbb\xbf"
    body = data[len(bom) :] if data.startswith(bom) else data
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        offset = error.start + len(data) - len(body)
        line = len(re.findall(rb"\r\n|\r|\n", data[:offset])) + 1  # as editors count
        message = (
            f"the file is not UTF-8 text: byte 0x{data[offset]:02X} at line {line} "
            f"(byte {offset + 1}) cannot be read; save the file as UTF-8"
        )
        return None, Problem(name, message)
    if not text.strip():
        return None, Problem(name, "the file is empty")
    return text, None


def _utf16_or_32(data: bytes) -> str | None:
    """The name of a wide encoding the text is in (by its byte order mark, or by the zero
    bytes that plain-ASCII text so encoded has between its letters), else None."""
    for bom, wide in ((b"\xff\xfe\0\0", "UTF-32"), (b"\0\0\xfe\xff", "UTF-32"),
                      (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16")):  # fmt: skip
        if data.startswith(bom):
            return wide
    head = data[:64]
    if len(head) >= 8 and head.count(0) * 4 >= len(head) * 3:
        return "UTF-32"
    if len(head) >= 4 and (head[0::2].count(0) == len(head[0::2]) or
                           head[1::2].count(0) == len(head[1::2])):  # fmt: skip
        return "UTF-16"
    return None


def _id_from_stem(stem: str) -> str:
    """A routine id made from a file name: lower-case, accents dropped, other characters `-`."""
    plain = unicodedata.normalize("NFKD", stem.casefold()).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", plain).strip("-")


def _duplicate_ids(loaded: Iterable[_Loaded]) -> list[Problem]:
    """Problems for routines whose id an earlier file already uses, each naming every
    other file that uses it (a third file with the id was left for the next run)."""
    by_id: dict[str, list[_Loaded]] = {}
    for result in loaded:
        if result.routine is not None:
            by_id.setdefault(result.routine.id, []).append(result)
    problems: list[Problem] = []
    for routine_id, same in by_id.items():
        for result in same[1:]:
            others = [str(r.path) for r in same if r is not result]
            names = f"{', '.join(others[:-1])} and {others[-1]}" if len(others) > 1 else others[0]
            message = f"the routine id '{routine_id}' is also used by {names}"
            where = result.id_where
            if where is None:
                problems.append(Problem(str(result.path), f"{message}; give one of them an 'id'"))
            else:
                problems.append(Problem(where.path, message, where.line, where.col, "id"))
    return problems


# --- YAML -------------------------------------------------------------------------------


class _Loader(
    yaml.reader.Reader,
    yaml.scanner.Scanner,
    yaml.parser.Parser,
    yaml.composer.Composer,
    yaml.resolver.Resolver,
):
    """PyYAML's safe pure-Python composer, guarded against tags, alias bombs and deep nesting.

    It also holds every scalar to the rule for characters, with the key path of the node.
    """

    def __init__(self, text: str, ctx: _Context, odd_characters: _OddCharacters) -> None:
        yaml.reader.Reader.__init__(self, _ODD_BREAK.sub(" ", text))
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        yaml.resolver.Resolver.__init__(self)
        self.ctx = ctx
        self.odd_characters = odd_characters
        self.depth = 0
        self.nodes = 0
        self.sizes: dict[int, int] = {}  # id(anchored node) -> its size with aliases expanded
        self.keys: list[str] = []  # the key paths of the nodes being composed, outermost first
        # plain texts with an anchor no alias has used yet: anchor -> (mark, key, text)
        self.lone_anchors: dict[str, tuple[yaml.Mark, str, ScalarNode]] = {}

    def compose_node(self, parent: Node | None, index: int | Node | None) -> Node | None:
        """Compose one node, counting it (aliases expanded) and refusing foreign tags."""
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
        mark = _start_of(event)
        if isinstance(event, yaml.AliasEvent):
            self.lone_anchors.pop(str(event.anchor), None)
            node = super().compose_node(parent, index)  # type: ignore[arg-type]
            size = self.sizes.get(id(node))
            if size is None:
                raise _refused("an alias refers to the node that contains it", mark)
            self._count(size, mark)
            return node
        key = self._key_path(index)
        refused = self._check_tag(event, mark, key)
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _refused(f"the file is nested more than {MAX_DEPTH} levels deep", mark)
        before = self.nodes
        self._count(1, mark)
        self.keys.append(key)
        node = super().compose_node(parent, index)  # type: ignore[arg-type]
        self.keys.pop()
        self.depth -= 1
        if isinstance(event, yaml.NodeEvent) and event.anchor is not None:
            self.sizes[id(node)] = self.nodes - before
        if isinstance(node, ScalarNode):
            refused = self._check_characters(node, key, is_key=index is None) or refused
            self._note_lost_words(event, node, mark, key)
        if refused and node is not None:
            node.tag = _REFUSED
        return node

    def _key_path(self, index: int | Node | None) -> str:
        """The key path of the node about to be composed, as validation spells it."""
        parent = self.keys[-1] if self.keys else ""
        if isinstance(index, int):  # an item of a list
            return f"{parent}[{index}]"
        if isinstance(index, ScalarNode):  # the value of a mapping key
            return _join(parent, _cut(str(index.value)))
        return parent  # the document, a key, or the value of a key that is not a word

    def _check_characters(self, node: ScalarNode, key: str, *, is_key: bool) -> bool:
        """Join surrogate pairs and record problems for characters not allowed; True if any."""
        value = _SURROGATE_PAIR.sub(_joined_pair, str(node.value))
        refused = list(dict.fromkeys(_NOT_ALLOWED.findall(value)))
        reordering = list(dict.fromkeys(_REORDERING.findall(value)))
        # Messages never echo such characters: a terminal would obey them, or fail on them.
        node.value = _REORDERING.sub("\ufffd", _NOT_ALLOWED.sub("\ufffd", value))
        breaks = self.odd_characters.claim(node.start_mark.index, node.end_mark.index)
        if not refused and not reordering and not breaks:
            return False
        if is_key:  # a key's problems name the key itself, as validation does
            key = _join(key, _cut(node.value))
        if refused:
            self.ctx.add(node.start_mark, key, _escaped_message(refused))
        if reordering:
            self.ctx.add(node.start_mark, key, _reordering_message(reordering))
        if breaks:
            self.ctx.add(breaks[0], key, self.odd_characters.message(breaks[0]))
        return True

    def _note_lost_words(
        self, event: yaml.Event, node: ScalarNode, mark: yaml.Mark, key: str
    ) -> None:
        """Note a plain text YAML shortened: `! Careful.`, `&a hello`, `Press point #3.`

        YAML reads a leading `! ` as a tag, `&name` as an anchor (kept if an alias reuses
        it), and ` #` as the start of a comment, and drops them from the text: the author
        most likely meant them to be said.
        """
        if not isinstance(event, yaml.ScalarEvent) or event.style is not None:
            return  # quoted or block texts keep what their author wrote
        if event.tag == "!":
            self.ctx.add(mark, key, _lost_words_message("'!' as a tag", node.value))
        if event.anchor is not None:
            self.lone_anchors[str(event.anchor)] = (mark, key, node)
        comment = _WORD_COMMENT.match(self.buffer, node.end_mark.index)
        if comment and _TEXT_KEY.search(key):
            said = f"'{_cut(comment.group(1))}' as a comment"
            self.ctx.add(comment.start(1), key, _lost_words_message(said, node.value))

    def report_lone_anchors(self) -> None:
        """Record a problem for each plain text whose anchor no alias used."""
        for anchor, (mark, key, node) in self.lone_anchors.items():
            said = f"'&{_cut(anchor)}' as an anchor that nothing reuses"
            self.ctx.add(mark, key, _lost_words_message(said, node.value))

    def _count(self, size: int, mark: yaml.Mark) -> None:
        """Add `size` nodes to the running total, refusing a file that grows too big."""
        self.nodes += size
        if self.nodes > MAX_NODES:
            message = f"the file has more than {MAX_NODES:,} values (counting aliases expanded)"
            raise _refused(message, mark)

    def _check_tag(self, event: yaml.Event, mark: yaml.Mark, key: str) -> bool:
        """Record a problem for an explicit tag other than YAML's standard ones; True if so."""
        tag = getattr(event, "tag", None)
        if not isinstance(tag, str) or tag in _ALLOWED_TAGS:
            return False
        shown = "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag
        self.ctx.add(mark, key, f"the YAML tag '{_cut(shown)}' is not allowed")
        return True


class _OddCharacters:
    """Where a text has U+0085, U+2028 or U+2029, or a character YAML's reader refuses
    (U+0007, typed as it is), and which of them a scalar holds.

    The reader stops at the first refused character, with no key to name: `readable` is
    the text with each one replaced (by U+FFFD, which YAML reads as a letter), so that
    all of them are reported, each with the key of the text it is in.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        found = [*_ODD_BREAK.finditer(text), *yaml.reader.Reader.NON_PRINTABLE.finditer(text)]
        self.at = sorted(match.start() for match in found)
        self.readable = yaml.reader.Reader.NON_PRINTABLE.sub("\ufffd", text)
        self.claimed: set[int] = set()

    def claim(self, start: int, end: int) -> list[int]:
        """The positions in [start, end), now claimed by the scalar written there."""
        found = self.at[bisect.bisect_left(self.at, start) : bisect.bisect_left(self.at, end)]
        self.claimed.update(found)
        return found

    def unclaimed(self) -> list[int]:
        """The positions no scalar holds (in comments, or where the parser did not reach)."""
        return [position for position in self.at if position not in self.claimed]

    def message(self, position: int) -> str:
        """The problem with the odd break or refused character at `position`."""
        character = self.text[position]
        if character not in _ODD_BREAK_NAMES:
            return f"the character {_character_name(character)} is not allowed in a YAML file"
        return (
            f"the character {_character_name(character)} is not allowed; use a space or a new line"
        )


def _joined_pair(match: re.Match[str]) -> str:
    """The character a UTF-16 surrogate pair stands for."""
    high, low = (ord(half) for half in match.group())
    return chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))


def _escaped_message(characters: list[str]) -> str:
    """The problem with characters a string holds through escapes."""
    shown = " and ".join(_character_name(character) for character in characters)
    if len(characters) == 1:
        return f"the character {shown} is not allowed, even written as an escape"
    return f"the characters {shown} are not allowed, even written as escapes"


def _reordering_message(characters: list[str]) -> str:
    """The problem with bidirectional controls in a text."""
    shown = " and ".join(_character_name(character) for character in characters)
    if len(characters) == 1:
        return (
            f"the character {shown} is not allowed: invisible, it changes the order in "
            "which players and the page show the text"
        )
    return (
        f"the characters {shown} are not allowed: invisible, they change the order in "
        "which players and the page show the text"
    )


def _character_name(character: str) -> str:
    """`U+0007`, with a word on what it is where the code alone would puzzle."""
    code = f"U+{ord(character):04X}"
    if character in _ODD_BREAK_NAMES:
        return f"{code} ({_ODD_BREAK_NAMES[character]})"
    if "\ud800" <= character <= "\udfff":
        return f"{code} (half of a surrogate pair)"
    if _REORDERING.match(character):
        return f"{code} ({unicodedata.name(character).lower()})"
    return code


def _lost_words_message(said: str, text: str) -> str:
    """The problem with a text part of which YAML took for markup of its own."""
    return f"YAML reads {said}, so the text is only '{_cut(text)}': put the whole text in quotes"


def _start_of(event: yaml.Event) -> yaml.Mark:
    """Where an event starts; the pure-Python parser always records it."""
    mark = event.start_mark
    assert isinstance(mark, yaml.Mark)
    return mark


class _Refused(yaml.MarkedYAMLError):
    """A file the loader will not compose further (alias bomb, deep nesting)."""


def _refused(message: str, mark: yaml.Mark) -> _Refused:
    """A _Refused error located at `mark`."""
    return _Refused(problem=message, problem_mark=mark)


def _compose(text: str, ctx: _Context) -> Node | None:
    """The document's root node (None if YAML cannot read it), with its problems in `ctx`."""
    odd_characters = _OddCharacters(text)
    root = _compose_root(ctx, odd_characters)
    lines: set[int] = set()
    for position in odd_characters.unclaimed():  # once a line is enough
        line, _ = ctx.locate(position)
        if line not in lines:
            lines.add(line)
            ctx.add(position, "", odd_characters.message(position))
    return root


def _compose_root(ctx: _Context, odd_characters: _OddCharacters) -> Node | None:
    """The document's root node, or None with the YAML problem recorded in `ctx`."""
    loader: _Loader | None = None
    try:
        loader = _Loader(odd_characters.readable, ctx, odd_characters)
        root = loader.get_single_node()
        loader.report_lone_anchors()
    except yaml.MarkedYAMLError as error:
        ctx.add(error.problem_mark, "", _yaml_message(error, ctx))
        return None
    except yaml.YAMLError as error:
        ctx.problems.append(Problem(ctx.path, f"not valid YAML: {error}"))
        return None
    except RecursionError:
        ctx.problems.append(Problem(ctx.path, "the file is nested too deeply"))
        return None
    finally:
        if loader is not None:
            loader.dispose()
    if root is None:
        ctx.problems.append(Problem(ctx.path, "the file is empty"))
    return root


def _yaml_message(error: yaml.MarkedYAMLError, ctx: _Context) -> str:
    """A YAML syntax error as one line: the problem, and what was being read."""
    if isinstance(error, _Refused):
        return str(error.problem)
    problem = str(error.problem).removeprefix("but ")
    message = f"YAML syntax error: {problem}"
    if error.context:
        message += f" ({error.context}"
        if error.context_mark is not None:
            message += f" at line {ctx.locate(error.context_mark)[0]}"
        message += ")"
    hint = _value_hint(error, ctx) if "found '<scalar>'" in message else None
    if hint is None and "'\\t'" in message:
        hint = _tab_hint(error, ctx)
    hint = hint or next((hint for found, hint in _SYNTAX_HINTS if found in message), None)
    return f"{message}; {hint}" if hint else message


# The value on a line: after its key ("say: ") or list dash ("- "), either or both.
_LINE_VALUE = re.compile(r"[ \t]*(?:- +)*(?:[^\s:#'\"{\[][^:#]*: +)?(?:- +)*(.)")


def _value_hint(error: yaml.MarkedYAMLError, ctx: _Context) -> str | None:
    """A hint from how the value on the faulty line starts: text found after what YAML read
    as a whole value (`{side} foot up.`, `'It's fine.`) means it wanted quotes."""
    if error.problem_mark is None:
        return None
    start, end = ctx.line_around(error.problem_mark)
    value = _LINE_VALUE.match(ctx.text, start, end)
    first = value.group(1) if value else ""
    if first and first in "{[":
        return _BRACKET_HINT
    if first and first in "'\"":
        other = '"' if first == "'" else "'"
        return (f"a text that starts with {first} ends at the next {first}: put it in "
                f"{other}...{other} instead")  # fmt: skip
    return None


def _tab_hint(error: yaml.MarkedYAMLError, ctx: _Context) -> str:
    """A hint for a tab YAML does not take: in a line's indentation, or after it."""
    mark = error.problem_mark
    if mark is not None and ctx.text[ctx.line_around(mark)[0] : mark.index].strip(" \t"):
        return "a tab in a text or after a key: use a space, or put the text in quotes"
    return "indent with spaces, not tabs"


_BRACKET_HINT = "put a text that starts with { or [ in quotes"
# What most often breaks a routine's YAML, by the words PyYAML finds it with (first match).
_SYNTAX_HINTS = (
    (
        "mapping values are not allowed",
        'a text that contains ": " goes in quotes ("..."); if this line is a key, check its '
        "indentation",
    ),
    (
        "got '{' (while parsing a flow sequence",
        "put a text that uses {side} inside [...] in quotes",
    ),
    ("found '<scalar>' (while parsing a block mapping", _BRACKET_HINT),
    (
        "expected <block end>",
        "check the indentation: a list's items, and an action's keys, line up",
    ),
)


# --- Validation -------------------------------------------------------------------------


@dataclass(slots=True)
class _Context:
    """What validation needs to know and where it collects problems."""

    path: str
    text: str  # the file's text, to turn a position into a line and column
    known_languages: tuple[str, ...] = tuple(PHRASEBOOKS)
    problems: list[Problem] = field(default_factory=list)
    places: list[Place] = field(default_factory=list)  # where each spoken text is written
    line_starts: list[int] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.line_starts = [0, *(match.end() for match in _LINE_END.finditer(self.text))]

    def locate(self, at: yaml.Mark | int) -> tuple[int, int]:
        """The 1-based line and column of a mark or a character position, as editors count."""
        # Not the mark's own line and column: PyYAML counts lines differently (see _LINE_END)
        # and does not count U+FEFF in a column.
        position = at if isinstance(at, int) else at.index
        line = bisect.bisect_right(self.line_starts, position)
        return line, position - self.line_starts[line - 1] + 1

    def line_around(self, mark: yaml.Mark) -> tuple[int, int]:
        """Where the line that holds `mark` starts and ends in the text."""
        line = self.locate(mark)[0]
        end = self.line_starts[line] if line < len(self.line_starts) else len(self.text)
        return self.line_starts[line - 1], end

    def add(self, at: yaml.Mark | int | None, key: str, message: str) -> None:
        """Record a problem at a mark or a character position, or of the whole file."""
        if at is None:
            self.problems.append(Problem(self.path, message, key=key or None))
            return
        line, col = self.locate(at)
        self.problems.append(Problem(self.path, message, line, col, key or None))

    def where(self, mark: yaml.Mark) -> Where:
        """The model's location for a mark."""
        return Where(self.path, *self.locate(mark))


@dataclass(frozen=True, slots=True)
class _Entry:
    """A key and its value in a mapping; problems about the value point at the key."""

    key: str  # the key path, e.g. "steps[0].do[1].hold"
    key_node: ScalarNode
    value: Node

    @property
    def mark(self) -> yaml.Mark:
        """Where the key is written."""
        return self.key_node.start_mark


@dataclass(frozen=True, slots=True)
class _Spot:
    """A value and where to report problems with it."""

    key: str
    mark: yaml.Mark
    value: Node


def _spot(entry: _Entry) -> _Spot:
    """The spot of a mapping value: problems point at its key."""
    return _Spot(entry.key, entry.mark, entry.value)


def _items(spot: _Spot) -> list[_Spot]:
    """The spots of a list's items: problems point at the item."""
    assert isinstance(spot.value, SequenceNode)
    return [
        _Spot(f"{spot.key}[{index}]", item.start_mark, item)
        for index, item in enumerate(spot.value.value)
    ]


def _join(key: str, name: str) -> str:
    """A child key path."""
    return f"{key}.{name}" if key else name


def _mapping(
    spot: _Spot, known: Sequence[str], ctx: _Context, required: Sequence[str] = ()
) -> dict[str, _Entry]:
    """The known entries of a mapping; unknown, duplicate and missing keys are problems."""
    assert isinstance(spot.value, MappingNode)
    entries: dict[str, _Entry] = {}
    seen: dict[str, ScalarNode] = {}
    suggested: set[str] = set()
    for key_node, value in spot.value.value:
        if not isinstance(key_node, ScalarNode):
            ctx.add(key_node.start_mark, spot.key, f"a key must be a word, not {_kind(key_node)}")
            continue
        name = str(key_node.value)
        key = _join(spot.key, _cut(name))
        if name in seen:
            line, _ = ctx.locate(seen[name].start_mark)
            ctx.add(
                key_node.start_mark, key, f"duplicate key '{_cut(name)}' (first at line {line})"
            )
            continue
        seen[name] = key_node
        if name in known:
            entries[name] = _Entry(key, key_node, value)
            continue
        misplaced = _misplaced(name, known)
        close = [] if misplaced else _close_match(name, known)
        suggested.update(close)
        ctx.add(key_node.start_mark, key, _unknown_key(name, close, misplaced))
    for name in required:
        if name not in seen and name not in suggested:
            # At the top level, the missing key is the KEY.PATH: a problem always has one.
            ctx.add(spot.mark, spot.key or name, f"missing required key '{name}'")
    return entries


def _close_match(name: str, known: Sequence[str]) -> list[str]:
    """The known name closest to `name`, if one is close."""
    lowered = {option.lower(): option for option in known}
    if name.lower() in lowered:
        return [lowered[name.lower()]]
    return difflib.get_close_matches(name, known, n=1, cutoff=0.6)


def _unknown_key(name: str, close: list[str], misplaced: str | None = None) -> str:
    """The message for an unknown key."""
    message = f"unknown key '{_cut(name)}'"
    if name == "<<":
        return message + " (YAML merge keys are not supported)"
    if misplaced:
        return message + f" here: it belongs {misplaced}"
    if close:
        return message + f"; did you mean '{close[0]}'?"
    return message


def _misplaced(name: str, known: Sequence[str]) -> str | None:
    """Where a key of the schema that is unknown at this level belongs, if it is one."""
    action = name in ACTION_KINDS or name in ACTION_EXTRAS
    if "steps" in known:  # the routine's own keys
        if action:
            return "to an action, in a step's do list"
        if name in STEP_KEYS:
            return "to a step, in the steps list"
    elif "sides" in known and action and name != "do":  # a step's keys
        return "to an action, in the step's do list"
    elif "say" in known and name in ("title", "sides"):  # an action's keys
        return "to the step, beside its do list"
    return None


def _kind(node: Node) -> str:
    """What a node holds, in words, for "expected X, got Y"."""
    if isinstance(node, SequenceNode):
        return "a list"
    if isinstance(node, MappingNode):
        return "a mapping"
    if node.tag == _NULL or (node.tag != _STR and node.value in ("", "~")):
        return "nothing"
    return _KINDS.get(node.tag, "a date" if node.tag == _TAG + "timestamp" else "a value")


def _expected(spot: _Spot, what: str, ctx: _Context) -> None:
    """Record a wrong-type problem, unless the value's problem is already recorded."""
    if spot.value.tag == _REFUSED:
        return
    got = _kind(spot.value)
    hint = ""
    if "text" in what and got in ("a number", "a yes/no value", "a date"):
        hint = " (put it in quotes to make it text)"
    ctx.add(spot.mark, spot.key, f"expected {what}, got {got}{hint}")


def _is_text(node: Node) -> bool:
    """True for a scalar that YAML reads as a string."""
    return isinstance(node, ScalarNode) and node.tag == _STR


# --- Values -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Scope:
    """Where texts are being read: `{side}` is allowed only in a step with sides."""

    in_step: bool = False
    has_sides: bool = False
    spoken: bool = False  # read out: it must have something to say
    side_name: bool = False  # an item of `sides`


def _text(spot: _Spot, ctx: _Context, scope: _Scope) -> str | None:
    """A non-empty text with surrounding whitespace stripped, placeholders checked."""
    if not _is_text(spot.value):
        _expected(spot, "text", ctx)
        return None
    text = str(spot.value.value).strip()
    if not text:
        ctx.add(spot.mark, spot.key, "the text is empty")
        return None
    if scope.spoken and (silent := _nothing_to_say(text)):
        ctx.add(spot.mark, spot.key, silent)
        return None
    if scope.spoken and len(text) > MAX_TEXT_CHARS:
        message = f"the text is {len(text)} characters long; a spoken text has at most "
        ctx.add(spot.mark, spot.key, message + f"{MAX_TEXT_CHARS}: split it into several")
        return None
    if not scope.spoken:  # for tags and pages only (source, level): braces are only braces
        return text
    for match in _PLACEHOLDER.finditer(text):
        problem = _placeholder_problem(match.group(0), scope)
        if problem:
            ctx.add(spot.mark, spot.key, problem)
    if "{" in (rest := _PLACEHOLDER.sub("", text)) or "}" in rest:
        brace = "{" if "{" in rest else "}"
        ctx.add(spot.mark, spot.key, f"an unmatched '{brace}'; the only placeholder is {{side}}")
    ctx.places.append(Place(text, ctx.where(spot.mark), spot.key))
    return text


def _nothing_to_say(text: str) -> str | None:
    """Why the speech engine would say nothing for `text`, if it would not."""
    # The engine reads texts without markup (see speech.plain_text) and says
    # nothing for bare punctuation such as "..." or "-". It says many symbols ("+" is
    # "plus", "👍" "thumbs up") but not all ("♪"): those the build reports, where they are.
    spoken = plain_text(text)
    if not spoken:
        return "nothing to speak: markup such as <break/> or [[...]] is not read out"
    if not any(unicodedata.category(char)[0] in "LNS" for char in spoken):
        return "nothing to speak: the text has no letters, digits or symbols"
    return None


def _placeholder_problem(placeholder: str, scope: _Scope) -> str | None:
    """What is wrong with a `{...}` in a text, if anything."""
    if placeholder != "{side}":
        return f"unknown placeholder '{_cut(placeholder)}'; the only one is {{side}}"
    if scope.side_name:
        return "a side's name cannot hold '{side}'"
    if scope.has_sides:
        return None
    if scope.in_step:
        return "'{side}' is used, but the step has no 'sides'"
    return "'{side}' can only be used in a step with 'sides'"


def _texts(spot: _Spot, ctx: _Context, scope: _Scope) -> tuple[str, ...] | None:
    """A text or a non-empty list of texts, as a tuple."""
    if isinstance(spot.value, SequenceNode):
        return _text_list(spot, ctx, scope)
    if not _is_text(spot.value):
        _expected(spot, "text or a list of texts", ctx)
        return None
    text = _text(spot, ctx, scope)
    return None if text is None else (text,)


def _text_list(spot: _Spot, ctx: _Context, scope: _Scope) -> tuple[str, ...] | None:
    """A non-empty list of texts."""
    if not isinstance(spot.value, SequenceNode):
        _expected(spot, "a list of texts", ctx)
        return None
    if not spot.value.value:
        ctx.add(spot.mark, spot.key, "the list is empty")
        return None
    texts = [_text(item, ctx, scope) for item in _items(spot)]
    return None if any(text is None for text in texts) else tuple(t for t in texts if t)


def _optional_text(
    entries: dict[str, _Entry], name: str, ctx: _Context, *, spoken: bool = False
) -> str | None:
    """An optional top-level text."""
    entry = entries.get(name)
    return None if entry is None else _text(_spot(entry), ctx, _Scope(spoken=spoken))


def _optional_texts(
    entries: dict[str, _Entry], name: str, ctx: _Context, *, spoken: bool = False
) -> tuple[str, ...]:
    """An optional top-level text or list of texts; () when absent."""
    entry = entries.get(name)
    return () if entry is None else _texts(_spot(entry), ctx, _Scope(spoken=spoken)) or ()


def _length(spot: _Spot, what: str, ctx: _Context) -> DurationRange | None:
    """A hold's or pause's length: a duration or a range, 1 s to 30 min at both ends."""
    node = spot.value
    if not isinstance(node, ScalarNode) or node.tag not in (_STR, _INT, _FLOAT):
        _expected(spot, "a duration such as 30s, 2m or 1:30, or a range such as 2m..2m30s", ctx)
        return None
    written = str(node.value).strip()
    try:
        length = parse_range(written)
    except ValueError as error:
        ctx.add(spot.mark, spot.key, str(error))
        return None
    if length.shortest_ms < HOLD_MIN_MS:
        ctx.add(spot.mark, spot.key, f'"{_cut(written)}" is too short: a {what} lasts at least 1 s')
        return None
    if length.longest_ms > HOLD_MAX_MS:
        ctx.add(
            spot.mark, spot.key, f'"{_cut(written)}" is too long: a {what} lasts at most 30 min'
        )
        return None
    return length


def _whole_number(spot: _Spot, ctx: _Context) -> int | None:
    """A whole number >= 1, written in digits."""
    node = spot.value
    if not isinstance(node, ScalarNode) or node.tag not in (_INT, _FLOAT):
        _expected(spot, "a whole number", ctx)
        return None
    written = str(node.value).strip()
    if len(written) > _MAX_DIGITS:
        ctx.add(spot.mark, spot.key, f"{_cut(written)} is far too large")
        return None
    number = _whole_or_none(written)
    if number is None or number < 1:
        message = f"must be a whole number of at least 1, got {_cut(written)}"
        if number is None and node.tag == _INT:  # YAML's other ways: 0x10, 0o17, 1_000
            message = f"write the number in plain digits (such as 12), not {_cut(written)}"
        ctx.add(spot.mark, spot.key, message)
        return None
    return number


def _whole_or_none(written: str) -> int | None:
    """The whole number written in decimal digits (`3`, `3.0`), or None."""
    if _WHOLE.fullmatch(written):
        return int(written)
    whole, dot, fraction = written.partition(".")
    if dot and _WHOLE.fullmatch(whole) and set(fraction) <= {"0"}:
        return int(whole)
    return None


def _flag(spot: _Spot, ctx: _Context) -> bool | None:
    """A yes/no value."""
    node = spot.value
    written = str(node.value).lower() if isinstance(node, ScalarNode) else ""
    if node.tag != _BOOL or written not in _TRUE + _FALSE:
        _expected(spot, "true or false", ctx)
        return None
    return written in _TRUE


def _breathe(spot: _Spot, ctx: _Context) -> Breathe | None:
    """`intensify` or `calm`."""
    if not _is_text(spot.value):
        _expected(spot, "intensify or calm", ctx)
        return None
    written = str(spot.value.value).strip()
    for option in BREATHE_VALUES:
        if written == option:
            return option
    close = _close_match(written, BREATHE_VALUES)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    ctx.add(spot.mark, spot.key, f"unknown breathe '{_cut(written)}': use intensify or calm{hint}")
    return None


# --- Routine, steps and actions ---------------------------------------------------------


def _routine(root: Node, ctx: _Context, default_id: str) -> tuple[Routine | None, Where | None]:
    """The routine in a document's root node, and where its id is written (if it is)."""
    spot = _Spot("", root.start_mark, root)
    if not isinstance(root, MappingNode):
        if root.tag == _REFUSED:
            return None, None
        ctx.add(
            root.start_mark,
            "",
            f"expected a routine (a mapping with title and steps), got {_kind(root)}",
        )
        return None, None
    entries = _mapping(spot, ROUTINE_KEYS, ctx, required=("title", "steps"))
    title = _optional_text(entries, "title", ctx, spoken=True)  # "{title}." is said alone
    routine_id, id_where = _routine_id(entries, ctx, default_id)
    steps = _steps(entries, ctx)
    routine = Routine(
        id=routine_id or "",
        title=title or "",
        steps=steps,
        language=_language(entries, ctx),
        body_part=_optional_text(entries, "body_part", ctx),
        level=_optional_text(entries, "level", ctx),
        equipment=_optional_texts(entries, "equipment", ctx, spoken=True),
        source=_optional_text(entries, "source", ctx),
        safety=_optional_text(entries, "safety", ctx, spoken=True),
        intro=_optional_texts(entries, "intro", ctx, spoken=True),
        outro=_optional_texts(entries, "outro", ctx, spoken=True),
        path=ctx.path,
        places=tuple(ctx.places),
        language_where=ctx.where(entries["language"].mark) if "language" in entries else None,
    )
    _check_length(routine, entries.get("steps"), ctx)
    return routine, id_where


def _routine_id(
    entries: dict[str, _Entry], ctx: _Context, default_id: str
) -> tuple[str | None, Where | None]:
    """The routine's id: as written, or made from the file name."""
    entry = entries.get("id")
    if entry is None:
        if not default_id:
            ctx.problems.append(
                Problem(ctx.path, "cannot make a routine id from the file name; add an 'id'")
            )
        elif problem := _id_problem(default_id):
            message = (
                f"the id made from the file name, '{_cut(default_id)}', {problem}; add an 'id'"
            )
            ctx.problems.append(Problem(ctx.path, message))
            return None, None
        return default_id, None
    written = _text(_spot(entry), ctx, _Scope())
    where = ctx.where(entry.mark)
    if written is not None and not _ID.fullmatch(written):
        message = f"'{_cut(written)}' is not a valid id: use only a-z, 0-9 and '-'"
        ctx.add(entry.mark, entry.key, message)
        return None, where
    if written is not None and (problem := _id_problem(written)):
        ctx.add(entry.mark, entry.key, f"'{_cut(written)}' {problem}")
        return None, where
    return written, where


def _id_problem(routine_id: str) -> str | None:
    """Why a well-formed id cannot name a track ("is ..."), if it cannot."""
    if len(routine_id) > MAX_ID_CHARS:
        return (f"is {len(routine_id)} characters long; an id names the track's files, "
                f"and has at most {MAX_ID_CHARS}")  # fmt: skip
    if routine_id == "index":
        return "would give the track's page the name of the folder's index page, index.html"
    return None


def _language(entries: dict[str, _Entry], ctx: _Context) -> str:
    """The routine's language: one the tool knows."""
    entry = entries.get("language")
    if entry is None:
        return "en"
    written = _text(_spot(entry), ctx, _Scope())
    if written is None or written in ctx.known_languages:
        return written or "en"
    known = ", ".join(sorted(ctx.known_languages))
    message = f"unknown language '{_cut(written)}' (known: {known})"
    # `EN`, `en-US`, `de_AT`: the language is known, written as a locale or in capitals
    if (base := re.split(r"[-_]", written, maxsplit=1)[0].lower()) in ctx.known_languages:
        message += f"; did you mean '{base}'?"
    ctx.add(entry.mark, entry.key, message)
    return written


def _steps(entries: dict[str, _Entry], ctx: _Context) -> tuple[Step, ...]:
    """The routine's steps: a non-empty list."""
    entry = entries.get("steps")
    if entry is None:
        return ()
    spot = _spot(entry)
    if not isinstance(spot.value, SequenceNode):
        _expected(spot, "a list of steps", ctx)
        return ()
    if not spot.value.value:
        ctx.add(spot.mark, spot.key, "the list is empty: a routine needs at least one step")
        return ()
    steps = [_step(item, ctx) for item in _items(spot)]
    return tuple(step for step in steps if step is not None)


def _step(spot: _Spot, ctx: _Context) -> Step | None:
    """One step: a title, optional sides, and its actions."""
    if not isinstance(spot.value, MappingNode):
        _expected(spot, "a step (a mapping with title and do)", ctx)
        return None
    entries = _mapping(spot, STEP_KEYS, ctx, required=("title", "do"))
    sides = _sides(entries.get("sides"), ctx)
    scope = _Scope(in_step=True, has_sides="sides" in entries, spoken=True)
    title = None if "title" not in entries else _text(_spot(entries["title"]), ctx, scope)
    actions = None if "do" not in entries else _actions(_spot(entries["do"]), ctx, scope, 0)
    if title is None or actions is None or sides is None:
        return None
    return Step(title=title, actions=actions, sides=sides, where=ctx.where(spot.value.start_mark))


def _sides(entry: _Entry | None, ctx: _Context) -> tuple[str, ...] | None:
    """A step's sides: a non-empty list of distinct texts; () when absent."""
    if entry is None:
        return ()
    spot = _spot(entry)
    if not isinstance(spot.value, SequenceNode):
        _expected(spot, "a list of sides such as [right, left]", ctx)
        return None
    sides = _text_list(spot, ctx, _Scope(in_step=True, spoken=True, side_name=True))
    if sides is None:
        return None
    # Told apart as they are said: [Left, left] was two sides, both spoken "left".
    said = [" ".join(side.casefold().split()) for side in sides]
    for index, side in enumerate(sides):
        if said[index] in said[:index]:
            first = sides[said.index(said[index])]
            also = "" if first == side else f" (as '{_cut(first)}')"
            ctx.add(
                _items(spot)[index].mark,
                f"{spot.key}[{index}]",
                f"'{_cut(side)}' is listed twice{also}",
            )
            return None
    return sides


def _actions(spot: _Spot, ctx: _Context, scope: _Scope, nesting: int) -> tuple[Action, ...] | None:
    """A non-empty list of actions."""
    if not isinstance(spot.value, SequenceNode):
        _expected(spot, "a list of actions", ctx)
        return None
    if not spot.value.value:
        ctx.add(spot.mark, spot.key, "the list is empty: give at least one action")
        return None
    actions = [_action(item, ctx, scope, nesting) for item in _items(spot)]
    if any(action is None for action in actions):
        return None
    return tuple(action for action in actions if action is not None)


def _action(spot: _Spot, ctx: _Context, scope: _Scope, nesting: int) -> Action | None:
    """One action: exactly one of say, hold, pause, repeat, with the keys that go with it."""
    if not isinstance(spot.value, MappingNode):
        _expected(spot, "an action such as {say: ...}, {hold: 30s} or {pause: 5s}", ctx)
        return None
    known = ACTION_KINDS + tuple(ACTION_EXTRAS)
    problems_before = len(ctx.problems)
    entries = _mapping(spot, known, ctx)
    kinds = [kind for kind in ACTION_KINDS if kind in entries]
    if len(kinds) != 1:
        if kinds or len(ctx.problems) == problems_before:
            ctx.add(spot.mark, spot.key, _kinds_message(kinds))
        return None
    kind = kinds[0]
    misplaced = [
        name for name, goes_with in ACTION_EXTRAS.items() if name in entries and goes_with != kind
    ]
    for name in misplaced:
        entry = entries[name]
        ctx.add(entry.mark, entry.key, f"'{name}' goes only with '{ACTION_EXTRAS[name]}'")
    action = _build_action(kind, entries, ctx, scope, nesting)
    return None if misplaced else action


def _kinds_message(kinds: list[str]) -> str:
    """The problem with an action that is not exactly one kind."""
    if not kinds:
        return "an action needs one of say, hold, pause or repeat"
    return f"an action is exactly one of say, hold, pause or repeat, not {' and '.join(kinds)}"


def _build_action(
    kind: str, entries: dict[str, _Entry], ctx: _Context, scope: _Scope, nesting: int
) -> Action | None:
    """The action of the given kind from its entries."""
    entry = entries[kind]
    where = ctx.where(entry.mark)
    if kind == "say":
        lines = _texts(_spot(entry), ctx, scope)
        return None if lines is None else Say(lines=lines, where=where)
    if kind == "pause":
        length = _length(_spot(entry), "pause", ctx)
        return None if length is None else Pause(length=length, where=where)
    if kind == "hold":
        return _hold(entries, ctx, scope, where)
    return _repeat(entries, ctx, scope, nesting, where)


def _hold(entries: dict[str, _Entry], ctx: _Context, scope: _Scope, where: Where) -> Hold | None:
    """A hold with its optional breathing cues, reminders and countdown."""
    length = _length(_spot(entries["hold"]), "hold", ctx)
    breathe = remind = countdown = None
    if "breathe" in entries:
        breathe = _breathe(_spot(entries["breathe"]), ctx)
    if "remind" in entries:
        remind = _texts(_spot(entries["remind"]), ctx, scope)
    if "countdown" in entries:
        countdown = _flag(_spot(entries["countdown"]), ctx)
    failed = [
        name
        for name, value in (("breathe", breathe), ("remind", remind), ("countdown", countdown))
        if name in entries and value is None
    ]
    if length is None or failed:
        return None
    return Hold(
        length=length, breathe=breathe, remind=remind or (), countdown=countdown, where=where
    )


def _repeat(
    entries: dict[str, _Entry], ctx: _Context, scope: _Scope, nesting: int, where: Where
) -> Repeat | None:
    """A repeat: a whole number of times and the actions to repeat."""
    entry = entries["repeat"]
    times = _whole_number(_spot(entry), ctx)
    if "do" not in entries:
        ctx.add(entry.mark, entry.key, "'repeat' needs a 'do' list of the actions to repeat")
        return None
    do = entries["do"]
    if nesting >= MAX_REPEAT_NESTING:
        ctx.add(do.mark, do.key, f"repeats are nested more than {MAX_REPEAT_NESTING} deep")
        return None
    actions = _actions(_spot(do), ctx, scope, nesting + 1)
    if times is None or actions is None:
        return None
    return Repeat(times=times, actions=actions, where=where)


# --- Length estimate --------------------------------------------------------------------


def longest_track_ms(routine: Routine) -> int:
    """An upper bound for the planned track in any profile, speaking at SPOKEN_MS_PER_WORD.

    Beside the routine's own content it counts what the planner adds: the
    announcements and the counting of repetitions aloud, the silences between
    lines, around chimes and between steps.
    """
    total = _TRACK_EXTRA_MS + _line_ms(_phrase_words("welcome") - 1 + _words(routine.title))
    total += sum(_line_ms(_words(text)) for text in (*routine.intro, *routine.outro))
    if routine.equipment:
        items = sum(_words(item) for item in routine.equipment) + (len(routine.equipment) > 1)
        total += _line_ms(_phrase_words("equipment") - 1 + items)
    if routine.safety:  # bedside wraps it in a phrase of its own
        total += _line_ms(_phrase_words("safety_note") - 1 + _words(routine.safety))
    total += _line_ms(max(_phrase_words("finish"), _phrase_words("finish_rest")))
    for index, step in enumerate(routine.steps):
        for side_index, side in enumerate(step.sides or (None,)):
            if index or side_index:
                total += _STEP_GAP_MS
            title = max(_phrase_words("step"), _phrase_words("step_unnumbered"))
            total += _line_ms(title - 1 + _words(step.title)) if side_index == 0 else 0
            if side is not None:
                phrase = "first_side" if side_index == 0 else "next_side"
                words = max(_phrase_words(phrase), _phrase_words(f"{phrase}_named"))
                total += _line_ms(words - 1 + _words(side))
            total += sum(_action_bound_ms(action, side) for action in step.actions)
    return total


def _check_length(routine: Routine, steps: _Entry | None, ctx: _Context) -> None:
    """A problem at `steps` when the routine would run over the track limit."""
    if steps is None:
        return
    if (content_ms := rough_length_ms(routine)) > MAX_TRACK_MS:
        message = f"the routine would last about {hours_text(content_ms)}, over the 4 hour limit"
    elif (track_ms := longest_track_ms(routine)) > MAX_TRACK_MS:
        message = (
            "with the counting aloud, the announcements and the pauses between lines, "
            f"the track could last {hours_text(track_ms)}, over the 4 hour limit"
        )
    else:
        return
    ctx.add(steps.mark, steps.key, message)


def hours_text(length_ms: int) -> str:
    """A length over the limit as `4h 12m`; as `4h 0m 12s` where minutes would hide that."""
    minutes = (length_ms + 30_000) // 60_000  # in whole numbers: a huge repeat stays exact
    if minutes * 60_000 <= MAX_TRACK_MS:
        hours, seconds = divmod(-(-length_ms // 1000), 3600)
        return f"{hours}h {seconds // 60}m {seconds % 60}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m"


# What the planner adds around the routine's content, at most, over every built-in
# profile and phrasebook (checked against the planner by tests/test_reliability.py).
SPOKEN_MS_PER_WORD = math.ceil(60_000 / min(p.rate_wpm for p in PROFILES.values()))
_LINE_GAP_MS = max(p.gap_ms for p in PROFILES.values()) + 1  # +1: rounding to samples
_HOLD_EXTRA_MS = max(p.chime_lead_ms + p.after_chime_ms for p in PROFILES.values()) + 1
_STEP_GAP_MS = max(p.step_gap_ms for p in PROFILES.values()) + 1
_LONGEST_SOUND_MS = 3_000  # the longest chime (bedside's end bell) rings on past the end
_TRACK_EXTRA_MS = (
    max(p.first_speech_ms for p in PROFILES.values())
    + max(p.chime_lead_ms + p.tail_ms for p in PROFILES.values())
    + _LONGEST_SOUND_MS
)


def _words(text: str) -> int:
    """Words as the bound counts them: runs of characters between spaces."""
    return len(text.split())


def _line_ms(words: int) -> int:
    """A spoken line and the silence after it."""
    return words * SPOKEN_MS_PER_WORD + _LINE_GAP_MS


def _phrase_words(name: str) -> int:
    """Words in a built-in phrase, each placeholder counted as one, in its wordiest language."""
    return max(_words(_PLACEHOLDER.sub("x", getattr(book, name))) for book in PHRASEBOOKS.values())


def _count_words(times: int) -> int:
    """Words said, at most, to count one repetition aloud ("Seven", or "4321")."""
    named = max(len(book.numbers) for book in PHRASEBOOKS.values())
    longest_name = max(_words(n) for book in PHRASEBOOKS.values() for n in book.numbers)
    return longest_name if times <= named else max(longest_name, len(str(times)))


def _action_bound_ms(action: Action, side: str | None) -> int:
    """An action's share of longest_track_ms, for one side."""
    if isinstance(action, Say):
        return sum(_line_ms(_words(_with_side(line, side))) for line in action.lines)
    if isinstance(action, Hold):  # its cues are said inside it
        return _played_ms(action.length) + _HOLD_EXTRA_MS
    if isinstance(action, Pause):
        return _played_ms(action.length)
    # Counted as repetitions ("Seven") or, holding a repeat, as rounds ("Round 7."); a
    # repeat of 1 is neither announced nor counted.
    count = max(_count_words(action.times), _phrase_words("round"))
    once = _line_ms(count) + sum(_action_bound_ms(inner, side) for inner in action.actions)
    return (
        _line_ms(max(_phrase_words("repetitions"), _phrase_words("rounds"))) + action.times * once
    )


def _played_ms(length: DurationRange) -> int:
    """The longest a hold or pause plays in any built-in profile: a range's middle, as
    phone and bedside take it (gym takes its shortest); no profile plays its longest."""
    return max(length.pick_ms(profile.range_pick) for profile in PROFILES.values())


def _with_side(text: str, side: str | None) -> str:
    """The text as said for one side."""
    return text.replace("{side}", side) if side else text


def _words_ms(texts: Iterable[str]) -> int:
    """A rough upper bound for speaking `texts`."""
    return MS_PER_WORD * sum(len(text.split()) for text in texts)


def _step_ms(step: Step) -> int:
    """A step's rough upper bound, once per side."""
    once = _words_ms([step.title]) + sum(_action_ms(action) for action in step.actions)
    return max(1, len(step.sides)) * once


def _action_ms(action: Action) -> int:
    """An action's rough upper bound."""
    if isinstance(action, Say):
        return _words_ms(action.lines)
    if isinstance(action, Hold):
        return _played_ms(action.length) + _words_ms(action.remind)
    if isinstance(action, Pause):
        return _played_ms(action.length)
    return action.times * sum(_action_ms(inner) for inner in action.actions)
