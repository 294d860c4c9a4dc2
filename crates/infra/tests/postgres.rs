//! The private PostgreSQL server: starts as a user would run it, keeps committed data across a
//! SIGKILL and a restart, and says clearly when it cannot start.

use ferrota_infra::Postgres;

#[test]
fn a_private_server_keeps_committed_rows_across_a_kill_and_a_restart() {
    if ferrota_infra::skip_without("PostgreSQL", Postgres::available()) {
        return;
    }
    let mut pg = Postgres::start(&[]).unwrap();
    let url = pg.create_database("keep").unwrap();
    assert!(url.ends_with(&format!(":{}/keep", pg.port())), "{url}");
    pg.psql(
        "keep",
        "CREATE TABLE t (v BIGINT); INSERT INTO t VALUES (42)",
    )
    .unwrap();
    pg.kill();
    assert!(!pg.is_running());
    assert!(
        pg.psql("keep", "SELECT v FROM t").is_err(),
        "a killed server answered"
    );
    pg.restart().unwrap();
    assert_eq!(pg.psql("keep", "SELECT v FROM t").unwrap().trim(), "42");
    // A bad name is refused before any SQL is built from it.
    assert!(pg.create_database("x; DROP DATABASE keep").is_err());
    assert_eq!(
        pg.psql("keep", "SELECT count(*) FROM t").unwrap().trim(),
        "1"
    );
}

#[test]
fn the_shared_server_is_one_per_process() {
    if ferrota_infra::skip_without("PostgreSQL", Postgres::available()) {
        return;
    }
    let a = Postgres::shared().unwrap();
    let b = Postgres::shared().unwrap();
    assert_eq!(a.port(), b.port());
    assert_eq!(a.psql("postgres", "SHOW fsync").unwrap().trim(), "off");
}
