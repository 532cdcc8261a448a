"""Hypothesis strategies for routines built straight from the model (no YAML)."""

from __future__ import annotations

from hypothesis import strategies as st

from coachtrack.model import DurationRange, Hold, Pause, Repeat, Routine, Say, Step

texts = st.text(alphabet="abcdefghij {}", min_size=1, max_size=30).map(
    lambda s: s.replace("{", "").replace("}", "").strip() or "x"
)
seconds = st.integers(min_value=1, max_value=400)


@st.composite
def ranges(draw: st.DrawFn) -> DurationRange:
    lo = draw(seconds) * 1000
    hi = lo + draw(st.sampled_from([0, 0, 15_000, 30_000]))
    return DurationRange(lo, hi)


def actions(depth: int = 0) -> st.SearchStrategy:
    leaf = st.one_of(
        st.builds(Say, st.lists(texts, min_size=1, max_size=3).map(tuple)),
        st.builds(
            Hold,
            ranges(),
            breathe=st.sampled_from([None, "intensify", "calm"]),
            remind=st.lists(texts, max_size=2).map(tuple),
            countdown=st.sampled_from([None, True, False]),
        ),
        st.builds(Pause, ranges()),
    )
    if depth >= 1:
        return leaf
    nested = st.builds(
        Repeat, st.integers(1, 4), st.lists(actions(depth + 1), min_size=1, max_size=3).map(tuple)
    )
    return st.one_of(leaf, nested)


@st.composite
def routines(draw: st.DrawFn) -> Routine:
    steps = draw(
        st.lists(
            st.builds(
                Step,
                texts,
                st.lists(actions(), min_size=1, max_size=4).map(tuple),
                sides=st.sampled_from([(), ("right", "left"), ("left",)]),
            ),
            min_size=1,
            max_size=4,
        )
    )
    return Routine(
        id="r",
        title=draw(texts),
        steps=tuple(steps),
        equipment=tuple(draw(st.lists(texts, max_size=2))),
        safety=draw(st.none() | texts),
        intro=tuple(draw(st.lists(texts, max_size=2))),
        outro=tuple(draw(st.lists(texts, max_size=2))),
    )
