"""Errors of the datasets app. The API turns them into 400 answers that name the field."""

from __future__ import annotations


class DatasetError(Exception):
    """Bad input: `field` names the request field it came from (`file`, `path`, `format`, …)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class DatasetImportError(DatasetError):
    """A source file could not be read. The message names the file and, where there is one, the line."""

    def __init__(self, file: str, line: int | None, message: str, *, field: str = "file"):
        self.file = file
        self.line = line
        self.reason = message
        where = f"{file}, line {line}" if line is not None else file
        super().__init__(field, f"{where}: {message}")


class UploadTooLarge(Exception):
    """The upload is larger than DATAMATE_MAX_UPLOAD_BYTES (HTTP 413)."""

    def __init__(self, limit: int):
        super().__init__(f"the upload is larger than the limit of {limit} bytes (DATAMATE_MAX_UPLOAD_BYTES)")
        self.limit = limit
