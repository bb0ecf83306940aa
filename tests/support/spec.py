"""Tables copied from the spec (../shared/spec/media-api.md), for tests to check against."""

SPEC_TABLE = {
    "1:1": (1024, 1024),
    "4:3": (1280, 896),
    "3:4": (896, 1280),
    "16:9": (1408, 768),
    "9:16": (768, 1408),
    "21:9": (1536, 640),
    "9:21": (640, 1536),
}
