//! `dataflare convert` with `postgres://` endpoints, run as a user would (the
//! built binary) against the real server of `DATAFLARE_PG_URL`: files into
//! tables and back, upserts, all-or-nothing writes, usage mistakes, and the
//! password in no output.
#![cfg(all(feature = "postgres", feature = "cli"))]

mod support;
use support::postgres::{Db, db};

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn dataflare(args: &[&str]) -> Output {
    dataflare_env(args, &[], None)
}

/// Runs the binary with `env` set and `stdin` (or nothing) on its input.
fn dataflare_env(args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dataflare"))
        .args(args)
        .env_remove("PGPASSWORD")
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the dataflare binary runs");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The password of the test server's URL.
fn password(url: &str) -> String {
    let config: dataflare::postgres::tokio_postgres::Config = url.parse().unwrap();
    String::from_utf8(
        config
            .get_password()
            .expect("the test URL has a password")
            .to_vec(),
    )
    .unwrap()
}

/// Asserts `out` succeeded and holds the password nowhere.
#[track_caller]
fn ok(out: &Output, url: &str) {
    assert!(out.status.success(), "{}", text(out));
    no_password(out, url);
}

#[track_caller]
fn no_password(out: &Output, url: &str) {
    let pw = password(url);
    let all = text(out);
    assert!(!all.contains(&pw), "the password shows: {all}");
}

const ORDERS: &str = "\
id,customer,amount,placed_at,paid,note
1,Zoë,12.50,2024-01-02T03:04:05Z,true,\"a, b\"
2,Åsa,0.05,2024-02-29T23:59:59.123456Z,false,
3,李,-7.00,2024-03-01T00:00:00Z,,日本語
";

async fn orders_table(db: &Db, name: &str) -> String {
    let t = db.table(name);
    db.exec(&format!(
        "CREATE TABLE {t} (id int8 PRIMARY KEY, customer text, amount numeric(10,2), \
         placed_at timestamptz, paid bool, note text)"
    ))
    .await;
    t
}

#[tokio::test]
async fn csv_into_a_table_and_back_out_as_csv_and_json_lines() {
    let Some(db) = db("cli_pg_roundtrip").await else {
        return;
    };
    let table = orders_table(&db, "orders").await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("orders.csv");
    std::fs::write(&input, ORDERS).unwrap();

    let out = dataflare(&[
        "convert",
        input.to_str().unwrap(),
        &db.url,
        "--table",
        &table,
    ]);
    ok(&out, &db.url);
    assert_eq!(db.count("orders").await, 3);
    // An empty CSV field is NULL, as in psql's CSV COPY.
    let rows = db
        .rows(&format!(
            "SELECT paid IS NULL, note FROM {table} WHERE id = 3 UNION ALL \
             SELECT paid, coalesce(note, 'NULL') FROM {table} WHERE id = 2"
        ))
        .await;
    assert!(rows[0].get::<_, bool>(0));
    assert_eq!(rows[1].get::<_, String>(1), "NULL");

    // The whole table back, through --table: the same CSV (ordered by the
    // query, since a table's order is the server's).
    let back = dir.path().join("back.csv");
    let out = dataflare(&[
        "convert",
        &db.url,
        back.to_str().unwrap(),
        "--query",
        &format!("SELECT * FROM {table} ORDER BY id"),
    ]);
    ok(&out, &db.url);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), ORDERS);

    let out = dataflare(&["convert", &db.url, "-", "--table", &table, "--to", "jsonl"]);
    ok(&out, &db.url);
    let mut lines: Vec<String> = String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    lines.sort();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[0],
        r#"{"id":1,"customer":"Zoë","amount":"12.50","placed_at":"2024-01-02T03:04:05Z","paid":true,"note":"a, b"}"#
    );
    assert_eq!(
        lines[2],
        r#"{"id":3,"customer":"李","amount":"-7.00","placed_at":"2024-03-01T00:00:00Z","paid":null,"note":"日本語"}"#
    );
    db.drop_schema().await;
}

#[tokio::test]
async fn an_empty_result_still_gives_a_csv_header() {
    let Some(db) = db("cli_pg_empty").await else {
        return;
    };
    let table = orders_table(&db, "orders").await;
    let out = dataflare(&["convert", &db.url, "-", "--table", &table]);
    ok(&out, &db.url);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "id,customer,amount,placed_at,paid,note\n"
    );
    db.drop_schema().await;
}

#[tokio::test]
async fn a_bad_row_fails_the_run_and_leaves_the_table_as_it_was() {
    let Some(db) = db("cli_pg_atomic").await else {
        return;
    };
    let table = orders_table(&db, "orders").await;
    db.exec(&format!(
        "INSERT INTO {table} (id, customer) VALUES (100, 'before')"
    ))
    .await;
    let before = db.dump("orders").await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("orders.csv");
    // Many good rows (several batches sent to the server), then one whose
    // amount is not a number.
    let mut csv = String::from("id,customer,amount\n");
    for i in 0..5000 {
        csv.push_str(&format!("{i},c{i},{i}.25\n"));
    }
    csv.push_str("5000,bad,twelve\n");
    std::fs::write(&input, csv).unwrap();
    let out = dataflare(&[
        "convert",
        input.to_str().unwrap(),
        &db.url,
        "--table",
        &table,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    no_password(&out, &db.url);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("twelve") && err.contains("amount"), "{err}");
    assert!(err.contains("nothing committed"), "{err}");
    assert_eq!(db.dump("orders").await, before);

    // A key already in the table: the server refuses it when the COPY ends.
    std::fs::write(&input, "id,customer\n1,new\n100,dup\n").unwrap();
    let out = dataflare(&[
        "convert",
        input.to_str().unwrap(),
        &db.url,
        "--table",
        &table,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("duplicate key"), "{}", text(&out));
    no_password(&out, &db.url);
    assert_eq!(db.dump("orders").await, before);
    db.drop_schema().await;
}

#[tokio::test]
async fn upsert_from_stdin_twice_gives_the_same_table() {
    let Some(db) = db("cli_pg_upsert").await else {
        return;
    };
    let table = db.table("customers");
    db.exec(&format!(
        "CREATE TABLE {table} (region text, id int4, name text, PRIMARY KEY (region, id)); \
         INSERT INTO {table} VALUES ('eu', 1, 'old'), ('us', 9, 'kept')"
    ))
    .await;
    let input = b"{\"region\":\"eu\",\"id\":1,\"name\":\"first\"}\n\
        {\"region\":\"eu\",\"id\":2,\"name\":\"two\"}\n\
        {\"region\":\"eu\",\"id\":1,\"name\":\"last wins\"}\n";
    let args = [
        "convert",
        "-",
        &db.url,
        "--from",
        "jsonl",
        "--table",
        &table,
        "--upsert",
        "region,id",
    ];
    let out = dataflare_env(&args, &[], Some(input));
    ok(&out, &db.url);
    let once = db.dump("customers").await;
    assert_eq!(
        once,
        ["(eu,1,\"last wins\")", "(eu,2,two)", "(us,9,kept)"],
        "{once:?}"
    );
    let out = dataflare_env(&args, &[], Some(input));
    ok(&out, &db.url);
    assert_eq!(db.dump("customers").await, once);
    db.drop_schema().await;
}

#[tokio::test]
async fn the_password_can_come_from_pgpassword() {
    let Some(db) = db("cli_pg_pgpassword").await else {
        return;
    };
    let pw = password(&db.url);
    let bare = db.url.replacen(&format!(":{pw}@"), "@", 1);
    assert!(!bare.contains(&pw));
    let query = ["convert", &bare, "-", "--query", "SELECT 1 AS one"];
    let out = dataflare_env(&query, &[("PGPASSWORD", &pw)], None);
    ok(&out, &db.url);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "one\n1\n");
    // Without it, the server refuses the login, and says so.
    let out = dataflare_env(&query, &[], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("password"), "{}", text(&out));
    db.drop_schema().await;
}

#[tokio::test]
async fn server_errors_fail_before_any_output_and_never_show_the_password() {
    let Some(db) = db("cli_pg_errors").await else {
        return;
    };
    let pw = password(&db.url);
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.csv");
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "id\n1\n").unwrap();
    let wrong = db.url.replacen(&pw, "not-the-password", 1);
    let missing = db.table("missing");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "convert",
                &db.url,
                output.to_str().unwrap(),
                "--table",
                &missing,
            ],
            "does not exist",
        ),
        (
            vec![
                "convert",
                &db.url,
                output.to_str().unwrap(),
                "--query",
                "SELEC 1",
            ],
            "syntax error",
        ),
        (
            vec![
                "convert",
                &db.url,
                output.to_str().unwrap(),
                "--query",
                "SELECT 1::money AS m",
            ],
            "cannot map",
        ),
        (
            vec![
                "convert",
                input.to_str().unwrap(),
                &db.url,
                "--table",
                &missing,
            ],
            "does not exist",
        ),
        (
            vec![
                "convert",
                &wrong,
                output.to_str().unwrap(),
                "--query",
                "SELECT 1",
            ],
            "password authentication failed",
        ),
    ];
    for (args, expected) in cases {
        let out = dataflare(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        let all = text(&out);
        assert!(all.contains(expected), "{args:?}: {all}");
        assert!(
            !all.contains(&pw) && !all.contains("not-the-password"),
            "the password shows: {all}"
        );
        assert!(all.contains("postgres://dataflare@127.0.0.1"), "{all}");
        assert!(!output.exists(), "{args:?} left an output");
    }
    db.drop_schema().await;
}

#[test]
fn usage_mistakes_exit_with_2_without_showing_the_url() {
    let url = "postgres://someone:hunter2@localhost:1/db";
    let cases: [(&[&str], &str); 8] = [
        (
            &["convert", url, "out.csv"],
            "needs --query SQL or --table NAME",
        ),
        (&["convert", "in.csv", url], "needs --table NAME"),
        (
            &[
                "convert", url, "out.csv", "--query", "SELECT 1", "--table", "t",
            ],
            "give one of them",
        ),
        (
            &["convert", "in.csv", "out.csv", "--table", "t"],
            "neither is one",
        ),
        (
            &[
                "convert", "in.csv", url, "--query", "SELECT 1", "--table", "t",
            ],
            "the input is a file",
        ),
        (
            &["convert", url, "out.csv", "--table", "t", "--upsert", "id"],
            "the output is a file",
        ),
        (
            &[
                "convert",
                url,
                "out.csv",
                "--table",
                "t",
                "--delimiter",
                ";",
            ],
            "the input is PostgreSQL",
        ),
        (
            &["convert", "in.csv", url, "--table", "t", "--to", "csv"],
            "the output is PostgreSQL",
        ),
    ];
    for (args, expected) in cases {
        let out = dataflare(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let all = text(&out);
        assert!(all.contains(expected), "{args:?}: {all}");
        assert!(!all.contains("hunter2"), "{args:?}: {all}");
    }
    // A malformed URL: refused at the start, its password not repeated.
    let out = dataflare(&[
        "convert",
        "postgres://u:hunter2@host:notaport/db",
        "-",
        "--query",
        "SELECT 1",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(!text(&out).contains("hunter2"), "{}", text(&out));
}

#[test]
fn help_documents_postgres_with_examples() {
    let out = dataflare(&["convert", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "postgres://",
        "--query <SQL>",
        "--table <NAME>",
        "--upsert <KEY[,KEY]>",
        "PGPASSWORD",
        "dataflare convert orders.csv postgres://etl@db/shop --table staging.orders",
    ] {
        assert!(help.contains(needle), "{needle:?} missing from:\n{help}");
    }
}
