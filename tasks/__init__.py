"""DVC stage entry points: `python -m tasks.<stage>`; each reads params, calls the library, writes outs."""
