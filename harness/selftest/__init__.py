"""Does the harness find redo bugs? Mutant engines, the mutation self-test, fault injection."""
