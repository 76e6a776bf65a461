"""paramiko through Airlock: exec with exit status and stderr, then SFTP up and down.

Environment: SSH_PORT, SSH_KEY (agent's private key), SSH_CONN (connection name),
WORK (a directory on the host, shared with the test)."""
import hashlib
import os

import paramiko

port, key, conn, work = (os.environ[k] for k in ("SSH_PORT", "SSH_KEY", "SSH_CONN", "WORK"))
client = paramiko.SSHClient()
client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
client.connect("127.0.0.1", port=int(port), username=conn, key_filename=key,
               look_for_keys=False, allow_agent=False, timeout=20)

_, stdout, stderr = client.exec_command("echo paramiko-out; echo paramiko-err >&2; exit 7")
assert stdout.read() == b"paramiko-out\n", "stdout"
assert stderr.read() == b"paramiko-err\n", "stderr"
assert stdout.channel.recv_exit_status() == 7, "exit status"

data = os.urandom(3 << 20)
sftp = client.open_sftp()
with sftp.open(f"{work}/paramiko.bin", "wb") as f:
    f.write(data)
with sftp.open(f"{work}/paramiko.bin", "rb") as f:
    back = f.read()
assert hashlib.sha256(back).digest() == hashlib.sha256(data).digest(), "sftp round trip"
assert "paramiko.bin" in sftp.listdir(work)
sftp.close()
client.close()
print("paramiko ok")
