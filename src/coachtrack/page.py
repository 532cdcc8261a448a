"""Session pages: a self-contained HTML player beside each track, its timeline as SVG, an index.

Pure: values in, strings out. Only `write_page` touches the disk. A page loads nothing
from anywhere but its own folder (no fonts, no CDN; a Content-Security-Policy says so
to the browser too), so it works from `file://` with the network off. Every text from
a routine reaches the page either HTML-escaped or inside the embedded JSON cue sheet,
which the page's script only ever puts on screen through `textContent`.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from coachtrack import files

# --- words on the page ---------------------------------------------------------------------

_LABELS: dict[str, dict[str, str]] = {
    "en": {
        "step": "Step {n} of {total}",
        "part": "Part {n} of {total}",
        "hold": "Hold",
        "pause": "Get into position",
        "intro": "Introduction",
        "closing": "Closing",
        "done": "Finished",
        "left": "seconds left",
        "next": "Next",
        "end": "End of the session",
        "play": "Play",
        "pause_button": "Pause",
        "prev_chapter": "Previous chapter",
        "next_chapter": "Next chapter",
        "chapters": "Chapters",
        "timeline": "Timeline: click to jump there",
        "cannot_play": "Cannot play {file}: keep it in the same folder as this page.",
        "keys": "Space: play or pause. Arrow keys: previous or next chapter.",
        "speech": "speech",
        "cue": "cues",
        "holds": "holds",
        "pauses": "pauses",
        "chime": "chimes",
        "countdown": "countdown",
        "music": "music",
    },
    "de": {
        "step": "Schritt {n} von {total}",
        "part": "Teil {n} von {total}",
        "hold": "Halten",
        "pause": "In Position gehen",
        "intro": "Einleitung",
        "closing": "Abschluss",
        "done": "Fertig",
        "left": "Sekunden",
        "next": "Danach",
        "end": "Ende der Routine",
        "play": "Abspielen",
        "pause_button": "Anhalten",
        "prev_chapter": "Voriges Kapitel",
        "next_chapter": "Nächstes Kapitel",
        "chapters": "Kapitel",
        "timeline": "Ablauf: klicken, um dorthin zu springen",
        "cannot_play": (
            "{file} lässt sich nicht abspielen: lege es in denselben Ordner wie diese Seite."
        ),
        "keys": "Leertaste: abspielen oder anhalten. Pfeiltasten: voriges oder nächstes Kapitel.",
        "speech": "Ansagen",
        "cue": "Hinweise",
        "holds": "Halten",
        "pauses": "Pausen",
        "chime": "Klänge",
        "countdown": "Countdown",
        "music": "Musik",
    },
}

# --- looks, one per profile ----------------------------------------------------------------

# Each theme sets the same CSS variables. Bedside keeps everything dim and warm, with no
# white anywhere (a bright screen wakes a partner); gym is black and yellow, readable
# across a room; phone is a calm light page.
_THEMES: dict[str, dict[str, str]] = {
    "phone": {
        "scheme": "light",
        "bg": "#f3f1ec",
        "panel": "#ffffff",
        "text": "#1e2328",
        "muted": "#5b6570",
        "accent": "#0f6e68",
        "link": "#0f6e68",
        "on-accent": "#ffffff",
        "line": "#d8d3ca",
        "count": "#0f6e68",
        "speech": "#4a7fb5",
        "cue": "#4f9d7e",
        "hold": "#e0a030",
        "pause": "#a3abb4",
        "chime": "#c4572e",
        "countdown": "#7b5ea7",
        "music": "#d6cfc3",
        "chapter-band": "#ece8e1",
        "playhead": "#1e2328",
        "played": "rgba(30,35,40,.10)",
        "scale": "1",
    },
    "bedside": {
        "scheme": "dark",
        "bg": "#0a0705",
        "panel": "#120d0a",
        "text": "#8f7156",
        "muted": "#5f4b3a",
        "accent": "#6e4826",
        "link": "#9a7452",
        "on-accent": "#0a0705",
        "line": "#2a1f17",
        "count": "#9a7452",
        "speech": "#4b3b2d",
        "cue": "#414a33",
        "hold": "#6a4a24",
        "pause": "#3a3129",
        "chime": "#6b3522",
        "countdown": "#4d3a4a",
        "music": "#241b14",
        "chapter-band": "#150f0b",
        "playhead": "#9a7452",
        "played": "rgba(154,116,82,.10)",
        "scale": "1",
    },
    "gym": {
        "scheme": "dark",
        "bg": "#000000",
        "panel": "#0d0d0d",
        "text": "#ffffff",
        "muted": "#d2d2d2",
        "accent": "#ffd400",
        "link": "#ffd400",
        "on-accent": "#000000",
        "line": "#444444",
        "count": "#ffd400",
        "speech": "#3da5ff",
        "cue": "#31d67b",
        "hold": "#ffd400",
        "pause": "#9a9a9a",
        "chime": "#ff5a36",
        "countdown": "#ff9f1c",
        "music": "#3a3a3a",
        "chapter-band": "#161616",
        "playhead": "#ffffff",
        "played": "rgba(255,255,255,.16)",
        "scale": "1.3",
    },
}

# Bands of the strip, as (top, height) fractions of its height, drawn in this order.
_BANDS: dict[str, tuple[float, float]] = {
    "music": (0.00, 0.06),
    "hold": (0.60, 0.30),
    "pause": (0.60, 0.30),
    "speech": (0.08, 0.30),
    "cue": (0.40, 0.18),
    "countdown": (0.90, 0.08),
    "chime": (0.58, 0.40),
}
# Fills of the standalone picture; the page recolours the same shapes with its theme.
_KIND_FILL = {kind: _THEMES["phone"][kind] for kind in _BANDS}
_LEGEND = (
    ("speech", "speech"),
    ("cue", "cue"),
    ("hold", "holds"),
    ("pause", "pauses"),
    ("chime", "chime"),
    ("countdown", "countdown"),
)

_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data:; media-src 'self' file: blob:; base-uri 'none'; form-action 'none'"
)


def _theme(profile: str) -> dict[str, str]:
    return _THEMES.get(profile, _THEMES["phone"])


def _labels(language: str) -> dict[str, str]:
    return _LABELS.get(language.split("-")[0].lower(), _LABELS["en"])


# --- public API ----------------------------------------------------------------------------


def session_page(sheet: Mapping[str, Any], *, title: str, audio_file: str, profile: str) -> str:
    """The whole self-contained session page for one track, as HTML."""
    language = str(sheet.get("language") or "en")
    labels = _labels(language)
    theme = _theme(profile)
    esc = _esc
    chapters = "\n".join(
        f'<li><button type="button" data-testid="chapter" '
        f'data-start-ms="{int(c["start_ms"])}"><span class="ct">{esc(c["title"])}</span>'
        f"<time>{_clock(int(c['start_ms']))}</time></button></li>"
        for c in sheet.get("chapters", [])
    )
    legend = "".join(
        f'<span><i class="sw k-{kind}"></i>{esc(labels[key])}</span>' for kind, key in _LEGEND
    )
    audio_src = esc(quote(audio_file))
    duration_ms = int(sheet.get("duration_ms", 0))
    page_data = _json_for_html({"title": title, "profile": profile, "labels": labels})
    body = f"""<header>
<h1 data-testid="title">{esc(title)}</h1>
<p class="meta"><span data-testid="part"></span><span class="dot" aria-hidden="true"></span>
<span>{esc(profile)}</span></p>
</header>
<section class="now">
<p class="phase" data-testid="phase" hidden></p>
<h2 class="step" data-testid="step"><span class="stepno"></span><span class="steptitle"></span></h2>
<p class="side" data-testid="side" hidden></p>
<div class="holdbox" data-testid="hold" hidden>
<p class="count"><span data-testid="countdown"></span>
<span class="unit">{esc(labels["left"])}</span></p>
<p class="upnext"><span class="label">{esc(labels["next"])}:</span>
<span data-testid="next"></span></p>
</div>
<p class="spoken" data-testid="spoken" aria-live="polite"></p>
<p class="cue" data-testid="cue" aria-live="polite" hidden></p>
<p class="error" data-testid="error" role="alert" hidden>
{esc(labels["cannot_play"].format(file=audio_file))}</p>
</section>
<section class="player">
<div class="controls">
{_button("prev-chapter", labels["prev_chapter"], _ICON_PREV)}
{_button("play", labels["play"], _ICON_PLAY + _ICON_PAUSE, extra_class=" play")}
{_button("next-chapter", labels["next_chapter"], _ICON_NEXT)}
<span class="clock" data-testid="clock">{_clock(0)} / {_clock(duration_ms)}</span>
</div>
<figure class="strip">
{_strip_svg(sheet, labels)}
<figcaption class="legend">{legend}</figcaption>
</figure>
<p class="keys">{esc(labels["keys"])}</p>
</section>
<nav class="chapters" aria-label="{esc(labels["chapters"])}">
<h2>{esc(labels["chapters"])}</h2>
<ol data-testid="chapters">
{chapters}
</ol>
</nav>
<audio id="audio" data-testid="audio" src="{audio_src}" preload="metadata"></audio>
<script type="application/json" id="cue-sheet">{_json_for_html(sheet)}</script>
<script type="application/json" id="page-data">{page_data}</script>
<script>{_JS}</script>"""
    return _document(
        lang=language, title=title, theme=theme, body=body, body_class=f"page {profile}"
    )


def timeline_svg(sheet: Mapping[str, Any]) -> str:
    """The timeline strip of a cue sheet as a standalone SVG picture."""
    width, margin, strip_top, strip_h = 1200, 16, 40, 110
    inner = width - 2 * margin
    duration = max(int(sheet.get("duration_ms", 0)), 1)
    labels = _labels(str(sheet.get("language") or "en"))
    parts = [
        f'<rect width="{width}" height="230" fill="#ffffff"/>',
        f'<text x="{margin}" y="24" font-size="15" font-weight="bold">'
        f"{_esc(sheet.get('routine', ''))} · {_esc(sheet.get('profile', ''))} · "
        f"{_clock(duration)}</text>",
        *_shapes(sheet, x0=margin, width=inner, y0=strip_top, height=strip_h, min_w=1.0),
        f'<rect x="{margin}" y="{strip_top}" width="{inner}" height="{strip_h}" fill="none" '
        'stroke="#8a8a8a" stroke-width="1"/>',
    ]
    axis_y = strip_top + strip_h
    for n, chapter in enumerate(sheet.get("chapters", []), start=1):
        left = margin + inner * int(chapter["start_ms"]) / duration
        right = margin + inner * int(chapter["end_ms"]) / duration
        label = _fit(f"{n} {chapter['title']}", (right - left - 6) / 6.6) or str(n)
        parts.append(
            f'<text x="{_n(left + 3)}" y="{axis_y + 36}" font-size="11" fill="#333333">'
            f"<title>{_esc(chapter['title'])}</title>{_esc(label)}</text>"
        )
    tick_ms = _tick_ms(duration)
    for t in range(0, duration + 1, tick_ms):
        x = margin + inner * t / duration
        anchor = "start" if t == 0 else "end" if x > width - margin - 20 else "middle"
        parts.append(
            f'<line x1="{_n(x)}" x2="{_n(x)}" y1="{axis_y}" y2="{axis_y + 6}" stroke="#555555"/>'
            f'<text x="{_n(x)}" y="{axis_y + 18}" font-size="11" fill="#555555" '
            f'text-anchor="{anchor}">{_clock(t)}</text>'
        )
    x = float(margin)
    for kind, key in (*_LEGEND, ("music", "music")):
        parts.append(
            f'<rect x="{_n(x)}" y="200" width="14" height="14" fill="{_KIND_FILL[kind]}"/>'
            f'<text x="{_n(x + 19)}" y="212" font-size="13" fill="#222222">'
            f"{_esc(labels[key])}</text>"
        )
        x += 30 + 8 * len(labels[key])
    body = "\n".join(parts)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="230" '
        f'viewBox="0 0 {width} 230" font-family="DejaVu Sans, Arial, sans-serif">\n'
        f"{body}\n</svg>\n"
    )


def index_page(tracks: Sequence[tuple[str, str, int]], *, profile: str) -> str:
    """The profile folder's index: every track's page, title and length."""
    rows = "\n".join(
        f'<tr><td><a data-testid="track" href="{_esc(quote(page))}">{_esc(title)}</a></td>'
        f'<td class="len">{_length(ms)}</td></tr>'
        for page, title, ms in tracks
    )
    total = sum(max(ms, 0) for _, _, ms in tracks)
    body = f"""<header>
<h1 data-testid="title">coachtrack · {_esc(profile)}</h1>
<p class="meta">{len(tracks)} {"track" if len(tracks) == 1 else "tracks"} · {_clock(total)}</p>
</header>
<table class="tracks">
<thead><tr><th scope="col">Track</th><th scope="col" class="len">Length</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>"""
    return _document(
        lang="en",
        title=f"coachtrack · {profile}",
        theme=_theme(profile),
        body=body,
        body_class=f"index {profile}",
    )


_GENERATOR = '<meta name="generator" content="coachtrack">'  # how `is_ours` knows a page


def is_ours(path: Path) -> bool:
    """Whether the page at `path` was written by coachtrack (its generator tag says so)."""
    try:
        with path.open(encoding="utf-8", errors="replace") as stream:
            head = stream.read(4096)
    except OSError:
        return False
    return _GENERATOR in head


def write_page(path: Path, html: str) -> None:
    """Write a page (or picture) atomically: a dot-prefixed temp file beside it, then rename."""
    files.write_text(path, html)


# --- pieces --------------------------------------------------------------------------------


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _n(value: float) -> str:
    """A coordinate with at most two decimals and no trailing zeros."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _length(ms: int) -> str:
    """A track's length as a `<time>`, or a dash when it is unknown (negative)."""
    if ms < 0:
        return '<span title="length unknown: the file could not be read">–</span>'
    return f'<time datetime="PT{ms // 1000}S">{_clock(ms)}</time>'


def _clock(ms: int) -> str:
    """`M:SS`, or `H:MM:SS` from an hour on."""
    seconds = max(ms, 0) // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _fit(text: str, max_chars: float) -> str:
    """`text` cut to at most `max_chars` characters with an ellipsis, or "" if hardly any fit."""
    if len(text) <= max_chars:
        return text
    keep = int(max_chars) - 1
    return text[:keep].rstrip() + "…" if keep >= 3 else ""


def _tick_ms(duration_ms: int) -> int:
    """A round axis step that gives at most about 15 ticks."""
    for step_s in (5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600):
        if duration_ms / (step_s * 1000) <= 15:
            return step_s * 1000
    return 7200 * 1000


def _json_for_html(value: object) -> str:
    """JSON that cannot end or confuse the `<script>` element it sits in."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    # `</` alone is not enough: `<!--<script>` would swallow the real `</script>`.
    # Escaping every <, > and & (as \u003c etc.) leaves nothing the HTML parser sees.
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return text


def _button(testid: str, label: str, icon: str, *, extra_class: str = "") -> str:
    return (
        f'<button type="button" class="btn{extra_class}" data-testid="{testid}" '
        f'aria-label="{_esc(label)}" title="{_esc(label)}">{icon}</button>'
    )


def _shapes(
    sheet: Mapping[str, Any], *, x0: float, width: float, y0: float, height: float, min_w: float
) -> list[str]:
    """Chapter bands, boundaries and one rect per event, scaled into the given box."""
    duration = max(int(sheet.get("duration_ms", 0)), 1)

    def x_of(ms: int) -> float:
        return x0 + width * min(max(ms, 0), duration) / duration

    out: list[str] = []
    for i, chapter in enumerate(sheet.get("chapters", [])):
        left, right = x_of(int(chapter["start_ms"])), x_of(int(chapter["end_ms"]))
        fill = _THEMES["phone"]["chapter-band"] if i % 2 else "none"
        out.append(
            f'<rect class="chapter-band{" odd" if i % 2 else ""}" x="{_n(left)}" y="{_n(y0)}" '
            f'width="{_n(max(right - left, 0))}" height="{_n(height)}" fill="{fill}">'
            f"<title>{_esc(chapter['title'])}</title></rect>"
        )
        if i:
            out.append(
                f'<line class="chapter-edge" x1="{_n(left)}" x2="{_n(left)}" y1="{_n(y0)}" '
                f'y2="{_n(y0 + height)}" stroke="#8a8a8a" stroke-width="1" '
                'stroke-dasharray="3 3" vector-effect="non-scaling-stroke"/>'
            )
    events = list(sheet.get("events", []))
    for kind, (top, band) in _BANDS.items():
        for event in events:
            if event.get("kind") != kind:
                continue
            left = x_of(int(event["start_ms"]))
            w = max(x_of(int(event["end_ms"])) - left, min_w)
            tip = event.get("text") or event.get("sound") or kind
            out.append(
                f'<rect class="ev k-{kind}" x="{_n(left)}" y="{_n(y0 + height * top)}" '
                f'width="{_n(w)}" height="{_n(height * band)}" fill="{_KIND_FILL[kind]}">'
                f"<title>{_esc(tip)}</title></rect>"
            )
    return out


def _strip_svg(sheet: Mapping[str, Any], labels: Mapping[str, str]) -> str:
    """The page's strip: stretched to the page width, recoloured by the theme, with a playhead."""
    shapes = "".join(_shapes(sheet, x0=0, width=1000, y0=0, height=100, min_w=1.2))
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" class="tl" data-testid="timeline" '
        'viewBox="0 0 1000 100" preserveAspectRatio="none" role="img" '
        f'aria-label="{_esc(labels["timeline"])}">'
        f"<title>{_esc(labels['timeline'])}</title>{shapes}"
        '<rect class="played" x="0" y="0" width="0" height="100"/>'
        '<line class="playhead" data-testid="playhead" x1="0" x2="0" y1="0" y2="100" '
        'vector-effect="non-scaling-stroke"/></svg>'
    )


def _document(
    *, lang: str, title: str, theme: Mapping[str, str], body: str, body_class: str
) -> str:
    variables = ";".join(f"--{key}:{value}" for key, value in theme.items() if key != "scheme")
    scheme = theme["scheme"]
    return f"""<!doctype html>
<html lang="{_esc(lang)}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="color-scheme" content="{scheme}">
<meta name="theme-color" content="{theme["bg"]}">
{_GENERATOR}
<link rel="icon" href="data:,">
<title>{_esc(title)}</title>
<style>
:root{{{variables};color-scheme:{scheme}}}
{_CSS}
</style>
</head>
<body class="{_esc(body_class)}">
<main>
{body}
</main>
</body>
</html>
"""


_ICON_PLAY = (
    '<svg class="i-play" viewBox="0 0 24 24" aria-hidden="true">'
    '<path d="M7 4.5v15l12.5-7.5z"/></svg>'
)
_ICON_PAUSE = (
    '<svg class="i-pause" viewBox="0 0 24 24" aria-hidden="true">'
    '<path d="M6 4.5h4.2v15H6zM13.8 4.5H18v15h-4.2z"/></svg>'
)
_ICON_PREV = (
    '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M5 5h2.5v14H5zM19 5v14L8.5 12z"/></svg>'
)
_ICON_NEXT = (
    '<svg viewBox="0 0 24 24" aria-hidden="true">'
    '<path d="M16.5 5H19v14h-2.5zM5 5v14l10.5-7z"/></svg>'
)

_CSS = """
*{box-sizing:border-box}
html{background:var(--bg);-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--text);line-height:1.35;
 font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue","DejaVu Sans",Arial,
 sans-serif}
main{max-width:76rem;margin:0 auto;padding:clamp(.75rem,3vw,2rem);display:grid;
 gap:clamp(.9rem,2.5vw,1.6rem)}
.page main{grid-template-columns:minmax(0,1fr);grid-template-areas:"head" "now" "player" "chapters"}
@media (min-width:64rem){.page main{grid-template-columns:minmax(0,2fr) minmax(15rem,1fr);
 grid-template-areas:"head head" "now chapters" "player chapters"}}
.page header{grid-area:head}
h1{margin:0;font-size:calc(var(--scale)*clamp(1.15rem,3.4vw,2rem));font-weight:650;letter-spacing:-.01em}
.meta{margin:.3rem 0 0;color:var(--muted);font-size:calc(var(--scale)*clamp(.9rem,2.4vw,1.15rem))}
.dot::before{content:"·";margin:0 .5em}
.now{grid-area:now;background:var(--panel);border:1px solid var(--line);border-radius:1rem;
 padding:clamp(1rem,3.5vw,2rem);display:flex;flex-direction:column;gap:.6rem;min-height:15rem}
.now p{margin:0}
.phase{align-self:flex-start;text-transform:uppercase;letter-spacing:.08em;font-weight:700;
 font-size:calc(var(--scale)*clamp(.8rem,2.2vw,1rem));color:var(--accent)}
.step{margin:0;display:flex;flex-direction:column;gap:.2rem;font-weight:700;line-height:1.12;
 font-size:calc(var(--scale)*clamp(1.6rem,5.2vw,3.2rem))}
.stepno{font-size:.45em;font-weight:600;color:var(--muted);letter-spacing:.02em}
.side{align-self:flex-start;text-transform:capitalize;font-weight:800;border-radius:.4em;
 padding:.1em .6em;background:var(--accent);color:var(--on-accent);
 font-size:calc(var(--scale)*clamp(1.2rem,4vw,2.2rem))}
.holdbox{display:flex;flex-direction:column;gap:.3rem}
.count{display:flex;align-items:baseline;gap:.6rem;flex-wrap:wrap}
.count [data-testid=countdown]{font-variant-numeric:tabular-nums;font-weight:800;line-height:.95;
 color:var(--count);font-size:calc(var(--scale)*clamp(4.5rem,20vw,10rem))}
.unit{color:var(--muted);font-size:calc(var(--scale)*clamp(1rem,3vw,1.5rem))}
.upnext{color:var(--muted);font-size:calc(var(--scale)*clamp(1rem,3vw,1.45rem))}
.upnext .label{font-weight:700}
.upnext [data-testid=next]{color:var(--text)}
.spoken{font-size:calc(var(--scale)*clamp(1.15rem,3.6vw,1.9rem));line-height:1.3}
.spoken.past{color:var(--muted)}
.cue{font-style:italic;color:var(--accent);font-weight:600;
 font-size:calc(var(--scale)*clamp(1.1rem,3.4vw,1.8rem))}
.bedside .cue,.bedside .phase{color:var(--count)}
.bedside .side{background:none;color:var(--count);border:2px solid var(--accent)}
.error{color:var(--chime);font-weight:600}
.player{grid-area:player;display:flex;flex-direction:column;gap:.7rem}
.controls{display:flex;align-items:center;gap:.6rem;flex-wrap:wrap}
.btn{appearance:none;border:1px solid var(--line);background:var(--panel);color:var(--text);
 border-radius:999px;width:calc(var(--scale)*3rem);height:calc(var(--scale)*3rem);
 display:inline-grid;place-items:center;cursor:pointer;padding:0}
.btn svg{width:55%;height:55%;fill:currentColor}
.btn.play{background:var(--accent);color:var(--on-accent);border-color:var(--accent);
 width:calc(var(--scale)*4rem);height:calc(var(--scale)*4rem)}
.btn .i-pause,.playing .btn .i-play{display:none}
.playing .btn .i-pause{display:block}
button:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
.clock{margin-left:auto;font-variant-numeric:tabular-nums;color:var(--muted);
 font-size:calc(var(--scale)*clamp(1rem,2.8vw,1.3rem))}
.strip{margin:0}
.tl{display:block;width:100%;height:calc(var(--scale)*3.6rem);cursor:pointer;touch-action:manipulation;
 border-radius:.4rem;background:var(--panel);border:1px solid var(--line)}
.tl .chapter-band{fill:none}
.tl .chapter-band.odd{fill:var(--chapter-band)}
.tl .chapter-edge{stroke:var(--muted);opacity:.6}
.k-speech{fill:var(--speech);background:var(--speech)}
.k-cue{fill:var(--cue);background:var(--cue)}
.k-hold{fill:var(--hold);background:var(--hold)}
.k-pause{fill:var(--pause);background:var(--pause)}
.k-chime{fill:var(--chime);background:var(--chime)}
.k-countdown{fill:var(--countdown);background:var(--countdown)}
.k-music{fill:var(--music);background:var(--music)}
.tl .played{fill:var(--played)}
.tl .playhead{stroke:var(--playhead);stroke-width:2.5}
.legend{display:flex;flex-wrap:wrap;gap:.3rem 1rem;margin-top:.45rem;color:var(--muted);
 font-size:calc(var(--scale)*.85rem)}
.legend span{display:inline-flex;align-items:center;gap:.35rem}
.sw{display:inline-block;width:.8rem;height:.8rem;border-radius:.15rem}
.keys{margin:0;color:var(--muted);font-size:calc(var(--scale)*.8rem)}
@media (hover:none){.keys{display:none}}
.chapters{grid-area:chapters}
.chapters h2{margin:0 0 .5rem;font-size:calc(var(--scale)*1.05rem);color:var(--muted);
 text-transform:uppercase;letter-spacing:.08em}
.chapters ol{list-style:none;margin:0;padding:0;display:grid;gap:.35rem}
.chapters button{width:100%;display:flex;justify-content:space-between;align-items:baseline;
 gap:.8rem;text-align:left;font:inherit;color:var(--text);
 font-size:calc(var(--scale)*clamp(.95rem,2.6vw,1.1rem));background:var(--panel);
 border:1px solid var(--line);border-radius:.6rem;padding:.6rem .8rem;cursor:pointer}
.chapters button time{color:var(--muted);font-variant-numeric:tabular-nums}
.chapters button.current{border-color:var(--accent);box-shadow:inset .3rem 0 0 var(--accent)}
.gym .chapters button.current{background:var(--accent);color:var(--on-accent)}
.gym .chapters button.current time{color:var(--on-accent)}
[hidden]{display:none!important}
.tracks{width:100%;border-collapse:collapse;font-size:calc(var(--scale)*clamp(1rem,2.8vw,1.25rem))}
.tracks th{text-align:left;color:var(--muted);font-weight:600;padding:.5rem;
 border-bottom:2px solid var(--line)}
.tracks td{border-bottom:1px solid var(--line);padding:.7rem .5rem}
.tracks .len{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.tracks a{color:var(--link);font-weight:600}
"""

# The page's behaviour. Reads the embedded cue sheet, never puts text in as HTML.
_JS = r"""
(() => {
"use strict";
const sheet = JSON.parse(document.getElementById("cue-sheet").textContent);
const page = JSON.parse(document.getElementById("page-data").textContent);
const L = page.labels;
const audio = document.getElementById("audio");
const $ = (id) => document.querySelector('[data-testid="' + id + '"]');
const el = {
  part: $("part"), phase: $("phase"), step: $("step"), stepno: $("step").querySelector(".stepno"),
  steptitle: $("step").querySelector(".steptitle"), side: $("side"), hold: $("hold"),
  countdown: $("countdown"), next: $("next"), spoken: $("spoken"), cue: $("cue"),
  clock: $("clock"), error: $("error"), play: $("play"), playhead: $("playhead"),
  played: document.querySelector(".tl .played"), strip: $("timeline"),
};
const chapterButtons = Array.from(document.querySelectorAll('[data-testid="chapter"]'));
const duration = Math.max(sheet.duration_ms || 0, 1);
const events = sheet.events || [];
const ofKind = (kind) => events.filter((e) => e.kind === kind);
const speech = ofKind("speech"), cues = ofKind("cue");
const holds = ofKind("hold"), pauses = ofKind("pause");
const stepped = events.filter(
  (e) => e.step != null && (e.kind === "speech" || e.kind === "hold" || e.kind === "pause"));
const stepCount = stepped.reduce((n, e) => Math.max(n, e.step), 0);
const firstStepMs = stepped.length ? stepped[0].start_ms : 0;
const lastStepMs = stepped.reduce((n, e) => Math.max(n, e.end_ms), 0) || duration;
const chapters = (sheet.chapters || []).map((c) => {
  const first = stepped.find((e) => e.start_ms >= c.start_ms && e.start_ms < c.end_ms);
  const side = first ? first.side : null;
  let title = c.title;
  const suffix = side ? " (" + side + ")" : "";
  if (suffix && title.endsWith(suffix)) title = title.slice(0, -suffix.length);
  return { start_ms: c.start_ms, end_ms: c.end_ms, step: first ? first.step : null, side, title };
});
const fill = (template, values) =>
  template.replace(/\{(\w+)\}/g, (m, k) => (k in values ? String(values[k]) : m));
const clock = (ms) => {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h ? h + ":" + String(m).padStart(2, "0") + ":" + ss : m + ":" + ss;
};
// Index of the last item starting at or before t (items sorted by start_ms), or -1.
const lastStarted = (list, t) => {
  let lo = 0, hi = list.length - 1, found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid].start_ms <= t) { found = mid; lo = mid + 1; } else { hi = mid - 1; }
  }
  return found;
};
// The item playing at t: items of one kind never overlap each other.
const playing = (list, t) => {
  const i = lastStarted(list, t);
  return i >= 0 && t < list[i].end_ms ? list[i] : null;
};
const chapterAt = (t) => Math.max(0, lastStarted(chapters, t));
const nowMs = () => (Number.isFinite(audio.currentTime) ? audio.currentTime * 1000 : 0);
const shown = new Map();
const setText = (node, text) => {
  if (shown.get(node) !== text) { shown.set(node, text); node.textContent = text; }
};
const show = (node, visible) => { if (node.hidden === visible) node.hidden = !visible; };

function render() {
  const t = nowMs();
  const ci = chapterAt(t);
  const chapter = chapters[ci];
  if (chapter) {
    setText(el.part, fill(L.part, { n: ci + 1, total: chapters.length }));
    setText(el.stepno, chapter.step ? fill(L.step, { n: chapter.step, total: stepCount }) : "");
    setText(el.steptitle, chapter.title);
    el.step.dataset.step = chapter.step == null ? "" : String(chapter.step);
    setText(el.side, chapter.side || "");
    show(el.side, Boolean(chapter.side));
    chapterButtons.forEach((b, i) => {
      const current = i === ci;
      if (b.classList.contains("current") !== current) {
        b.classList.toggle("current", current);
        if (current) b.setAttribute("aria-current", "step"); else b.removeAttribute("aria-current");
      }
    });
  }
  const hold = playing(holds, t), pause = hold ? null : playing(pauses, t);
  const wait = hold || pause;
  let phase = "";
  if (audio.ended || t >= duration) phase = L.done;
  else if (hold) phase = L.hold;
  else if (pause) phase = L.pause;
  else if (t < firstStepMs) phase = L.intro;
  else if (t >= lastStepMs) phase = L.closing;
  setText(el.phase, phase);
  show(el.phase, Boolean(phase));
  if (wait) {
    setText(el.countdown, String(Math.max(0, Math.ceil((wait.end_ms - t) / 1000))));
    const after = speech[lastStarted(speech, wait.end_ms - 1) + 1];
    setText(el.next, after ? after.text : L.end);
  }
  show(el.hold, Boolean(wait));
  const line = playing(speech, t);
  const last = line || speech[lastStarted(speech, t)];
  setText(el.spoken, last ? last.text : "");
  el.spoken.classList.toggle("past", !line);
  const cue = playing(cues, t);
  setText(el.cue, cue ? cue.text : "");
  show(el.cue, Boolean(cue));
  setText(el.clock, clock(t) + " / " + clock(duration));
  const x = (Math.min(Math.max(t, 0), duration) / duration * 1000).toFixed(2);
  el.playhead.setAttribute("x1", x);
  el.playhead.setAttribute("x2", x);
  el.played.setAttribute("width", x);
  const paused = audio.paused;
  document.body.classList.toggle("playing", !paused);
  const label = paused ? L.play : L.pause_button;
  if (el.play.getAttribute("aria-label") !== label) {
    el.play.setAttribute("aria-label", label);
    el.play.title = label;
  }
}

// timeupdate comes only a few times a second: while playing, follow every frame too.
let frame = 0;
const loop = () => { render(); frame = audio.paused ? 0 : requestAnimationFrame(loop); };
const startLoop = () => { if (!frame) frame = requestAnimationFrame(loop); };
["timeupdate", "seeked", "seeking", "loadedmetadata", "pause", "ended", "durationchange"].forEach(
  (name) => audio.addEventListener(name, render));
audio.addEventListener("play", () => { render(); startLoop(); });
audio.addEventListener("playing", startLoop);
audio.addEventListener("error", () => { el.error.hidden = false; });

const seek = (ms) => {
  audio.currentTime = Math.min(Math.max(ms, 0), duration) / 1000;
  render();
};
const toggle = () => {
  if (audio.paused) {
    const started = audio.play();
    if (started && started.catch) started.catch(() => {});
  } else {
    audio.pause();
  }
};
const jump = (delta) => {
  const ci = chapterAt(nowMs()), target = ci + delta;
  if (target >= 0 && target < chapters.length) seek(chapters[target].start_ms);
  else if (target < 0) seek(0);
};
el.play.addEventListener("click", toggle);
$("prev-chapter").addEventListener("click", () => jump(-1));
$("next-chapter").addEventListener("click", () => jump(1));
chapterButtons.forEach((b) => b.addEventListener("click", () => seek(Number(b.dataset.startMs))));
el.strip.addEventListener("click", (e) => {
  const box = el.strip.getBoundingClientRect();
  if (box.width > 0) seek(((e.clientX - box.left) / box.width) * duration);
});
const isSpace = (e) => e.key === " " || e.code === "Space";
document.addEventListener("keydown", (e) => {
  if (e.altKey || e.ctrlKey || e.metaKey) return;
  if (isSpace(e)) { e.preventDefault(); if (!e.repeat) toggle(); }
  else if (e.key === "ArrowRight") { e.preventDefault(); jump(1); }
  else if (e.key === "ArrowLeft") { e.preventDefault(); jump(-1); }
});
// A focused button would also "click" on the space key's release.
document.addEventListener("keyup", (e) => { if (isSpace(e)) e.preventDefault(); });

if ("mediaSession" in navigator && typeof MediaMetadata === "function") {
  try {
    navigator.mediaSession.metadata = new MediaMetadata(
      { title: page.title, artist: "coachtrack", album: page.profile });
    navigator.mediaSession.setActionHandler("previoustrack", () => jump(-1));
    navigator.mediaSession.setActionHandler("nexttrack", () => jump(1));
  } catch (err) { /* optional: some browsers lack some actions */ }
}
render();
})();
"""
