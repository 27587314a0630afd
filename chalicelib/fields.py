"""The constrained field types of the TRTC wire models (spec §2.2) and their validators.

A failed check raises a pydantic error whose type is the TRTC error code itself (`fail`), so
`models.parameter_error` can hand the code a TRTC user expects straight through.
"""

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

MAX_SUBSCRIBE_LIST = 32
MAX_LAYOUTS = 25
MAX_WATERMARKS = 25


def fail(code: str, message: str) -> PydanticCustomError:
    """A validation error whose type is the TRTC error code (models.parameter_error maps it)."""
    return PydanticCustomError(code, message)


def one_of(*allowed: int) -> AfterValidator:
    def check(value: int) -> int:
        if value not in allowed:
            raise fail("InvalidParameter.OutOfRange", f"must be one of {', '.join(map(str, allowed))}")
        return value

    return AfterValidator(check)


def required_text(value: str) -> str:
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


UInt = Annotated[int, Field(ge=0)]
Text = Annotated[str, AfterValidator(required_text)]
ImageUrl = Annotated[str, Field(max_length=2048), image_url("InvalidParameter")]
HexColor = Annotated[str, pattern(r"#[0-9A-Fa-f]{6}", "InvalidParameter", "must be #RRGGBB")]
ColorHex0x = Annotated[str, pattern(r"0x[0-9A-Fa-f]{6}", "InvalidParameter", "must be 0xRRGGBB")]
FontName = Annotated[str, pattern(r"Tencent|SourceHanSans", "InvalidParameter.OutOfRange",
                               "must be Tencent or SourceHanSans")]
RenderModeInt = Annotated[int, one_of(0, 1, 2, 3)]
UserList = Annotated[list[Text], Field(max_length=MAX_SUBSCRIBE_LIST)]


class TrtcModel(BaseModel):
    """Base of the wire models: frozen, unknown fields ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)
