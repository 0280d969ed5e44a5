"""Label Studio adapter: box conversions, label config, local-files URLs and an HTTP client.

Importing this package does no I/O. ``LabelStudioClient`` is loaded on first access, so the pure
helpers do not pay for importing label-studio-sdk (~2 s).
"""

from typing import TYPE_CHECKING, Any

from labelwise.labelstudio.boxes import (
    detections_to_ls_result,
    ls_rect_to_xyxy,
    ls_rect_to_yolo,
    ls_result_to_yolo,
    rectangle_region,
    xyxy_to_ls_rect,
    xyxy_to_yolo,
    yolo_to_ls_rect,
    yolo_to_ls_result,
    yolo_to_xyxy,
)
from labelwise.labelstudio.errors import (
    LabelStudioAuthError,
    LabelStudioError,
    LabelStudioMaybeApplied,
    LabelStudioRequestError,
    LabelStudioUnavailable,
)
from labelwise.labelstudio.label_config import build_label_config
from labelwise.labelstudio.local_files import check_storage_path, local_files_url

if TYPE_CHECKING:
    from labelwise.labelstudio.client import LabelStudioClient


def __getattr__(name: str) -> Any:
    if name == "LabelStudioClient":
        from labelwise.labelstudio.client import LabelStudioClient

        return LabelStudioClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "LabelStudioAuthError",
    "LabelStudioClient",
    "LabelStudioError",
    "LabelStudioMaybeApplied",
    "LabelStudioRequestError",
    "LabelStudioUnavailable",
    "build_label_config",
    "check_storage_path",
    "detections_to_ls_result",
    "local_files_url",
    "ls_rect_to_xyxy",
    "ls_rect_to_yolo",
    "ls_result_to_yolo",
    "rectangle_region",
    "xyxy_to_ls_rect",
    "xyxy_to_yolo",
    "yolo_to_ls_rect",
    "yolo_to_ls_result",
    "yolo_to_xyxy",
]
