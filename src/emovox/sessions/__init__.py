"""Sessions: continuous speech as a robot hears it — utterance after utterance of one speaker
with pauses, in rooms, noise and events — built from a corpus with a ground-truth timeline,
streamed through the real streaming path and scored for segmentation, latency and accuracy.

``build`` (sessions from corpus utterances, in every condition; ``sounds``: the synthesised test
material), ``timeline`` (the manifest), ``run`` (streaming and scoring a set), ``score`` (the
matching and the metrics), ``report`` (figures and the HTML page). Definitions:
docs/sessions.md.
"""
