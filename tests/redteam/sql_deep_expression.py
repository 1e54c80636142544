# redteam: 4 no panics: statements whose syntax tree is as deep as they are long (operator chains, NOT chains, nested parentheses)
# command: exec
# db: demo
# expect: db_error
from metaexec import db

# Past the checker's token limit: refused before parsing.
for sql in ["SELECT " + "1+" * 200_000 + "1", "SELECT 1 WHERE " + "1=1 AND " * 100_000 + "1=1"]:
    try:
        db.query(sql)
        raise AssertionError("a statement past the token limit ran")
    except db.DenyError:
        pass
# Under it, but deep: checked on a stack that holds it, then refused by the database.
for sql in ["SELECT " + "NOT " * 20_000 + "1", "SELECT " + "(" * 5_000 + "1" + ")" * 5_000]:
    try:
        db.query(sql)
    except (db.QueryError, db.DenyError):
        pass
db.query("SELECT " + "1+" * 24_000 + "1")
