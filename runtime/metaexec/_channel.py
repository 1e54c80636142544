"""The guest side of the host channel (protocol version 1).

Guest -> host: frames written to fd 1, each
    b"\\x1eMX1 " + NONCE + b" " + LENGTH + b"\\n" + PAYLOAD
where NONCE is the run's token from the environment (so that nothing a script prints can
pass for a frame by accident), LENGTH the payload's size in bytes and PAYLOAD one object
with an "op": b"\\x00" and the object in `marshal` format, or (for values marshal
refuses: dates, Decimals, dict subclasses, objects) JSON text. The host separates frames
from ordinary output, so `print()` keeps working and never mixes with results.

Host -> guest: replies on fd 0, each LENGTH (ten digits) + b"\\n" + PAYLOAD, only for ops
that ask for one ("hello", "db.query", "db.schema", "sweep.next").

Frames are marshalled because it is the fastest encoder this interpreter has: a table of
floats encodes about seven times faster than as JSON, whose shortest-repr float printing
is slow here, and sweeps send one table per scenario.

This module must stay cheap to import: `json` alone costs 20-30 ms at interpreter start
(it pulls in `re`, `enum` and more), so frames are encoded and replies parsed by the C
encoder and scanner of the built-in `_json` module directly, which need neither of them;
a small pure-Python encoder covers what the C one refuses (NaN, odd keys).
"""

import _json
import marshal
import posix

PROTOCOL_VERSION = 1

_environ = posix.environ
_NONCE = _environ.get(b"METAEXEC_CHANNEL", b"")
_PREFIX = b"\x1eMX1 " + _NONCE + b" "


class _ScannerContext:
    """The settings `json.JSONDecoder` would hand the C scanner, without importing it."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float
    memo = {}


_scan = _json.make_scanner(_ScannerContext())
_next_id = 0

_ESCAPES = {i: "\\u%04x" % i for i in range(32)}
_ESCAPES.update({34: '\\"', 92: "\\\\", 8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r"})
_ESCAPES[0x7F] = "\\u007f"


class ChannelError(Exception):
    """The host channel is unavailable or the host answered with an error."""


def _encode(obj, out):
    t = type(obj)
    if obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif t is str:
        out.append('"' + obj.translate(_ESCAPES) + '"')
    elif t is int:
        out.append(str(obj))
    elif t is float:
        # JSON has no NaN or infinity; null says "no number" without breaking the frame.
        out.append(repr(obj) if obj - obj == 0.0 else "null")
    elif t is dict or isinstance(obj, dict):
        out.append("{")
        first = True
        for key, value in obj.items():
            if not first:
                out.append(",")
            first = False
            if type(key) is not str:
                key = str(key) if key is not None else "null"
            out.append('"' + key.translate(_ESCAPES) + '":')
            _encode(value, out)
        out.append("}")
    elif t in (list, tuple) or isinstance(obj, (list, tuple, set, frozenset)):
        out.append("[")
        first = True
        for value in obj:
            if not first:
                out.append(",")
            first = False
            _encode(value, out)
        out.append("]")
    elif isinstance(obj, bool):
        out.append("true" if obj else "false")
    elif isinstance(obj, int):
        out.append(str(int(obj)))
    elif isinstance(obj, float):
        _encode(float(obj), out)
    elif hasattr(obj, "isoformat"):
        out.append('"' + obj.isoformat().translate(_ESCAPES) + '"')
    elif type(obj).__name__ == "Decimal":
        _encode(float(obj), out)
    elif hasattr(obj, "to_dict"):
        _encode(obj.to_dict(), out)
    elif hasattr(obj, "__dict__") and not callable(obj):
        _encode(vars(obj), out)
    else:
        out.append('"' + str(obj).translate(_ESCAPES) + '"')


def _default(obj):
    """What the C encoder cannot encode itself, as `_encode` would encode it."""
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    if type(obj).__name__ == "Decimal":
        return float(obj)
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if hasattr(obj, "keys") and hasattr(obj, "__getitem__"):
        return {key: obj[key] for key in obj.keys()}
    if hasattr(obj, "__dict__") and not callable(obj):
        return vars(obj)
    return str(obj)


# The C encoder of `_json` (what `json.dumps` uses), built without importing `json`:
# markers, default, string encoder, indent, separators, sort_keys, skipkeys, allow_nan.
# It refuses NaN and infinities and odd keys; `dumps` then falls back to `_encode`.
_c_encode = _json.make_encoder(None, _default, _json.encode_basestring, None, ":", ",", False, False, False)


def dumps(obj):
    """Encodes `obj` as JSON text (dicts, lists, numbers, strings, None, dates)."""
    try:
        return "".join(_c_encode(obj, 0))
    except (ValueError, TypeError, RecursionError):
        out = []
        _encode(obj, out)
        return "".join(out)


_marshal = marshal.dumps


def _frame(message):
    """The frame carrying `message`."""
    try:
        payload = b"\x00" + _marshal(message)
    except ValueError:  # a type marshal does not know: the JSON encoder converts it
        payload = dumps(message).encode("utf-8", "replace")
    return _PREFIX + str(len(payload)).encode() + b"\n" + payload


def _write(data):
    view = memoryview(data)
    while view:
        written = posix.write(1, view)
        view = view[written:]


def send(message):
    """Sends one frame to the host; returns its id."""
    global _next_id
    _next_id += 1
    message["id"] = _next_id
    # The host enforces the results cap from the frame header and stops the run there.
    _write(_frame(message))
    return _next_id


# A sweep's scenarios mostly end well: that frame is the same every time (one-way frames
# need no fresh id), so it is encoded once.
_SCENARIO_OK = _frame({"op": "sweep.end", "id": 0, "status": "ok"})


def scenario_end(error=None):
    """Sweep mode: tells the host the running scenario ended, well or with `error` (the
    exception as the boot module describes it)."""
    if error is None:
        _write(_SCENARIO_OK)
    else:
        send({"op": "sweep.end", "status": "error", "error": error})


def _read_exact(n):
    chunks = []
    while n > 0:
        chunk = posix.read(0, min(n, 1 << 20))
        if not chunk:
            raise ChannelError("the host closed the channel")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _read_reply():
    header = _read_exact(11)
    if header[10:] != b"\n" or not header[:10].isdigit():
        raise ChannelError("malformed reply header from the host: %r" % header)
    text = _read_exact(int(header[:10])).decode("utf-8")
    value, end = _scan(text, 0)
    if end != len(text):
        raise ChannelError("trailing data in a reply from the host")
    return value


def call(message):
    """Sends a frame that expects a reply and returns the whole reply
    (`{"id", "ok", "value"}` or `{"id", "ok": false, "error": {"kind", "message", "hint"}}`)."""
    frame_id = send(message)
    reply = _read_reply()
    if reply.get("id") != frame_id:
        raise ChannelError("reply out of order: expected %d, got %r" % (frame_id, reply.get("id")))
    return reply


def request(message):
    """Sends a frame that expects a reply and returns the reply's value; raises
    `ChannelError` when the host refuses."""
    reply = call(message)
    if reply.get("ok"):
        return reply.get("value")
    error = reply.get("error") or {}
    raise ChannelError("%s: %s" % (error.get("kind", "error"), error.get("message", "")))
