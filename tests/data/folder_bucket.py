"""An object store without a network: LitData's ``s3://`` downloader replaced by one that reads a local folder.

``s3://BUCKET/KEY`` maps to ``ROOT/KEY``. Everything else in LitData (index handling, chunk caching, the cache
folder) runs as it would against S3, so a test that reads a store URL through it takes mmtrain's URL route end to
end; only the transport differs. Every requested URL is recorded in ``requested``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from litdata.streaming import downloader as litdata_downloader

PREFIX = "s3://"


def folder_bucket(root: Path) -> type:
    """A LitData downloader class serving ``s3://ANY_BUCKET/KEY`` from ``root/KEY``."""
    requested: list[str] = []

    def local(remote: str) -> str:
        requested.append(remote)
        return str(root / urlparse(remote).path.lstrip("/"))

    class FolderBucket(litdata_downloader.LocalDownloader):  # its adownload_file calls download_file
        def download_file(self, remote_filepath: str, local_filepath: str) -> None:
            super().download_file(local(remote_filepath), local_filepath)

        async def adownload_bytes(self, remote_filepath: str, offset: int, length: int, local_chunkpath: str) -> bytes:
            return await super().adownload_bytes(local(remote_filepath), offset, length, local_chunkpath)

        async def adownload_fileobj(self, remote_filepath: str) -> bytes:
            return await super().adownload_fileobj(local(remote_filepath))

    FolderBucket.requested = requested
    return FolderBucket


def install(root: Path) -> type:
    """Serve ``s3://`` from ``root`` for the rest of this process (for a CLI run in a subprocess)."""
    cls = folder_bucket(root)
    litdata_downloader.register_downloader(PREFIX, cls, overwrite=True)
    return cls
