"""asyncssh through Airlock: several exec channels on one connection at once, and SFTP.

Environment as for paramiko_client.py."""
import asyncio
import hashlib
import os

import asyncssh

port, key, conn, work = (os.environ[k] for k in ("SSH_PORT", "SSH_KEY", "SSH_CONN", "WORK"))


async def main():
    async with asyncssh.connect("127.0.0.1", port=int(port), username=conn, client_keys=[key],
                                known_hosts=None, agent_path=None) as c:
        results = await asyncio.gather(*(c.run(f"echo chan-{i}; exit {i}") for i in range(5)))
        for i, r in enumerate(results):
            assert r.stdout == f"chan-{i}\n", r.stdout
            assert r.exit_status == i, r.exit_status
        r = await c.run("cat", input="fed through stdin\n")
        assert r.stdout == "fed through stdin\n", r.stdout
        data = os.urandom(2 << 20)
        async with c.start_sftp_client() as sftp:
            async with sftp.open(f"{work}/asyncssh.bin", "wb") as f:
                await f.write(data)
            async with sftp.open(f"{work}/asyncssh.bin", "rb") as f:
                back = await f.read()
        assert hashlib.sha256(back).digest() == hashlib.sha256(data).digest(), "sftp round trip"
    print("asyncssh ok")


asyncio.run(main())
