"""Request models that mirror the TRTC Cloud Recording structures (spec §2), field by field.

Field names are the wire names. Defaults are TRTC's. Validation raises pydantic errors
whose type is either a pydantic built-in or the TRTC error code itself (custom errors);
`validation.parse` turns the first one into the ParameterError a TRTC user expects.
Unknown fields are ignored so newer SDKs keep working.

A field named after its own type (`RecordParams.SubscribeStreamUserIds`) takes its default
inside `Annotated`: with `X: X | None = None` the class body would bind X to None before the
annotation is read.
"""

import re
from typing import Annotated, Self

from pydantic import (
    AfterValidator,
    Field,
    SecretStr,
    model_validator,
)

from chalicelib.errors import ParameterError
from chalicelib.usersig import MAX_USERSIG
from chalicelib.validation import (
    MAX_LAYOUTS,
    MAX_WATERMARKS,
    ColorHex0x,
    FontName,
    HexColor,
    ImageUrl,
    Plain,
    RenderModeInt,
    Text,
    TrtcModel,
    UInt,
    UInt64,
    UserList,
    fail,
    image_url,
    one_of,
    pattern,
    required_text,
)


class SubscribeStreamUserIds(TrtcModel):
    SubscribeAudioUserIds: UserList | None = None
    UnSubscribeAudioUserIds: UserList | None = None
    SubscribeVideoUserIds: UserList | None = None
    UnSubscribeVideoUserIds: UserList | None = None

    @model_validator(mode="after")
    def _allow_or_block(self) -> Self:
        for kind, allow, block in (
            ("audio", self.SubscribeAudioUserIds, self.UnSubscribeAudioUserIds),
            ("video", self.SubscribeVideoUserIds, self.UnSubscribeVideoUserIds),
        ):
            if allow and block:
                raise fail(
                    "InvalidParameter",
                    f"an {kind} allowlist and an {kind} blocklist cannot both be set",
                )
        return self



class RecordParams(TrtcModel):
    RecordMode: Annotated[int, one_of(1, 2)]
    MaxIdleTime: Annotated[int, Field(ge=5, le=86400)] = 30
    StreamType: Annotated[int, one_of(0, 1, 2)] = 0
    SubscribeStreamUserIds: Annotated[SubscribeStreamUserIds | None, Field(default=None)]
    OutputFormat: Annotated[int, one_of(0, 1, 2, 3, 4)] = 0
    AvMerge: Annotated[int, one_of(0, 1)] = 0
    MaxMediaFileDuration: Annotated[int, Field(ge=1, le=1440)] = 1440
    MediaId: Annotated[int, one_of(0, 1, 2)] = 0
    FillType: Annotated[int, one_of(0, 1)] = 0
    SubscribeAbility: Annotated[int, one_of(0, 1)] = 0



def _key_chars(value: SecretStr) -> SecretStr:
    if not _KEY_CHARS.fullmatch(value.get_secret_value()):
        raise fail("InvalidParameter", "a storage key holds only printable ASCII without spaces")
    return value


_KEY_CHARS = re.compile(r"[!-~]*")
# a key as the storage vendor issues it (AWS: 16-128 / 40 chars, COS: 36 / 32)
StorageKey = Annotated[SecretStr, Field(max_length=256), AfterValidator(_key_chars)]
# the recorder uploads to `<prefix>/<TaskId>/<file name>`: with 8 segments of 64 the S3 key
# stays well below S3's 1024 bytes
MAX_PREFIX_SEGMENTS = 8
_AWS_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}")
_COS_REGION = re.compile(r"[a-z]{2}(-[a-z0-9]+){1,3}")


class CloudStorage(TrtcModel):
    Vendor: Annotated[int, one_of(0, 1)]
    Region: Annotated[Text, Field(max_length=32)]
    # S3's bucket rules (COS names are a subset): the bucket becomes part of a host name
    Bucket: Annotated[Text, Field(max_length=63), pattern(
        r"[a-z0-9][a-z0-9.-]*", "InvalidParameter", "may only hold a-z 0-9 . - (S3 bucket naming)")]
    AccessKey: StorageKey
    SecretKey: StorageKey
    FileNamePrefix: Annotated[
        list[Annotated[Plain, Field(max_length=64), pattern(
            r"[A-Za-z0-9_-]+", "InvalidParameter", "may only hold a-z A-Z 0-9 _ -")]],
        Field(max_length=MAX_PREFIX_SEGMENTS),
    ] | None = None

    @model_validator(mode="after")
    def _keys_present(self) -> Self:
        if not self.AccessKey.get_secret_value():
            raise fail("MissingParameter.AccessKey", "CloudStorage.AccessKey must not be empty")
        if not self.SecretKey.get_secret_value():
            raise fail("MissingParameter.SecretKey", "CloudStorage.SecretKey must not be empty")
        # the region becomes an endpoint host (COS) or a boto3 region: one that cannot work is
        # refused now rather than failing every upload of the task
        region, kind = (_AWS_REGION, "an AWS region like us-east-1") if self.Vendor == 1 else (
            _COS_REGION, "a COS region like ap-shanghai")
        if not region.fullmatch(self.Region):
            raise fail("InvalidParameter", f"CloudStorage.Region must be {kind}")
        return self



class TencentVod(TrtcModel):
    Procedure: Annotated[Plain, Field(max_length=256)] | None = None
    ExpireTime: UInt = 0  # seconds from now: uint32 (136 years) keeps the expiry a valid date
    StorageRegion: Annotated[Plain, Field(max_length=64)] | None = None
    ClassId: UInt64 = 0
    SubAppId: UInt64 | None = None
    SessionContext: Annotated[Plain, Field(max_length=1000)] | None = None
    SourceContext: Annotated[Plain, Field(max_length=250)] | None = None
    MediaType: Annotated[int, one_of(0, 1, 2, 3, 4)] = 0
    UserDefineRecordId: Annotated[Plain, Field(max_length=64), pattern(
        r"[A-Za-z0-9_-]+", "InvalidParameter", "may only hold a-z A-Z 0-9 _ -")] | None = None



class CloudVod(TrtcModel):
    TencentVod: Annotated[TencentVod | None, Field(default=None)]

    @model_validator(mode="after")
    def _vendor_present(self) -> Self:
        if self.TencentVod is None:
            raise fail("MissingParameter", "CloudVod needs TencentVod")
        return self



class StorageParams(TrtcModel):
    CloudStorage: Annotated[CloudStorage | None, Field(default=None)]
    CloudVod: Annotated[CloudVod | None, Field(default=None)]

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if self.CloudStorage is not None and self.CloudVod is not None:
            raise fail("InvalidParameter", "CloudVod and CloudStorage are mutually exclusive: set one")
        if self.CloudStorage is None and self.CloudVod is None:
            raise fail("MissingParameter.CloudStorage", "set CloudStorage or CloudVod")
        return self



class VideoParams(TrtcModel):
    Width: Annotated[int, Field(ge=2, le=1920)]
    Height: Annotated[int, Field(ge=2, le=1920)]
    Fps: Annotated[int, Field(ge=1, le=60)]
    BitRate: Annotated[int, Field(ge=64000, le=8192000)]
    Gop: Annotated[int, Field(ge=1, le=60)]

    @model_validator(mode="after")
    def _area(self) -> Self:
        if self.Width * self.Height > 1920 * 1080:
            raise fail("InvalidParameter.VideoResolution", "Width x Height must not exceed 1920 x 1080")
        return self



class AudioParams(TrtcModel):
    SampleRate: Annotated[int, one_of(1, 2, 3)]
    Channel: Annotated[int, one_of(1, 2)]
    BitRate: Annotated[int, Field(ge=32000, le=128000)]



# TRTC's defaults when MixTranscodeParams leaves them out
DEFAULT_VIDEO = VideoParams(Width=360, Height=640, Fps=15, BitRate=550000, Gop=10)
DEFAULT_AUDIO = AudioParams(SampleRate=1, Channel=2, BitRate=64000)


class MixTranscodeParams(TrtcModel):
    VideoParams: Annotated[VideoParams | None, Field(default=None)]
    AudioParams: Annotated[AudioParams | None, Field(default=None)]


def mix_video(transcode: MixTranscodeParams | None) -> VideoParams:
    """The mixed picture's encoding, TRTC's defaults where the request leaves it out."""
    return (transcode.VideoParams if transcode is not None else None) or DEFAULT_VIDEO


def mix_audio(transcode: MixTranscodeParams | None) -> AudioParams:
    """The mixed sound's encoding, TRTC's defaults where the request leaves it out."""
    return (transcode.AudioParams if transcode is not None else None) or DEFAULT_AUDIO


def mix_canvas(transcode: MixTranscodeParams | None) -> tuple[int, int]:
    """(width, height) of the mixed picture (TRTC's default: 360 x 640)."""
    video = mix_video(transcode)
    return video.Width, video.Height


class MixLayout(TrtcModel):
    Top: Annotated[int, Field(ge=0, le=1920)]
    Left: Annotated[int, Field(ge=0, le=1920)]
    Width: Annotated[int, Field(ge=0, le=1920)]
    Height: Annotated[int, Field(ge=0, le=1920)]
    UserId: Annotated[Plain, Field(max_length=128)] | None = None
    Alpha: Annotated[int, Field(ge=0, le=255)] = 0
    RenderMode: RenderModeInt = 1
    MediaId: Annotated[int, one_of(0, 1)] = 0
    ImageLayer: UInt = 0
    SubBackgroundImage: ImageUrl | None = None



class WaterMarkImage(TrtcModel):
    WaterMarkUrl: ImageUrl
    Top: Annotated[int, Field(ge=0, le=2560)]
    Left: Annotated[int, Field(ge=0, le=2560)]
    Width: Annotated[int, Field(ge=0, le=2560)]
    Height: Annotated[int, Field(ge=0, le=2560)]



class WaterMarkChar(TrtcModel):
    Top: Annotated[int, Field(ge=0, le=2560)]  # as WaterMarkImage: the canvas is at most 1920 wide
    Left: Annotated[int, Field(ge=0, le=2560)]
    Width: Annotated[int, Field(ge=0, le=2560)]
    Height: Annotated[int, Field(ge=0, le=2560)]
    Chars: Annotated[Text, Field(max_length=256)]
    FontSize: Annotated[int, Field(ge=1, le=500)] = 14
    FontColor: ColorHex0x = "0xFFFFFF"
    BackGroundColor: ColorHex0x | Annotated[Plain, Field(max_length=0)] | None = None
    Font: FontName = "Tencent"



class WaterMarkTimestamp(TrtcModel):
    Pos: Annotated[int, one_of(0, 1, 2, 3, 4, 5, 6)]
    TimeZone: Annotated[int, Field(ge=0, le=14)] = 8
    Font: FontName = "Tencent"



class WaterMark(TrtcModel):
    WaterMarkType: Annotated[int, one_of(0, 1, 2)] = 0
    WaterMarkImage: Annotated[WaterMarkImage | None, Field(default=None)]
    WaterMarkChar: Annotated[WaterMarkChar | None, Field(default=None)]
    WaterMarkTimestamp: Annotated[WaterMarkTimestamp | None, Field(default=None)]

    @model_validator(mode="after")
    def _kind_present(self) -> Self:
        needed = ("WaterMarkImage", "WaterMarkChar", "WaterMarkTimestamp")[self.WaterMarkType]
        if getattr(self, needed) is None:
            raise fail("MissingParameter", f"WaterMarkType {self.WaterMarkType} needs {needed}")
        return self



class MixLayoutParams(TrtcModel):
    MixLayoutMode: Annotated[int, one_of(1, 2, 3, 4)]
    MixLayoutList: Annotated[list[MixLayout], Field(max_length=MAX_LAYOUTS)] | None = None
    BackGroundColor: HexColor = "#000000"
    MaxResolutionUserId: Annotated[Plain, Field(max_length=128)] | None = None
    MediaId: Annotated[int, one_of(0, 1)] = 0
    BackgroundImageUrl: Annotated[Plain, Field(max_length=2048),
                                  image_url("InvalidParameter.BackgroundImageUrl")] | None = None
    PlaceHolderMode: Annotated[int, one_of(0, 1)] = 0
    BackgroundImageRenderMode: RenderModeInt = 1
    DefaultSubBackgroundImage: ImageUrl | None = None
    WaterMarkList: Annotated[list[WaterMark], Field(max_length=MAX_WATERMARKS)] | None = None
    RenderMode: RenderModeInt = 1
    MaxResolutionUserAlign: Annotated[int, one_of(0, 1)] = 0
    PureAudioDisableLayout: bool = False

    @model_validator(mode="after")
    def _custom_needs_list(self) -> Self:
        if self.MixLayoutMode == 4 and not self.MixLayoutList:
            raise fail("InvalidParameter.PresetLayoutConfig", "MixLayoutMode 4 (custom) needs MixLayoutList")
        return self



def check_layout_fits(layout: MixLayoutParams, canvas: tuple[int, int]) -> None:
    """Raise ParameterError unless every window and watermark lies inside the canvas."""
    width, height = canvas
    for i, window in enumerate(layout.MixLayoutList or []):
        if window.Left + window.Width > width or window.Top + window.Height > height:
            raise ParameterError(
                f"MixLayoutParams.MixLayoutList[{i}] reaches beyond the {width}x{height} canvas.",
                "InvalidParameter.PresetLayoutConfig",
            )
    for i, mark in enumerate(layout.WaterMarkList or []):
        box = mark.WaterMarkImage or mark.WaterMarkChar
        if box is not None and (box.Left + box.Width > width or box.Top + box.Height > height):
            raise ParameterError(
                f"MixLayoutParams.WaterMarkList[{i}] reaches beyond the {width}x{height} canvas.",
                "InvalidParameter.OutOfRange",
            )


_NUMERIC_ROOM = re.compile(r"[1-9][0-9]{0,9}")
_STRING_ROOM = re.compile(r"[A-Za-z0-9 !#$%&()+\-:;<=.>?@\[\]^_{}|~,]{1,64}")
MAX_NUMERIC_ROOM = 4294967294


def _check_user_id(value: str) -> str:
    if not value:
        raise fail("missing", "must not be empty")
    if len(value.encode("utf-8")) > 32 or any(c.isspace() or not c.isprintable() for c in value):
        raise fail("InvalidParameter.UserId", "must be at most 32 bytes with no spaces or control characters")
    return value


class AppScoped(TrtcModel):
    SdkAppId: Annotated[int, Field(ge=1, le=2**32 - 1)]


class TaskRef(AppScoped):
    TaskId: Annotated[Text, Field(max_length=256)]


class CreateCloudRecordingRequest(AppScoped):
    RoomId: Annotated[str, AfterValidator(required_text)]
    UserId: Annotated[str, AfterValidator(_check_user_id)]
    UserSig: Annotated[SecretStr, Field(max_length=MAX_USERSIG)]
    RecordParams: RecordParams
    StorageParams: StorageParams
    RoomIdType: Annotated[int, one_of(0, 1)] = 1
    MixTranscodeParams: Annotated[MixTranscodeParams | None, Field(default=None)]
    MixLayoutParams: Annotated[MixLayoutParams | None, Field(default=None)]
    ResourceExpiredHour: Annotated[int, Field(ge=6, le=720)] = 72
    PrivateMapKey: Annotated[Plain, Field(max_length=4096)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.UserSig.get_secret_value():
            raise fail("MissingParameter.UserSig", "UserSig must not be empty")
        if self.RoomIdType == 1:
            if not _NUMERIC_ROOM.fullmatch(self.RoomId) or int(self.RoomId) > MAX_NUMERIC_ROOM:
                raise fail(
                    "InvalidParameter.RoomId",
                    f"RoomIdType 1 needs a numeric RoomId from 1 to {MAX_NUMERIC_ROOM}; "
                    "set RoomIdType 0 for a string room",
                )
        elif not _STRING_ROOM.fullmatch(self.RoomId) or len(self.RoomId.encode()) > 64:
            raise fail(
                "InvalidParameter.StrRoomId",
                "a string RoomId holds 1-64 of a-z A-Z 0-9, space and !#$%&()+-:;<=.>?@[]^_{}|~,",
            )
        vod = self.StorageParams.CloudVod
        if vod is not None and vod.TencentVod is not None and vod.TencentVod.MediaType in (2, 4):
            if self.RecordParams.StreamType != 1:
                raise fail("InvalidParameter.RecordAudioOnly", "TencentVod.MediaType 2 and 4 need StreamType 1")
        if self.RecordParams.RecordMode == 2 and self.MixLayoutParams is not None:
            try:
                check_layout_fits(self.MixLayoutParams, self.canvas())
            except ParameterError as exc:
                raise fail(exc.code, exc.message) from None
        return self

    def canvas(self) -> tuple[int, int]:
        return mix_canvas(self.MixTranscodeParams)


class DescribeCloudRecordingRequest(TaskRef):
    RecorderKey: Annotated[Plain, Field(max_length=256)] | None = None


class ModifyCloudRecordingRequest(TaskRef):
    MixLayoutParams: Annotated[MixLayoutParams | None, Field(default=None)]
    SubscribeStreamUserIds: Annotated[SubscribeStreamUserIds | None, Field(default=None)]


class DeleteCloudRecordingRequest(TaskRef):
    pass
