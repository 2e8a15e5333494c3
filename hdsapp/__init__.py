"""hdsapp: care coordination for French private-practice health professionals."""
