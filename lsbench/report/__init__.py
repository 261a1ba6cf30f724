"""Figures made from results (maps and tables); no model code runs here."""
