/* schema.c: the numbered migrations. Never edit a released script: add the next one.
 * Each ends by setting user_version; store.c runs the missing ones in one transaction.
 * The CHECKs and foreign keys state the invariants; the readers re-check what they read,
 * since a database file can be edited behind ksv's back. */
#include "store/store_internal.h"

static const char migration_1[] =
    /* 'ksv1': tells a ksv database from any other SQLite file. */
    "PRAGMA application_id = 1802729009;\n"

    "CREATE TABLE nodes (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  name TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 253),\n"
    "  kind TEXT NOT NULL CHECK (kind IN ('local', 'http', 'ssh')),\n"
    "  address TEXT NOT NULL CHECK (length(address) > 0),\n"
    "  token_file TEXT,\n"
    "  ssh_identity TEXT,\n"
    "  ssh_known_hosts TEXT,\n"
    "  engine_port INTEGER CHECK (engine_port IS NULL OR engine_port BETWEEN 1 AND 65535),\n"
    "  engine_path TEXT,\n"
    "  engine_state_dir TEXT,\n"
    "  created_at INTEGER NOT NULL,\n"
    "  last_seen INTEGER,\n"
    "  last_error TEXT,\n"
    "  engine_version TEXT\n"
    ");\n"

    "CREATE TABLE models (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  namespace TEXT NOT NULL CHECK (length(namespace) BETWEEN 1 AND 253),\n"
    "  name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 253),\n"
    "  spec TEXT NOT NULL,\n"
    "  annotations TEXT NOT NULL DEFAULT '{}',\n"
    "  stable_revision_id INTEGER,\n"
    "  created_at INTEGER NOT NULL,\n"
    "  updated_at INTEGER NOT NULL,\n"
    "  UNIQUE (namespace, name),\n"
    /* the stable revision is one of this model's own */
    "  FOREIGN KEY (stable_revision_id, id) REFERENCES revisions (id, model_id)\n"
    ");\n"

    "CREATE TABLE revisions (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  model_id INTEGER NOT NULL REFERENCES models (id) ON DELETE CASCADE,\n"
    "  seq INTEGER NOT NULL CHECK (seq >= 1),\n"
    "  name TEXT NOT NULL,\n"
    "  spec TEXT NOT NULL,\n"
    "  spec_sha256 TEXT NOT NULL CHECK (length(spec_sha256) = 64),\n"
    "  runtime TEXT NOT NULL CHECK (length(runtime) > 0),\n"
    "  storage_uri TEXT NOT NULL CHECK (length(storage_uri) > 0),\n"
    "  created_at INTEGER NOT NULL,\n"
    "  rolled_out_at INTEGER,\n"
    "  UNIQUE (model_id, seq),\n"
    "  UNIQUE (model_id, name),\n"
    "  UNIQUE (id, model_id)\n"
    ");\n"
    "CREATE INDEX revisions_by_hash ON revisions (model_id, spec_sha256);\n"

    "CREATE TABLE placement (\n"
    "  model_id INTEGER NOT NULL REFERENCES models (id) ON DELETE CASCADE,\n"
    "  node_id INTEGER NOT NULL REFERENCES nodes (id) ON DELETE RESTRICT,\n"
    /* engines address models by name: one model of a name per node */
    "  model_name TEXT NOT NULL,\n"
    "  PRIMARY KEY (model_id, node_id),\n"
    "  UNIQUE (node_id, model_name)\n"
    ");\n"

    "CREATE TABLE traffic (\n"
    "  model_id INTEGER NOT NULL REFERENCES models (id) ON DELETE CASCADE,\n"
    "  revision_id INTEGER NOT NULL,\n"
    "  percent INTEGER NOT NULL CHECK (percent BETWEEN 0 AND 100),\n"
    "  PRIMARY KEY (model_id, revision_id),\n"
    "  FOREIGN KEY (revision_id, model_id) REFERENCES revisions (id, model_id)\n"
    "    ON DELETE CASCADE\n"
    ");\n"

    "CREATE TABLE history (\n"
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "  at INTEGER NOT NULL,\n"
    "  actor TEXT NOT NULL,\n"
    "  action TEXT NOT NULL,\n"
    "  model TEXT,\n"
    "  node TEXT,\n"
    "  old_value TEXT,\n"
    "  new_value TEXT,\n"
    "  result TEXT NOT NULL,\n"
    "  node_results TEXT\n"
    ");\n"
    "CREATE INDEX history_by_model ON history (model, id);\n"
    "CREATE TRIGGER history_no_update BEFORE UPDATE ON history\n"
    "BEGIN SELECT RAISE(ABORT, 'history is append-only'); END;\n"
    "CREATE TRIGGER history_no_delete BEFORE DELETE ON history\n"
    "BEGIN SELECT RAISE(ABORT, 'history is append-only'); END;\n"

    "CREATE TABLE metric_samples (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  at INTEGER NOT NULL CHECK (at > 0),\n"
    "  span INTEGER NOT NULL CHECK (span > 0),\n"
    "  node TEXT NOT NULL,\n"
    "  model TEXT NOT NULL,\n"
    "  revision TEXT NOT NULL,\n"
    "  requests_2xx INTEGER NOT NULL CHECK (requests_2xx >= 0),\n"
    "  requests_4xx INTEGER NOT NULL CHECK (requests_4xx >= 0),\n"
    "  requests_5xx INTEGER NOT NULL CHECK (requests_5xx >= 0),\n"
    "  requests_other INTEGER NOT NULL CHECK (requests_other >= 0),\n"
    "  latency_sum REAL NOT NULL,\n"
    "  buckets BLOB NOT NULL,\n"
    "  rolled_up INTEGER NOT NULL DEFAULT 0\n"
    ");\n"
    "CREATE INDEX metric_samples_by_time ON metric_samples (at);\n"
    "CREATE INDEX metric_samples_pending ON metric_samples (node, model, revision, at)\n"
    "  WHERE rolled_up = 0;\n"

    "CREATE TABLE metric_rollups (\n"
    "  node TEXT NOT NULL,\n"
    "  model TEXT NOT NULL,\n"
    "  revision TEXT NOT NULL,\n"
    "  at INTEGER NOT NULL CHECK (at > 0 AND at % 60000 = 0),\n"
    "  requests_2xx INTEGER NOT NULL CHECK (requests_2xx >= 0),\n"
    "  requests_4xx INTEGER NOT NULL CHECK (requests_4xx >= 0),\n"
    "  requests_5xx INTEGER NOT NULL CHECK (requests_5xx >= 0),\n"
    "  requests_other INTEGER NOT NULL CHECK (requests_other >= 0),\n"
    "  latency_sum REAL NOT NULL,\n"
    "  buckets BLOB NOT NULL,\n"
    "  PRIMARY KEY (node, model, revision, at)\n"
    ");\n"
    "CREATE INDEX metric_rollups_by_time ON metric_rollups (at);\n"

    "PRAGMA user_version = 1;\n";

/* 2: Kubernetes ResourceQuotas per namespace (spec.hard as applied). */
static const char migration_2[] =
    "CREATE TABLE quotas (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  namespace TEXT NOT NULL,\n"
    "  name TEXT NOT NULL,\n"
    "  count_isvc INTEGER,\n"
    "  requests_memory INTEGER,\n"
    "  requests_gpu INTEGER,\n"
    "  created_at INTEGER NOT NULL,\n"
    "  updated_at INTEGER NOT NULL,\n"
    "  UNIQUE (namespace, name)\n"
    ");\n"
    "PRAGMA user_version = 2;\n";

/* 3: release gates: the Canary that gates a model's rollouts (its engine policy, without the
 * revisions) and, per node, how far the node's event log has been read into history. */
static const char migration_3[] =
    "CREATE TABLE canaries (\n"
    "  model_id INTEGER PRIMARY KEY REFERENCES models (id) ON DELETE CASCADE,\n"
    "  name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 253),\n"
    "  policy TEXT NOT NULL,\n"
    "  updated_at INTEGER NOT NULL\n"
    ");\n"
    "CREATE TABLE event_cursors (\n"
    "  node TEXT PRIMARY KEY CHECK (length(node) BETWEEN 1 AND 253),\n"
    "  log_id TEXT NOT NULL,\n"
    "  last_seq INTEGER NOT NULL CHECK (last_seq >= 0)\n"
    ");\n"
    "PRAGMA user_version = 3;\n";

/* 4: ServingRuntime / ClusterServingRuntime documents applied with `ksv apply`
 * (docs/OPERATIONS.md, "External runtimes").
 * namespace is '' for a ClusterServingRuntime. */
static const char migration_4[] =
    "CREATE TABLE serving_runtimes (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  cluster INTEGER NOT NULL CHECK (cluster IN (0, 1)),\n"
    "  namespace TEXT NOT NULL CHECK ((cluster = 1) = (namespace = '')),\n"
    "  name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 253),\n"
    "  spec TEXT NOT NULL,\n"
    "  created_at INTEGER NOT NULL,\n"
    "  updated_at INTEGER NOT NULL,\n"
    "  UNIQUE (cluster, namespace, name)\n"
    ");\n"
    "PRAGMA user_version = 4;\n";

/* 5: residency events (model-load, cold-start, model-unload, scale-to-zero, engine-start)
 * read from the nodes' event logs with their figures, for `ksv cost`. namespace and model
 * are the store's names when the event was imported (the model may be deleted since). */
static const char migration_5[] =
    "CREATE TABLE usage_events (\n"
    "  node TEXT NOT NULL CHECK (length(node) BETWEEN 1 AND 253),\n"
    "  log_id TEXT NOT NULL,\n"
    "  seq INTEGER NOT NULL CHECK (seq >= 1),\n"
    "  at INTEGER NOT NULL CHECK (at >= 0),\n"
    "  kind TEXT NOT NULL CHECK (length(kind) BETWEEN 1 AND 40),\n"
    "  namespace TEXT,\n"
    "  model TEXT,\n"
    "  revision TEXT,\n"
    "  reason TEXT,\n"
    "  memory_bytes INTEGER NOT NULL CHECK (memory_bytes >= 0),\n"
    "  gpu_memory_bytes INTEGER NOT NULL CHECK (gpu_memory_bytes >= 0),\n"
    "  requests INTEGER NOT NULL CHECK (requests >= 0),\n"
    "  idle_seconds REAL NOT NULL CHECK (idle_seconds >= 0),\n"
    "  PRIMARY KEY (node, log_id, seq)\n"
    ");\n"
    "CREATE INDEX usage_events_by_time ON usage_events (at);\n"
    "PRAGMA user_version = 5;\n";

/* 6: why a change was made (`--reason TEXT`, ksv-top's confirm dialogs; kubectl's
 * change-cause). NULL for rows written before, and for changes given no reason. */
static const char migration_6[] =
    "ALTER TABLE history ADD COLUMN reason TEXT;\n"
    "PRAGMA user_version = 6;\n";

/* 7: node labels (issue 14): placement by selector, fleet listings by label. */
static const char migration_7[] =
    "CREATE TABLE node_labels (\n"
    "  node_id INTEGER NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,\n"
    "  key TEXT NOT NULL CHECK (length(key) BETWEEN 1 AND 317),\n"
    "  value TEXT NOT NULL CHECK (length(value) <= 63),\n"
    "  PRIMARY KEY (node_id, key)\n"
    ") WITHOUT ROWID;\n"
    "PRAGMA user_version = 7;\n";

const char *const store_migrations[] = {migration_1, migration_2, migration_3, migration_4,
                                        migration_5, migration_6, migration_7};
const int store_n_migrations = (int)(sizeof store_migrations / sizeof store_migrations[0]);

_Static_assert(sizeof store_migrations / sizeof store_migrations[0] == KSV_STORE_SCHEMA_VERSION,
               "KSV_STORE_SCHEMA_VERSION must equal the number of migrations");
