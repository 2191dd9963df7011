//! Kong's databases in the lab's one PostgreSQL server (issue 14, fix 11).
//!
//! Kong's framework started one PostgreSQL per lab (`setup()`: one `postgres` container,
//! spec/helpers/perf/drivers/docker.lua and terraform.lua) with one database, `kong_tests`,
//! that every `start_kong` of the lab used; each test emptied the entity tables it used before
//! seeding (`helpers.get_db_utils(strategy, tables)` truncates them, spec/internal/db.lua) and
//! re-ran the migrations (`kong migrations up`/`finish`, which are no-ops on a migrated
//! database). perflab does the same, once per lab instead of once per Kong start: the session
//! starts the server on the lab's database host the first time a Kong needs it
//! ([`crate::session::Session::start_postgres`]) and every later Kong start of the lab uses it.
//!
//! Inside it each Kong version and gateway instance gets a database of its own
//! ([`database_name`]): a schema belongs to a Kong version, and instances that run at once (a
//! multiplexed compare's versions) must not empty each other's tables. A case's Kong restarts
//! (one per run with `lifecycle = "per-run"`) and later cases of the same version reuse that
//! database: it is created and migrated once, and [`reset`] empties its entity tables before
//! each start seeds it again, so every start sees exactly its case's entities.

use crate::Result;
use crate::role::postgres::{Postgres, quote_literal};

/// Tables a reset keeps: Kong's migration state and locks, as its `truncate()` keeps them
/// (`PROTECTED_TABLES`, kong/db/strategies/postgres/connector.lua), and `workspaces`, whose
/// default workspace the migrations create and every entity row points at (Kong's test
/// helpers only truncate the entity tables a test names, never `workspaces`).
pub const KEPT_TABLES: &[&str] = &[
    "schema_meta",
    "schema_migrations",
    "locks",
    "parameters",
    "workspaces",
];

/// The database of Kong `version` (`3.9.3`) for gateway instance `instance` in the lab's
/// server: `kong_3_9_3_default`. PostgreSQL folds unquoted names to lower case and limits
/// them to 63 bytes; every character but `[a-z0-9_]` becomes `_`.
pub fn database_name(version: &str, instance: &str) -> String {
    let raw = format!("kong_{version}_{instance}").to_ascii_lowercase();
    let mut name: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    name.truncate(63);
    name
}

/// The statement that empties every table of the current schema but [`KEPT_TABLES`] (one
/// `TRUNCATE … RESTART IDENTITY CASCADE`, as Kong's `truncate()`), so a Kong starting on it
/// sees only the entities its case seeds.
pub fn reset_sql() -> String {
    let kept: Vec<String> = KEPT_TABLES.iter().map(|t| quote_literal(t)).collect();
    format!(
        "DO $$ DECLARE t text; BEGIN \
         SELECT string_agg(quote_ident(tablename), ', ') INTO t FROM pg_tables \
         WHERE schemaname = current_schema() AND tablename NOT IN ({}); \
         IF t IS NOT NULL THEN EXECUTE 'TRUNCATE ' || t || ' RESTART IDENTITY CASCADE'; END IF; \
         END $$",
        kept.join(", ")
    )
}

/// What tells one Kong schema from another for version label `label` that resolved to Kong
/// `version`: the version, and for a `git:` ref the ref too (a branch may carry migrations its
/// release does not have).
pub fn schema_key(label: &str, version: &str) -> String {
    match super::VersionSpec::parse(label) {
        Ok(super::VersionSpec::Git(r)) => format!("{version}_{r}"),
        _ => version.to_string(),
    }
}

/// Creates `database` in the lab's server unless it exists (true when it was created).
pub fn ensure(pg: &Postgres, database: &str) -> Result<bool> {
    pg.create_database_if_missing(database)
}

/// Empties `database`'s entity tables ([`reset_sql`]).
pub fn reset(pg: &Postgres, database: &str) -> Result<()> {
    pg.psql_on(database, &reset_sql()).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_plain_postgresql_identifiers() {
        assert_eq!(database_name("3.9.3", "default"), "kong_3_9_3_default");
        assert_eq!(database_name("3.10.0-rc.1", "v-B"), "kong_3_10_0_rc_1_v_b");
        assert_eq!(database_name(&"9".repeat(80), "x").len(), 63);
    }

    #[test]
    fn git_refs_get_databases_apart_from_their_release() {
        assert_eq!(schema_key("current", "3.9.3"), "3.9.3");
        assert_eq!(schema_key("3.9.3", "3.9.3"), "3.9.3");
        assert_eq!(schema_key("git:main", "3.10.0"), "3.10.0_main");
    }

    #[test]
    fn reset_keeps_kongs_protected_tables_and_the_workspaces() {
        let sql = reset_sql();
        for t in KEPT_TABLES {
            assert!(sql.contains(&format!("'{t}'")), "{sql}");
        }
        assert!(sql.contains("RESTART IDENTITY CASCADE"), "{sql}");
    }
}
