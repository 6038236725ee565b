"""Pure policy of the coalescing levers: fingerprints, trivial-turn templates, prompt trimming."""
