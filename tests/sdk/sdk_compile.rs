//! The actor SDK's compile-time checks (issue 20): each case in `ui/` is a small application
//! crate, a correct actor (as in `node/examples/seed_000.rs`, which compiles) with one mistake,
//! and must fail to compile with the error in its `.stderr` file: the compiler's words for that
//! mistake and no other (regenerate with `TRYBUILD=overwrite` after a toolchain upgrade, and
//! read the diff). Only `cargo check` runs: the cases build nothing of RocksDB.
//!
//! * a listed action the actor does not handle (`unhandled_action`);
//! * emitting an event the actor does not list (`undeclared_event`), or sending one to a
//!   connection (`undeclared_send`);
//! * calling (`unlisted_call`) or scheduling (`unlisted_alarm`) an action the actor does not list;
//! * subscribing to, or decoding, an event it does not list (`unlisted_subscribe`).

#[test]
fn sdk_compile_time_checks() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("ui/unhandled_action.rs");
    cases.compile_fail("ui/undeclared_event.rs");
    cases.compile_fail("ui/undeclared_send.rs");
    cases.compile_fail("ui/unlisted_call.rs");
    cases.compile_fail("ui/unlisted_alarm.rs");
    cases.compile_fail("ui/unlisted_subscribe.rs");
}
