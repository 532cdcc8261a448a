"""Benchmark: coachtrack against a faithful "obvious" pydub + pyttsx3 renderer."""
