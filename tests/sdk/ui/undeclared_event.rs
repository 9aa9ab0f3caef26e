// `Reset` is not one of `Counter`'s events.
include!("common/counter.rs");
include!("common/get_count.rs");

fn mistake(ctx: &mut Context<Counter>) -> Result<(), ActorError> {
    ctx.emit(Reset)
}

fn main() {
    let _ = mistake;
}
