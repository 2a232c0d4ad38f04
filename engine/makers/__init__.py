"""Makers turn a character description into performance videos the engine builds libraries from.

``drawn``: a code-drawn rig (the fox) reading the passages. Picture-based makers (FasterLivePortrait
on a GPU, a CPU puppet) belong here too.
"""
