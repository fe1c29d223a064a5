//! Schema versions for the SQLite stores. Each store lists its migrations
//! beside its schema; this brings a database forward to the newest at
//! start-up and refuses, clearly, one written by a newer igloo.

use std::path::Path;

use rusqlite::Connection;
use rusqlite_migration::{Error as MigrationFailure, M, MigrationDefinitionError, Migrations};

/// A store's schema could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The file was written by a newer igloo; this one must not touch it.
    #[error(
        "{path} has schema version {found}, newer than the {known} this igloo knows: \
         it was written by a newer release. Run that release, or restore a backup \
         made by this one."
    )]
    TooNew {
        /// The database file.
        path: String,
        /// Its schema version.
        found: usize,
        /// The newest this build knows.
        known: usize,
    },
    /// A migration failed; the transaction rolled back, nothing changed.
    #[error("upgrading {path} failed: {source}")]
    Failed {
        /// The database file.
        path: String,
        /// Why.
        #[source]
        source: MigrationFailure,
    },
}

/// Bring the database at `path`, open on `connection`, to the newest
/// version: one per entry of `migrations`, each run in a transaction. A
/// store's list only ever grows at its end.
pub(crate) fn to_latest(
    connection: &mut Connection,
    migrations: Vec<M<'static>>,
    path: &Path,
) -> Result<(), SchemaError> {
    let path = path.display().to_string();
    let known = migrations.len();
    match Migrations::new(migrations).to_latest(connection) {
        Ok(()) => Ok(()),
        Err(MigrationFailure::MigrationDefinition(
            MigrationDefinitionError::DatabaseTooFarAhead,
        )) => {
            let found = connection
                .pragma_query_value(None, "user_version", |row| row.get::<_, i64>(0))
                .unwrap_or(-1);
            Err(SchemaError::TooNew {
                path,
                found: usize::try_from(found).unwrap_or(0),
                known,
            })
        }
        Err(source) => Err(SchemaError::Failed { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_from_a_newer_igloo_is_refused_by_name_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.sqlite3");
        let mut connection = Connection::open(&path).unwrap();
        let newer = vec![
            M::up("CREATE TABLE a (x INTEGER);"),
            M::up("CREATE TABLE b (y INTEGER);"),
        ];
        to_latest(&mut connection, newer, &path).unwrap();

        let older = vec![M::up("CREATE TABLE a (x INTEGER);")];
        let error = to_latest(&mut connection, older, &path).unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(
                error,
                SchemaError::TooNew {
                    found: 2,
                    known: 1,
                    ..
                }
            ),
            "{message}"
        );
        assert!(
            message.contains("store.sqlite3") && message.contains("newer release"),
            "{message}"
        );
        let version: i64 = connection
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, 2, "untouched");
    }
}
