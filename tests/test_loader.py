"""The loader: YAML routine files to Routine values, and every problem at once, located."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coachtrack.durations import parse_duration_ms, parse_range
from coachtrack.errors import Problem, UserError
from coachtrack.loader import discover, load_routine, load_routines, rough_length_ms
from coachtrack.model import DurationRange, Hold, Pause, Repeat, Routine, Say, Step, Where

# A valid routine up to the first action: actions go on line 5, their keys at column 9.
HEAD = "title: T\nsteps:\n  - title: S\n    do:\n"
ONE_STEP = "steps:\n  - title: S\n    do: [{say: hi}]\n"


def actions(text: str) -> str:
    """A routine whose only step's `do` list is `text` (written at column 7)."""
    return HEAD + "".join(f"      {line}\n" for line in text.splitlines())


def step(extra: str) -> str:
    """A routine whose only step has the line `extra` (at column 5) before its `do`."""
    return HEAD.replace("    do:\n", f"    {extra}\n    do:\n") + "      - say: hi\n"


def top(extra: str) -> str:
    """A routine with the line `extra` after its title."""
    return f"title: T\n{extra}\n{ONE_STEP}"


def problems_of(path: Path) -> list[str]:
    """The problems loading `path` reports, with the path shortened to its name."""
    with pytest.raises(UserError) as caught:
        load_routine(path)
    lines = [str(problem) for problem in caught.value.problems]
    assert all(line.startswith(str(path)) for line in lines)
    return [line.replace(str(path), path.name, 1) for line in lines]


def write(tmp_path: Path, text: str | bytes, name: str = "r.yaml") -> Path:
    """Write a routine file (text as UTF-8, or raw bytes)."""
    path = tmp_path / name
    data = text.encode("utf-8") if isinstance(text, str) else text
    path.write_bytes(data)
    return path


NEXT_LINE = "the character U+0085 (next line) is not allowed; use a space or a new line"
SILENT = "nothing to speak: the text has no letters, digits or symbols"

# Each case: the file, and its problems exactly, or by prefix where an entry ends with "*"
# (PyYAML words its own syntax errors).
BAD = {
    # YAML itself
    "syntax-unclosed": ("title: x\nsteps: [\n", ["r.yaml:3:1: YAML syntax error: expected*"]),
    "syntax-indent": (
        "title: x\n  steps: y\n",
        [
            "r.yaml:2:8: YAML syntax error: mapping values are not allowed here; a text that "
            'contains ": " goes in quotes ("..."); if this line is a key, check its indentation'
        ],
    ),
    "syntax-side-in-a-list": (
        "title: x\nsteps:\n  - title: S\n    sides: [right]\n    do:\n"
        "      - say: [Release., Hold your {side} foot.]\n",
        [
            "r.yaml:6:35: YAML syntax error: expected ',' or ']', but got '{' (while parsing a "
            "flow sequence at line 6); put a text that uses {side} inside [...] in quotes"
        ],
    ),
    "syntax-text-starts-with-a-brace": (
        "title: x\nsteps:\n  - title: S\n    sides: [right]\n    do:\n"
        "      - say: {side} foot forward.\n",
        [
            "r.yaml:6:21: YAML syntax error: expected <block end>, but found '<scalar>' (while "
            "parsing a block mapping at line 6); put a text that starts with { or [ in quotes"
        ],
    ),
    # In a block list too: it was told to check its indentation.
    "syntax-block-list-item-starts-with-a-brace": (
        "title: x\nsteps:\n  - title: S\n    sides: [right]\n    do:\n      - say:\n"
        "          - Lie down.\n          - {side} foot up.\n",
        [
            "r.yaml:8:20: YAML syntax error: expected <block end>, but found '<scalar>' (while "
            "parsing a block collection at line 7); put a text that starts with { or [ in quotes"
        ],
    ),
    # It was told to quote a text that starts with { or [.
    "syntax-apostrophe-in-single-quotes": (
        "title: x\nsteps:\n  - title: S\n    do:\n      - say: 'It's fine.'\n",
        [
            "r.yaml:5:18: YAML syntax error: expected <block end>, but found '<scalar>' (while "
            "parsing a block mapping at line 5); a text that starts with ' ends at the next ': "
            'put it in "..." instead'
        ],
    ),
    "syntax-indent-of-an-action": (
        "title: x\nsteps:\n  - title: S\n    do:\n      - say: x\n     hold: 3s\n",
        [
            "r.yaml:6:6: YAML syntax error: expected <block end>, but found '<block mapping "
            "start>' (while parsing a block mapping at line 3); check the indentation: a list's "
            "items, and an action's keys, line up"
        ],
    ),
    "tabs": (
        "title: x\nsteps:\n\t- title: y\n",
        [
            "r.yaml:3:1: YAML syntax error: found character '\\t' that cannot start any token"
            " (while scanning for the next token); indent with spaces, not tabs"
        ],
    ),
    "tab-after-a-key": (  # not indentation: the hint said to indent with spaces
        actions("- hold:\t12s"),
        [
            "r.yaml:5:14: YAML syntax error: found character '\\t' that cannot start any token"
            " (while scanning for the next token); a tab in a text or after a key: use a "
            "space, or put the text in quotes"
        ],
    ),
    "multi-document": (
        "title: a\n---\ntitle: b\n",
        ["r.yaml:2:1: YAML syntax error: found another document*"],
    ),
    "undefined-alias": (
        "title: *nope\nsteps: []\n",
        ["r.yaml:1:8: YAML syntax error: found undefined alias 'nope'"],
    ),
    "nul-character": (
        "title: a\x00b\nsteps: []\n",
        [
            "r.yaml:1:9: title: the character U+0000 is not allowed in a YAML file",
            "r.yaml:2:1: steps: the list is empty: a routine needs at least one step",
        ],
    ),
    "empty": ("", ["r.yaml: the file is empty"]),
    "blank": ("  \n\n", ["r.yaml: the file is empty"]),
    "only-comments": ("# a\n# b\n", ["r.yaml: the file is empty"]),
    "top-list": (
        "- a\n- b\n",
        ["r.yaml:1:1: expected a routine (a mapping with title and steps), got a list"],
    ),
    "top-text": (
        "hello\n",
        ["r.yaml:1:1: expected a routine (a mapping with title and steps), got text"],
    ),
    # Tags: refused, never constructed
    "tag-python-top": (
        '!!python/object/apply:os.system ["echo hi"]\n',
        ["r.yaml:1:1: the YAML tag '!!python/object/apply:os.system' is not allowed"],
    ),
    "tag-python-value": (
        'title: !!python/object/apply:os.system ["echo hi"]\n' + ONE_STEP,
        ["r.yaml:1:8: title: the YAML tag '!!python/object/apply:os.system' is not allowed"],
    ),
    "tag-python-name": (
        "title: !!python/name:os.system\n" + ONE_STEP,
        ["r.yaml:1:8: title: the YAML tag '!!python/name:os.system' is not allowed"],
    ),
    "tag-local": (
        "title: !foo x\n" + ONE_STEP,
        ["r.yaml:1:8: title: the YAML tag '!foo' is not allowed"],
    ),
    "tag-binary": (
        "title: !!binary aGk=\n" + ONE_STEP,
        ["r.yaml:1:8: title: the YAML tag '!!binary' is not allowed"],
    ),
    "tag-set": (
        "title: T\nsteps: !!set {a: null}\n",
        ["r.yaml:2:8: steps: the YAML tag '!!set' is not allowed"],
    ),
    "tag-with-other-problems": (
        "title: !local A\nid: Foo\nsteps: []\n",
        [
            "r.yaml:1:8: title: the YAML tag '!local' is not allowed",
            "r.yaml:2:1: id: 'Foo' is not a valid id: use only a-z, 0-9 and '-'",
            "r.yaml:3:1: steps: the list is empty: a routine needs at least one step",
        ],
    ),
    "tag-on-an-action": (
        actions("- !foo {hold: 2m..1m}\n- say: !!str 5"),
        [
            "r.yaml:5:9: steps[0].do[0]: the YAML tag '!foo' is not allowed",
            'r.yaml:5:15: steps[0].do[0].hold: "2m..1m" must go from shorter to longer',
        ],
    ),
    # YAML takes a plain text's leading `! ` or `&name` for its own and drops it
    "text-with-a-lone-anchor": (
        actions("- say: &a hello there."),
        [
            "r.yaml:5:14: steps[0].do[0].say: YAML reads '&a' as an anchor that nothing "
            "reuses, so the text is only 'hello there.': put the whole text in quotes"
        ],
    ),
    "text-with-a-bare-tag": (
        actions("- say: ! Careful now."),
        [
            "r.yaml:5:14: steps[0].do[0].say: YAML reads '!' as a tag, so the text is only "
            "'Careful now.': put the whole text in quotes"
        ],
    ),
    "text-with-a-word-comment": (
        actions("- say: Press point #3.\n- hold: 10s #long\n- say: Press it # a note"),
        [
            "r.yaml:5:26: steps[0].do[0].say: YAML reads '#3.' as a comment, so the text is "
            "only 'Press point': put the whole text in quotes"
        ],
    ),
    "keys-at-the-wrong-level": (
        "title: T\nsay: hi\nsteps:\n  - title: S\n    hold: 30s\n    do:\n"
        "      - say: hi\n        sides: [a]\n",
        [
            "r.yaml:2:1: say: unknown key 'say' here: it belongs to an action, in a step's do list",
            "r.yaml:5:5: steps[0].hold: unknown key 'hold' here: it belongs to an action, in the "
            "step's do list",
            "r.yaml:8:9: steps[0].do[0].sides: unknown key 'sides' here: it belongs to the step, "
            "beside its do list",
        ],
    ),
    "recursive-alias": (
        "title: T\nsteps: &s [*s]\n",
        ["r.yaml:2:12: an alias refers to the node that contains it"],
    ),
    # Required keys and the steps list
    "no-title": (ONE_STEP, ["r.yaml:1:1: title: missing required key 'title'"]),
    "no-steps": ("title: T\n", ["r.yaml:1:1: steps: missing required key 'steps'"]),
    "steps-empty": (
        "title: T\nsteps: []\n",
        ["r.yaml:2:1: steps: the list is empty: a routine needs at least one step"],
    ),
    "steps-null": (
        "title: T\nsteps:\n",
        ["r.yaml:2:1: steps: expected a list of steps, got nothing"],
    ),
    "steps-text": (
        "title: T\nsteps: stretch\n",
        ["r.yaml:2:1: steps: expected a list of steps, got text"],
    ),
    "step-text": (
        "title: T\nsteps:\n  - Stretch\n",
        ["r.yaml:3:5: steps[0]: expected a step (a mapping with title and do), got text"],
    ),
    "do-missing": (
        "title: T\nsteps:\n  - title: S\n",
        ["r.yaml:3:5: steps[0]: missing required key 'do'"],
    ),
    "do-empty": (
        "title: T\nsteps:\n  - title: S\n    do: []\n",
        ["r.yaml:4:5: steps[0].do: the list is empty: give at least one action"],
    ),
    "do-text": (
        "title: T\nsteps:\n  - title: S\n    do: say hi\n",
        ["r.yaml:4:5: steps[0].do: expected a list of actions, got text"],
    ),
    # Unknown keys, with a suggestion where one is close
    "unknown-top": (
        top("titel: x\ncolour: red"),
        [
            "r.yaml:2:1: titel: unknown key 'titel'; did you mean 'title'?",
            "r.yaml:3:1: colour: unknown key 'colour'",
        ],
    ),
    "typo-instead-of-required": (
        "titel: T\n" + ONE_STEP,
        ["r.yaml:1:1: titel: unknown key 'titel'; did you mean 'title'?"],
    ),
    "unknown-step-key": (
        step("tilte: x"),
        ["r.yaml:4:5: steps[0].tilte: unknown key 'tilte'; did you mean 'title'?"],
    ),
    "unknown-action-key": (
        actions("- hodl: 3s"),
        ["r.yaml:5:9: steps[0].do[0].hodl: unknown key 'hodl'; did you mean 'hold'?"],
    ),
    "unknown-hold-key": (
        actions("- hold: 3s\n  breath: calm"),
        ["r.yaml:6:9: steps[0].do[0].breath: unknown key 'breath'; did you mean 'breathe'?"],
    ),
    "merge-key": (
        "base: &b {title: T}\n<<: *b\n" + ONE_STEP,
        [
            "r.yaml:1:1: base: unknown key 'base'",
            "r.yaml:1:1: title: missing required key 'title'",
            "r.yaml:2:1: <<: unknown key '<<' (YAML merge keys are not supported)",
        ],
    ),
    "complex-key": (
        "? [a]\n: b\n" + top("")[:-1],
        ["r.yaml:1:3: a key must be a word, not a list"],
    ),
    "null-key": ("~: x\n" + top("")[:-1], ["r.yaml:1:1: ~: unknown key '~'"]),
    # Duplicate keys, at the second one
    "duplicate-top": (
        "title: T\ntitle: U\n" + ONE_STEP,
        ["r.yaml:2:1: title: duplicate key 'title' (first at line 1)"],
    ),
    "duplicate-step": (
        step("title: X"),
        ["r.yaml:4:5: steps[0].title: duplicate key 'title' (first at line 3)"],
    ),
    "duplicate-action": (
        actions("- say: x\n  say: y"),
        ["r.yaml:6:9: steps[0].do[0].say: duplicate key 'say' (first at line 5)"],
    ),
    # Wrong types name what was expected
    "title-number": (
        "title: 2024\n" + ONE_STEP,
        ["r.yaml:1:1: title: expected text, got a number (put it in quotes to make it text)"],
    ),
    "title-bool": (
        "title: yes\n" + ONE_STEP,
        ["r.yaml:1:1: title: expected text, got a yes/no value (put it in quotes to make it text)"],
    ),
    "title-date": (
        "title: 2024-01-01\n" + ONE_STEP,
        ["r.yaml:1:1: title: expected text, got a date (put it in quotes to make it text)"],
    ),
    "title-list": ("title: [a]\n" + ONE_STEP, ["r.yaml:1:1: title: expected text, got a list"]),
    "title-null": ("title:\n" + ONE_STEP, ["r.yaml:1:1: title: expected text, got nothing"]),
    "intro-number": (
        top("intro: 5"),
        [
            "r.yaml:2:1: intro: expected text or a list of texts, got a number"
            " (put it in quotes to make it text)"
        ],
    ),
    "equipment-mapping": (
        top("equipment: {a: b}"),
        ["r.yaml:2:1: equipment: expected text or a list of texts, got a mapping"],
    ),
    "say-number": (
        actions("- say: 30"),
        [
            "r.yaml:5:9: steps[0].do[0].say: expected text or a list of texts, got a number"
            " (put it in quotes to make it text)"
        ],
    ),
    "say-list-with-number": (
        actions("- say: [a, 1.5]"),
        [
            "r.yaml:5:18: steps[0].do[0].say[1]: expected text, got a number"
            " (put it in quotes to make it text)"
        ],
    ),
    "action-text": (
        actions("- Sit down."),
        [
            "r.yaml:5:9: steps[0].do[0]: expected an action such as {say: ...}, {hold: 30s}"
            " or {pause: 5s}, got text"
        ],
    ),
    "hold-list": (
        actions("- hold: [30s]"),
        [
            "r.yaml:5:9: steps[0].do[0].hold: expected a duration such as 30s, 2m or 1:30,"
            " or a range such as 2m..2m30s, got a list"
        ],
    ),
    "hold-bool": (
        actions("- hold: yes"),
        ["r.yaml:5:9: steps[0].do[0].hold: expected a duration*"],
    ),
    "hold-null": (actions("- hold:"), ["r.yaml:5:9: steps[0].do[0].hold: expected a duration*"]),
    "countdown-quoted": (
        actions('- hold: 30s\n  countdown: "yes"'),
        ["r.yaml:6:9: steps[0].do[0].countdown: expected true or false, got text"],
    ),
    "countdown-number": (
        actions("- hold: 30s\n  countdown: 3"),
        ["r.yaml:6:9: steps[0].do[0].countdown: expected true or false, got a number"],
    ),
    "language-number": (
        top("language: 1"),
        ["r.yaml:2:1: language: expected text, got a number (put it in quotes to make it text)"],
    ),
    "id-number": (
        top("id: 123"),
        ["r.yaml:2:1: id: expected text, got a number (put it in quotes to make it text)"],
    ),
    "sides-text": (
        step("sides: right"),
        ["r.yaml:4:5: steps[0].sides: expected a list of sides such as [right, left], got text"],
    ),
    "sides-numbers": (
        step("sides: [1, 2]"),
        [
            "r.yaml:4:13: steps[0].sides[0]: expected text, got a number*",
            "r.yaml:4:16: steps[0].sides[1]: expected text, got a number*",
        ],
    ),
    "breathe-number": (
        actions("- hold: 30s\n  breathe: 1"),
        ["r.yaml:6:9: steps[0].do[0].breathe: expected intensify or calm, got a number"],
    ),
    # Durations
    "hold-unparseable": (
        actions("- hold: abc"),
        [
            'r.yaml:5:9: steps[0].do[0].hold: "abc" is not a duration;'
            " write e.g. 30s, 2m, 2m30s, 1:30, 1.5m, 1h or a number of seconds"
        ],
    ),
    "hold-milliseconds": (
        actions("- hold: 500ms"),
        ['r.yaml:5:9: steps[0].do[0].hold: "500ms" is not a duration;*'],
    ),
    "hold-zero": (
        actions("- hold: 0"),
        ['r.yaml:5:9: steps[0].do[0].hold: "0" must be longer than zero'],
    ),
    "hold-zero-seconds": (
        actions("- hold: 0s"),
        ['r.yaml:5:9: steps[0].do[0].hold: "0s" must be longer than zero'],
    ),
    "hold-negative": (
        actions("- hold: -5s"),
        ['r.yaml:5:9: steps[0].do[0].hold: "-5s" must be longer than zero'],
    ),
    "hold-negative-number": (
        actions("- hold: -5"),
        ['r.yaml:5:9: steps[0].do[0].hold: "-5" must be longer than zero'],
    ),
    "hold-too-short": (
        actions("- hold: 0.5s"),
        ['r.yaml:5:9: steps[0].do[0].hold: "0.5s" is too short: a hold lasts at least 1 s'],
    ),
    "hold-too-long": (
        actions("- hold: 31m"),
        ['r.yaml:5:9: steps[0].do[0].hold: "31m" is too long: a hold lasts at most 30 min'],
    ),
    "hold-range-too-long": (
        actions("- hold: 10s..45m"),
        ['r.yaml:5:9: steps[0].do[0].hold: "10s..45m" is too long: a hold lasts at most 30 min'],
    ),
    "hold-range-too-short": (
        actions("- hold: 0.5s..5s"),
        ['r.yaml:5:9: steps[0].do[0].hold: "0.5s..5s" is too short: a hold lasts at least 1 s'],
    ),
    "hold-reversed": (
        actions("- hold: 2m..1m"),
        ['r.yaml:5:9: steps[0].do[0].hold: "2m..1m" must go from shorter to longer'],
    ),
    "hold-three-ends": (
        actions('- hold: "1..2..3"'),
        [
            'r.yaml:5:9: steps[0].do[0].hold: "1..2..3" is not a range;'
            " write it as A..B, e.g. 2m..2m30s"
        ],
    ),
    "pause-zero": (
        actions("- pause: 0s"),
        ['r.yaml:5:9: steps[0].do[0].pause: "0s" must be longer than zero'],
    ),
    "pause-too-long": (
        actions("- pause: 2h"),
        ['r.yaml:5:9: steps[0].do[0].pause: "2h" is too long: a pause lasts at most 30 min'],
    ),
    # The whole track: at most 4 hours
    "track-repeat-over-4h": (
        actions("- repeat: 100\n  do: [{hold: 30m}]"),
        ["r.yaml:2:1: steps: the routine would last about 50h 0m, over the 4 hour limit"],
    ),
    "track-just-over-4h": (  # not "about 4h 0m, over the 4 hour limit"
        actions("- hold: 30m\n" * 8),
        ["r.yaml:2:1: steps: the routine would last about 4h 0m 1s, over the 4 hour limit"],
    ),
    "track-ranges-over-4h": (  # a range counts as long as a profile plays it: its middle
        actions("- hold: 26m..30m\n" * 9),  # not 4h 30m, its top
        ["r.yaml:2:1: steps: the routine would last about 4h 12m, over the 4 hour limit"],
    ),
    "track-huge-repeat": (  # whole numbers: not 11111111111111110924697h 36m
        actions("- repeat: 100000000000000000000\n  do: [{hold: 1s}]"),
        [
            "r.yaml:2:1: steps: the routine would last about 27777777777777777h 47m, over the "
            "4 hour limit"
        ],
    ),
    "track-sides-over-4h": (
        step("sides: [a, b, c, d, e, f, g, h, i]") + "      - hold: 30m\n" * 8,
        ["r.yaml:2:1: steps: the routine would last about 36h 0m, over the 4 hour limit"],
    ),
    # Ids
    "id-dotdot": (
        top("id: ../x"),
        ["r.yaml:2:1: id: '../x' is not a valid id: use only a-z, 0-9 and '-'"],
    ),
    "id-slash": (
        top("id: a/b"),
        ["r.yaml:2:1: id: 'a/b' is not a valid id: use only a-z, 0-9 and '-'"],
    ),
    "id-upper": (
        top("id: Foo"),
        ["r.yaml:2:1: id: 'Foo' is not a valid id: use only a-z, 0-9 and '-'"],
    ),
    "id-space": (
        top("id: a b"),
        ["r.yaml:2:1: id: 'a b' is not a valid id: use only a-z, 0-9 and '-'"],
    ),
    "id-empty": (top("id: ''"), ["r.yaml:2:1: id: the text is empty"]),
    # Language
    "language-unknown": (
        top("language: fr"),
        ["r.yaml:2:1: language: unknown language 'fr' (known: de, en)"],
    ),
    "language-case": (
        top("language: EN"),
        ["r.yaml:2:1: language: unknown language 'EN' (known: de, en); did you mean 'en'?"],
    ),
    # Breathe
    "breathe-unknown": (
        actions("- hold: 30s\n  breathe: deep"),
        ["r.yaml:6:9: steps[0].do[0].breathe: unknown breathe 'deep': use intensify or calm"],
    ),
    "breathe-typo": (
        actions("- hold: 30s\n  breathe: clam"),
        [
            "r.yaml:6:9: steps[0].do[0].breathe: unknown breathe 'clam': use intensify or calm;"
            " did you mean 'calm'?"
        ],
    ),
    # Empty texts and lists
    "say-empty": (actions('- say: ""'), ["r.yaml:5:9: steps[0].do[0].say: the text is empty"]),
    "say-blank": (actions('- say: "   "'), ["r.yaml:5:9: steps[0].do[0].say: the text is empty"]),
    "say-empty-item": (
        actions('- say: [a, ""]'),
        ["r.yaml:5:18: steps[0].do[0].say[1]: the text is empty"],
    ),
    "say-empty-list": (actions("- say: []"), ["r.yaml:5:9: steps[0].do[0].say: the list is empty"]),
    "say-null": (
        actions("- say:"),
        ["r.yaml:5:9: steps[0].do[0].say: expected text or a list of texts, got nothing"],
    ),
    "title-empty": ("title: ''\n" + ONE_STEP, ["r.yaml:1:1: title: the text is empty"]),
    "intro-empty-list": (top("intro: []"), ["r.yaml:2:1: intro: the list is empty"]),
    "remind-blank": (
        actions("- hold: 30s\n  remind: ' '"),
        ["r.yaml:6:9: steps[0].do[0].remind: the text is empty"],
    ),
    # Repeat
    "repeat-zero": (
        actions("- repeat: 0\n  do: [{say: x}]"),
        ["r.yaml:5:9: steps[0].do[0].repeat: must be a whole number of at least 1, got 0"],
    ),
    "repeat-negative": (
        actions("- repeat: -1\n  do: [{say: x}]"),
        ["r.yaml:5:9: steps[0].do[0].repeat: must be a whole number of at least 1, got -1"],
    ),
    "repeat-fraction": (
        actions("- repeat: 2.5\n  do: [{say: x}]"),
        ["r.yaml:5:9: steps[0].do[0].repeat: must be a whole number of at least 1, got 2.5"],
    ),
    "repeat-hexadecimal": (
        actions("- repeat: 0x10\n  do: [{say: x}]"),
        [
            "r.yaml:5:9: steps[0].do[0].repeat: write the number in plain digits (such as 12), "
            "not 0x10"
        ],
    ),
    "repeat-word": (
        actions("- repeat: ten\n  do: [{say: x}]"),
        ["r.yaml:5:9: steps[0].do[0].repeat: expected a whole number, got text"],
    ),
    "repeat-quoted": (
        actions("- repeat: '3'\n  do: [{say: x}]"),
        ["r.yaml:5:9: steps[0].do[0].repeat: expected a whole number, got text"],
    ),
    "repeat-bool": (
        actions("- repeat: yes\n  do: [{say: x}]"),
        ["r.yaml:5:9: steps[0].do[0].repeat: expected a whole number, got a yes/no value"],
    ),
    "repeat-huge": (
        actions("- repeat: 99999999999999999999999\n  do: [{say: x}]"),
        ["r.yaml:2:1: steps: the routine would last about*"],
    ),
    "repeat-enormous": (
        actions(f"- repeat: {'9' * 200}\n  do: [{{say: x}}]"),
        ["r.yaml:5:9: steps[0].do[0].repeat: " + "9" * 39 + "… is far too large"],
    ),
    "repeat-without-do": (
        actions("- repeat: 3"),
        ["r.yaml:5:9: steps[0].do[0].repeat: 'repeat' needs a 'do' list of the actions to repeat"],
    ),
    "repeat-empty-do": (
        actions("- repeat: 3\n  do: []"),
        ["r.yaml:6:9: steps[0].do[0].do: the list is empty: give at least one action"],
    ),
    "repeat-bad-inner": (
        actions("- repeat: 3\n  do:\n    - hold: 2m..1m"),
        ['r.yaml:7:13: steps[0].do[0].do[0].hold: "2m..1m" must go from shorter to longer'],
    ),
    # Sides
    "sides-empty": (step("sides: []"), ["r.yaml:4:5: steps[0].sides: the list is empty"]),
    "sides-duplicate": (
        step("sides: [right, right]"),
        ["r.yaml:4:20: steps[0].sides[1]: 'right' is listed twice"],
    ),
    "sides-duplicate-case": (
        step("sides: [Left, 'left ']"),
        ["r.yaml:4:19: steps[0].sides[1]: 'left' is listed twice (as 'Left')"],
    ),
    "sides-blank": (
        step("sides: [right, '']"),
        ["r.yaml:4:20: steps[0].sides[1]: the text is empty"],
    ),
    # Exactly one kind per action; extras only with their kind
    "two-kinds": (
        actions("- hold: 5s\n  pause: 3s"),
        [
            "r.yaml:5:9: steps[0].do[0]: an action is exactly one of say, hold, pause or repeat,"
            " not hold and pause"
        ],
    ),
    "no-kind": (
        actions("- {}"),
        ["r.yaml:5:9: steps[0].do[0]: an action needs one of say, hold, pause or repeat"],
    ),
    "only-breathe": (
        actions("- breathe: calm"),
        ["r.yaml:5:9: steps[0].do[0]: an action needs one of say, hold, pause or repeat"],
    ),
    "breathe-with-say": (
        actions("- say: a\n  breathe: calm"),
        ["r.yaml:6:9: steps[0].do[0].breathe: 'breathe' goes only with 'hold'"],
    ),
    "remind-with-pause": (
        actions("- pause: 5s\n  remind: a"),
        ["r.yaml:6:9: steps[0].do[0].remind: 'remind' goes only with 'hold'"],
    ),
    "countdown-with-repeat": (
        actions("- repeat: 2\n  do: [{say: a}]\n  countdown: true"),
        ["r.yaml:7:9: steps[0].do[0].countdown: 'countdown' goes only with 'hold'"],
    ),
    "do-with-hold": (
        actions("- hold: 5s\n  do: [{say: a}]"),
        ["r.yaml:6:9: steps[0].do[0].do: 'do' goes only with 'repeat'"],
    ),
    # Placeholders
    "side-without-sides": (
        actions("- say: Lift your {side} leg."),
        ["r.yaml:5:9: steps[0].do[0].say: '{side}' is used, but the step has no 'sides'"],
    ),
    "side-in-step-title": (
        "title: T\nsteps:\n  - title: Stretch {side}\n    do: [{say: hi}]\n",
        ["r.yaml:3:5: steps[0].title: '{side}' is used, but the step has no 'sides'"],
    ),
    "side-in-intro": (
        top("intro: Start with the {side} leg."),
        ["r.yaml:2:1: intro: '{side}' can only be used in a step with 'sides'"],
    ),
    "unknown-placeholder": (
        actions('- say: "Lift {foo}."'),
        ["r.yaml:5:9: steps[0].do[0].say: unknown placeholder '{foo}'; the only one is {side}"],
    ),
    "unknown-placeholder-remind": (
        actions("- hold: 30s\n  remind: Press {harder}"),
        [
            "r.yaml:6:9: steps[0].do[0].remind: unknown placeholder '{harder}';"
            " the only one is {side}"
        ],
    ),
    "unmatched-brace": (
        actions('- say: "Lift your {side leg."'),
        ["r.yaml:5:9: steps[0].do[0].say: an unmatched '{'; the only placeholder is {side}"],
    ),
    "side-in-a-side": (
        step('sides: [left, "x{side}"]'),
        ["r.yaml:4:19: steps[0].sides[1]: a side's name cannot hold '{side}'"],
    ),
    "text-too-long": (
        actions("- say: " + "Breathe. " * 250),
        [
            "r.yaml:5:9: steps[0].do[0].say: the text is 2249 characters long;"
            " a spoken text has at most 2000: split it into several"
        ],
    ),
    "id-index": (
        top("id: index"),
        [
            "r.yaml:2:1: id: 'index' would give the track's page the name of the folder's"
            " index page, index.html"
        ],
    ),
    "id-too-long": (
        top("id: " + "a" * 101),
        [
            "r.yaml:2:1: id: '" + "a" * 39 + "…' is 101 characters long; an id names the"
            " track's files, and has at most 100"
        ],
    ),
    # Characters written through escapes are held to the rule for raw ones
    "escape-nul": (
        'title: "Night\\0 cramp"\n' + ONE_STEP,
        ["r.yaml:1:8: title: the character U+0000 is not allowed, even written as an escape"],
    ),
    "escape-bell": (
        actions('- say: "Ding\\a"'),
        [
            "r.yaml:5:14: steps[0].do[0].say:"
            " the character U+0007 is not allowed, even written as an escape"
        ],
    ),
    "escape-terminal-title": (
        actions('- say: [Sit., "\\e]0;x\\a"]'),
        [
            "r.yaml:5:21: steps[0].do[0].say[1]:"
            " the characters U+001B and U+0007 are not allowed, even written as escapes"
        ],
    ),
    "escape-hex-in-id": (
        top('id: "a\\x07"'),
        ["r.yaml:2:5: id: the character U+0007 is not allowed, even written as an escape"],
    ),
    "escape-in-duration": (
        actions('- hold: "30s\\u0007"'),
        [
            "r.yaml:5:15: steps[0].do[0].hold:"
            " the character U+0007 is not allowed, even written as an escape"
        ],
    ),
    "escape-in-side": (
        step('sides: [right, "le\\x00ft"]'),
        [
            "r.yaml:4:20: steps[0].sides[1]:"
            " the character U+0000 is not allowed, even written as an escape"
        ],
    ),
    "escape-in-breathe": (
        actions('- hold: 30s\n  breathe: "calm\\x1b"'),
        [
            "r.yaml:6:18: steps[0].do[0].breathe:"
            " the character U+001B is not allowed, even written as an escape"
        ],
    ),
    "escape-del-and-c1": (
        top('source: "a\\x7f\\x9b"'),
        [
            "r.yaml:2:9: source:"
            " the characters U+007F and U+009B are not allowed, even written as escapes"
        ],
    ),
    "escape-in-key": (
        actions('- "s\\ay": hi'),
        [
            "r.yaml:5:9: steps[0].do[0].s\ufffdy:"
            " the character U+0007 is not allowed, even written as an escape",
            "r.yaml:5:9: steps[0].do[0].s\ufffdy: unknown key 's\ufffdy'; did you mean 'say'?",
        ],
    ),
    "escape-in-tagged-number": (
        actions('- repeat: !!int "3\\a"\n  do: [{say: x}]'),
        [
            "r.yaml:5:17: steps[0].do[0].repeat:"
            " the character U+0007 is not allowed, even written as an escape"
        ],
    ),
    "escape-line-separator": (
        actions('- say: "a\\Lb"'),
        [
            "r.yaml:5:14: steps[0].do[0].say: the character U+2028 (line separator)"
            " is not allowed, even written as an escape"
        ],
    ),
    # Bidirectional controls reorder what players and the page show; raw or escaped
    "bidi-override-raw": (
        actions("- say: \u202ePull the foot back."),
        [
            "r.yaml:5:14: steps[0].do[0].say: the character U+202E (right-to-left override)"
            " is not allowed: invisible, it changes the order in which players and the page"
            " show the text"
        ],
    ),
    "bidi-isolates-escaped": (
        'title: "\\u2066Night\\u2069 cramp"\n' + ONE_STEP,
        [
            "r.yaml:1:8: title: the characters U+2066 (left-to-right isolate) and U+2069"
            " (pop directional isolate) are not allowed: invisible, they change the order in"
            " which players and the page show the text"
        ],
    ),
    # Surrogates: a pair is the character (see test_escaped_surrogate_pairs_are_joined)
    "surrogate-lone": (
        'title: "Leg \\ud800 day"\n' + ONE_STEP,
        [
            "r.yaml:1:8: title: the character U+D800 (half of a surrogate pair)"
            " is not allowed, even written as an escape"
        ],
    ),
    "surrogate-reversed": (
        actions('- say: "\\udcb5\\ud83e"'),
        [
            "r.yaml:5:14: steps[0].do[0].say: the characters U+DCB5 (half of a surrogate pair)"
            " and U+D83E (half of a surrogate pair) are not allowed, even written as escapes"
        ],
    ),
    "surrogate-in-number": (
        actions('- repeat: !!int "\\ud800"\n  do: [{say: x}]'),
        [
            "r.yaml:5:17: steps[0].do[0].repeat: the character U+D800 (half of a surrogate pair)"
            " is not allowed, even written as an escape"
        ],
    ),
    # Line breaks that YAML 1.1 has and editors do not: refused where they are
    "raw-line-separator-plain": (
        HEAD + "      - say: Sit down.\u2028Relax.\n      - hold: 2m..1m\n",
        [
            "r.yaml:5:23: steps[0].do[0].say: the character U+2028 (line separator)"
            " is not allowed; use a space or a new line",
            'r.yaml:6:9: steps[0].do[1].hold: "2m..1m" must go from shorter to longer',
        ],
    ),
    "raw-paragraph-separator-quoted": (
        'title: "A\u2029B\u2029C"\n' + ONE_STEP,
        [
            "r.yaml:1:10: title: the character U+2029 (paragraph separator)"
            " is not allowed; use a space or a new line"
        ],
    ),
    "raw-next-line-in-comments": (
        top("# a\x85b\x85c\n# d\x85e"),
        [
            "r.yaml:2:4: " + NEXT_LINE,
            "r.yaml:3:4: " + NEXT_LINE,
        ],
    ),
    # Texts that are spoken need a letter, a digit or a symbol: punctuation alone is silence
    "silent-title-markup": (
        'title: <break time="3s"/>\n' + ONE_STEP,
        ["r.yaml:1:1: title: nothing to speak: markup such as <break/> or [[...]] is not read out"],
    ),
    "silent-title": (
        'title: "\u2026"\n' + ONE_STEP,
        ["r.yaml:1:1: title: nothing to speak: the text has no letters, digits or symbols"],
    ),
    "silent-step-title": (
        "title: T\nsteps:\n  - title: \u2026\n    do: [{say: hi}]\n",
        ["r.yaml:3:5: steps[0].title: " + SILENT],
    ),
    "silent-say": (
        actions("- say: [\u2026, '!', \u00bf]"),
        [
            "r.yaml:5:15: steps[0].do[0].say[0]: " + SILENT,
            "r.yaml:5:18: steps[0].do[0].say[1]: " + SILENT,
            "r.yaml:5:23: steps[0].do[0].say[2]: " + SILENT,
        ],
    ),
    "silent-remind": (
        actions("- hold: 30s\n  remind: \u2026"),
        ["r.yaml:6:9: steps[0].do[0].remind: " + SILENT],
    ),
    "silent-intro-outro-safety-equipment": (
        top("intro: \u2026\noutro: [\u2013]\nsafety: \u00a1\nequipment: ['*']"),
        [
            "r.yaml:2:1: intro: " + SILENT,
            "r.yaml:3:9: outro[0]: " + SILENT,
            "r.yaml:4:1: safety: " + SILENT,
            "r.yaml:5:13: equipment[0]: " + SILENT,
        ],
    ),
    "silent-side": (
        step("sides: [right, \u2014]"),
        ["r.yaml:4:20: steps[0].sides[1]: " + SILENT],
    ),
}


def _matches(line: str, expected: str) -> bool:
    """An exact match, or a prefix match where `expected` ends with "*"."""
    return line.startswith(expected[:-1]) if expected.endswith("*") else line == expected


@pytest.mark.parametrize(("text", "expected"), BAD.values(), ids=BAD.keys())
def test_bad_routine_reports_each_problem_located(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    lines = problems_of(write(tmp_path, text))
    assert len(lines) == len(expected), lines
    for line, want in zip(lines, expected, strict=True):
        assert _matches(line, want), (line, want)


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    text = "titel: T\nlanguage: fr\n" + "steps:\n  - title: S\n    do:\n      - hold: 2m..1m\n"
    assert problems_of(write(tmp_path, text)) == [
        "r.yaml:1:1: titel: unknown key 'titel'; did you mean 'title'?",
        "r.yaml:2:1: language: unknown language 'fr' (known: de, en)",
        'r.yaml:6:9: steps[0].do[0].hold: "2m..1m" must go from shorter to longer',
    ]


def test_the_error_message_has_one_line_per_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "title: 1\nid: A\nsteps: []\n")
    with pytest.raises(UserError) as caught:
        load_routine(path)
    assert str(caught.value).splitlines() == [str(p) for p in caught.value.problems]
    assert len(caught.value.problems) == 3
    # A value written over several lines is quoted on one.
    text = "title: T\nsteps:\n  - title: S\n    do:\n      - hold: |\n"
    text += "          30s\n          then relax\n"
    assert problems_of(write(tmp_path, text)) == [
        'r.yaml:5:9: steps[0].do[0].hold: "30s then relax" is not a duration; write e.g. 30s, '
        "2m, 2m30s, 1:30, 1.5m, 1h or a number of seconds"
    ]
    assert str(Problem("a\nb.yaml", "x\r\ny", 1, 2, "k")) == "a b.yaml:1:2: k: x y"


# --- Hardening ------------------------------------------------------------------------


def test_invalid_utf8_says_where(tmp_path: Path) -> None:
    path = write(tmp_path, b"title: T\nsafety: caf\xe9\n")
    assert problems_of(path) == [
        "r.yaml: the file is not UTF-8 text: byte 0xE9 at line 2 (byte 21) cannot be read;"
        " save the file as UTF-8"
    ]
    for ends in (b"\r", b"\r\n"):  # lines as editors count them, whatever ends them
        path = write(tmp_path, b"title: T" + ends + b"id: t" + ends + b"safety: caf\xe9")
        assert "at line 3 " in problems_of(path)[0]


def test_utf16_is_not_utf8(tmp_path: Path) -> None:
    path = write(tmp_path, "title: T\n".encode("utf-16"))
    assert problems_of(path) == [
        "r.yaml: the file is UTF-16 text, not UTF-8; save the file as UTF-8"
    ]


def test_file_over_1mb_is_refused_before_parsing(tmp_path: Path) -> None:
    # Invalid YAML and invalid UTF-8 both: only the size may be reported.
    path = write(tmp_path, b"\xff[" * 600_000)
    assert problems_of(path) == [
        "r.yaml: the file is 1,200,000 bytes; a routine file is at most 1 MB"
    ]


def test_alias_bomb_is_refused_fast(tmp_path: Path) -> None:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, 10):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 9)}]")
    started = time.perf_counter()
    found = problems_of(write(tmp_path, "\n".join(lines) + "\n"))
    assert time.perf_counter() - started < 2
    assert len(found) == 1
    assert found[0].endswith(": the file has more than 10,000 values (counting aliases expanded)")


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    found = problems_of(write(tmp_path, "[" * 10_000 + "]" * 10_000))
    assert found == ["r.yaml:1:51: the file is nested more than 50 levels deep"]


def test_deeply_nested_mappings_are_refused(tmp_path: Path) -> None:
    text = "".join("  " * level + f"k{level}:\n" for level in range(200))
    assert problems_of(write(tmp_path, text)) == [
        "r.yaml:50:99: the file is nested more than 50 levels deep"
    ]


def test_many_values_are_refused_fast(tmp_path: Path) -> None:
    started = time.perf_counter()
    found = problems_of(write(tmp_path, "".join(f"k{n}: v\n" for n in range(60_000))))
    assert time.perf_counter() - started < 2
    assert found == [
        "r.yaml:5000:8: the file has more than 10,000 values (counting aliases expanded)"
    ]


def test_a_folder_is_not_a_routine_file(tmp_path: Path) -> None:
    assert problems_of(tmp_path) == [f"{tmp_path.name}: is a folder, not a routine file"]


def test_a_missing_file_is_a_user_error(tmp_path: Path) -> None:
    lines = problems_of(tmp_path / "gone.yaml")
    assert lines[0].startswith("gone.yaml: cannot read the file: ")


# --- Valid input ----------------------------------------------------------------------

DESIGN_EXAMPLE = """\
title: "Hamstring cramps: pressure points and stretches"   # required
id: hamstring-cramps        # optional
language: en                # voice language and built-in phrases; default en
body_part: leg
level: intermediate
equipment: [mini foam roller, stretching strap, osteopressure tool]
source: Liebscher & Bracht, "How to get rid of hamstring cramps"
safety: Stop if a position hurts your knees ...   # spoken once, near the start
intro: [a line, another line]                     # str or list of str
steps:                                            # required, at least one
  - title: Sitting hamstring and calf stretch     # spoken, and the chapter name
    sides: [right, left]     # optional: the step is done once per side;
                             # "{side}" in any text becomes the side's name
    do:                      # required list of actions, in order
      - say: Sit on the floor with your legs straight in front of you.
      - hold: 30s
      - say: [Release., "Place the strap around the ball of your {side} foot."]
      - hold: 2m..2m30s      # a range: the profile picks the length
        breathe: intensify   # exhale-to-intensify cues inside this hold
      - pause: 5s            # quiet time to get into position, no chimes
      - repeat: 10           # repetitions, e.g. an active-isolated stretch
        do: [{say: Pull the leg up.}, {hold: 2s}, {say: Lower it.}]
      - hold: 2m
        remind: When the pressure eases, press a little harder.   # said inside the hold
outro: [Well done.]
"""


def _fixed(ms: int) -> DurationRange:
    return DurationRange(shortest_ms=ms, longest_ms=ms)


def test_design_example_loads_to_the_expected_routine(tmp_path: Path) -> None:
    path = write(tmp_path, DESIGN_EXAMPLE, "hamstring.yaml")
    expected = Routine(
        id="hamstring-cramps",
        title="Hamstring cramps: pressure points and stretches",
        language="en",
        body_part="leg",
        level="intermediate",
        equipment=("mini foam roller", "stretching strap", "osteopressure tool"),
        source='Liebscher & Bracht, "How to get rid of hamstring cramps"',
        safety="Stop if a position hurts your knees ...",
        intro=("a line", "another line"),
        outro=("Well done.",),
        path=str(path),
        steps=(
            Step(
                title="Sitting hamstring and calf stretch",
                sides=("right", "left"),
                actions=(
                    Say(("Sit on the floor with your legs straight in front of you.",)),
                    Hold(_fixed(30_000)),
                    Say(("Release.", "Place the strap around the ball of your {side} foot.")),
                    Hold(DurationRange(120_000, 150_000), breathe="intensify"),
                    Pause(_fixed(5_000)),
                    Repeat(
                        10,
                        (Say(("Pull the leg up.",)), Hold(_fixed(2_000)), Say(("Lower it.",))),
                    ),
                    Hold(
                        _fixed(120_000),
                        remind=("When the pressure eases, press a little harder.",),
                    ),
                ),
            ),
        ),
    )
    assert load_routine(path) == expected


def test_locations_are_kept_on_steps_and_actions(tmp_path: Path) -> None:
    path = write(tmp_path, DESIGN_EXAMPLE, "hamstring.yaml")
    first = load_routine(path).steps[0]
    assert first.where == Where(str(path), 11, 5)
    assert [action.where for action in first.actions] == [
        Where(str(path), line, 9) for line in (15, 16, 17, 18, 20, 21, 23)
    ]
    repeat = first.actions[5]
    assert isinstance(repeat, Repeat)
    assert [action.where for action in repeat.actions] == [
        Where(str(path), 22, col) for col in (15, 40, 52)
    ]


def test_rough_length_counts_sides_repeats_and_words(tmp_path: Path) -> None:
    text = "title: T\nsteps:\n  - title: S\n    sides: [a, b]\n    do:\n"
    text += "      - repeat: 3\n        do: [{hold: 10s..20s}, {say: one two}]\n"
    routine = load_routine(write(tmp_path, text))
    # title T, then per side: title S, 3 x (15 s, the middle that phone plays, + 2 words)
    assert rough_length_ms(routine) == 400 + 2 * (400 + 3 * (15_000 + 800))


def test_just_under_4_hours_is_fine(tmp_path: Path) -> None:
    routine = load_routine(write(tmp_path, actions("- repeat: 7\n  do: [{hold: 30m}]")))
    assert rough_length_ms(routine) < 4 * 3_600_000


ODD_BUT_VALID = {
    "bom": (b"\xef\xbb\xbf" + b"title: T\n" + ONE_STEP.encode(), "T"),
    "crlf": (b"title: T\r\nsteps:\r\n  - title: S\r\n    do: [{say: hi}]\r\n", "T"),
    "bom-and-crlf": (b"\xef\xbb\xbftitle: T\r\n" + ONE_STEP.replace("\n", "\r\n").encode(), "T"),
    "accents": ("title: Dehnübung für Wade und Oberschenkel\n" + ONE_STEP, None),
    "emoji": ("title: Stretch 🧘‍♀️ time\n" + ONE_STEP, None),
    "cyrillic": ("title: Растяжка\n" + ONE_STEP, None),
    "cjk": ("title: ストレッチ\n" + ONE_STEP, None),
    "ssml-looking": ('title: <break time="3s"/> Stretch\n' + ONE_STEP, None),
    "str-tag-number": ("title: !!str 2024\n" + ONE_STEP, "2024"),
    "quoted-number": ("title: '2024'\n" + ONE_STEP, "2024"),
    "padded": ("title: '  T  '\n" + ONE_STEP, "T"),
    "folded": ("title: >\n  A long\n  title\n" + ONE_STEP, "A long title"),
    # Symbols alone: espeak-ng says "thumbs up" and "plus" (the build reports one it
    # has no word for, where it is written: test_cli::test_a_symbol_the_engine_...)
    "symbol-only": ('title: "👍"\n' + ONE_STEP, "👍"),
    "math-symbol-only": ("title: '+'\n" + ONE_STEP, "+"),
}


@pytest.mark.parametrize(("data", "title"), ODD_BUT_VALID.values(), ids=ODD_BUT_VALID.keys())
def test_odd_but_valid_files_load(tmp_path: Path, data: str | bytes, title: str | None) -> None:
    routine = load_routine(write(tmp_path, data))
    if title is None:
        assert isinstance(data, str)
        title = data.split("\n", 1)[0].removeprefix("title: ")
    assert routine.title == title
    assert routine.steps[0].actions == (Say(("hi",)),)


def test_crlf_keeps_line_numbers(tmp_path: Path) -> None:
    text = actions("- hold: 2m..1m").replace("\n", "\r\n").encode()
    assert problems_of(write(tmp_path, b"\xef\xbb\xbf" + text)) == [
        'r.yaml:5:9: steps[0].do[0].hold: "2m..1m" must go from shorter to longer'
    ]


def test_escaped_surrogate_pairs_are_joined(tmp_path: Path) -> None:
    # json.dumps writes an emoji as a surrogate pair, and JSON is YAML.
    data = {
        "title": "Leg day \U0001f9b5",
        "steps": [{"title": "S", "do": [{"say": "Go \U0001f4aa"}]}],
    }
    text = json.dumps(data)
    assert "\\ud83e\\uddb5" in text
    routine = load_routine(write(tmp_path, text))
    assert routine.title == "Leg day \U0001f9b5"
    assert routine.steps[0].actions == (Say(("Go \U0001f4aa",)),)


# Escapes as written in a double-quoted YAML string (the backslashes are in the file).
ESCAPES = st.sampled_from(
    [
        r"\0",
        r"\a",
        r"\e",
        r"\x07",
        r"\x9b",
        r"\u0007",
        r"\ud800",
        r"\udfff",
        r"\ud83e\uddb5",
        r"\U0001F9B5",
        r"\L",
        r"\P",
        r"\N",
        r"\_",
        r"\t",
        r"\n",
        r"\u00e9",
        r"\\",
        r"\"",
        r"a",
    ]
)


@settings(max_examples=200, deadline=None)
@given(title=st.lists(ESCAPES, min_size=1, max_size=6).map("".join))
def test_escapes_never_reach_a_message_or_a_routine_raw(title: str) -> None:
    # A lone surrogate cannot be written out as UTF-8; a control character would act on a
    # terminal. Neither may come out of the loader, in a routine or in a message.
    with TemporaryDirectory() as folder:
        path = write(
            Path(folder), f'title: "{title}"\nsteps: [{{title: "{title}", do: [{{say: hi}}]}}]\n'
        )
        try:
            routine = load_routine(path)
        except UserError as error:
            shown = str(error)
        else:
            shown = routine.title + routine.steps[0].title
    shown.encode("utf-8")
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]", shown), shown


def test_line_numbers_are_the_editors(tmp_path: Path) -> None:
    # PyYAML ends a line at U+2028, U+2029 and U+0085; editors and grep do not.
    text = HEAD + '      - say: "a\u2028b\u2029c\x85d"\n      - hold: 2m..1m\n'
    assert text.count("\n") == 6 and len(text.splitlines()) == 9  # Python agrees with PyYAML
    assert problems_of(write(tmp_path, text)) == [
        "r.yaml:5:16: steps[0].do[0].say: the character U+2028 (line separator)"
        " is not allowed; use a space or a new line",
        'r.yaml:6:9: steps[0].do[1].hold: "2m..1m" must go from shorter to longer',
    ]


def test_columns_count_every_character(tmp_path: Path) -> None:
    # PyYAML's columns skip U+FEFF; an editor's do not.
    text = 'title: T\nintro: ["\ufeffHi", 5]\n' + ONE_STEP
    assert problems_of(write(tmp_path, text)) == [
        "r.yaml:2:16: intro[1]: expected text, got a number (put it in quotes to make it text)"
    ]


def test_a_lone_carriage_return_ends_a_line(tmp_path: Path) -> None:
    path = write(tmp_path, b"title: T\rsafety: a\x00b\r")
    assert problems_of(path) == [
        "r.yaml:1:1: steps: missing required key 'steps'",
        "r.yaml:2:10: safety: the character U+0000 is not allowed in a YAML file",
    ]


def test_every_control_character_typed_in_a_file_is_reported_with_its_key(tmp_path: Path) -> None:
    # YAML's reader stopped at the first, and could name no key.
    text = (
        'title: T\n# a note\x07 here\nsteps:\n  - do:\n      - say: "a\x1b[31m red"\n'
        "      - hold: 10s\n    title: x\x00y\n"
    )
    assert problems_of(write(tmp_path, text)) == [
        "r.yaml:2:9: the character U+0007 is not allowed in a YAML file",  # in a comment
        "r.yaml:5:16: steps[0].do[0].say: the character U+001B is not allowed in a YAML file",
        "r.yaml:7:13: steps[0].title: the character U+0000 is not allowed in a YAML file",
    ]


def test_ssml_looking_text_is_kept_as_plain_text(tmp_path: Path) -> None:
    routine = load_routine(write(tmp_path, actions('- say: <break time="3s"/> Relax.')))
    assert routine.steps[0].actions == (Say(('<break time="3s"/> Relax.',)),)


def test_values_as_written(tmp_path: Path) -> None:
    text = actions(
        "- hold: 30\n- hold: 1:30\n- hold: 1.5\n- pause: '0h30m0s'\n"
        "- hold: 10s\n  countdown: no\n  breathe: calm\n  remind: [a, b]\n"
        "- repeat: 3.0\n  do: [{repeat: 2, do: [{say: x}]}]"
    )
    found = load_routine(write(tmp_path, text)).steps[0].actions
    assert found == (
        Hold(_fixed(30_000)),
        Hold(_fixed(90_000)),
        Hold(_fixed(1_500)),
        Pause(_fixed(30 * 60_000)),
        Hold(_fixed(10_000), breathe="calm", remind=("a", "b"), countdown=False),
        Repeat(3, (Repeat(2, (Say(("x",)),)),)),
    )


@pytest.mark.parametrize(("written", "meant"), [("EN", "en"), ("en-US", "en"), ("de_AT", "de")])
def test_a_known_language_written_as_a_locale_gets_a_suggestion(
    tmp_path: Path, written: str, meant: str
) -> None:
    assert problems_of(write(tmp_path, top(f"language: {written}"))) == [
        f"r.yaml:2:1: language: unknown language '{written}' (known: de, en); "
        f"did you mean '{meant}'?"
    ]


def test_texts_that_are_not_spoken_keep_their_braces(tmp_path: Path) -> None:
    # The source and the level go into tags and pages only: {side} is never filled in there.
    text = top('source: "Smith et al. {2019}, {side}"\nlevel: "{easy"')
    routine = load_routine(write(tmp_path, text))
    assert (routine.source, routine.level) == ("Smith et al. {2019}, {side}", "{easy")
    assert problems_of(write(tmp_path, top('safety: "Mind {2019}"'))) == [
        "r.yaml:2:1: safety: unknown placeholder '{2019}'; the only one is {side}"
    ]


def test_texts_accept_a_single_text_or_a_list(tmp_path: Path) -> None:
    text = top("equipment: strap\nintro: Hello.\noutro: [Bye., See you.]\nbody_part: leg")
    routine = load_routine(write(tmp_path, text))
    assert (routine.equipment, routine.intro, routine.outro) == (
        ("strap",),
        ("Hello.",),
        ("Bye.", "See you."),
    )
    assert routine.body_part == "leg"


def test_invisible_characters_that_keep_the_order_are_accepted(tmp_path: Path) -> None:
    # Pasted text often has them; the engine speaks through them ("Pull\u200bthe" is two
    # words). Only the bidirectional controls that reorder what is shown are refused.
    texts = [
        "Pull\u200bthe foot.",
        "Wa\u00adden.",
        "Pull\u2060the foot.",
        "\u200fRest.",
        "👨\u200d⚕️",
    ]
    routine = load_routine(write(tmp_path, top("intro: " + json.dumps(texts))))
    assert routine.intro == tuple(texts)


def test_anchors_and_aliases_may_reuse_actions(tmp_path: Path) -> None:
    routine = load_routine(write(tmp_path, actions("- &h {hold: 30s}\n- say: again\n- *h")))
    assert routine.steps[0].actions == (Hold(_fixed(30_000)), Say(("again",)), Hold(_fixed(30_000)))


def test_a_text_anchor_that_an_alias_reuses_is_kept(tmp_path: Path) -> None:
    text = actions("- say: &r Release slowly.\n- hold: 10s\n- say: *r\n- say: '&b quoted.'")
    routine = load_routine(write(tmp_path, text))
    said = [action for action in routine.steps[0].actions if isinstance(action, Say)]
    assert said == [Say(("Release slowly.",)), Say(("Release slowly.",)), Say(("&b quoted.",))]


def test_side_placeholder_is_allowed_with_sides(tmp_path: Path) -> None:
    text = "title: T\nsteps:\n  - title: Stretch ({side})\n    sides: [right, left]\n"
    text += "    do: [{say: 'Lift the {side} leg.'},"
    text += " {hold: 30s, remind: 'Keep the {side} knee soft.'}]\n"
    first = load_routine(write(tmp_path, text)).steps[0]
    assert first.title == "Stretch ({side})"
    assert first.sides == ("right", "left")


def test_language_must_be_known(tmp_path: Path) -> None:
    path = write(tmp_path, top("language: de"))
    assert load_routine(path).language == "de"
    with pytest.raises(UserError, match=r"unknown language 'de' \(known: en\)"):
        load_routine(path, known_languages=("en",))


@pytest.mark.parametrize(
    ("name", "routine_id"),
    [
        ("knee.yaml", "knee"),
        ("My Knee Routine.yml", "my-knee-routine"),
        ("Übung__1.YAML", "ubung-1"),
        ("--a..b--.yaml", "a-b"),
    ],
)
def test_default_id_comes_from_the_file_name(tmp_path: Path, name: str, routine_id: str) -> None:
    assert load_routine(write(tmp_path, "title: T\n" + ONE_STEP, name)).id == routine_id


def test_file_name_without_any_id_characters(tmp_path: Path) -> None:
    path = write(tmp_path, "title: T\n" + ONE_STEP, "Straße.yaml")
    assert load_routine(path).id == "strasse"
    path = write(tmp_path, "title: T\n" + ONE_STEP, "日本.yaml")
    assert problems_of(path) == [
        "日本.yaml: cannot make a routine id from the file name; add an 'id'"
    ]


# --- Several files --------------------------------------------------------------------


def _routine_text(title: str, routine_id: str | None = None) -> str:
    return f"title: {title}\n" + (f"id: {routine_id}\n" if routine_id else "") + ONE_STEP


def test_load_routines_reads_folders_sorted_and_files(tmp_path: Path) -> None:
    folder = tmp_path / "routines"
    folder.mkdir()
    write(folder, _routine_text("B"), "b.yml")
    write(folder, _routine_text("A"), "a.yaml")
    write(folder, "not a routine", "notes.txt")
    write(folder, "junk: [", ".hidden.yaml")
    extra = write(tmp_path, _routine_text("C"), "c.yaml")
    routines = load_routines([folder, extra, folder / "a.yaml"])
    assert [r.title for r in routines] == ["A", "B", "C"]
    assert discover([folder]) == [folder / "a.yaml", folder / "b.yml"]


def test_a_folder_s_broken_link_or_pipe_is_reported_not_skipped(tmp_path: Path) -> None:
    write(tmp_path, _routine_text("A"), "a.yaml")
    (tmp_path / "knee.yaml").symlink_to(tmp_path / "nowhere.yaml")
    os.mkfifo(tmp_path / "hip.yaml")
    (tmp_path / "sub.yaml").mkdir()  # a folder, whatever its name, is not a routine
    with pytest.raises(UserError) as caught:
        load_routines([tmp_path])
    assert [p.path for p in caught.value.problems] == [
        str(tmp_path / "hip.yaml"),
        str(tmp_path / "knee.yaml"),
    ]


def test_a_link_named_alone_says_why_it_cannot_be_read(tmp_path: Path) -> None:
    # A loop of links said "no such file or folder"; in a folder it said why.
    (tmp_path / "a.yaml").symlink_to(tmp_path / "b.yaml")
    (tmp_path / "b.yaml").symlink_to(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").symlink_to(tmp_path / "nowhere.yaml")
    for name, why in (("a.yaml", "Too many levels of symbolic links"),
                      ("c.yaml", "No such file or directory")):  # fmt: skip
        with pytest.raises(UserError) as caught:
            load_routines([tmp_path / name])
        assert [str(p) for p in caught.value.problems] == [
            f"{tmp_path / name}: cannot read the file: {why}"
        ]


def test_load_routines_collects_problems_from_every_file(tmp_path: Path) -> None:
    write(tmp_path, "title: A\nsteps: []\n", "a.yaml")
    write(tmp_path, "", "b.yaml")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError) as caught:
        load_routines([tmp_path, empty, tmp_path / "missing.yaml"])
    assert [str(p) for p in caught.value.problems] == [
        f"{empty}: no routine files (*.yaml, *.yml) in this folder",
        f"{tmp_path / 'missing.yaml'}: no such file or folder",
        f"{tmp_path / 'a.yaml'}:2:1: steps: the list is empty: a routine needs at least one step",
        f"{tmp_path / 'b.yaml'}: the file is empty",
    ]


def test_duplicate_ids_across_files(tmp_path: Path) -> None:
    write(tmp_path, _routine_text("A"), "knee.yaml")
    write(tmp_path, _routine_text("B", "knee"), "other.yaml")
    write(tmp_path, _routine_text("C", "knee"), "x.yaml")
    with pytest.raises(UserError) as caught:
        load_routines([tmp_path])
    assert [str(p) for p in caught.value.problems] == [
        f"{tmp_path / 'other.yaml'}:2:1: id: the routine id 'knee' is also used by"
        f" {tmp_path / 'knee.yaml'} and {tmp_path / 'x.yaml'}",
        f"{tmp_path / 'x.yaml'}:2:1: id: the routine id 'knee' is also used by"
        f" {tmp_path / 'knee.yaml'} and {tmp_path / 'other.yaml'}",
    ]  # each names every other file: renaming one clears what it names


def test_duplicate_default_ids_are_whole_file_problems(tmp_path: Path) -> None:
    write(tmp_path, _routine_text("A"), "knee.yaml")
    write(tmp_path, _routine_text("B"), "Knee.yml")
    with pytest.raises(UserError) as caught:
        load_routines([tmp_path])
    assert [str(p) for p in caught.value.problems] == [
        f"{tmp_path / 'knee.yaml'}: the routine id 'knee' is also used by {tmp_path / 'Knee.yml'};"
        " give one of them an 'id'"
    ]


def test_a_file_named_twice_loads_once(tmp_path: Path) -> None:
    path = write(tmp_path, _routine_text("A"), "a.yaml")
    assert discover([path, path, tmp_path, tmp_path / "." / "a.yaml"]) == [path]


def test_discover_refuses_missing_paths(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file or folder"):
        discover([tmp_path / "nope"])


# --- Durations ------------------------------------------------------------------------

DURATIONS = [
    ("30s", 30_000),
    ("2m", 120_000),
    ("2m30s", 150_000),
    ("2m 30s", 150_000),
    ("1:30", 90_000),
    ("0:05", 5_000),
    ("1:02:03", 3_723_000),
    ("1.5m", 90_000),
    ("1h", 3_600_000),
    ("1h2m3s", 3_723_000),
    ("90s", 90_000),
    ("90m", 5_400_000),
    ("1m59.5s", 119_500),
    ("30", 30_000),
    ("2.5", 2_500),
    (".5", 500),
    ("30 seconds", 30_000),
    ("2 min", 120_000),
    ("0.0015s", 2),  # half a millisecond rounds up
    ("0.0014s", 1),
    (30, 30_000),
    (1.5, 1_500),
    (" 45s ", 45_000),
]


@pytest.mark.parametrize(("written", "ms"), DURATIONS)
def test_duration_forms(written: str | int | float, ms: int) -> None:
    assert parse_duration_ms(written) == ms
    assert parse_range(written) == DurationRange(ms, ms)


BAD_DURATIONS = [
    ("", "is not a duration"),
    ("abc", "is not a duration"),
    ("30x", "is not a duration"),
    ("1:75", "is not a duration"),
    ("1m90s", '"1m90s" is not a duration: its seconds must be under 60 after a larger unit'),
    ("1h 75m", "its minutes must be under 60 after a larger unit"),
    ("1h60s", "its seconds must be under 60"),
    ("1:5", "is not a duration"),
    ("500ms", "is not a duration"),
    ("1e3", "is not a duration"),
    ("s", "is not a duration"),
    ("9" * 100, "is not a duration"),
    ("0", '"0" must be longer than zero'),
    ("0s", "must be longer than zero"),
    ("0:00", "must be longer than zero"),
    ("-5s", '"-5s" must be longer than zero'),
    (-5, "must be longer than zero"),
    (0.0, "must be longer than zero"),
    (float("nan"), "is not a duration"),
    (float("inf"), "is not a duration"),
    (True, "is not a duration"),
    ("0.0004s", "must be longer than zero"),
]


@pytest.mark.parametrize(("written", "message"), BAD_DURATIONS)
def test_bad_durations(written: str | int | float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration_ms(written)


RANGES = [
    ("2m..2m30s", DurationRange(120_000, 150_000)),
    ("30s..30s", DurationRange(30_000, 30_000)),
    ("1:00 .. 1:30", DurationRange(60_000, 90_000)),
    ("1.5m..2m", DurationRange(90_000, 120_000)),
]


@pytest.mark.parametrize(("written", "expected"), RANGES)
def test_ranges(written: str, expected: DurationRange) -> None:
    assert parse_range(written) == expected


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("2m..1m", '"2m..1m" must go from shorter to longer'),
        ("..", "is not a range"),
        ("1m..", "is not a range"),
        ("1..2..3", "is not a range"),
        ("10s...20s", r'"10s\.\.\.20s" is not a range; write it as A\.\.B'),  # not 10 s to 0.2 s
        ("1m..x", '"x" is not a duration'),
        ("0s..1m", '"0s" must be longer than zero'),
        # A range written another way is shown as it is written here.
        ("30s - 1m", r'"30s - 1m" is not a duration; a range is written 30s\.\.1m$'),
        ("30-60s", r"a range is written 30s\.\.60s$"),  # the unit stands for both
        ("1 to 2m", r"a range is written 1m\.\.2m$"),
        ("30s – 1m", r"a range is written 30s\.\.1m$"),
        ("1:30-2:00", r"a range is written 1:30\.\.2:00$"),
        ("-5s", '"-5s" must be longer than zero'),
        ("1m90s-2m", r'"1m90s-2m" is not a duration; write e\.g\.'),
        ("abc-def", r'"abc-def" is not a duration; write e\.g\.'),
    ],
)
def test_bad_ranges(written: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_range(written)
