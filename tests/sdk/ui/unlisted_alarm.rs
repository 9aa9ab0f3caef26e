// An alarm runs a listed action only.
include!("common/counter.rs");
include!("common/get_count.rs");

fn mistake(ctx: &mut Context<Counter>) -> Result<String, ActorError> {
    ctx.schedule().after(std::time::Duration::from_secs(60), Reset)
}

fn main() {
    let _ = mistake;
}
