"""Exception classes. Each carries a message a user can act on and the CLI exit code it maps to."""

from __future__ import annotations

from dataclasses import dataclass


class EmbedopsError(Exception):
    """Base class for every error embedops raises on purpose."""

    exit_code = 1


# -- store -----------------------------------------------------------------------------------------


class StoreError(EmbedopsError):
    """The store cannot be opened or written."""


class NotAStoreError(StoreError):
    """There is no embedops store at the path: nothing there, or something that is not a store. Bad
    input (exit code 2): nothing is written."""

    exit_code = 2


class StoreSchemaTooNewError(StoreError):
    """The store was written by a newer embedops; this version must not touch it."""


# -- input -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputProblem:
    """One problem in an input file: where it is and what is wrong."""

    file: str
    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        if self.field:
            return f"{where}: field '{self.field}': {self.message}"
        return f"{where}: {self.message}"


class InputError(EmbedopsError):
    """The user's input is invalid. Nothing was written."""

    exit_code = 2

    def __init__(self, problems: list[InputProblem] | InputProblem | str, *, limit: int = 20):
        if isinstance(problems, str):
            problems = [InputProblem(file="<input>", line=None, field=None, message=problems)]
        elif isinstance(problems, InputProblem):
            problems = [problems]
        self.problems = list(problems)
        shown = [str(p) for p in self.problems[:limit]]
        more = len(self.problems) - len(shown)
        if more > 0:
            shown.append(f"... and {more} more problem(s)")
        super().__init__("\n".join(shown))


class UsageError(EmbedopsError):
    """A name, reference or option value is not valid."""

    exit_code = 2


# -- registry --------------------------------------------------------------------------------------


class NotFoundError(EmbedopsError):
    """A named thing (corpus, model version, index, alias) does not exist: bad input (exit code 2),
    as a malformed value is; nothing is written."""

    exit_code = 2


class CorpusNotFoundError(NotFoundError):
    pass


class ModelNotFoundError(NotFoundError):
    pass


class IndexNotFoundError(NotFoundError):
    pass


class DeviceError(EmbedopsError):
    """The device asked for cannot run the encoder (a CUDA provider that fails to load, say). Nothing
    fell back silently: the message names what is missing and how to fix it or allow the fallback."""

    exit_code = 2


class ExportError(EmbedopsError):
    """ONNX export failed or did not reach parity with the torch model."""


class ExportMissingError(ExportError):
    """A model has no stored export at that precision and the caller may not make one (a server
    never writes to the store): ``embedops model export-onnx`` makes it."""


class ModelFormatError(EmbedopsError):
    """A model directory is not a loadable, safe sentence-transformers model."""

    exit_code = 2


class ChecksumMismatchError(EmbedopsError):
    """A stored artifact does not match the checksums recorded when it was registered."""

    def __init__(self, ref: str, problems: list[str]):
        self.ref = ref
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"{ref}: stored files do not match their recorded sha256 checksums; refusing to use them.\n"
            f"{lines}\nRe-register the model from a trusted copy."
        )


class ConflictError(EmbedopsError):
    """A compare-and-swap lost: someone else changed the value first."""

    exit_code = 3


class AliasConflictError(ConflictError):
    pass


class IndexStateError(EmbedopsError):
    """An operation is not allowed in the index's current state."""


class PromotionRefused(EmbedopsError):
    """No guard report authorises this alias switch now (none, failed, or made for something else),
    and no override was given."""


class LockHeldError(ConflictError):
    """Another process holds the lock for the same work (e.g. an index build of the same inputs)."""


class UnsafePathError(StoreError):
    """A path read back from a store row points outside the store's folders; nothing was written."""
