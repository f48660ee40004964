"""Foundations every stage shares, importing nothing else of the library: the exception tree (`errors`), the model
table (`models`), the results table's column names and dtypes (`result_columns`), whole-column JSON decoding
that is spread over every core and tolerant of bad rows (`json_columns`), how reports show themselves as text and
HTML (`display`) and the one live progress display (`progress`)."""
