// `Counter` handles `Reset` but does not list it: no one can call it.
include!("common/counter.rs");
include!("common/get_count.rs");

impl Handles<Reset> for Counter {
    async fn handle(&self, _: Reset, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        ctx.state_mut().count = 0;
        Ok(())
    }
}

async fn mistake(client: &Client) -> Result<(), CallError> {
    client.actor::<Counter>("c1").call(Reset).await
}

fn main() {
    let _ = mistake;
}
