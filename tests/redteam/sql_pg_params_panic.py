# redteam: no panics on guest input: PostgreSQL parameters (multi-byte text for integers, dates, UUIDs; extreme decimals)
# command: exec
# db: postgres
# expect: db_error
from metaexec import db

text = "ab" + "é" * 40
for sql, value in [
    ("SELECT * FROM loans WHERE loan_id = ?", text),
    ("SELECT * FROM loans WHERE maturity_date < ?", text),
    ("SELECT CAST(? AS uuid)", "a" + "é" * 15 + "b"),
    ("SELECT CAST(? AS numeric)", {"$decimal": "1e-2147483648"}),
    ("SELECT * FROM loans WHERE loan_id = ?", 1e300),
]:
    try:
        db.query(sql, [value])
    except (db.QueryError, db.DenyError):
        pass
db.query("SELECT * FROM loans WHERE loan_id = ?", [text])
