"""METEOR 1.5 through the jar pycocoevalcap ships, in one long-lived Java process.

The jar speaks a line protocol on stdin/stdout (``-stdio``): ``SCORE ||| ref1 ||| ref2 ||| hypothesis`` answers with
a line of statistics, and ``EVAL ||| stats1 ||| stats2 ...`` answers with one score per statistics line and then the
corpus score (METEOR aggregates the statistics; it is not the mean of the per-image scores). This wrapper keeps that
protocol safe: stderr goes to a file so it can never fill a pipe, a reader thread drains stdout so the process never
blocks on a full pipe either, every read has a timeout, ``|||`` and line breaks are removed from the text, and a
process that dies is reported with the end of its stderr instead of a broken pipe.
"""

from __future__ import annotations

import queue
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import numpy as np

from mmtrain.errors import UserError
from mmtrain.metrics.meteor.resources import find_meteor_jar
from mmtrain.metrics.meteor.scorer import nothing_to_score


def meteor_unavailable_reason() -> str | None:
    """Why METEOR cannot run here (no Java, no jar), or None when it can."""
    if shutil.which("java") is None:
        return "needs Java (the METEOR 1.5 jar is Java); `java` is not on PATH"
    if find_meteor_jar() is None:
        return "needs pycocoevalcap's meteor-1.5.jar; install pycocoevalcap (pip install 'mmtrain[dev]')"
    return None


def _clean(text: str) -> str:
    """Text safe for the protocol, changed no more than pycocoevalcap changes it: no field separator, no line break."""
    return text.replace("|||", "").replace("  ", " ").replace("\r", " ").replace("\n", " ")


class Meteor:
    """A running METEOR 1.5 scorer. Use as a context manager, or call :meth:`close`.

    Args:
        jar: Path to ``meteor-1.5.jar``; defaults to pycocoevalcap's.
        memory: Java heap size, as pycocoevalcap sets it.
        timeout: Seconds to wait for any one answer (the first one includes loading the paraphrase table).
    """

    def __init__(self, jar: str | Path | None = None, *, memory: str = "2G", timeout: float = 600.0) -> None:
        reason = meteor_unavailable_reason() if jar is None else None
        if reason is not None:
            raise UserError(f"METEOR {reason}")
        self.jar = Path(jar) if jar is not None else find_meteor_jar()
        if self.jar is None or not self.jar.is_file():
            raise UserError(f"METEOR jar not found: {self.jar}")
        self.timeout = timeout
        self._stderr = tempfile.TemporaryFile()
        command = ["java", "-jar", f"-Xmx{memory}", self.jar.name, "-", "-", "-stdio", "-l", "en", "-norm"]
        self._process = subprocess.Popen(
            command, cwd=self.jar.parent, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr
        )
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self._reader = threading.Thread(target=self._drain, args=(self._process.stdout,), daemon=True)
        self._reader.start()
        self._lock = threading.Lock()

    def _drain(self, stream: IO[bytes]) -> None:
        for line in iter(stream.readline, b""):
            self._lines.put(line)
        self._lines.put(None)  # end of output: the process has exited

    def _failure(self, what: str) -> UserError:
        self._stderr.seek(0)
        tail = self._stderr.read().decode("utf-8", "replace").strip().splitlines()[-3:]
        detail = " | ".join(tail) if tail else f"exit code {self._process.poll()}"
        return UserError(f"METEOR {what}: {detail}")

    def _send(self, lines: Sequence[str]) -> None:
        try:
            self._process.stdin.write("".join(line + "\n" for line in lines).encode("utf-8"))
            self._process.stdin.flush()
        except (BrokenPipeError, OSError) as error:
            raise self._failure("stopped accepting input") from error

    def _receive(self) -> str:
        try:
            line = self._lines.get(timeout=self.timeout)
        except queue.Empty:
            raise self._failure(f"gave no answer within {self.timeout:.0f} s") from None
        if line is None:
            raise self._failure("exited unexpectedly")
        return line.decode("utf-8").strip()

    def score(self, references: Sequence[Sequence[str]], candidates: Sequence[str]) -> tuple[float, np.ndarray]:
        """METEOR of each candidate against its references, as pycocoevalcap computes it.

        Args:
            references: Per image, its tokenized references.
            candidates: Per image, its tokenized candidate, aligned with ``references``.

        Returns:
            The corpus score and the per-image scores, shape (N,).
        """
        if nothing_to_score(references, candidates):
            return 0.0, np.zeros(0)
        with self._lock:
            requests = [
                " ||| ".join(["SCORE", *(_clean(r) for r in refs), _clean(c)])
                for refs, c in zip(references, candidates, strict=True)
            ]
            self._send(requests)
            stats = [self._receive() for _ in requests]
            self._send([" ||| ".join(["EVAL", *stats])])
            per_image = np.asarray([float(self._receive()) for _ in stats])
            self.last_stats = np.asarray([line.split() for line in stats], dtype=np.float64)
            return float(self._receive()), per_image

    def score_with_stats(
        self, references: Sequence[Sequence[str]], candidates: Sequence[str]
    ) -> tuple[float, np.ndarray, np.ndarray]:
        """The corpus score, per-image scores and the jar's per-image statistics (N, 23)."""
        corpus, per_image = self.score(references, candidates)
        stats = self.last_stats if len(candidates) else np.zeros((0, 23))
        return corpus, per_image, stats

    def close(self) -> None:
        """Stop the Java process (idempotent)."""
        if self._process.poll() is None:
            try:
                self._process.stdin.close()
                self._process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self._process.kill()
                self._process.wait()
        self._stderr.close()

    def __enter__(self) -> Meteor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        process = getattr(self, "_process", None)
        if process is not None and process.poll() is None:
            process.kill()
