-- VAK shared key-value store (`[host] kv = "postgresql://..."`), schema version 2.
-- Namespaces as in the SQLite store: a skill only ever sees rows of its own name.
CREATE TABLE vak_kv (
    ns     text   NOT NULL,
    key    text   NOT NULL,
    value  text   NOT NULL,
    labels text[] NOT NULL DEFAULT '{}',   -- data-flow labels of the writer(s)
    PRIMARY KEY (ns, key)
);
