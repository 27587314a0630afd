"""Validating TRTC requests: the constrained field types of the wire models (spec §2.2), their
validators, and the one place a failed validation becomes the API error a TRTC user expects.

A failed check raises a pydantic error whose type is the TRTC error code itself (`fail`), so
`parameter_error` can hand that code straight through; pydantic's own errors map to
MissingParameter(.<Field>) and InvalidParameter(.OutOfRange).
"""

import re
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from chalicelib.errors import ParameterError

MAX_SUBSCRIBE_LIST = 32
MAX_LAYOUTS = 25
MAX_WATERMARKS = 25


def fail(code: str, message: str) -> PydanticCustomError:
    """A validation error whose type is the TRTC error code (parameter_error maps it)."""
    return PydanticCustomError(code, message)


def one_of(*allowed: int) -> AfterValidator:
    def check(value: int) -> int:
        if value not in allowed:
            raise fail("InvalidParameter.OutOfRange", f"must be one of {', '.join(map(str, allowed))}")
        return value

    return AfterValidator(check)


def encodable(value: str) -> str:
    """Refuse text that UTF-8 cannot carry (lone surrogates from JSON `\\ud800` escapes): it
    could not be stored, logged or echoed in a reply."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise fail("InvalidParameter", "holds a lone surrogate, which is not text") from None
    return value


def required_text(value: str) -> str:
    encodable(value)
    if not value.strip():
        raise fail("missing", "must not be empty")
    return value


def pattern(regex: str, code: str, what: str) -> AfterValidator:
    compiled = re.compile(regex)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise fail(code, what)
        return value

    return AfterValidator(check)


_URL_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!&()*+,%=]+")
_IMAGE_SUFFIX = re.compile(r"\.(jpg|jpeg|png)$", re.IGNORECASE)


def image_url(code: str) -> AfterValidator:
    def check(value: str) -> str:
        if not (value.startswith("http://") or value.startswith("https://")):
            raise fail(code, "must be an http:// or https:// URL")
        if not _URL_CHARS.fullmatch(value):
            raise fail(code, "holds characters outside a-z A-Z 0-9 - . _ ~ : / ? # [ ] @ ! & ( ) * + , % =")
        path = re.split(r"[?#]", value, maxsplit=1)[0]
        if not _IMAGE_SUFFIX.search(path):
            raise fail("InvalidParameter.CheckSuffixFailed", "must name a .jpg, .jpeg or .png file")
        return value

    return AfterValidator(check)


# TRTC's wire integers are uint64, but what consumes them is narrower: a VOD expiry is added to
# a datetime, a class or layer id is an int32 elsewhere. Never let a number through unbounded.
UInt32 = Annotated[int, Field(ge=0, le=2**32 - 1)]
UInt64 = Annotated[int, Field(ge=0, le=2**64 - 1)]
UInt = UInt32
MAX_TEXT = 1024  # no free-text field of TRTC's is longer
Text = Annotated[str, Field(max_length=MAX_TEXT), AfterValidator(required_text)]
Plain = Annotated[str, AfterValidator(encodable)]
ImageUrl = Annotated[str, Field(max_length=2048), image_url("InvalidParameter")]
HexColor = Annotated[str, pattern(r"#[0-9A-Fa-f]{6}", "InvalidParameter", "must be #RRGGBB")]
ColorHex0x = Annotated[str, pattern(r"0x[0-9A-Fa-f]{6}", "InvalidParameter", "must be 0xRRGGBB")]
FontName = Annotated[str, pattern(r"Tencent|SourceHanSans", "InvalidParameter.OutOfRange",
                               "must be Tencent or SourceHanSans")]
RenderModeInt = Annotated[int, one_of(0, 1, 2, 3)]
# a UserId (<= 32 bytes) or a prefix rule ("1.*$"): 64 leaves room for either
UserRule = Annotated[str, Field(max_length=64), AfterValidator(required_text)]
UserList = Annotated[list[UserRule], Field(max_length=MAX_SUBSCRIBE_LIST)]


class TrtcModel(BaseModel):
    """Base of the wire models: frozen, unknown fields ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


# Fields for which TRTC documents a dedicated MissingParameter.<Field> code (spec §3.1).
_NAMED_MISSING = {
    "AccessKey", "Bucket", "CloudStorage", "RecordMode", "RecordParams", "Region", "RoomId",
    "SdkAppId", "SecretKey", "StorageParams", "StreamType", "TaskId", "UserId", "UserSig", "Vendor",
}
_OUT_OF_RANGE = {
    "greater_than_equal", "less_than_equal", "greater_than", "less_than", "too_long",
    "too_short", "literal_error", "enum", "multiple_of",
}

M = TypeVar("M", bound=BaseModel)


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parameter_error(exc: ValidationError) -> ParameterError:
    """The ParameterError a TRTC user gets for a failed validation (missing fields first)."""
    errors = exc.errors(include_url=False)
    missing = [e for e in errors if e["type"] == "missing"]
    first = (missing or errors)[0]
    loc = tuple(p for p in first["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    path = _path(loc) or "request body"  # model-level errors have no field
    kind = first["type"]
    field = next((p for p in reversed(loc) if isinstance(p, str)), "")
    if kind == "missing":
        code = f"MissingParameter.{field}" if field in _NAMED_MISSING else "MissingParameter"
        return ParameterError(f"The parameter {path} is missing or empty.", code)
    if kind in _OUT_OF_RANGE:
        return ParameterError(f"The parameter {path} is out of range: {first['msg']}.", "InvalidParameter.OutOfRange")
    if kind.startswith(("InvalidParameter", "MissingParameter")):
        text = f"{loc and path + ': ' or ''}{first['msg']}."
        return ParameterError(text[0].upper() + text[1:], kind)
    return ParameterError(f"The parameter {path} is invalid: {first['msg']}.", "InvalidParameter")


def parse(model: type[M], data: Any, strict: bool) -> M:
    """Validate `data` as `model`; `strict` for JSON bodies, lax for flattened GET queries."""
    call: Callable[..., M] = model.model_validate
    try:
        return call(data, strict=strict)
    except ValidationError as exc:
        raise parameter_error(exc) from None
