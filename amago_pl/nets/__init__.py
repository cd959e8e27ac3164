"""Alias of :mod:`amago_pl.modules` under the original library's name (``amago.nets``).

``amago_pl.nets.X`` is the very same module object as ``amago_pl.modules.X``, so classes, gin
registrations and isinstance checks are shared.
"""
