"""How many matrix cells ran, per backend (filled by test_matrix, printed by the conftest)."""

MATRIX_CELLS: dict[str, int] = {}
