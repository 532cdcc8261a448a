"""Routine + profile -> what is said and done, in order. Pure: no audio, no I/O."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from coachtrack.model import Action, Breathe, Hold, Pause, Repeat, Routine, Say, Step
from coachtrack.phrases import Phrasebook, sentence
from coachtrack.profiles import Profile

COUNTDOWN_MIN_HOLD_MS = 10_000  # shorter holds get no countdown
HALFWAY_MIN_HOLD_MS = 60_000
SECONDS_LEFT_MIN_HOLD_MS = 90_000
SECONDS_LEFT = 30
MINUTE_LEFT_MIN_HOLD_MS = 150_000


@dataclass(frozen=True, slots=True)
class Line:
    """A spoken line outside any hold."""

    text: str
    step: int | None = None
    side: str | None = None
    # The routine's text this line says, as written ({side} and all): where to point
    # should the engine say nothing for it.
    written: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class TimedCue:
    """A cue said at a fixed time before the end of a hold (e.g. "30 seconds left")."""

    before_end_ms: int
    text: str


@dataclass(frozen=True, slots=True)
class HoldItem:
    """A hold with everything that may be said inside it."""

    length_ms: int
    step: int | None
    side: str | None
    breathe: Breathe | None
    reminders: tuple[str, ...]
    countdown: bool
    halfway: str | None
    timed: tuple[TimedCue, ...]
    written: tuple[str, ...] = field(default=(), compare=False)  # the reminders, as written


@dataclass(frozen=True, slots=True)
class PauseItem:
    """Quiet time between two actions."""

    length_ms: int
    step: int | None
    side: str | None


@dataclass(frozen=True, slots=True)
class ChapterMark:
    """A chapter starts with the next item."""

    title: str


@dataclass(frozen=True, slots=True)
class ChimeItem:
    """The track's own start or end chime."""

    sound: str  # "start" or "end"


@dataclass(frozen=True, slots=True)
class Gap:
    """Extra silence, e.g. before a new step."""

    ms: int


Item = Line | HoldItem | PauseItem | ChapterMark | ChimeItem | Gap


@dataclass(frozen=True, slots=True)
class Script:
    """Everything a track will say and do, before anything is timed."""

    routine_id: str
    title: str
    language: str
    profile: Profile
    book: Phrasebook
    items: tuple[Item, ...]

    def cues_for(self, breathe: Breathe) -> tuple[str, ...]:
        """The breathing-cue wordings a hold rotates through."""
        return self.book.breathe_intensify if breathe == "intensify" else self.book.breathe_calm

    def countdown_words(self) -> tuple[str, str, str]:
        """The words of a spoken countdown: three, two, one."""
        return (self.book.count(3), self.book.count(2), self.book.count(1))

    def texts(self) -> tuple[str, ...]:
        """Every text that may be spoken, each once, in order of first use."""
        seen: dict[str, None] = {}
        for item in self.items:
            if isinstance(item, Line):
                seen[item.text] = None
            elif isinstance(item, HoldItem):
                for text in self._hold_texts(item):
                    seen[text] = None
        return tuple(seen)

    def written_as(self, text: str) -> set[str]:
        """The routine texts, as written, that a spoken `text` says."""
        found: set[str] = set()
        for item in self.items:
            if isinstance(item, Line) and item.text == text and item.written is not None:
                found.add(item.written)
            elif isinstance(item, HoldItem):
                found.update(w for t, w in zip(item.reminders, item.written, strict=True)
                             if t == text)  # fmt: skip
        return found

    def _hold_texts(self, hold: HoldItem) -> Iterator[str]:
        yield from hold.reminders
        if hold.halfway:
            yield hold.halfway
        yield from (cue.text for cue in hold.timed)
        if hold.breathe:
            yield from self.cues_for(hold.breathe)
        if hold.countdown and self.profile.countdown == "spoken":
            yield from self.countdown_words()


def chapter_title(step: Step, side: str | None) -> str:
    """A step's chapter name: its title, and the side in brackets unless it names it."""
    if side and "{side}" in step.title:
        return _fill(step.title, side)
    return f"{step.title} ({side})" if side else step.title


def make_script(routine: Routine, profile: Profile, book: Phrasebook) -> Script:
    """Decide what the track says and does, for one routine in one profile."""
    items: list[Item] = [
        ChimeItem("start"),
        *_opening(routine, profile, book, safety=routine.safety),
    ]
    for n, step in enumerate(routine.steps, start=1):
        items.extend(_step_items(n, step, profile, book, first=n == 1))
    items.extend(_closing(routine, profile, book, safety=routine.safety))
    items.append(ChimeItem("end"))
    return Script(
        routine_id=routine.id,
        title=routine.title,
        language=routine.language,
        profile=profile,
        book=book,
        items=tuple(items),
    )


def short_title(title: str) -> str:
    """A routine's title before its subtitle: "Hamstring cramps" of "Hamstring cramps:
    pressure points and stretches", to name it in a session's chapters and title."""
    head, colon, _ = title.partition(": ")
    return head.strip() if colon and head.strip() else title


def make_session_script(
    session_id: str,
    title: str,
    routines: Sequence[Routine],
    profile: Profile,
    book: Phrasebook,
) -> Script:
    """Several routines as one continuous track, each announced, their closing words
    (outros, and bedside's safety notes) said together before the one finish."""
    items: list[Item] = [ChimeItem("start")]
    shared = {t for t, n in Counter(short_title(r.title) for r in routines).items() if n > 1}
    said: set[str] = set()  # safety notes said: one that routines share is said once
    # The routines' outros (and bedside's notes) close the session, not each routine: "A
    # few tips to finish." or "start again from the beginning" were said mid-session.
    closing: list[Item] = []
    for r, routine in enumerate(routines, start=1):
        if r > 1:
            items.append(Gap(profile.step_gap_ms * 2))
        # The announcement belongs to the routine's first chapter. Bedside goes straight
        # to the first instruction (within 2 s), so it announces only the routines after.
        first_at_once = r == 1 and profile.intro == "none"
        announce = [] if first_at_once else [Line(sentence(book.session, n=r, title=routine.title))]
        safety = routine.safety if routine.safety not in said else None
        if safety:
            said.add(safety)
        body = [*_opening(routine, profile, book, welcome=False, safety=safety)]
        for n, step in enumerate(routine.steps, start=1):
            body.extend(_step_items(n, step, profile, book, first=n == 1))
        ends = _closing(routine, profile, book, finish=False, safety=safety)
        closing.extend([item for item in ends if item not in closing])  # played twice: once
        if len(routines) > 1:  # a player's chapter list says which routine a step is of
            # Named by their title's head; a routine played twice, or two with one
            # such name, are told apart by their number in the session, as announced.
            name = short_title(routine.title)
            name = f"{name} ({r})" if name in shared else name
            body = [
                ChapterMark(f"{name} – {item.title}") if isinstance(item, ChapterMark) else item
                for item in body
            ]
        mark = next(i for i, item in enumerate(body) if isinstance(item, ChapterMark))
        # Each routine after the first starts with the start chime too: a boundary a room
        # hears (it was 1.3 s of silence in a gym session).
        chime = [ChimeItem("start")] if r > 1 else []
        items.extend([body[mark], *chime, *announce, *body[:mark], *body[mark + 1 :]])
    items.extend(closing)
    items.append(Line(_finish(book, profile, session=len(routines) > 1)))
    items.append(ChimeItem("end"))
    return Script(
        routine_id=session_id,
        title=title,
        language=book.language,
        profile=profile,
        book=book,
        items=tuple(items),
    )


def _opening(
    routine: Routine,
    profile: Profile,
    book: Phrasebook,
    *,
    safety: str | None,
    welcome: bool = True,
) -> Iterator[Item]:
    """The talk before the first step, with the safety note `safety` unless bedside's."""
    if profile.intro == "none":
        return
    if welcome:
        yield Line(sentence(book.welcome, title=routine.title), written=routine.title)
    if profile.intro == "full":
        yield from (Line(text, written=text) for text in routine.intro)
    if routine.equipment:
        yield Line(sentence(book.equipment, items=book.join(routine.equipment)))
    if safety and not profile.safety_at_end:
        yield Line(safety, written=safety)


def _closing(
    routine: Routine,
    profile: Profile,
    book: Phrasebook,
    *,
    safety: str | None,
    finish: bool = True,
) -> Iterator[Item]:
    """The talk after the last step, with the safety note `safety` if bedside's."""
    yield from (Line(text, written=text) for text in routine.outro)
    if safety and profile.safety_at_end:
        yield Line(book.safety_note.format(safety=safety), written=safety)
    if finish:
        yield Line(_finish(book, profile))


def _finish(book: Phrasebook, profile: Profile, *, session: bool = False) -> str:
    """The track's last line: the end of the routine (or session), and a farewell."""
    if profile.farewell == "rest-well":
        return book.session_finish_rest if session else book.finish_rest
    return book.session_finish if session else book.finish


def _step_items(
    n: int, step: Step, profile: Profile, book: Phrasebook, *, first: bool
) -> Iterator[Item]:
    sides: Sequence[str | None] = step.sides or (None,)
    for i, side in enumerate(sides):
        if not (first and i == 0):
            yield Gap(profile.step_gap_ms)
        yield ChapterMark(chapter_title(step, side))
        if i == 0 and first and profile.intro == "none":
            yield from _straight_in(step, n, side, profile, book)
            continue
        if i == 0:
            announce = book.step if profile.number_steps else book.step_unnumbered
            title = sentence(announce, n=n, title=_fill(step.title, side))
            yield Line(title, n, side, written=step.title)
            if side:
                yield Line(book.side(side, first=True), n, side)
        elif side:  # always, past the first side
            yield Line(book.side(side, first=False), n, side)
        yield from _actions(step.actions, n, side, profile, book)


def _straight_in(
    step: Step, n: int, side: str | None, profile: Profile, book: Phrasebook
) -> Iterator[Item]:
    """Bedside's first step: its first instruction at once (DESIGN: within 2 s).

    Someone woken by a cramp needs to be told what to do, not what the step is called:
    its title is left to the chapter (unless the step starts with a hold, where the title
    is all there is to say), and the side to start with comes after that first
    instruction, unless the instruction names it.
    """
    body = _actions(step.actions, n, side, profile, book)
    lead = next(body, None)
    if isinstance(lead, Line):
        yield lead
    else:  # a step that starts with a hold: its title is the only instruction there is
        title = sentence(book.step_unnumbered, title=_fill(step.title, side))
        yield Line(title, n, side, written=step.title)
    if side and not (isinstance(lead, Line) and "{side}" in (lead.written or "")):
        yield Line(book.side(side, first=True), n, side)
    if lead is not None and not isinstance(lead, Line):
        yield lead
    yield from body


def _actions(
    actions: Sequence[Action], n: int, side: str | None, profile: Profile, book: Phrasebook
) -> Iterator[Item]:
    for action in actions:
        if isinstance(action, Say):
            yield from (Line(_fill(text, side), n, side, written=text) for text in action.lines)
        elif isinstance(action, Hold):
            yield _hold(action, n, side, profile, book)
        elif isinstance(action, Pause):
            yield PauseItem(action.length.pick_ms(profile.range_pick), n, side)
        elif isinstance(action, Repeat) and action.times == 1:  # nothing to count
            yield from _actions(action.actions, n, side, profile, book)
        elif isinstance(action, Repeat):
            # Rounds of repeats are counted as rounds: "Two" after an inner "Three" would
            # be heard as the inner repeat's count.
            rounds = any(isinstance(inner, Repeat) for inner in action.actions)
            yield Line(
                (book.rounds if rounds else book.repetitions).format(n=action.times), n, side
            )
            for r in range(1, action.times + 1):
                yield Line(book.round.format(n=r) if rounds else book.count(r), n, side)
                yield from _actions(action.actions, n, side, profile, book)


def _hold(hold: Hold, n: int, side: str | None, profile: Profile, book: Phrasebook) -> HoldItem:
    length_ms = hold.length.pick_ms(profile.range_pick)
    # `countdown: false` turns it off; no hold under 10 s counts down, even when asked to.
    wants_countdown = length_ms >= COUNTDOWN_MIN_HOLD_MS and hold.countdown is not False
    timed: list[TimedCue] = []
    # Bedside keeps a breathing hold to its breathing and the routine's reminders: a cramp
    # at night needs no clock (a minute's hold there had six lines in it). A hold without
    # breathing cues keeps them, or it would be silent for a minute and more.
    time_cues = profile.time_cues or hold.breathe is None
    if time_cues and length_ms >= MINUTE_LEFT_MIN_HOLD_MS:
        timed.append(TimedCue(60_000, book.one_minute_left))
    if time_cues and length_ms >= SECONDS_LEFT_MIN_HOLD_MS:
        timed.append(TimedCue(SECONDS_LEFT * 1000, book.seconds_left.format(n=SECONDS_LEFT)))
    return HoldItem(
        length_ms=length_ms,
        step=n,
        side=side,
        breathe=hold.breathe,
        reminders=tuple(_fill(text, side) for text in hold.remind),
        written=hold.remind,
        countdown=wants_countdown and profile.countdown != "none",
        halfway=book.halfway if time_cues and length_ms >= HALFWAY_MIN_HOLD_MS else None,
        timed=tuple(timed),
    )


def _fill(text: str, side: str | None) -> str:
    return text.replace("{side}", side) if side else text
