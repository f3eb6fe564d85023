"""The NVR's ``cameras`` table as the NVR creates it, for building test and benchmark databases.

Standalone on purpose (no imports): anything that needs a realistic ``cameras`` table can take
``SCHEMA`` from here without pulling in the rest of the benchmark.
"""

SCHEMA = """
CREATE TABLE IF NOT EXISTS cameras (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    vendor TEXT NOT NULL DEFAULT 'generic',
    address TEXT,
    rtsp_port INTEGER NOT NULL DEFAULT 554,
    username TEXT,
    password TEXT,
    main_stream_url TEXT,
    sub_stream_url TEXT,
    record_stream TEXT NOT NULL DEFAULT 'main',
    segment_seconds INTEGER NOT NULL DEFAULT 60,
    retention_hours INTEGER NOT NULL DEFAULT 24,
    record_audio INTEGER NOT NULL DEFAULT 0,
    record_enabled INTEGER NOT NULL DEFAULT 1,
    mirror_enabled INTEGER NOT NULL DEFAULT 0,
    enabled INTEGER NOT NULL DEFAULT 1,
    updated_at TEXT,
    -- columns the real table has that mirroring ignores
    ptz_enabled INTEGER NOT NULL DEFAULT 0,
    onvif_profile TEXT,
    location TEXT,
    created_at TEXT
)
"""
