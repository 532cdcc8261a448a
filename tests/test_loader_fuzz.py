"""Fuzzing the loader: whatever the file holds, a Routine or a UserError, never a traceback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coachtrack.errors import UserError
from coachtrack.loader import load_routine
from coachtrack.model import Hold, Pause, Repeat, Routine, Say

# A few seconds by default; set COACHTRACK_FUZZ_EXAMPLES=5000 for a long hunt.
FUZZ = settings(
    max_examples=int(os.environ.get("COACHTRACK_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

KEYS = [
    *("title", "id", "language", "body_part", "level", "equipment", "source", "safety"),
    *("intro", "outro", "steps", "sides", "do", "say", "hold", "pause", "repeat"),
    *("breathe", "remind", "countdown", "titel", "<<", "", "x"),
]
WORDS = [
    *("30s", "2m", "2m30s", "1:30", "1.5m", "1h", "0", "-5s", "2m..1m", "1m..2m", "31m"),
    *("intensify", "calm", "en", "de", "fr", "right", "left", "{side}", "{x}", "Foo", "../x"),
    *("yes", "no", "~", "null", "1e3", "10", "2.5", "", " ", "<break time='3s'/>", "Übung"),
]
TOKENS = [
    *("\n", "  ", "\t", "- ", ": ", "[", "]", "{", "}", ",", "#", "&a ", "*a", "!!str ", "!foo "),
    *("!!python/object/apply:os.system ", "'", '"', "|\n", ">\n", "? ", "---\n", "...\n"),
    *("%YAML 1.1\n", "\r\n", "\ufeff", "\x00", "\\", "<<: "),
    *KEYS,
    *WORDS,
]

scalars = st.one_of(
    st.sampled_from(WORDS),
    st.text(max_size=20),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(KEYS), children, max_size=5),
    ),
    max_leaves=25,
)


GOOD_TEXTS = ["Sit.", "Ruhig atmen.", "<break/> Relax.", " x ", "🧘 Stretch", "Растяжка"]
GOOD_LENGTHS = ["30s", "2m..2m30s", "1:30", "1.5m", "5", "10s..20s", "1m..30m"]
BAD_LENGTHS = ["0.5s", "2m..1m", "31m", "0"]


def _text_values(clean: bool, many: bool = True) -> st.SearchStrategy[Any]:
    """Texts, or (`many`) lists of them; when not clean, sometimes anything at all."""
    good: st.SearchStrategy[Any] = st.sampled_from(GOOD_TEXTS)
    if many:
        good = st.one_of(good, st.lists(st.sampled_from(GOOD_TEXTS), min_size=1, max_size=3))
    return good if clean else st.one_of(good, st.sampled_from(["{side}", "{x}", ""]), scalars)


def _lengths(clean: bool) -> st.SearchStrategy[Any]:
    """Durations and ranges; when not clean, sometimes bad ones or anything at all."""
    good = st.sampled_from(GOOD_LENGTHS)
    return good if clean else st.one_of(good, st.sampled_from(BAD_LENGTHS), scalars)


def _actions(clean: bool) -> st.SearchStrategy[dict[str, Any]]:
    """Actions of every kind with the keys that go with them; when not clean, others too."""
    text, length = _text_values(clean), _lengths(clean)
    breathe = st.sampled_from(["intensify", "calm"] if clean else ["intensify", "deep", ""])
    hold_extras = {"breathe": breathe, "remind": text, "countdown": st.booleans()}
    times = st.integers(1, 5) if clean else st.one_of(st.integers(-1, 5), scalars)

    def extend(inner: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
        kinds = [
            st.fixed_dictionaries({"say": text}),
            st.fixed_dictionaries({"hold": length}, optional=hold_extras),
            st.fixed_dictionaries({"pause": length}),
            st.fixed_dictionaries({"repeat": times, "do": st.lists(inner, min_size=1, max_size=3)}),
        ]
        if not clean:
            kinds.append(st.dictionaries(st.sampled_from(KEYS), values, max_size=3))
        return st.one_of(*kinds)

    return st.recursive(st.fixed_dictionaries({"say": text}), extend, max_leaves=6)


@st.composite
def routine_shaped(draw: st.DrawFn) -> dict[str, Any]:
    """A mapping shaped like a routine: valid about half the time, broken somewhere otherwise."""
    clean = draw(st.booleans())
    text, texts = _text_values(clean, many=False), _text_values(clean)
    sides = [["right", "left"], ["links"]] + ([] if clean else [[], ["a", "a"], "right"])
    step = st.fixed_dictionaries(
        {"title": text, "do": st.lists(_actions(clean), min_size=1, max_size=4)},
        optional={"sides": st.sampled_from(sides)},
    )
    optional: dict[str, st.SearchStrategy[Any]] = {
        key: text for key in ("body_part", "level", "source", "safety")
    }
    optional |= {"intro": texts, "outro": texts, "equipment": texts}
    optional |= {"language": st.sampled_from(["en", "de"] if clean else ["en", "fr", ""])}
    optional |= {"id": st.sampled_from(["knee", "a-1"] if clean else ["knee", "../x", "Foo"])}
    if not clean:
        optional |= {"oops": values}
    routine = st.fixed_dictionaries(
        {"title": text, "steps": st.lists(step, min_size=1, max_size=3)}, optional=optional
    )
    return draw(routine)


documents = st.one_of(
    routine_shaped().map(lambda data: yaml.safe_dump(data, allow_unicode=True)),
    values.map(lambda data: yaml.safe_dump(data, allow_unicode=True)),
    st.lists(st.sampled_from(TOKENS), max_size=60).map("".join),
    st.text(max_size=200),
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("fuzz")


def _check(path: Path) -> None:
    """Loading `path` gives a sound Routine or a UserError whose lines all start with it."""
    try:
        routine = load_routine(path)
    except UserError as error:
        assert error.problems
        assert all(str(problem).startswith(str(path)) for problem in error.problems)
        return
    _check_routine(routine)


def _check_routine(routine: Routine) -> None:
    """What every loaded routine promises."""
    assert routine.title.strip() == routine.title != ""
    assert routine.steps
    for step in routine.steps:
        assert step.title and step.actions
        assert len(set(step.sides)) == len(step.sides)
        for action in step.actions:
            _check_action(action)


def _check_action(action: Say | Hold | Pause | Repeat) -> None:
    """What every loaded action promises."""
    if isinstance(action, Say):
        assert action.lines and all(line.strip() == line != "" for line in action.lines)
    elif isinstance(action, Hold | Pause):
        assert 1_000 <= action.length.shortest_ms <= action.length.longest_ms <= 1_800_000
    else:
        assert action.times >= 1 and action.actions
        for inner in action.actions:
            _check_action(inner)


@FUZZ
@given(text=documents, name=st.sampled_from(["r.yaml", "My Routine.yml", "日本.yaml"]))
def test_any_text_loads_or_fails_cleanly(folder: Path, text: str, name: str) -> None:
    path = folder / name
    path.write_text(text, encoding="utf-8", newline="")
    _check(path)


@FUZZ
@given(data=st.binary(max_size=300))
def test_any_bytes_load_or_fail_cleanly(folder: Path, data: bytes) -> None:
    path = folder / "bytes.yaml"
    path.write_bytes(data)
    _check(path)


@FUZZ
@given(text=routine_shaped().map(lambda data: yaml.safe_dump(data, allow_unicode=True)))
def test_routine_shaped_text_loads_or_fails_cleanly(folder: Path, text: str) -> None:
    path = folder / "shaped.yaml"
    path.write_text(text, encoding="utf-8")
    _check(path)
