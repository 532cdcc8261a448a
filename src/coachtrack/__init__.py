"""coachtrack: turn a stretching or pressure-point routine into a narrated audio track."""

__version__ = "0.2.0"
SAMPLE_RATE = 22050
