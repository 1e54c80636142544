# redteam: no panics on guest input: parameters whose text is cut for messages inside a multi-byte character
# command: exec
# db: demo
# expect: db_error
from metaexec import db

# Shown in the error message shortened: once cut at a byte index inside an "é" (a host panic).
for bad in (["ab" + "é" * 40], {"$decimal": "é" * 40}, ["é" * 100]):
    try:
        db.query("SELECT ?", [bad])
    except db.QueryError:
        pass
db.query("SELECT ?", [["ab" + "é" * 40]])
