"""What the tool itself says, per language: step announcements, cues, counting."""

from __future__ import annotations

from dataclasses import dataclass

from coachtrack.errors import UserError


@dataclass(frozen=True, slots=True)
class Phrasebook:
    """Every phrase coachtrack speaks on its own, in one language."""

    language: str
    welcome: str  # "{title}."
    equipment: str  # "{items}" joined with `and_word`
    and_word: str
    step: str  # "{n}", "{title}"
    step_unnumbered: str  # "{title}" (bedside: straight to the point)
    first_side: str  # "{side}": a side named by one word in lower case, such as "right"
    next_side: str  # "{side}"
    first_side_named: str  # "{side}": a side of several words ("left leg"), or a noun
    next_side_named: str  # "{side}"
    capital_nouns: bool  # a capitalised side is a noun ("Oberkörper"), not a direction
    repetitions: str  # "{n}"
    rounds: str  # "{n}": before a repeat that holds another repeat
    round: str  # "{n}": counts its rounds (a bare number would pass for the inner count)
    numbers: tuple[str, ...]  # spoken counting words, one, two, ... twenty
    breathe_intensify: tuple[str, ...]  # rotated so they do not drone
    breathe_calm: tuple[str, ...]
    halfway: str
    seconds_left: str  # "{n}"
    one_minute_left: str
    safety_note: str  # "{safety}", said at the end by bedside
    finish: str
    finish_rest: str  # bedside's: the last words before sleep, not praise
    session: str  # "{n}", "{title}": announces a routine inside a session
    session_finish: str  # the end of a session of several routines
    session_finish_rest: str
    source_tag: str  # "{source}": the tags' comment
    safety_tag: str  # "{safety}": the tags' comment

    def count(self, n: int) -> str:
        """The word for `n` when counting repetitions aloud."""
        return self.numbers[n - 1] if 1 <= n <= len(self.numbers) else str(n)

    def side(self, side: str, *, first: bool) -> str:
        """The line that starts a side: "Start with the right side.", "Now the left leg."

        A side named by one word is a direction ("right", "links"), said with the side
        word around it; any other is said as it is written.
        """
        word = " " not in side.strip() and (side == side.lower() or not self.capital_nouns)
        if first:
            return sentence(self.first_side if word else self.first_side_named, side=side)
        return sentence(self.next_side if word else self.next_side_named, side=side)

    def join(self, items: tuple[str, ...]) -> str:
        """`a, b and c` in this language."""
        if len(items) <= 1:
            return "".join(items)
        return f"{', '.join(items[:-1])} {self.and_word} {items[-1]}"


ENGLISH = Phrasebook(
    language="en",
    welcome="{title}.",
    equipment="You will need: {items}.",
    and_word="and",
    step="Step {n}: {title}.",
    step_unnumbered="{title}.",
    first_side="Start with the {side} side.",
    next_side="Now the {side} side.",
    first_side_named="Start with the {side}.",
    next_side_named="Now the {side}.",
    capital_nouns=False,
    repetitions="{n} repetitions.",
    rounds="{n} rounds.",
    round="Round {n}.",
    numbers=(
        "One",
        "Two",
        "Three",
        "Four",
        "Five",
        "Six",
        "Seven",
        "Eight",
        "Nine",
        "Ten",
        "Eleven",
        "Twelve",
        "Thirteen",
        "Fourteen",
        "Fifteen",
        "Sixteen",
        "Seventeen",
        "Eighteen",
        "Nineteen",
        "Twenty",
    ),
    breathe_intensify=(
        "Breathe out, and go a little deeper.",
        "As you exhale, ease further into the stretch.",
        "Let the breath go, and sink in a bit more.",
        "Breathe in. And out, a little further.",
        "With the next breath out, deepen the stretch.",
    ),
    breathe_calm=(
        "Breathe in slowly, and let it go.",
        "Slow breath in. Long breath out.",
        "Let your breathing settle.",
        "Breathe gently, and let the muscle soften.",
        "In through the nose, out through the mouth.",
    ),
    halfway="Halfway.",
    seconds_left="{n} seconds left.",
    one_minute_left="One minute left.",
    safety_note="A word of care. {safety}",
    finish="That is the end of the routine. Well done.",
    finish_rest="That is the end of the routine. Rest well.",
    session="Routine {n}: {title}.",
    session_finish="That is the end of the session. Well done.",
    session_finish_rest="That is the end of the session. Rest well.",
    source_tag="Source: {source}.",
    safety_tag="Safety: {safety}",
)

GERMAN = Phrasebook(
    language="de",
    welcome="{title}.",
    equipment="Du brauchst: {items}.",
    and_word="und",
    step="Schritt {n}: {title}.",
    step_unnumbered="{title}.",
    first_side="Wir beginnen {side}.",
    next_side="Jetzt {side}.",
    first_side_named="Zuerst: {side}.",
    next_side_named="Jetzt: {side}.",
    capital_nouns=True,
    repetitions="{n} Wiederholungen.",
    rounds="{n} Durchgänge.",
    round="Durchgang {n}.",
    numbers=(
        "Eins",
        "Zwei",
        "Drei",
        "Vier",
        "Fünf",
        "Sechs",
        "Sieben",
        "Acht",
        "Neun",
        "Zehn",
        "Elf",
        "Zwölf",
        "Dreizehn",
        "Vierzehn",
        "Fünfzehn",
        "Sechzehn",
        "Siebzehn",
        "Achtzehn",
        "Neunzehn",
        "Zwanzig",
    ),
    breathe_intensify=(
        "Ausatmen, und etwas tiefer in die Dehnung.",
        "Mit dem Ausatmen ein Stück weiter.",
        "Lass die Luft raus und geh noch etwas tiefer.",
        "Einatmen. Und beim Ausatmen ein wenig weiter.",
        "Nutze das nächste Ausatmen, um die Dehnung zu verstärken.",
    ),
    breathe_calm=(
        "Langsam einatmen, und wieder loslassen.",
        "Ruhig ein. Lang aus.",
        "Lass deinen Atem zur Ruhe kommen.",
        "Atme sanft, und lass den Muskel weich werden.",
        "Durch die Nase ein, durch den Mund aus.",
    ),
    halfway="Die Hälfte ist geschafft.",
    seconds_left="Noch {n} Sekunden.",
    one_minute_left="Noch eine Minute.",
    safety_note="Noch ein Hinweis. {safety}",
    finish="Das war die Routine. Gut gemacht.",
    finish_rest="Das war die Routine. Ruh dich gut aus.",
    session="Routine {n}: {title}.",
    session_finish="Das waren alle Routinen. Gut gemacht.",
    session_finish_rest="Das waren alle Routinen. Ruh dich gut aus.",
    source_tag="Quelle: {source}.",
    safety_tag="Sicherheit: {safety}",
)

PHRASEBOOKS: dict[str, Phrasebook] = {p.language: p for p in (ENGLISH, GERMAN)}


def sentence(template: str, **values: str | int) -> str:
    """`template` filled in, without doubling the stop a text at its end brings along.

    "Step {n}: {title}." with the title "Reach up!" gives "Step 1: Reach up!", not
    "Reach up!."; with "Lunge:" it gives "Step 1: Lunge.".
    """
    for name, value in values.items():
        if isinstance(value, str) and template.endswith(f"{{{name}}}."):
            value = value.rstrip().rstrip(",:;").rstrip()
            if value.endswith((".", "!", "?", "…")):
                template = template[:-1]
            values[name] = value
    return template.format(**values)


def phrasebook(language: str) -> Phrasebook:
    """The phrasebook for `language`, or a usage error naming the known ones."""
    try:
        return PHRASEBOOKS[language]
    except KeyError:
        known = ", ".join(sorted(PHRASEBOOKS))
        raise UserError(f"no phrasebook for language {language!r}; known: {known}") from None
