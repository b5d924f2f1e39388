"""An in-memory S3 client double, for forcing the interleavings of two writers that a real store shows only by chance.

Beside the real tests on Swift, never instead of them: each race test here has a real-store
counterpart. Objects carry a ``LastModified`` from the double's own clock (``now``), which a test
moves; ``hooks`` run before every call, so a test can make another "host" act at an exact point;
``conditional`` says whether ``If-None-Match: *`` is honoured (AWS S3) or answered 501 (Swift).
"""

import io
import shutil
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from types import SimpleNamespace

from botocore.exceptions import ClientError


def client_error(code: str, status: int, operation: str) -> ClientError:
    """Return the ClientError boto3 raises for an S3 error ``code`` with HTTP ``status``."""
    return ClientError({"Error": {"Code": code, "Message": code},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


class MemoryS3:
    """The S3 calls the store makes, on a dict of objects."""

    def __init__(self, conditional: bool = True):
        self.objects: dict[str, tuple[bytes, datetime]] = {}
        self.now = datetime(2026, 6, 1, tzinfo=timezone.utc)
        self.conditional = conditional
        self.hooks: list = []
        self.calls: list[tuple[str, str]] = []
        self.meta = SimpleNamespace(endpoint_url="http://memory.invalid",
                                    events=SimpleNamespace(register=lambda *args: None))

    def advance(self, seconds: float) -> None:
        """Move the store's clock."""
        self.now += timedelta(seconds=seconds)

    def _before(self, operation: str, key: str = "") -> None:
        self.calls.append((operation, key))
        for hook in list(self.hooks):
            hook(operation, key)

    def _answer(self, **fields) -> dict:
        return {**fields, "ResponseMetadata": {"HTTPHeaders": {"date": format_datetime(self.now, usegmt=True)}}}

    def _missing(self, operation: str) -> ClientError:
        return client_error("NoSuchKey", 404, operation)

    def list_objects_v2(self, Bucket, Prefix="", Delimiter=None, ContinuationToken=None, MaxKeys=None):  # noqa: N803
        self._before("list_objects_v2", Prefix)
        keys = sorted(key for key in self.objects if key.startswith(Prefix))
        if Delimiter:
            folders = sorted({Prefix + key[len(Prefix):].split(Delimiter)[0] + Delimiter
                              for key in keys if Delimiter in key[len(Prefix):]})
            keys = [key for key in keys if Delimiter not in key[len(Prefix):]]
            return self._answer(Contents=[self._entry(key) for key in keys],
                                CommonPrefixes=[{"Prefix": folder} for folder in folders], IsTruncated=False)
        return self._answer(Contents=[self._entry(key) for key in keys][:MaxKeys], IsTruncated=False)

    def _entry(self, key: str) -> dict:
        body, modified = self.objects[key]
        return {"Key": key, "Size": len(body), "LastModified": modified}

    def get_object(self, Bucket, Key):  # noqa: N803
        self._before("get_object", Key)
        if Key not in self.objects:
            raise self._missing("GetObject")
        return self._answer(Body=io.BytesIO(self.objects[Key][0]))

    def head_object(self, Bucket, Key):  # noqa: N803
        self._before("head_object", Key)
        if Key not in self.objects:
            raise client_error("404", 404, "HeadObject")
        return self._answer(ContentLength=len(self.objects[Key][0]))

    def put_object(self, Bucket, Key, Body, ContentType=None, IfNoneMatch=None):  # noqa: N803
        self._before("put_object", Key)
        if IfNoneMatch == "*":
            if not self.conditional:
                raise client_error("NotImplemented", 501, "PutObject")
            if Key in self.objects:
                raise client_error("PreconditionFailed", 412, "PutObject")
        self.objects[Key] = (bytes(Body), self.now)
        return self._answer()

    def delete_objects(self, Bucket, Delete):  # noqa: N803
        for item in Delete["Objects"]:
            self._before("delete_objects", item["Key"])
            self.objects.pop(item["Key"], None)
        return self._answer()

    def upload_file(self, filename, bucket, key, Config=None):  # noqa: N803
        self._before("upload_file", key)
        with open(filename, "rb") as handle:
            self.objects[key] = (handle.read(), self.now)

    def download_fileobj(self, bucket, key, fileobj, Config=None):  # noqa: N803
        self._before("download_fileobj", key)
        if key not in self.objects:
            raise client_error("404", 404, "HeadObject")
        shutil.copyfileobj(io.BytesIO(self.objects[key][0]), fileobj)
