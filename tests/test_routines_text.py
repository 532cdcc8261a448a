"""The shipped routines: they parse, and every spoken line is in our own words.

The seed articles in ../shared/seeds/ give the facts the routines are built
from; no spoken text may share a run of 12 or more consecutive words with any
of them (compared lower-cased, punctuation stripped, across the line
boundaries of one text field).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ROUTINES_DIR = REPO / "routines"
SEEDS_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "seeds"
RUN = 12  # words in a row that may not be shared with a seed article

ROUTINE_FILES = sorted([*ROUTINES_DIR.glob("*.yaml"), *ROUTINES_DIR.glob("*.yml")])

_APOSTROPHES = re.compile(r"['\u2018\u2019\u02bc`]")
_NOT_WORD = re.compile(r"[^\w]+|_+")


def words(text: str) -> list[str]:
    """Lower-cased words with punctuation stripped: "You're" -> "youre", "90°" -> "90"."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _APOSTROPHES.sub("", text)
    return _NOT_WORD.sub(" ", text).split()


def ngrams(tokens: list[str], n: int = RUN) -> Iterator[tuple[str, ...]]:
    for i in range(len(tokens) - n + 1):
        yield tuple(tokens[i : i + n])


def as_lines(value: Any) -> list[str]:
    """A text field as its lines: a str, or a list of str."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value if v is not None]
    return [str(value)]


def _action_texts(actions: Any, where: str) -> Iterator[tuple[str, list[str]]]:
    for i, action in enumerate(actions or []):
        if not isinstance(action, dict):
            continue
        here = f"{where}[{i}]"
        for key in ("say", "remind"):
            if key in action:
                yield f"{here}.{key}", as_lines(action[key])
        if "do" in action:
            yield from _action_texts(action["do"], f"{here}.do")


def spoken_fields(data: dict[str, Any]) -> Iterator[tuple[str, list[str]]]:
    """(key path, lines) for every text the tool speaks, `{side}` filled in per side."""
    for key in ("title", "intro", "outro", "safety"):
        if key in data:
            yield key, as_lines(data[key])
    for j, item in enumerate(as_lines(data.get("equipment"))):
        yield f"equipment[{j}]", [item]
    for s, step in enumerate(data.get("steps") or []):
        if not isinstance(step, dict):
            continue
        sides = as_lines(step.get("sides")) or [None]
        fields = [(f"steps[{s}].title", as_lines(step.get("title")))]
        fields += list(_action_texts(step.get("do"), f"steps[{s}].do"))
        for side in sides:
            for key, lines in fields:
                if side is not None:
                    lines = [line.replace("{side}", side) for line in lines]
                yield key, lines


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def seed_ngrams() -> dict[tuple[str, ...], str]:
    """Every 12-word run of every seed article, mapped to the article's file name."""
    if not SEEDS_DIR.is_dir():
        pytest.skip(f"seed articles not found at {SEEDS_DIR}; cannot compare wording")
    articles = [
        p for p in sorted(SEEDS_DIR.iterdir()) if p.is_file() and p.name.lower() != "readme.md"
    ]
    if not articles:
        pytest.skip(f"no seed articles in {SEEDS_DIR}; cannot compare wording")
    runs: dict[tuple[str, ...], str] = {}
    for article in articles:
        for gram in ngrams(words(article.read_text(encoding="utf-8", errors="replace"))):
            runs.setdefault(gram, article.name)
    return runs


def test_there_are_routines() -> None:
    assert ROUTINE_FILES, f"no routines in {ROUTINES_DIR}"


@pytest.mark.parametrize("path", ROUTINE_FILES, ids=lambda p: p.name)
def test_routine_parses_with_title_and_steps(path: Path) -> None:
    data = load(path)
    assert isinstance(data, dict), f"{path.name}: top level must be a mapping"
    assert isinstance(data.get("title"), str) and data["title"].strip(), "title missing"
    steps = data.get("steps")
    assert isinstance(steps, list) and steps, "steps missing or empty"
    for i, step in enumerate(steps):
        assert isinstance(step, dict), f"steps[{i}] is not a mapping"
        assert isinstance(step.get("title"), str) and step["title"].strip(), f"steps[{i}].title"
        assert isinstance(step.get("do"), list) and step["do"], f"steps[{i}].do missing or empty"


@pytest.mark.parametrize("path", ROUTINE_FILES, ids=lambda p: p.name)
def test_no_long_runs_copied_from_seed_articles(
    path: Path, seed_ngrams: dict[tuple[str, ...], str]
) -> None:
    data = load(path)
    copied = []
    for key, lines in spoken_fields(data):
        for gram in ngrams(words(" ".join(lines))):
            if gram in seed_ngrams:
                copied.append(f"{key}: {' '.join(gram)!r} (in {seed_ngrams[gram]})")
                break
    assert not copied, f"{path.name} shares {RUN}+ words in a row with a seed article:\n" + (
        "\n".join(copied)
    )


def test_the_checker_catches_a_copied_line(seed_ngrams: dict[tuple[str, ...], str]) -> None:
    """The comparison itself works: a line lifted from article 001 is caught."""
    lifted = (
        "Don't sit back on your heels if this position hurts your knees. "
        "Bring your buttocks as far back as you can."
    )
    assert any(g in seed_ngrams for g in ngrams(words(lifted)))
    assert not any(g in seed_ngrams for g in ngrams(words("Sit tall and breathe slowly.")))


@pytest.mark.parametrize("path", ROUTINE_FILES, ids=lambda p: p.name)
def test_routine_loads_with_the_project_loader(path: Path) -> None:
    loader = pytest.importorskip("coachtrack.loader", reason="coachtrack.loader not written yet")
    routine = loader.load_routine(path)
    assert routine.title and routine.steps


# Words espeak-ng says wrongly, found by listening (its phonemes, `espeak-ng -x`), and
# what the routines say instead. A verb read as its noun ("use" /ju:s/, "object"
# 'OB-ject), odd stress ("osteopressure" OSS-tee-OP-resher, German "hintere" with a
# stressed last "e"), or a wrong sound ("Vierfüßlerstand" with "st", not "scht").
MISREAD = {
    "en": (r"\bosteopressure\b", r"\buse (it|a|your)\b", r"\b(knees?|you) object\b"),
    "de": (r"\bhintere\b", r"Vierfüßler", r"Fußballen", r"Fußrücken", r"Faszien"),
}


@pytest.mark.parametrize("path", ROUTINE_FILES, ids=lambda p: p.name)
def test_no_spoken_line_has_a_word_the_engine_misreads(path: Path) -> None:
    data = load(path)
    traps = MISREAD.get(str(data.get("language", "en")), ())
    for key, lines in spoken_fields(data):
        for line in lines:
            found = [t for t in traps if re.search(t, line, re.IGNORECASE)]
            assert not found, f"{path.name}: {key}: {line!r} has {found}"
