//! PostgreSQL endpoints of `convert`: a query or table as the source, a
//! table (COPY or upsert) as the sink. Built only with the `postgres`
//! feature; without it, the command line refuses `postgres://` endpoints,
//! saying how to get it.

use std::sync::Arc;

use dataflare::Result;
use dataflare::postgres::{self, Connect};
use dataflare::record::{Record, Schema};
use futures::StreamExt;

use crate::Records;
use crate::args::{Pg, PgWhat};

/// Where `endpoint` connects: its URL, with the password from `PGPASSWORD`
/// when the URL has none. Errors never hold the password.
fn connect(endpoint: &Pg) -> Result<Connect> {
    let conn = Connect::parse(&endpoint.url)?;
    if conn.config().get_password().is_some() {
        return Ok(conn);
    }
    match std::env::var("PGPASSWORD") {
        Ok(password) if !password.is_empty() => {
            let mut config = conn.config().clone();
            config.password(password);
            Ok(Connect::new(config))
        }
        _ => Ok(conn),
    }
}

/// The records of a query or table, and (for CSV output) their schema, read
/// before the run so that an empty result still gives a header; a query the
/// server refuses fails here, before the output is opened.
pub(crate) async fn source(
    endpoint: &Pg,
    wants_schema: bool,
) -> Result<(Records, Option<Arc<Schema>>)> {
    let conn = connect(endpoint)?;
    let mut source = match &endpoint.what {
        PgWhat::Query(sql) => postgres::query(conn, sql.as_str(), [0i64; 0]),
        PgWhat::Table(table) => postgres::table(conn, table),
        PgWhat::Upsert(..) => unreachable!("--upsert names an output"),
    };
    let schema = match wants_schema {
        true => Some(source.read_schema().await?),
        false => None,
    };
    Ok((source.boxed(), schema))
}

/// The sink writing a table: `COPY` (binary) or an upsert by key, one
/// transaction committed only when the run completes.
pub(crate) fn sink(endpoint: &Pg) -> Result<postgres::PgSink<Record>> {
    let conn = connect(endpoint)?;
    Ok(match &endpoint.what {
        PgWhat::Table(table) => postgres::copy_in(conn, table.as_str()),
        PgWhat::Upsert(table, keys) => postgres::upsert(conn, table.as_str(), keys.iter()),
        PgWhat::Query(_) => unreachable!("--query names an input"),
    })
}
