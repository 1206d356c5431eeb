-- VAK fleet store, schema version 1 (docs/FLEET.md explains every column).
-- One row per origin (one kernel's log); entries keep the exact canonical line.

CREATE TABLE vak_fleet_origins (
    origin      text PRIMARY KEY,
    size        bigint NOT NULL CHECK (size >= 0),   -- entries stored: 0 .. size-1
    last_leaf   bytea NOT NULL,                      -- leaf hash of entry size-1 (zeros if none)
    frontier    bytea NOT NULL,                      -- RFC 9162 compact range of the stored tree
    root        bytea NOT NULL,                      -- Merkle root of the stored tree
    log_offset  bigint NOT NULL DEFAULT 0,           -- byte offset of entry `size` in the log file
    ckpt_offset bigint NOT NULL DEFAULT 0,           -- bytes of LOG.ckpt already read
    witness_offset bigint NOT NULL DEFAULT 0,        -- bytes of LOG.witness already read
    shipped_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE vak_fleet_entries (
    origin text   NOT NULL,
    seq    bigint NOT NULL,
    leaf   bytea  NOT NULL,                          -- SHA-256(0x00 || line)
    kind   text   NOT NULL,
    skill  text,                                     -- skill.id, when the entry names a skill
    effect text,                                     -- decision.effect of a host_decision
    line   text   NOT NULL,                          -- the canonical JSON line, byte for byte
    PRIMARY KEY (origin, seq)
);

-- auditors' most common question: the denials of one skill across the fleet
CREATE INDEX vak_fleet_denials ON vak_fleet_entries (skill)
    WHERE kind = 'host_decision' AND effect = 'deny';

-- the entries as jsonb for queries, parsed when read (PostgreSQL's jsonb cannot hold
-- U+0000, so a \u0000 escape reads as U+FFFD here; `line` keeps the exact bytes)
CREATE VIEW vak_fleet_entries_json AS
SELECT origin, seq, kind, skill, effect, replace(line, '\u0000', '\ufffd')::jsonb AS body
FROM vak_fleet_entries;

CREATE TABLE vak_fleet_checkpoints (
    origin text   NOT NULL REFERENCES vak_fleet_origins (origin),
    size   bigint NOT NULL,
    root   bytea  NOT NULL,
    key_id bytea  NOT NULL,                          -- the log key that signed it
    note   text   NOT NULL,                          -- the signed note as the log wrote it
    PRIMARY KEY (origin, size, key_id)
);

-- verifier keys trusted for an origin: pinned at its first shipment, plus rotations
CREATE TABLE vak_fleet_keys (
    origin    text   NOT NULL REFERENCES vak_fleet_origins (origin),
    vkey      text   NOT NULL,
    since_seq bigint NOT NULL,                       -- -1: pinned; else the key_rotated seq
    PRIMARY KEY (origin, vkey)
);

-- witness cosignatures (C2SP tlog-cosignature lines) over shipped checkpoints
CREATE TABLE vak_fleet_cosignatures (
    origin  text   NOT NULL REFERENCES vak_fleet_origins (origin),
    size    bigint NOT NULL,
    root    bytea  NOT NULL,
    witness text   NOT NULL,                         -- cosigner name
    key_id  bytea  NOT NULL,
    line    text   NOT NULL,                         -- the signature line, em dash included
    body    text   NOT NULL,                         -- the checkpoint body it cosigns
    PRIMARY KEY (origin, size, root, witness, key_id)
);

-- the fleet verifier's memory: the newest verified head per origin
CREATE TABLE vak_fleet_heads (
    origin      text PRIMARY KEY,
    size        bigint NOT NULL,
    root        bytea  NOT NULL,
    verified_at timestamptz NOT NULL DEFAULT now()
);

-- batches refused by a shipper (never inserted) and what the verifier found
CREATE TABLE vak_fleet_incidents (
    id       bigserial PRIMARY KEY,
    origin   text NOT NULL,
    problem  text NOT NULL,                          -- gap, fork, rollback, spliced, ...
    seq      bigint,
    detail   text NOT NULL,
    at       timestamptz NOT NULL DEFAULT now(),
    resolved boolean NOT NULL DEFAULT false
);

-- host decisions flattened for queries
CREATE VIEW vak_fleet_decisions AS
SELECT origin, seq, skill, effect,
       body ->> 'time'                  AS time,
       body ->> 'session'               AS session,
       body ->> 'host_function'         AS host_function,
       body ->> 'resource'              AS resource,
       body #> '{decision,policy_ids}'  AS policy_ids
FROM vak_fleet_entries_json
WHERE kind = 'host_decision';
