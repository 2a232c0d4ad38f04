"""Gramophone's engine: build a character library from a video, render any audio as lip-synced video.

No Telegram, no queue: a library anyone could use. The public API is re-exported here.
"""
