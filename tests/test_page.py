"""Session pages: pure tests of the HTML/SVG strings, then the page driven in headless chromium.

The browser tests use Debian's `chromium` (installed by scripts/install-browser.sh when
missing) through Playwright, never a downloaded browser. Screenshots of each profile's
page land in tests/artifacts/ for a human to look at.
"""

from __future__ import annotations

import html.parser
import json
import math
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coachtrack import SAMPLE_RATE
from coachtrack.build import write_folder_files
from coachtrack.loader import load_routine
from coachtrack.page import index_page, session_page, timeline_svg, write_page
from coachtrack.phrases import ENGLISH
from coachtrack.profiles import get_profile
from coachtrack.script import make_script
from coachtrack.sounds import sound_set
from coachtrack.timeline import build_timeline, cue_sheet

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
HOSTILE = "</script><script>alert(1)</script>"
SVG_NS = "{http://www.w3.org/2000/svg}"


def tiny_sheet() -> dict[str, Any]:
    """Two sides of one step (holds with a cue and ticks), then a step with a pause."""
    speech = {"kind": "speech"}
    return {
        "routine": "tiny",
        "profile": "phone",
        "language": "en",
        "sample_rate": 22050,
        "duration_ms": 26000,
        "chapters": [
            {"title": "Reach (right)", "start_ms": 0, "end_ms": 10000},
            {"title": "Reach (left)", "start_ms": 10000, "end_ms": 19000},
            {"title": "Lie down", "start_ms": 19000, "end_ms": 26000},
        ],
        "events": [
            {"kind": "chime", "start_ms": 0, "end_ms": 400, "sound": "start"},
            speech | {"start_ms": 500, "end_ms": 2500, "text": "Step 1: Reach.", "step": 1,
                      "side": "right"},
            speech | {"start_ms": 2600, "end_ms": 3800, "text": "Start with the right side.",
                      "step": 1, "side": "right"},
            {"kind": "chime", "start_ms": 4200, "end_ms": 4600, "sound": "hold-start"},
            {"kind": "hold", "start_ms": 4200, "end_ms": 9200, "step": 1, "side": "right",
             "breathe": "intensify"},
            {"kind": "cue", "start_ms": 7300, "end_ms": 8500,
             "text": "Breathe out, and go a little deeper."},
            {"kind": "chime", "start_ms": 9200, "end_ms": 9600, "sound": "hold-end"},
            speech | {"start_ms": 10000, "end_ms": 11500, "text": "Now the left side.", "step": 1,
                      "side": "left"},
            speech | {"start_ms": 11600, "end_ms": 12800, "text": "Reach up again.", "step": 1,
                      "side": "left"},
            {"kind": "chime", "start_ms": 13200, "end_ms": 13600, "sound": "hold-start"},
            {"kind": "hold", "start_ms": 13200, "end_ms": 18200, "step": 1, "side": "left",
             "breathe": None},
            {"kind": "countdown", "start_ms": 15200, "end_ms": 15300, "sound": "tick"},
            {"kind": "countdown", "start_ms": 16200, "end_ms": 16300, "sound": "tick"},
            {"kind": "countdown", "start_ms": 17200, "end_ms": 17300, "sound": "tick"},
            {"kind": "chime", "start_ms": 18200, "end_ms": 18600, "sound": "hold-end"},
            speech | {"start_ms": 19000, "end_ms": 20500, "text": "Step 2: Lie down.", "step": 2,
                      "side": None},
            {"kind": "pause", "start_ms": 20800, "end_ms": 23800, "step": 2, "side": None},
            speech | {"start_ms": 24000, "end_ms": 25000, "text": "Well done.", "step": None,
                      "side": None},
            {"kind": "chime", "start_ms": 25200, "end_ms": 25600, "sound": "end"},
        ],
    }  # fmt: skip


def routine_sheet(profile: str) -> tuple[str, dict[str, Any]]:
    """The shipped hamstring routine planned for `profile`, with made-up clip lengths."""
    routine = load_routine(ROOT / "routines" / "hamstring-cramps.yaml")
    chosen = get_profile(profile)
    script = make_script(routine, chosen, ENGLISH)
    clips = {
        t: round((300 + zlib.crc32(t.encode()) % 700 + 60 * len(t)) * SAMPLE_RATE / 1000)
        for t in script.texts()
    }
    sounds = {k: len(v) for k, v in sound_set(chosen.chimes, SAMPLE_RATE).items()}
    timeline = build_timeline(script, clips, sounds, SAMPLE_RATE)
    return routine.title, cue_sheet(timeline)


def embedded_json(page: str, element_id: str) -> Any:
    match = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', page)
    assert match, element_id
    return json.loads(match.group(1))


class _Tags(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.starts: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.starts.append((tag, dict(attrs)))


def tags_of(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(page)
    return parser.starts


# --- pure -----------------------------------------------------------------------------------


def test_page_embeds_the_cue_sheet_and_plays_the_track_beside_it() -> None:
    sheet = tiny_sheet()
    page = session_page(sheet, title="Tiny routine", audio_file="tiny.mp3", profile="phone")
    assert embedded_json(page, "cue-sheet") == sheet
    audio = [attrs for tag, attrs in tags_of(page) if tag == "audio"]
    assert audio == [audio[0]] and audio[0]["src"] == "tiny.mp3"
    assert audio[0]["preload"] == "metadata"
    chapters = [a for tag, a in tags_of(page) if a.get("data-testid") == "chapter"]
    assert [a["data-start-ms"] for a in chapters] == ["0", "10000", "19000"]
    assert "<title>Tiny routine</title>" in page


def test_user_text_cannot_break_out_of_the_page() -> None:
    sheet = tiny_sheet()
    sheet["events"][1]["text"] = HOSTILE
    sheet["chapters"][0]["title"] = '<img src=x onerror="alert(2)">'
    page = session_page(
        sheet, title="</title><script>alert(3)</script>", audio_file='a"b.mp3', profile="gym"
    )
    starts = tags_of(page)
    assert [tag for tag, _ in starts].count("script") == 3  # two JSON blocks and the code
    assert not [tag for tag, _ in starts if tag == "img"]
    assert "alert(1)</script>" not in page and "alert(3)</script>" not in page
    assert embedded_json(page, "cue-sheet") == sheet
    assert embedded_json(page, "page-data")["title"] == "</title><script>alert(3)</script>"
    assert [a["src"] for t, a in starts if t == "audio"] == ["a%22b.mp3"]


def test_page_refers_to_nothing_outside_its_folder() -> None:
    title, sheet = routine_sheet("gym")
    page = session_page(sheet, title=title, audio_file="hamstring-cramps.mp3", profile="gym")
    for _, attrs in tags_of(page):
        for name in ("src", "href", "action", "poster", "data"):
            value = attrs.get(name)
            if value is not None:
                assert value.startswith("data:") or ":" not in value, value
    without_svg_ns = page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "http://" not in without_svg_ns and "https://" not in without_svg_ns
    assert "@import" not in page and "url(" not in page


def test_timeline_svg_is_well_formed_and_draws_every_event() -> None:
    _, sheet = routine_sheet("phone")
    picture = timeline_svg(sheet)
    root = ET.fromstring(picture.encode())
    assert root.tag == f"{SVG_NS}svg"
    rects = root.findall(f".//{SVG_NS}rect")
    for kind in ("speech", "cue", "hold", "chime", "countdown"):
        drawn = [r for r in rects if f"k-{kind}" in r.get("class", "").split()]
        assert len(drawn) == sum(e["kind"] == kind for e in sheet["events"]), kind
    holds = [e for e in sheet["events"] if e["kind"] == "hold"]
    first = next(r for r in rects if "k-hold" in r.get("class", ""))
    scale = (1200 - 32) / sheet["duration_ms"]
    assert float(first.get("x", "")) == pytest.approx(16 + holds[0]["start_ms"] * scale, abs=0.01)
    assert float(first.get("width", "")) == pytest.approx(
        (holds[0]["end_ms"] - holds[0]["start_ms"]) * scale, abs=0.02
    )
    hostile = tiny_sheet()
    hostile["events"][1]["text"] = HOSTILE + " & <b>"
    ET.fromstring(timeline_svg(hostile).encode())  # still well-formed


def test_index_lists_every_track_with_its_length() -> None:
    rows = [("a.html", "Alpha & <Omega>", 125_400), ("b c.html", "Bravo", 3_725_000)]
    page = index_page(rows, profile="bedside")
    links = [attrs["href"] for tag, attrs in tags_of(page) if tag == "a"]
    assert links == ["a.html", "b%20c.html"]
    assert "Alpha &amp; &lt;Omega&gt;" in page and "<Omega>" not in page
    assert ">2:05</time>" in page and ">1:02:05</time>" in page


def test_index_shows_a_dash_for_a_length_it_could_not_read() -> None:
    page = index_page([("a.html", "Alpha", 125_400), ("x.html", "x", -1)], profile="phone")
    assert ">2:05</time>" in page and "0:00" not in page
    assert "length unknown" in page and "2 tracks · 2:05" in page


def test_folder_files_list_a_damaged_track_rather_than_fail(tmp_path: Path) -> None:
    # A half-copied MP3 with its page beside it, in a folder coachtrack writes to.
    (tmp_path / "broken.mp3").write_bytes(b"\0" * 100)
    (tmp_path / "broken.html").write_text("<p>old</p>", encoding="utf-8")
    write_folder_files(tmp_path)
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert 'href="broken.html">broken</a>' in page and "length unknown" in page
    assert "broken.mp3" in (tmp_path / "playlist.m3u8").read_text(encoding="utf-8")


def test_folder_files_keep_a_user_s_own_index_and_list_any_case_of_suffix(
    tmp_path: Path,
) -> None:
    (tmp_path / "Loud.MP3").write_bytes(b"\0" * 100)
    (tmp_path / "Loud.html").write_text("<p>old</p>", encoding="utf-8")
    write_folder_files(tmp_path)
    assert 'href="Loud.html"' in (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "Loud.MP3" in (tmp_path / "playlist.m3u8").read_text(encoding="utf-8")
    (tmp_path / "index.html").write_text("<p>their page</p>", encoding="utf-8")
    write_folder_files(tmp_path)
    assert (tmp_path / "index.html").read_text(encoding="utf-8") == "<p>their page</p>"


def test_page_speaks_the_routine_language_and_survives_an_empty_sheet() -> None:
    sheet = tiny_sheet() | {"language": "de"}
    page = session_page(sheet, title="Waden", audio_file="w.mp3", profile="bedside")
    assert '<html lang="de">' in page and "Sekunden" in page and "Kapitel" in page
    empty = {"routine": "x", "profile": "gym", "language": "xx", "duration_ms": 0}
    assert "seconds left" in session_page(empty, title="x", audio_file="x.mp3", profile="odd")
    ET.fromstring(timeline_svg(empty).encode())
    assert "0 tracks" in index_page([], profile="gym")


def test_write_page_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "r.html"
    write_page(target, "<p>one</p>")
    write_page(target, "<p>two</p>")
    assert target.read_text(encoding="utf-8") == "<p>two</p>"

    def broken_replace(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        write_page(target, "<p>three</p>")
    assert target.read_text(encoding="utf-8") == "<p>two</p>"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]


# --- in a real browser ----------------------------------------------------------------------

# Page-side checks are functions, not bare expressions: Playwright would `eval` those, and
# the page's Content-Security-Policy (rightly) forbids eval.
AUDIO = "document.querySelector('audio')"
LOADED = f"() => {AUDIO}.readyState >= 1"
SETTLED = f"() => !{AUDIO}.seeking"
PLAYING = f"() => !{AUDIO}.paused"
PAUSED = f"() => {AUDIO}.paused"
NOW = f"() => {AUDIO}.currentTime"

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--mute-audio",
    "--autoplay-policy=no-user-gesture-required",
]

# Seek the page's audio and wait until the page has drawn that moment.
SEEK = """async (seconds) => {
  const audio = document.querySelector("audio");
  if (audio.readyState < 1) {
    await new Promise((ok) => audio.addEventListener("loadedmetadata", ok, { once: true }));
  }
  await new Promise((ok) => {
    audio.addEventListener("seeked", ok, { once: true });
    audio.currentTime = seconds;
  });
  await new Promise((ok) => requestAnimationFrame(() => ok()));
}"""

# What the page shows right now.
READ = """() => {
  const q = (id) => document.querySelector('[data-testid="' + id + '"]');
  const shown = (id) => (q(id).hidden || q(id).closest("[hidden]") ? null : q(id).textContent);
  return {
    ms: document.querySelector("audio").currentTime * 1000,
    step: q("step").dataset.step,
    stepTitle: q("step").querySelector(".steptitle").textContent,
    side: shown("side"),
    countdown: shown("countdown"),
    next: shown("next"),
    spoken: q("spoken").textContent,
    cue: shown("cue"),
    phase: shown("phase"),
    part: q("part").textContent,
    current: Array.from(document.querySelectorAll('[data-testid="chapter"]'))
      .findIndex((b) => b.getAttribute("aria-current") === "step"),
  };
}"""

SWEEP = (
    "async (times) => { const seek = "
    + SEEK
    + "; const read = "
    + READ
    + "; const out = []; for (const t of times) { await seek(t / 1000); out.push(read()); }"
    " return out; }"
)


def expected_at(sheet: dict[str, Any], ms: float) -> dict[str, Any]:
    """What the page should show at `ms`, worked out from the cue sheet alone."""
    chapters = sheet["chapters"]
    index = max(i for i, c in enumerate(chapters) if c["start_ms"] <= ms or i == 0)
    chapter = chapters[index]
    events = sheet["events"]
    inside = [
        e for e in events if e["kind"] in ("hold", "pause") and e["start_ms"] <= ms < e["end_ms"]
    ]
    stepped = [
        e
        for e in events
        if e.get("step") is not None and chapter["start_ms"] <= e["start_ms"] < chapter["end_ms"]
    ]
    side = stepped[0]["side"] if stepped else None
    out: dict[str, Any] = {
        "current": index,
        "step": str(stepped[0]["step"]) if stepped else "",
        "stepTitle": chapter["title"].removesuffix(f" ({side})") if side else chapter["title"],
        "side": side,
        "countdown": None,
        "next": None,
    }
    if inside:
        wait = inside[0]
        out["countdown"] = str(math.ceil((wait["end_ms"] - ms) / 1000))
        after = [e for e in events if e["kind"] == "speech" and e["start_ms"] >= wait["end_ms"]]
        out["next"] = after[0]["text"] if after else "End of the session"
    return out


def mp3(path: Path, seconds: float) -> Path:
    """A silent MP3 of the given length (small and quick: 8 kHz, 8 kbps)."""
    from coachtrack.tools import ffmpeg_path

    subprocess.run(
        [ffmpeg_path(), "-v", "error", "-y", "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono",
         "-t", f"{seconds:.3f}", "-c:a", "libmp3lame", "-b:a", "8k", str(path)],
        check=True,
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's chromium under Playwright; installed by the project's script when missing."""
    executable = shutil.which("chromium")
    if executable is None:
        subprocess.run([str(ROOT / "scripts" / "install-browser.sh")], check=False)
        executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("chromium is missing and scripts/install-browser.sh could not install it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the tiny page and the hamstring routine's page for every profile."""
    folder = tmp_path_factory.mktemp("site")
    sheet = tiny_sheet()
    mp3(folder / "tiny.mp3", sheet["duration_ms"] / 1000)
    (folder / "tiny.json").write_text(json.dumps(sheet))
    write_page(
        folder / "tiny.html",
        session_page(sheet, title="Tiny routine", audio_file="tiny.mp3", profile="phone"),
    )
    longest = 0
    for profile in ("phone", "bedside", "gym"):
        title, routine = routine_sheet(profile)
        longest = max(longest, routine["duration_ms"])
        (folder / f"{profile}.json").write_text(json.dumps(routine))
        page = session_page(routine, title=title, audio_file="hamstring.mp3", profile=profile)
        write_page(folder / f"{profile}.html", page)
    mp3(folder / "hamstring.mp3", longest / 1000 + 1)
    return folder


@pytest.fixture
def open_page(chromium: Any, site: Path) -> Iterator[Any]:
    """Open a page of the site; fails the test on any script error or console error."""
    contexts: list[Any] = []
    problems: list[str] = []

    def opener(name: str, *, width: int = 1280, height: int = 900, offline: bool = False) -> Any:
        context = chromium.new_context(viewport={"width": width, "height": height})
        context.set_offline(offline)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on(
            "console",
            lambda msg: problems.append(f"console: {msg.text}") if msg.type == "error" else None,
        )
        page.goto((site / name).as_uri())
        page.wait_for_function(LOADED, timeout=10_000)
        return page

    yield opener
    for context in contexts:
        context.close()
    assert not problems


def sheet_of(site: Path, name: str) -> dict[str, Any]:
    return dict(json.loads((site / f"{name}.json").read_text()))


@pytest.mark.browser
@pytest.mark.parametrize("ms", [4_200, 5_000, 7_700, 9_150, 13_250, 14_500, 17_900, 21_000])
def test_inside_a_hold_the_page_shows_step_side_and_seconds_left(
    open_page: Any, site: Path, ms: int
) -> None:
    page = open_page("tiny.html", width=420, height=900)
    page.evaluate(SEEK, ms / 1000)
    shown = page.evaluate(READ)
    want = expected_at(sheet_of(site, "tiny"), shown["ms"])
    assert {k: shown[k] for k in want} == want
    assert shown["countdown"] is not None
    assert shown["phase"] == ("Get into position" if ms > 20_000 else "Hold")
    if 7_300 <= ms < 8_500:
        assert shown["cue"] == "Breathe out, and go a little deeper."


@pytest.mark.browser
def test_gym_page_matches_the_cue_sheet_at_any_moment(open_page: Any, site: Path) -> None:
    sheet = sheet_of(site, "gym")
    times: list[float] = []
    for event in sheet["events"]:
        if event["kind"] in ("hold", "pause"):
            start, end = event["start_ms"], event["end_ms"]
            times += [start + 1.5, (start + end) // 2 + 0.5, end - 400.5, end - 1.5]
        elif event["kind"] == "speech":
            times.append((event["start_ms"] + event["end_ms"]) // 2 + 0.5)
    times += [0.5, sheet["duration_ms"] - 50.5]
    page = open_page("gym.html")
    seen = page.evaluate(SWEEP, times)
    assert len(seen) == len(times)
    for shown in seen:
        want = expected_at(sheet, shown["ms"])
        assert {k: shown[k] for k in want} == want, shown["ms"]
    assert any(s["countdown"] for s in seen) and any(s["countdown"] is None for s in seen)


@pytest.mark.browser
def test_clicking_a_chapter_seeks_the_audio(open_page: Any, site: Path) -> None:
    sheet = sheet_of(site, "gym")
    page = open_page("gym.html")
    chapters = page.locator('[data-testid="chapter"]')
    assert chapters.count() == len(sheet["chapters"])
    for index in (3, 1, 5):
        chapters.nth(index).click()
        page.wait_for_function(SETTLED)
        seconds = page.evaluate(NOW)
        assert seconds == pytest.approx(sheet["chapters"][index]["start_ms"] / 1000, abs=0.005)
        assert chapters.nth(index).get_attribute("aria-current") == "step"
        assert page.evaluate(READ)["stepTitle"] in sheet["chapters"][index]["title"]


@pytest.mark.browser
def test_clicking_the_timeline_strip_seeks_there(open_page: Any, site: Path) -> None:
    sheet = sheet_of(site, "phone")
    page = open_page("phone.html")
    strip = page.get_by_test_id("timeline")
    box = strip.bounding_box()
    strip.click(position={"x": box["width"] * 0.75, "y": box["height"] / 2})
    page.wait_for_function(SETTLED)
    seconds = page.evaluate(NOW)
    assert seconds * 1000 == pytest.approx(sheet["duration_ms"] * 0.75, rel=0.01)
    playhead = float(page.get_by_test_id("playhead").get_attribute("x1") or 0)
    assert playhead == pytest.approx(750, abs=8)


@pytest.mark.browser
def test_keyboard_plays_pauses_and_jumps_between_chapters(open_page: Any, site: Path) -> None:
    sheet = sheet_of(site, "phone")
    starts = [c["start_ms"] / 1000 for c in sheet["chapters"]]
    page = open_page("phone.html", width=400, height=500)  # short: the page can scroll
    page.keyboard.press("Space")
    page.wait_for_function(PLAYING)
    page.keyboard.press("Space")
    page.wait_for_function(PAUSED)
    assert page.evaluate("window.scrollY") == 0
    page.evaluate(SEEK, starts[2] + 30)
    page.keyboard.press("ArrowRight")
    assert page.evaluate(NOW) == pytest.approx(starts[3], abs=0.005)
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    assert page.evaluate(NOW) == pytest.approx(starts[1], abs=0.005)
    # Space on a focused chapter button toggles playback once and does not seek.
    page.get_by_test_id("chapter").nth(4).focus()
    page.keyboard.press("Space")
    page.wait_for_function(PLAYING)
    page.keyboard.press("Space")
    page.wait_for_function(PAUSED)
    assert page.evaluate(NOW) < starts[2]


@pytest.mark.browser
def test_while_playing_the_page_follows_every_frame(open_page: Any) -> None:
    page = open_page("phone.html")
    counts = page.evaluate(
        """async () => {
          const audio = document.querySelector("audio");
          const head = document.querySelector('[data-testid="playhead"]');
          let updates = 0;
          audio.addEventListener("timeupdate", () => updates++);
          await audio.play();
          const positions = new Set();
          const until = performance.now() + 800;
          while (performance.now() < until) {
            await new Promise((ok) => requestAnimationFrame(ok));
            positions.add(head.getAttribute("x1"));
          }
          audio.pause();
          return { updates, positions: positions.size, time: audio.currentTime };
        }"""
    )
    assert counts["time"] > 0.3
    assert counts["positions"] > counts["updates"] + 2


@pytest.mark.browser
def test_the_page_loads_nothing_from_the_network(chromium: Any, site: Path) -> None:
    context = chromium.new_context()
    context.set_offline(True)
    requested: list[str] = []
    context.on("request", lambda request: requested.append(request.url))
    page = context.new_page()
    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text) if msg.type == "error" else None)
    page.goto((site / "gym.html").as_uri())
    page.wait_for_function(LOADED, timeout=10_000)
    page.evaluate(SEEK, 100)
    page.get_by_test_id("chapter").nth(2).click()
    page.keyboard.press("Space")
    page.wait_for_function(PLAYING)
    page.wait_for_timeout(300)
    resources = page.evaluate("performance.getEntriesByType('resource').map((entry) => entry.name)")
    context.close()
    allowed = {(site / "gym.html").as_uri(), (site / "hamstring.mp3").as_uri()}
    assert set(requested) | set(resources) <= allowed
    assert (site / "gym.html").as_uri() in requested
    assert not violations


@pytest.mark.browser
def test_hostile_text_shows_as_text(chromium: Any, tmp_path: Path) -> None:
    sheet = tiny_sheet()
    sheet["events"][1]["text"] = HOSTILE
    sheet["chapters"][0]["title"] = "<img src=x onerror=alert(2)>"
    mp3(tmp_path / "t.mp3", 2)
    title = "<b>Bold</b>"
    write_page(
        tmp_path / "t.html", session_page(sheet, title=title, audio_file="t.mp3", profile="phone")
    )
    page = chromium.new_page()
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto((tmp_path / "t.html").as_uri())
    page.evaluate(SEEK, 1.0)
    assert page.get_by_test_id("spoken").text_content() == HOSTILE
    assert page.get_by_test_id("title").text_content() == title
    assert page.get_by_test_id("chapter").first.text_content().startswith("<img src=x")
    assert page.locator("img").count() == 0
    page.close()
    assert not dialogs


# Relative luminance (WCAG) of a computed CSS colour; a translucent one counts as dimmed.
LUMINANCE = """(css) => {
  const m = css.match(/rgba?\\(([^)]+)\\)/);
  if (!m) return 0;
  const [r, g, b, a = 1] = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
  const lin = (c) => {
    c = (c / 255) * a;
    return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
}"""

# The brightest colour the visible page paints (backgrounds, text, SVG fills, borders).
BRIGHTEST = (
    "() => { const lum = "
    + LUMINANCE
    + """;
  let brightest = 0, where = "";
  for (const node of document.querySelectorAll("body, body *")) {
    if (!node.getClientRects().length) continue;
    const style = getComputedStyle(node);
    const hasText = Array.from(node.childNodes)
      .some((c) => c.nodeType === 3 && c.textContent.trim());
    const paints = [style.backgroundColor];
    if (hasText) paints.push(style.color);
    if (node instanceof SVGElement) paints.push(style.fill, style.stroke);
    if (parseFloat(style.borderTopWidth) > 0) paints.push(style.borderTopColor);
    for (const paint of paints) {
      const l = lum(paint);
      if (l > brightest) { brightest = l; where = node.outerHTML.slice(0, 80) + " " + paint; }
    }
  }
  return { brightest, where };
}"""
)

# WCAG contrast ratio of an element's text against the background it sits on.
CONTRAST = (
    "(id) => { const lum = "
    + LUMINANCE
    + """;
  let node = document.querySelector('[data-testid="' + id + '"]');
  const fg = lum(getComputedStyle(node).color);
  const clear = (n) => getComputedStyle(n).backgroundColor === "rgba(0, 0, 0, 0)";
  while (node && clear(node)) node = node.parentElement;
  const bg = lum(getComputedStyle(node || document.documentElement).backgroundColor);
  return (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
}"""
)


@pytest.mark.browser
@pytest.mark.parametrize(
    ("profile", "width", "height"), [("phone", 390, 844), ("bedside", 390, 844), ("gym", 1280, 800)]
)
def test_screenshot_of_each_profile(
    open_page: Any, site: Path, profile: str, width: int, height: int
) -> None:
    sheet = sheet_of(site, profile)
    holds = [e for e in sheet["events"] if e["kind"] == "hold"]
    hold = holds[min(3, len(holds) - 1)]
    cues = [e for e in sheet["events"] if e["kind"] == "cue" and hold["start_ms"] <= e["start_ms"]]
    moment = (cues[0]["start_ms"] + 400) if cues else hold["start_ms"] + 5_000
    page = open_page(f"{profile}.html", width=width, height=height)
    page.evaluate(SEEK, moment / 1000)
    assert page.evaluate(READ)["countdown"] == str(math.ceil((hold["end_ms"] - moment) / 1000))
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # no sideways scroll
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"page-{profile}.png"), full_page=True)
    if profile == "bedside":
        colours = page.evaluate(BRIGHTEST)
        assert colours["brightest"] < 0.25, colours["where"]  # dim: nothing near white
    if profile == "gym":
        for part in ("countdown", "step", "spoken", "side"):
            assert page.evaluate(CONTRAST, part) >= 7, part
        size = page.evaluate(
            "parseFloat(getComputedStyle(document.querySelector('[data-testid=countdown]')).fontSize)"
        )
        assert size >= 120
