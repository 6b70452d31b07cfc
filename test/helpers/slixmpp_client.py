#!/usr/bin/python3
"""A slixmpp (Debian python3-slixmpp) client driven over stdin/stdout by tests.

Commands (one JSON object per line on stdin):
  {"cmd": "send", "xml": "<message .../>"}   send raw XML
  {"cmd": "call", "id": "c1", "plugin": "xep_0060", "method": "get_items", "args": [...], "kwargs": {...}}
      call a method of a loaded plugin (or of the client when plugin is null),
      awaiting its result; arguments may be {"$bytes": base64}, {"$xml": "<x/>"}
      (an ElementTree element), {"$jid": "a@b"} or {"$form": {"var": "value"}}
      (a submit data form; FORM_TYPE becomes hidden)
  {"cmd": "op", "id": N, "op": "muc_join", "args": {...}}
      run one of the scenario operations in OPS below (several plugin calls, a
      structured answer), answered with {"event": "op_result", "id": N, "ok": ...}
  {"cmd": "stop"}                            disconnect and exit
Events (one JSON object per line on stdout):
  {"event": "session_start", "jid": "..."}
  {"event": "stanza", "xml": "..."}          every stanza received after login
  {"event": "failed_auth"} / {"event": "disconnected"} / {"event": "error", "text": "..."}
  {"event": "result", "id": "c1", "xml": "..."} / {"event": "call_error", "id": "c1", "xml": "...", "text": "..."}
Arguments: JID PASSWORD HOST PORT [--mech MECH] [--direct-tls] [--plugins xep_0030,xep_0115,...]
"""
import asyncio
import base64
import json
import ssl
import sys
import xml.etree.ElementTree as ET

import slixmpp


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password, mech):
        super().__init__(jid, password, sasl_mech=mech)
        self.ssl_context = ssl.create_default_context()
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("failed_auth", lambda _e: emit({"event": "failed_auth"}))
        self.add_event_handler("disconnected", lambda _e: emit({"event": "disconnected"}))
        self.add_event_handler("stream_error", lambda e: emit({"event": "stream_error", "xml": str(e)}))
        for kind in ("message", "presence", "iq"):
            self.register_handler(
                slixmpp.xmlstream.handler.Callback(
                    "all " + kind,
                    slixmpp.xmlstream.matcher.MatchXPath("{jabber:client}" + kind),
                    lambda st: emit({"event": "stanza", "xml": str(st)}),
                )
            )

    async def on_start(self, _event):
        emit({"event": "session_start", "jid": str(self.boundjid), "mech": self.mech_used})


def decode(client, value):
    """JSON arguments to what slixmpp methods take (see the module docstring)."""
    if isinstance(value, list):
        return [decode(client, v) for v in value]
    if isinstance(value, dict):
        if "$bytes" in value:
            return base64.b64decode(value["$bytes"])
        if "$xml" in value:
            return ET.fromstring(value["$xml"])
        if "$jid" in value:
            return slixmpp.JID(value["$jid"])
        if "$form" in value:
            form = client["xep_0004"].make_form(ftype="submit")
            for var, val in value["$form"].items():
                form.add_field(var=var, ftype="hidden" if var == "FORM_TYPE" else None, value=val)
            return form
        return {k: decode(client, v) for k, v in value.items()}
    return value


async def call(client, cmd):
    target = client if cmd.get("plugin") is None else client[cmd["plugin"]]
    try:
        result = getattr(target, cmd["method"])(
            *decode(client, cmd.get("args", [])), **decode(client, cmd.get("kwargs", {}))
        )
        if asyncio.isfuture(result) or asyncio.iscoroutine(result):
            result = await result
        emit({"event": "result", "id": cmd["id"], "xml": "" if result is None else str(result)})
    except slixmpp.exceptions.IqError as e:
        emit({"event": "call_error", "id": cmd["id"], "xml": str(e.iq), "text": e.condition})
    except Exception as e:  # a failing call must reach the test, not kill the client
        emit({"event": "call_error", "id": cmd["id"], "xml": "", "text": f"{type(e).__name__}: {e}"})


async def op_muc_join(client, a):
    """XEP-0045 join through slixmpp's plugin; returns what it saw of the room."""
    kw = {k: a[k] for k in ("password", "maxstanzas", "seconds") if k in a}
    pres, subject, occupants, history = await client["xep_0045"].join_muc_wait(
        slixmpp.JID(a["room"]), a["nick"], timeout=30, **kw
    )
    return {
        "self": str(pres),
        "subject": subject["subject"],
        "occupants": sorted(p["from"].resource for p in occupants),
        "history": [m["body"] for m in history],
    }


async def op_muc_configure(client, a):
    """Fetches the room's configuration form, fills in the given fields and submits it whole, as clients do."""
    muc = client["xep_0045"]
    room = slixmpp.JID(a["room"])
    form = await muc.get_room_config(room, timeout=30)
    fields = form.get_fields()
    for var, value in a.get("fields", {}).items():
        fields[var]["value"] = value
    await muc.set_room_config(room, form, timeout=30)
    return {"fields": sorted(fields.keys())}


async def op_muc_set_affiliation(client, a):
    await client["xep_0045"].set_affiliation(
        slixmpp.JID(a["room"]), a["affiliation"], jid=slixmpp.JID(a["jid"]), reason=a.get("reason", ""), timeout=30
    )
    return {}


async def op_muc_set_role(client, a):
    await client["xep_0045"].set_role(slixmpp.JID(a["room"]), a["nick"], a["role"], reason=a.get("reason", ""), timeout=30)
    return {}


async def op_muc_affiliations(client, a):
    jids = await client["xep_0045"].get_affiliation_list(slixmpp.JID(a["room"]), a["affiliation"], timeout=30)
    return {"jids": sorted(str(j) for j in jids)}


async def op_muc_invite(client, a):
    client["xep_0045"].invite(slixmpp.JID(a["room"]), slixmpp.JID(a["jid"]), a.get("reason", ""))
    return {}


async def op_direct_invite(client, a):
    client["xep_0249"].send_invitation(slixmpp.JID(a["jid"]), slixmpp.JID(a["room"]), reason=a.get("reason"))
    return {}


async def op_muc_message(client, a):
    client.send_message(mto=slixmpp.JID(a["room"]), mbody=a["body"], mtype="groupchat")
    return {}


async def op_mam_pages(client, a):
    """Pages through the own archive with slixmpp's XEP-0313 + XEP-0059 iterator (needs xep_0313)."""
    pages = client["xep_0313"].retrieve(
        with_jid=slixmpp.JID(a["with"]) if a.get("with") else None,
        iterator=True,
        reverse=bool(a.get("reverse")),
        rsm={"max": int(a.get("max", 10))},
    )
    out = []
    async for page in pages:
        out.append({"results": [str(m) for m in page["mam"]["results"]], "fin": str(page["mam_fin"])})
    return {"pages": out}


OPS = {name[3:]: fn for name, fn in list(globals().items()) if name.startswith("op_")}


async def run_op(client, cmd):
    try:
        value = await OPS[cmd["op"]](client, cmd.get("args", {}))
        emit({"event": "op_result", "id": cmd["id"], "ok": True, "value": value})
    except slixmpp.exceptions.XMPPError as e:
        emit({"event": "op_result", "id": cmd["id"], "ok": False, "condition": e.condition, "text": e.text})
    except Exception as e:  # a timeout or a bug in the scenario: reported, not fatal
        emit({"event": "op_result", "id": cmd["id"], "ok": False, "condition": type(e).__name__, "text": str(e)})


async def commands(client):
    loop = asyncio.get_event_loop()
    reader = asyncio.StreamReader(limit=2 ** 24)
    client.command_reader = reader
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = json.loads(line)
        if cmd["cmd"] == "send":
            client.send_raw(cmd["xml"])
        elif cmd["cmd"] == "call":
            client.calls.add(asyncio.ensure_future(call(client, cmd)))
            client.calls = {t for t in client.calls if not t.done()}
        elif cmd["cmd"] == "op":
            client.calls.add(asyncio.ensure_future(run_op(client, cmd)))
            client.calls = {t for t in client.calls if not t.done()}
        elif cmd["cmd"] == "stop":
            break
    client.disconnect()
    await asyncio.sleep(0.2)
    loop.stop()


def main():
    args = sys.argv[1:]
    jid, password, host, port = args[0], args[1], args[2], int(args[3])
    mech = args[args.index("--mech") + 1] if "--mech" in args else None
    direct = "--direct-tls" in args
    client = Client(jid, password, mech)
    client.mech_used = mech
    client.calls = set()
    if "--plugins" in args:
        for plugin in args[args.index("--plugins") + 1].split(","):
            client.register_plugin(plugin)
    # slixmpp refuses PLAIN on an unencrypted stream unless told otherwise;
    # the server is what must never offer it there, so tests check that side.
    client["feature_mechanisms"].unencrypted_plain = False
    client.connect((host, port), use_ssl=direct, force_starttls=not direct, disable_starttls=direct)
    # asyncio holds tasks and a StreamReaderProtocol holds its reader only
    # weakly: without these strong references the garbage collector may
    # collect the stdin reader mid-test and later commands silently vanish.
    client.command_task = asyncio.get_event_loop().create_task(commands(client))
    client.loop.run_forever()


if __name__ == "__main__":
    main()
