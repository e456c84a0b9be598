"""Decoder options tried to move early fusion off a plateau on the synthetic shapes set, kept out of the core.

Each is a subclass of a core module, chosen by ``_target_`` in an experiment (``experiment=shapes_concat``); see
docs/models.md for what each does, which recipe uses it and what was removed.
"""
