"""How channels end, driven with paramiko (raw requests where no client sends them).

1. Input sent, then EOF and close without waiting for the exit status, still reaches a
   command that starts reading late, whole (as with sshd).
2. A channel nobody reads flooded with requests ends its own connection, and only it:
   the flood neither stalls Airlock nor keeps the connection after the agent is gone.

Environment as for paramiko_client.py."""
import hashlib
import os
import time

import paramiko
from paramiko.common import cMSG_CHANNEL_REQUEST
from paramiko.message import Message

port, key, conn, work = (os.environ[k] for k in ("SSH_PORT", "SSH_KEY", "SSH_CONN", "WORK"))


def transport():
    t = paramiko.Transport(("127.0.0.1", int(port)))
    t.connect(username=conn, pkey=paramiko.PKey.from_path(key))
    return t


def wait_for(path, seconds=30):
    deadline = time.time() + seconds
    while not os.path.exists(path) or os.path.getsize(path) == 0:
        assert time.time() < deadline, f"{path} never written"
        time.sleep(0.1)
    time.sleep(0.2)
    return open(path).read()


# 1. Data, EOF and close at once.
t = transport()
for size in (100, 3 << 20):
    data = os.urandom(size)
    out = f"{work}/in-{size}.sha"
    c = t.open_session()
    c.exec_command(f"sleep 2; sha256sum > {out}.part && mv {out}.part {out}")
    c.sendall(data)
    c.shutdown_write()
    c.close()
    got = wait_for(out).split()[0]
    assert got == hashlib.sha256(data).hexdigest(), f"{size} bytes: the command got other input"
t.close()

# 2. A flood of window-change requests on a channel whose command reads nothing.
flooder = transport()
stuck = flooder.open_session()
stuck.exec_command("timeout 60 sleep 60")
stuck.settimeout(0.0)
deadline = time.time() + 3
while time.time() < deadline:
    try:
        stuck.send(b"z" * 32768)
    except Exception:
        time.sleep(0.05)
for i in range(3000):
    m = Message()
    m.add_byte(cMSG_CHANNEL_REQUEST)
    m.add_int(stuck.remote_chanid)
    m.add_string("window-change")
    m.add_boolean(False)
    for v in (80 + i % 5, 24, 0, 0):
        m.add_int(v)
    try:
        flooder._send_user_message(m)
    except Exception:
        break  # Airlock ended the connection
deadline = time.time() + 20
while flooder.is_active():
    assert time.time() < deadline, "the flooding connection was kept"
    time.sleep(0.1)
# Another connection works at once.
other = transport()
c = other.open_session()
c.settimeout(15)
c.exec_command("echo other")
assert c.recv(100) == b"other\n"
other.close()
print("channel ends ok")
