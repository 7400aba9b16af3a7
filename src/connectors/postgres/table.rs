//! The table a sink writes: its name (quoted), its columns and their types,
//! and how the fields of records map onto them.

use std::sync::Arc;

use tokio_postgres::Client;
use tokio_postgres::types::Type;

use super::Connect;
use crate::Result;
use crate::record::{Record, Schema};

/// A column of the destination table.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub(crate) name: String,
    /// `None` for a type without a built-in OID (an enum, a domain).
    pub(crate) ty: Option<Type>,
    pub(crate) type_name: String,
}

/// The destination table.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    /// As written in SQL: quoted, schema-qualified when given so.
    pub(crate) sql: String,
    /// As given, for messages.
    pub(crate) name: String,
    pub(crate) columns: Vec<Column>,
}

/// `name` quoted as an SQL identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A table name as SQL: `schema.table` quoted part by part; a name already
/// holding quotes is taken as written.
pub(crate) fn quote_table(name: &str) -> String {
    if name.contains('"') {
        return name.to_string();
    }
    name.split('.')
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join(".")
}

impl Table {
    /// Looks the table up: it must exist (the error names it).
    pub(crate) async fn load(client: &Client, conn: &Connect, name: &str) -> Result<Table> {
        let sql = quote_table(name);
        let rows = client
            .query(
                "SELECT a.attname::text, a.atttypid, format_type(a.atttypid, a.atttypmod) \
                 FROM pg_attribute a WHERE a.attrelid = $1::text::regclass \
                 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                &[&sql],
            )
            .await
            .map_err(|e| conn.error(&e))?;
        let columns = rows
            .iter()
            .map(|r| Column {
                name: r.get(0),
                ty: Type::from_oid(r.get(1)),
                type_name: r.get(2),
            })
            .collect();
        Ok(Table {
            sql,
            name: name.to_string(),
            columns,
        })
    }

    pub(crate) fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The unique keys (indexes and constraints without a predicate), each
    /// as its column names, sorted.
    pub(crate) async fn unique_keys(
        &self,
        client: &Client,
        conn: &Connect,
    ) -> Result<Vec<Vec<String>>> {
        let rows = client
            .query(
                "SELECT ARRAY(SELECT a.attname::text FROM unnest(i.indkey) k \
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k) \
                 FROM pg_index i WHERE i.indrelid = $1::text::regclass AND i.indisunique \
                 AND i.indpred IS NULL",
                &[&self.sql],
            )
            .await
            .map_err(|e| conn.error(&e))?;
        Ok(rows
            .iter()
            .map(|r| {
                let mut k: Vec<String> = r.get(0);
                k.sort();
                k
            })
            .collect())
    }
}

/// Which field of a record goes into each column written, for records of one
/// schema: found once per schema, not per record.
#[derive(Debug, Default)]
pub(crate) struct Mapping {
    /// The columns written (the fields of the first record), by name.
    pub(crate) columns: Vec<Column>,
    schema: Option<Arc<Schema>>,
    /// For each column written, the index of its field in the schema.
    fields: Vec<Option<usize>>,
}

impl Mapping {
    /// Sets the columns written from the first record: its fields, each of
    /// which must be a column of the table.
    pub(crate) fn start(
        &mut self,
        table: &Table,
        first: &Record,
    ) -> std::result::Result<(), String> {
        let mut columns = Vec::with_capacity(first.schema().len());
        for name in first.schema().names() {
            match table.column(name) {
                Some(c) => columns.push(c.clone()),
                None => {
                    return Err(format!(
                        "the records have a field {name:?} that table {} has no column for \
                         (its columns: {})",
                        table.name,
                        table
                            .columns
                            .iter()
                            .map(|c| c.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
        }
        self.columns = columns;
        Ok(())
    }

    pub(crate) fn is_started(&self) -> bool {
        !self.columns.is_empty()
    }

    /// The field index of each column written, for `record`'s schema; a
    /// field no column is written for is an error naming it.
    pub(crate) fn fields(
        &mut self,
        record: &Record,
    ) -> std::result::Result<&[Option<usize>], String> {
        let schema = record.schema();
        if !self.schema.as_ref().is_some_and(|s| Arc::ptr_eq(s, schema)) {
            if let Some(extra) = schema
                .names()
                .find(|n| !self.columns.iter().any(|c| c.name == *n))
            {
                return Err(format!(
                    "a record has a field {extra:?} that the first record had not (the columns \
                     written are the first record's fields)"
                ));
            }
            self.fields = self
                .columns
                .iter()
                .map(|c| schema.index_of(&c.name))
                .collect();
            self.schema = Some(schema.clone());
        }
        Ok(&self.fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted_part_by_part() {
        assert_eq!(quote_table("orders"), "\"orders\"");
        assert_eq!(quote_table("sales.Orders"), "\"sales\".\"Orders\"");
        assert_eq!(quote_table("\"a.b\""), "\"a.b\"");
        assert_eq!(quote_ident("x\"y"), "\"x\"\"y\"");
    }
}
