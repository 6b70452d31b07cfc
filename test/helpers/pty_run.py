#!/usr/bin/python3
# Runs a command on a pseudo-terminal, as if a person typed at it: waits
# for each expected prompt, then types the answer. Prints one JSON object:
# {"code": exit status, "output": everything the terminal showed}.
# Usage: pty_run.py JSON  where JSON = {"argv": [...], "script": [[expect, type], ...], "env": {...}}
import json, os, pty, select, sys, time

spec = json.loads(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    env = dict(os.environ)
    env.update(spec.get("env", {}))
    os.chdir(spec.get("cwd", "."))
    os.execvpe(spec["argv"][0], spec["argv"], env)

output = b""
script = list(spec.get("script", []))
deadline = time.time() + spec.get("timeout", 60)
seen = 0
while time.time() < deadline:
    r, _, _ = select.select([fd], [], [], 0.2)
    if r:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        output += data
    if script and script[0][0].encode() in output[seen:]:
        seen = output.index(script[0][0].encode(), seen) + len(script[0][0])
        os.write(fd, script[0][1].encode())
        script.pop(0)
else:
    os.kill(pid, 9)  # out of time: the caller sees the output so far and a signal exit
_, status = os.waitpid(pid, 0)
print(json.dumps({"code": os.waitstatus_to_exitcode(status), "output": output.decode("utf-8", "replace")}))
