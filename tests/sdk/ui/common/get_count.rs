// `Counter`'s second action, handled (included by every case but `unhandled_action`).

impl Handles<GetCount> for Counter {
    async fn handle(&self, _: GetCount, ctx: &mut Context<Self>) -> Result<i64, ActorError> {
        Ok(handled_elsewhere(ctx))
    }
}
