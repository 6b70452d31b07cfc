#!/usr/bin/python3
"""A slixmpp (Debian python3-slixmpp) client driven over stdin/stdout by tests.

Commands (one JSON object per line on stdin):
  {"cmd": "send", "xml": "<message .../>"}   send raw XML
  {"cmd": "call", "id": "c1", "plugin": "xep_0060", "method": "get_items", "args": [...], "kwargs": {...}}
      call a method of a loaded plugin (or of the client when plugin is null),
      awaiting its result; arguments may be {"$bytes": base64}, {"$xml": "<x/>"}
      (an ElementTree element), {"$jid": "a@b"} or {"$form": {"var": "value"}}
      (a submit data form; FORM_TYPE becomes hidden)
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
