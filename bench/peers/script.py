"""util-linux `script` from the OS: capture only.

`script -q -c "<stream>" <file>` with stdin and stdout on /dev/null; timed
from exec to script's exit (it has written everything by then). The file
carries a one-line header and a trailer; the stream between them is checked
by size and sha256.
"""
from __future__ import annotations

import os
import shutil
import subprocess

from peers.base import Peer, Skip, check_bytes, expected, shell
from procs import FigureFailed, now


class Script(Peer):
    name = "script"
    supports = frozenset({"capture"})

    def install(self) -> None:
        self.bin = shutil.which("script")
        if not self.bin:
            raise Skip("script not on PATH")
        self.version = subprocess.run([self.bin, "--version"], capture_output=True,
                                      text=True).stdout.strip()

    def capture(self, program: str, size: int) -> float:
        d = self.fresh_dir("cap")
        log = os.path.join(d, "typescript")
        t0 = now()
        p = self.reg.popen([self.bin, "-q", "-c", shell(program, size), log], env=self.reg.env(),
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            code = p.wait(900)
        except subprocess.TimeoutExpired:
            p.kill()
            raise FigureFailed("script hung (> 900 s)") from None
        dt = now() - t0
        try:
            if code != 0:
                raise FigureFailed(f"script exited {code}")
            with open(log, "rb") as f:
                head = f.read(4096)
            start = head.find(b"]\n") + 2 if head.startswith(b"Script started") else 0
            want, _ = expected(program, size, pty=True)
            if os.path.getsize(log) < start + want:
                raise FigureFailed(f"typescript too short: {os.path.getsize(log) - start} of {want} bytes")
            check_bytes(log, program, size, pty=True, offset=start)
        finally:
            os.unlink(log)
        return dt

    def teardown(self) -> None:
        pass


PEER = Script
