// A message to one connection must be one of `Counter`'s events too.
include!("common/counter.rs");
include!("common/get_count.rs");

fn mistake(ctx: &mut Context<Counter>, conn: ConnId) -> Result<(), ActorError> {
    ctx.send_to(conn, Reset)
}

fn main() {
    let _ = mistake;
}
