-- dicomd SQLite index, schema version 1.
CREATE TABLE IF NOT EXISTS resources (
    id          INTEGER PRIMARY KEY,
    level       INTEGER NOT NULL,
    public_id   TEXT    NOT NULL UNIQUE,
    parent_id   INTEGER REFERENCES resources(id) ON DELETE CASCADE,
    main_tags   TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS resources_parent ON resources(parent_id);
CREATE INDEX IF NOT EXISTS resources_level ON resources(level, id);

CREATE TABLE IF NOT EXISTS metadata (
    id        INTEGER NOT NULL REFERENCES resources(id) ON DELETE CASCADE,
    type      INTEGER NOT NULL,
    value     TEXT    NOT NULL,
    revision  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (id, type)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS attachments (
    id                 INTEGER NOT NULL REFERENCES resources(id) ON DELETE CASCADE,
    content_type       INTEGER NOT NULL,
    uuid               TEXT    NOT NULL UNIQUE,
    compression        INTEGER NOT NULL,
    uncompressed_size  INTEGER NOT NULL,
    compressed_size    INTEGER NOT NULL,
    uncompressed_md5   TEXT    NOT NULL,
    compressed_md5     TEXT    NOT NULL,
    revision           INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (id, content_type)
) WITHOUT ROWID;

-- The change log; AUTOINCREMENT so that the last sequence number survives deletions.
-- It is also the event log handlers are fed from: events Orthanc does not log (Deleted,
-- RecycledPatient) are rows with in_log = 0 (not shown by /changes) and no resource_id, so
-- that they outlive their resource; their payload says what scripts need to know of it.
-- Job events (JobSubmitted, JobSuccess, JobFailure) are hidden too, with the job's ID as
-- public_id and no level.
CREATE TABLE IF NOT EXISTS changes (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    change_type  INTEGER NOT NULL,
    resource_id  INTEGER REFERENCES resources(id) ON DELETE CASCADE,
    level        INTEGER,  -- NULL for a job event
    public_id    TEXT    NOT NULL,
    date         TEXT    NOT NULL,
    in_log       INTEGER NOT NULL DEFAULT 1,
    payload      TEXT,
    log_seq      INTEGER  -- the Seq /changes shows: numbered among logged changes only
);
CREATE INDEX IF NOT EXISTS changes_resource ON changes(resource_id);

CREATE TABLE IF NOT EXISTS patients (
    id               INTEGER PRIMARY KEY REFERENCES resources(id) ON DELETE CASCADE,
    protected        INTEGER NOT NULL DEFAULT 0,
    recycling_order  INTEGER NOT NULL  -- the Seq of the patient's latest NewInstance change
);
CREATE INDEX IF NOT EXISTS patients_recycling ON patients(protected, recycling_order);

-- Series, studies and patients waiting to become stable, with the time (Unix seconds) at
-- which they will, so that a restart resumes the countdown instead of forgetting it.
CREATE TABLE IF NOT EXISTS unstable (
    id        INTEGER PRIMARY KEY REFERENCES resources(id) ON DELETE CASCADE,
    deadline  REAL    NOT NULL
);
CREATE INDEX IF NOT EXISTS unstable_deadline ON unstable(deadline);

-- How far each event handler got in the change log, and the events it gave up on.
CREATE TABLE IF NOT EXISTS handler_positions (
    name  TEXT    PRIMARY KEY,
    seq   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS handler_failures (
    id           INTEGER PRIMARY KEY,
    handler      TEXT    NOT NULL,
    seq          INTEGER NOT NULL,
    change_type  INTEGER NOT NULL,
    level        INTEGER,
    public_id    TEXT    NOT NULL,
    attempts     INTEGER NOT NULL,
    error        TEXT    NOT NULL,
    date         TEXT    NOT NULL
);

-- Peers added, changed or deleted at run time (PUT / DELETE /peers/{name}), over the ones of
-- the configuration file; definition NULL: deleted.
CREATE TABLE IF NOT EXISTS peers (
    name        TEXT PRIMARY KEY,
    definition  TEXT
) WITHOUT ROWID;

-- Jobs (forwarding to peers...). A worker claims a Pending or Retry job whose next_attempt
-- has come by setting it Running in a transaction; a restart puts Running jobs back.
CREATE TABLE IF NOT EXISTS jobs (
    id            TEXT    PRIMARY KEY,
    type          TEXT    NOT NULL,
    state         TEXT    NOT NULL,
    priority      INTEGER NOT NULL DEFAULT 0,
    created       REAL    NOT NULL,
    completed     REAL,
    next_attempt  REAL    NOT NULL DEFAULT 0,
    control       TEXT,  -- a pause or cancel asked while Running
    data          TEXT    NOT NULL,  -- small: rewritten as the job progresses
    instances     TEXT    NOT NULL DEFAULT '[]'  -- the instances to send, written once
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs(state, next_attempt);

-- Files whose rows were deleted and that are not yet confirmed unlinked.
CREATE TABLE IF NOT EXISTS file_deletions (
    uuid TEXT PRIMARY KEY
) WITHOUT ROWID;

-- Settings changed at run time through the REST API (/tools/default-encoding, ...), shared
-- by every process of the daemon; emptied at each start, as Orthanc forgets them.
CREATE TABLE IF NOT EXISTS runtime_settings (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
) WITHOUT ROWID;

-- The log of exported resources (LogExportedResources): one row per resource sent.
CREATE TABLE IF NOT EXISTS exports (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    level        INTEGER NOT NULL,
    public_id    TEXT    NOT NULL,
    remote       TEXT    NOT NULL,  -- the modality's or peer's symbolic name
    date         TEXT    NOT NULL,
    patient_id   TEXT,
    study_uid    TEXT,
    series_uid   TEXT,
    sop_uid      TEXT
);

CREATE TABLE IF NOT EXISTS globals (
    key    TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO globals VALUES ('schema_version', 1),
    ('disk_size', 0), ('uncompressed_size', 0),
    ('count_0', 0), ('count_1', 0), ('count_2', 0), ('count_3', 0);

-- /changes numbers the changes it shows among themselves (log_seq), as Orthanc does, so that
-- hidden events do not leave gaps; the last number given survives deletions and clearing.
INSERT OR IGNORE INTO globals SELECT 'last_logged_seq',
    COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'changes'), 0);
CREATE INDEX IF NOT EXISTS changes_log ON changes(log_seq) WHERE in_log = 1;
CREATE TRIGGER IF NOT EXISTS changes_logged AFTER INSERT ON changes WHEN NEW.in_log = 1 BEGIN
    UPDATE globals SET value = value + 1 WHERE key = 'last_logged_seq';
    UPDATE changes SET log_seq = (SELECT value FROM globals WHERE key = 'last_logged_seq')
        WHERE seq = NEW.seq;
END;

-- Running totals, so that /statistics stays instant with millions of instances.
CREATE TRIGGER IF NOT EXISTS attachments_added AFTER INSERT ON attachments BEGIN
    UPDATE globals SET value = value + NEW.compressed_size WHERE key = 'disk_size';
    UPDATE globals SET value = value + NEW.uncompressed_size WHERE key = 'uncompressed_size';
END;
CREATE TRIGGER IF NOT EXISTS attachments_removed AFTER DELETE ON attachments BEGIN
    UPDATE globals SET value = value - OLD.compressed_size WHERE key = 'disk_size';
    UPDATE globals SET value = value - OLD.uncompressed_size WHERE key = 'uncompressed_size';
END;
CREATE TRIGGER IF NOT EXISTS resources_added AFTER INSERT ON resources BEGIN
    UPDATE globals SET value = value + 1 WHERE key = 'count_' || NEW.level;
END;
CREATE TRIGGER IF NOT EXISTS resources_removed AFTER DELETE ON resources BEGIN
    UPDATE globals SET value = value - 1 WHERE key = 'count_' || OLD.level;
END;
